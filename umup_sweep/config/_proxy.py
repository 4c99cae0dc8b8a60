"""Proxy families: `proxies/*.yaml` (or a sweep's inline `proxy:`) → `ProxyFamily`.

A family is ``name:``, ``base:`` (ModelSpec keys), ``widths:`` and ``depths:``; a sweep may
override its widths, depths, parametrization and other base keys (`sweep_family`).

Example:
    >>> fam = load_proxy_family({"base": {"head_dim": 16}, "widths": [64, 32], "depths": [1]})
    >>> fam.widths, fam.base.width
    ((32, 64), 64)
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from umup_sweep.config._spec import ProxyFamily
from umup_sweep.config._validate import (
    POS,
    as_mapping,
    check_keys,
    convert,
    fail,
    fields,
    int_list,
    join,
)
from umup_sweep.config._yaml import document, read_yaml
from umup_sweep.errors import ConfigError
from umup_sweep.spec import ModelSpec

__all__ = ["load_proxy_family", "sweep_family"]

_PROXY_KEYS = ("name", "description", "base", "widths", "depths")


def load_proxy_family(
    path_or_mapping: str | Path | Mapping[str, Any],
    source: str = "<inline>",
    *,
    key: str = "",
) -> ProxyFamily:
    """Validate a proxy family (`name:`, `base:` ModelSpec keys, `widths:`, `depths:`).

    Args:
        path_or_mapping: a proxy YAML file, or the already-parsed mapping (e.g. inline in a
            sweep).
        source: file named in errors when a mapping is given.
        key: dotted prefix of the mapping inside `source` (e.g. ``"proxy"``).

    Example:
        >>> fam = load_proxy_family({"base": {"head_dim": 16}, "widths": [32, 64], "depths": [1]})
        >>> [s.n_heads for s in fam.specs()]
        [2, 4]
    """
    if isinstance(path_or_mapping, (str, Path)):
        source, key = str(path_or_mapping), ""
        data = document(read_yaml(path_or_mapping), source, "proxy family")
        default_name = Path(path_or_mapping).stem
    else:
        data = as_mapping(path_or_mapping, source, key)
        default_name = "inline"
    check_keys(data, _PROXY_KEYS, source, key)
    name = data.get("name", default_name)
    if not isinstance(name, str) or not name:
        raise fail(source, join(key, "name"), "expected a non-empty string", name)
    if "widths" not in data:
        raise fail(source, join(key, "widths"), "missing: expected a list of widths")
    if "depths" not in data:
        raise fail(source, join(key, "depths"), "missing: expected a list of depths")
    widths = int_list(data["widths"], source, join(key, "widths"), POS, unique=True)
    depths = int_list(data["depths"], source, join(key, "depths"), POS, unique=True)
    base_key = join(key, "base")
    base_raw = as_mapping(data.get("base"), source, base_key)
    base_values = fields(ModelSpec, base_raw, source, base_key)
    base_values.setdefault("width", widths[0])
    base_values.setdefault("depth", depths[0])
    try:
        base = ModelSpec(**base_values)
    except ValueError as exc:
        raise fail(source, base_key, str(exc)) from None
    return _family(name, base, widths, depths, source, key)


def _family(
    name: str, base: ModelSpec, widths: list[int], depths: list[int], source: str, key: str
) -> ProxyFamily:
    """Build the family, checking every width fits the base's head size."""
    for i, w in enumerate(widths):
        if w % base.head_dim:
            raise fail(
                source,
                join(join(key, "widths"), i),
                f"width must be a multiple of head_dim {base.head_dim}",
                w,
            )
        heads = w // base.head_dim
        if base.n_kv_heads and heads % base.n_kv_heads:
            raise fail(
                source,
                join(join(key, "widths"), i),
                f"width gives {heads} heads of head_dim {base.head_dim}, not a multiple of "
                f"n_kv_heads {base.n_kv_heads}",
                w,
            )
    return ProxyFamily(name, base, tuple(sorted(widths)), tuple(sorted(depths)))


def _resolve_proxy_path(ref: str, sweep_source: str) -> Path | None:
    """A proxy file next to the sweep file, under the CWD, or next to the sweep's folder.

    Raises OSError for a path the OS rejects (e.g. a name over 255 characters).
    """
    ref_path = Path(ref).expanduser()
    if ref_path.is_absolute():
        return ref_path if ref_path.is_file() else None
    sweep_dir = Path(sweep_source).parent if sweep_source != "<inline>" else Path.cwd()
    for base in (sweep_dir, Path.cwd(), sweep_dir.parent):
        candidate = base / ref_path
        if candidate.is_file():
            return candidate
    return None


def _sweep_proxy(data: Mapping[str, Any], source: str) -> ProxyFamily:
    """The family a sweep's `proxy:` names: a file path or an inline mapping."""
    if "proxy" not in data:
        raise fail(source, "proxy", "missing: expected a proxy file path or an inline mapping")
    proxy = data["proxy"]
    if isinstance(proxy, Mapping):
        return load_proxy_family(proxy, source, key="proxy")
    if not isinstance(proxy, str):
        raise fail(source, "proxy", "expected a proxy file path or an inline mapping", proxy)
    try:
        found = _resolve_proxy_path(proxy, source)
    except (OSError, ValueError) as exc:  # e.g. ENAMETOOLONG, or an embedded NUL byte
        reason = getattr(exc, "strerror", None) or str(exc)
        raise fail(source, "proxy", f"cannot read proxy file ({reason})", proxy) from None
    if found is None:
        raise fail(
            source,
            "proxy",
            "proxy file not found (looked next to the sweep file, in the CWD, one folder up)",
            proxy,
        )
    return load_proxy_family(found)


def _model_overrides(data: Mapping[str, Any], source: str) -> dict[str, Any]:
    """The sweep's `model:` keys and `parametrization:` laid over the family's base."""
    over = fields(ModelSpec, as_mapping(data.get("model"), source, "model"), source, "model")
    for k in ("width", "depth"):
        if k in over:
            raise fail(source, f"model.{k}", f"set {k}s at the top level instead")
    if "parametrization" in data:
        over["parametrization"] = convert(
            typing.get_type_hints(ModelSpec)["parametrization"],
            data["parametrization"],
            source,
            "parametrization",
        )
    return over


def sweep_family(data: Mapping[str, Any], source: str) -> ProxyFamily:
    """The sweep's proxy family with its `widths`, `depths`, `parametrization`, `model` applied."""
    family = _sweep_proxy(data, source)
    base = family.base
    model_over = _model_overrides(data, source)
    widths = list(family.widths)
    depths = list(family.depths)
    wkey = "widths" if "widths" in data else "proxy.widths"
    if "widths" in data:
        widths = int_list(data["widths"], source, "widths", POS, unique=True)
    if "depths" in data:
        depths = int_list(data["depths"], source, "depths", POS, unique=True)
    if model_over:
        # n_heads is re-derived from head_dim (ProxyFamily.specs) unless given here.
        model_over = {"n_heads": None, **model_over}
        try:
            base = dataclasses.replace(
                base, width=sorted(widths)[0], depth=sorted(depths)[0], **model_over
            )
        except ValueError as exc:
            bad = next(
                (k for k in ("head_dim", "n_heads", "n_kv_heads") if model_over.get(k)), None
            )
            raise fail(source, f"model.{bad}" if bad else "model", str(exc)) from None
    try:
        return _family(family.name, base, widths, depths, source, "")
    except ConfigError as exc:
        raise ConfigError(source, exc.key.replace("widths", wkey, 1), exc.expected) from None
