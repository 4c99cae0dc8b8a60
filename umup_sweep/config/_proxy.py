"""Proxy families: `proxies/*.yaml` (or a sweep's inline `proxy:`) → `ProxyFamily`.

A family is ``name:``, ``base:`` (ModelSpec keys), ``widths:`` and ``depths:``; a sweep may
override its widths, depths, parametrization and other base keys (`sweep_family`). Optional:
``description:``, ``fixed_heads: true`` (every width keeps base n_heads, head_dim = width /
n_heads) and ``kv_group: N`` (every width keeps N query heads per kv head).

Or the family is derived from the sweep's target (`TargetSpec`): ``{from_target: true,
widths, depths, head_dim: keep | scale | <int>, seq_len: N}`` (plus name, description). The
proxies keep the target's GQA ratio (query heads per kv head), FFN ratio (ffn_hidden / width,
rounded up to a multiple of 8 at each width), activation, norm, pos, rope_theta and
vocab_size; only width (the number of heads) and depth shrink. `head_dim`: ``keep`` (default)
keeps the target's head_dim; ``scale`` keeps its n_heads and n_kv_heads (head_dim = width /
n_heads, which μP's 1/d_head attention allows); an integer sets it. `seq_len` defaults to 128
(CPU proxies), not the target's.

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
from typing import Any, Literal

from umup_sweep.config._spec import ProxyFamily, TargetSpec
from umup_sweep.config._validate import (
    POS,
    as_mapping,
    check_keys,
    convert,
    fail,
    fields,
    int_list,
    join,
    number,
)
from umup_sweep.config._yaml import document, read_yaml
from umup_sweep.errors import ConfigError
from umup_sweep.spec import ModelSpec

__all__ = [
    "HeadDimMode",
    "family_with_widths",
    "load_proxy_family",
    "proxy_spec_from_target",
    "sweep_family",
]

_PROXY_KEYS = ("name", "description", "base", "widths", "depths", "fixed_heads", "kv_group")
_FROM_TARGET_KEYS = (
    "name",
    "description",
    "from_target",
    "widths",
    "depths",
    "head_dim",
    "seq_len",
)
HeadDimMode = Literal["keep", "scale"] | int
_NO_TARGET = (
    "no target to derive the proxies from: give the sweep a top-level target: (a mapping or "
    "a file) or pass --target FILE"
)
_FIXED_FFN = "a family scales its FFN with width: set ffn_ratio, not ffn_hidden_size"


def load_proxy_family(
    path_or_mapping: str | Path | Mapping[str, Any],
    source: str = "<inline>",
    *,
    key: str = "",
    target: TargetSpec | None = None,
) -> ProxyFamily:
    """Validate a proxy family (`name:`, `base:` ModelSpec keys, `widths:`, `depths:`), or
    derive one from `target` (``from_target: true``).

    Args:
        path_or_mapping: a proxy YAML file, or the already-parsed mapping (e.g. inline in a
            sweep).
        source: file named in errors when a mapping is given.
        key: dotted prefix of the mapping inside `source` (e.g. ``"proxy"``).
        target: the model a ``from_target: true`` family is derived from.

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
    if data.get("from_target", False) is not False:
        if data["from_target"] is not True:
            raise fail(
                source, join(key, "from_target"), "expected true or false", data["from_target"]
            )
        return _family_from_target(data, target, source, key)
    data.pop("from_target", None)  # false: an ordinary family
    check_keys(data, _PROXY_KEYS, source, key)
    name, description, widths, depths = _common_keys(data, source, key, default_name)
    base_key = join(key, "base")
    base_raw = as_mapping(data.get("base"), source, base_key)
    base_values = fields(ModelSpec, base_raw, source, base_key)
    if base_values.get("ffn_hidden_size") is not None:
        raise fail(source, join(base_key, "ffn_hidden_size"), _FIXED_FFN)
    base_values.setdefault("width", widths[0])
    base_values.setdefault("depth", depths[0])
    try:
        base = ModelSpec(**base_values)
    except ValueError as exc:
        raise fail(source, base_key, str(exc)) from None
    fixed_heads = convert(bool, data.get("fixed_heads", False), source, join(key, "fixed_heads"))
    kv_group = data.get("kv_group")
    if kv_group is not None:
        kv_group = number(kv_group, source, join(key, "kv_group"), integer=True)
        if kv_group <= 0:
            raise fail(source, join(key, "kv_group"), "expected > 0", kv_group)
    template = ProxyFamily(name, base, (), (), fixed_heads, kv_group, description)
    return _family(template, widths, depths, source, key)


def _common_keys(
    data: Mapping[str, Any], source: str, key: str, default_name: str
) -> tuple[str, str, list[int], list[int]]:
    """name, description, widths and depths, as every family has them."""
    name = data.get("name", default_name)
    if not isinstance(name, str) or not name:
        raise fail(source, join(key, "name"), "expected a non-empty string", name)
    description = data.get("description", "")
    if not isinstance(description, str):
        raise fail(source, join(key, "description"), "expected a string", description)
    if "widths" not in data:
        raise fail(source, join(key, "widths"), "missing: expected a list of widths")
    if "depths" not in data:
        raise fail(source, join(key, "depths"), "missing: expected a list of depths")
    widths = int_list(data["widths"], source, join(key, "widths"), POS, unique=True)
    depths = int_list(data["depths"], source, join(key, "depths"), POS, unique=True)
    return name, description, widths, depths


def _width_rule(
    head_dim: int | None, n_heads: int | None, group: int, rope: bool
) -> tuple[int, str]:
    """(unit, what): the widths that keep the heads are the multiples of unit.

    Example:
        >>> _width_rule(128, None, 4, True)
        (512, 'keep head_dim 128 with 4 query heads per kv head')
        >>> _width_rule(None, 32, 4, True)
        (64, 'split into 32 heads of even head_dim')
    """
    if n_heads is not None:
        even = " of even head_dim" if rope else ""
        return n_heads * (2 if rope else 1), f"split into {n_heads} heads{even}"
    assert head_dim is not None
    per_kv = f" with {group} query heads per kv head" if group > 1 else ""
    return head_dim * group, f"keep head_dim {head_dim}{per_kv}"


def _cannot(width: int, rule: tuple[int, str]) -> str:
    """The message for a width that breaks `rule`, listing widths that keep it."""
    unit, what = rule
    can = ", ".join(str(unit * k) for k in (1, 2, 3, 4))
    return f"{width} cannot {what}; widths that can: {can}, ..."


def _check_kept_heads(template: ProxyFamily, widths: list[int], source: str, key: str) -> None:
    """Every width keeps the heads as a `fixed_heads` / `kv_group` family says."""
    base = template.base
    group = template.kv_group or 1
    if template.kv_group and base.n_kv_heads and base.n_heads != base.n_kv_heads * group:
        raise fail(
            source,
            join(key, "kv_group"),
            f"base has {base.n_heads} heads and {base.n_kv_heads} kv heads, not {group} query "
            "heads per kv head",
            template.kv_group,
        )
    n_heads = base.n_heads if template.fixed_heads else None
    rule = _width_rule(base.head_dim, n_heads, group, base.pos == "rope")
    for i, w in enumerate(widths):
        if w % rule[0]:
            raise ConfigError(source, join(join(key, "widths"), i), _cannot(w, rule))


def _family(
    template: ProxyFamily, widths: list[int], depths: list[int], source: str, key: str
) -> ProxyFamily:
    """`template` (name, base, head rules) at `widths` and `depths`, checking every width fits
    the base's heads."""
    name, base = template.name, template.base
    if template.fixed_heads or template.kv_group:
        _check_kept_heads(template, widths, source, key)
        return dataclasses.replace(
            template,
            base=template.spec(min(widths), min(depths)),
            widths=tuple(sorted(widths)),
            depths=tuple(sorted(depths)),
        )
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
    return ProxyFamily(
        name, base, tuple(sorted(widths)), tuple(sorted(depths)), description=template.description
    )


def proxy_spec_from_target(
    target: TargetSpec | ModelSpec,
    width: int,
    depth: int,
    head_dim: HeadDimMode = "keep",
    seq_len: int = 128,
) -> ModelSpec:
    """The u-μP proxy of `target` at `width` and `depth` (see the module docstring).

    Raises:
        ValueError: the width cannot keep the heads, naming widths that can.

    Example:
        >>> target = ModelSpec(width=4096, depth=32, n_heads=32, n_kv_heads=8,
        ...                    ffn_hidden_size=11008, vocab_size=32000, seq_len=4096)
        >>> p = proxy_spec_from_target(target, 512, 2)
        >>> p.n_heads, p.kv_heads, p.head_dim, p.ffn_hidden, p.vocab_size, p.seq_len
        (4, 1, 128, 1376, 32000, 128)
        >>> p = proxy_spec_from_target(target, 256, 2, head_dim="scale")
        >>> p.n_heads, p.kv_heads, p.head_dim
        (32, 8, 8)
        >>> proxy_spec_from_target(target, 256, 2)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: 256 cannot keep head_dim 128 with 4 query heads per kv head; ... 512, 1024, ...
    """
    t = target.model if isinstance(target, TargetSpec) else target
    n_heads, group = int(t.n_heads or 0), t.n_heads // t.kv_heads if t.n_heads else 1
    fixed = n_heads if head_dim == "scale" else None
    dim = None if fixed else (t.head_dim if head_dim == "keep" else int(head_dim))
    if dim is not None and t.pos == "rope" and dim % 2:
        raise ValueError(f"head_dim {dim}: rope needs it even")
    rule = _width_rule(dim, fixed, group, t.pos == "rope")
    if width % rule[0]:
        raise ValueError(_cannot(width, rule))
    heads = fixed or width // int(dim or 1)
    return ModelSpec(
        width=width,
        depth=depth,
        n_heads=heads,
        n_kv_heads=t.n_kv_heads if fixed else (heads // group if group > 1 else None),
        ffn=t.ffn,
        ffn_ratio=t.ffn_hidden / t.width,
        vocab_size=t.vocab_size,
        seq_len=seq_len,
        pos=t.pos,
        norm=t.norm,
        rope_theta=t.rope_theta,
    )


def _head_dim_mode(value: Any, source: str, key: str) -> HeadDimMode:
    if value in ("keep", "scale"):
        return str(value)  # type: ignore[return-value]
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    raise fail(source, key, "expected keep, scale or a positive integer", value)


def _family_from_target(
    data: Mapping[str, Any], target: TargetSpec | None, source: str, key: str
) -> ProxyFamily:
    """``{from_target: true, widths, depths, head_dim, seq_len}`` → the target's proxies."""
    check_keys(data, _FROM_TARGET_KEYS, source, key)
    if target is None:
        raise fail(source, join(key, "from_target"), _NO_TARGET)
    default = f"{target.name}-proxies"
    name, description, widths, depths = _common_keys(data, source, key, default)
    mode = _head_dim_mode(data.get("head_dim", "keep"), source, join(key, "head_dim"))
    seq_len = number(data.get("seq_len", 128), source, join(key, "seq_len"), integer=True)
    if seq_len <= 0:
        raise fail(source, join(key, "seq_len"), "expected > 0", seq_len)
    t = target.model
    try:
        base = proxy_spec_from_target(target, min(widths), min(depths), mode, seq_len)
    except ValueError as exc:
        if not isinstance(mode, int) or mode % 2 == 0 or t.pos != "rope":
            i = widths.index(min(widths))
            raise ConfigError(source, join(join(key, "widths"), i), str(exc)) from None
        raise fail(source, join(key, "head_dim"), "expected an even integer (rope)", mode) from None
    group = t.n_heads // t.kv_heads if t.n_heads else 1
    how = {"keep": f"keep ({base.head_dim})", "scale": f"scale ({t.n_heads} heads)"}
    derived = (
        f"derived from target {target.name} ({target.source}): head_dim "
        f"{how.get(str(mode), str(mode))}, {group} query heads per kv head, ffn ratio "
        f"{base.ffn_ratio:g} ({t.ffn}), vocab {t.vocab_size}, rope_theta {t.rope_base:g}, "
        f"seq_len {base.seq_len}"
    )
    description = f"{description}; {derived}" if description else derived
    fixed = mode == "scale"
    kv_group = None if fixed or group == 1 else group
    template = ProxyFamily(name, base, (), (), fixed, kv_group, description)
    return _family(template, widths, depths, source, key)


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


def _sweep_proxy(data: Mapping[str, Any], source: str, target: TargetSpec | None) -> ProxyFamily:
    """The family a sweep's `proxy:` names: a file path or an inline mapping."""
    if "proxy" not in data:
        raise fail(source, "proxy", "missing: expected a proxy file path or an inline mapping")
    proxy = data["proxy"]
    if isinstance(proxy, Mapping):
        return load_proxy_family(proxy, source, key="proxy", target=target)
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
    return load_proxy_family(found, target=target)


def _model_overrides(data: Mapping[str, Any], source: str) -> dict[str, Any]:
    """The sweep's `model:` keys and `parametrization:` laid over the family's base."""
    over = fields(ModelSpec, as_mapping(data.get("model"), source, "model"), source, "model")
    for k in ("width", "depth"):
        if k in over:
            raise fail(source, f"model.{k}", f"set {k}s at the top level instead")
    if over.get("ffn_hidden_size") is not None:
        raise fail(source, "model.ffn_hidden_size", _FIXED_FFN)
    if "parametrization" in data:
        over["parametrization"] = convert(
            typing.get_type_hints(ModelSpec)["parametrization"],
            data["parametrization"],
            source,
            "parametrization",
        )
    return over


def sweep_family(
    data: Mapping[str, Any], source: str, target: TargetSpec | None = None
) -> ProxyFamily:
    """The sweep's proxy family with its `widths`, `depths`, `parametrization`, `model` applied
    (derived from `target` when the proxy says ``from_target: true``)."""
    family = _sweep_proxy(data, source, target)
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
        template = dataclasses.replace(family, base=base)
        return _family(template, widths, depths, source, "")
    except ConfigError as exc:
        raise ConfigError(source, exc.key.replace("widths", wkey, 1), exc.expected) from None


def family_with_widths(family: ProxyFamily, widths: list[int], source: str) -> ProxyFamily:
    """`family` at other `widths`, each checked against its heads rule (ConfigError naming
    `source` and ``widths[i]`` otherwise).

    Example:
        >>> fam = load_proxy_family({"base": {"head_dim": 16}, "widths": [32], "depths": [1]})
        >>> family_with_widths(fam, [64, 32], "--widths").widths
        (32, 64)
    """
    return _family(family, list(widths), list(family.depths), source, "")
