"""Reading YAML safely: no Python tags, no duplicate keys, syntax errors as one line.

Example:
    >>> parse_overrides(["train.steps=50", "widths=[32, 64]"])
    {'train.steps': 50, 'widths': [32, 64]}
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from umup_sweep.config._validate import as_mapping, fail
from umup_sweep.errors import ConfigError

__all__ = ["document", "parse_overrides", "read_yaml"]

_DOTTED_RE = re.compile(r"[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*")


class _SafeUniqueLoader(yaml.SafeLoader):
    """`yaml.SafeLoader` (no Python tags) that also refuses duplicate keys, which plain YAML
    loading silently resolves to the last one."""


def _unique_mapping(loader: _SafeUniqueLoader, node: yaml.MappingNode, deep: bool = False) -> Any:
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)  # type: ignore[no-untyped-call]
        if key in seen and key != "<<":
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep)


_SafeUniqueLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _unique_mapping)


def read_yaml(path: str | Path) -> Any:
    """Safe-load a YAML file (`yaml.SafeLoader`, duplicate keys refused); a missing file or a
    syntax error → ConfigError with the line.

    Example:
        >>> read_yaml("no/such/file.yaml")
        Traceback (most recent call last):
        ...
        umup_sweep.errors.ConfigError: no/such/file.yaml: file not found
    """
    source = str(path)
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        raise ConfigError(source, "", "file not found") from None
    except OSError as exc:
        raise ConfigError(source, "", f"cannot read file: {exc.strerror}") from None
    try:
        return yaml.load(text, Loader=_SafeUniqueLoader)  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        msg = " ".join(f"YAML syntax error{where}: {problem}".split())
        raise ConfigError(source, "", msg) from None


def document(data: Any, source: str, what: str) -> dict[str, Any]:
    """A whole YAML document that must be a mapping of `what` keys (e.g. "sweep")."""
    if data is None:
        raise ConfigError(source, "", f"empty document: expected a mapping of {what} keys")
    if not isinstance(data, Mapping):
        raise fail(source, "", f"expected a mapping of {what} keys at the top level", data)
    return as_mapping(data, source, "")


def parse_overrides(items: Sequence[str], source: str = "--set") -> dict[str, Any]:
    """``["train.steps=50", "widths=[32, 64]"]`` → ``{"train.steps": 50, "widths": [32, 64]}``.

    Values are read as YAML (so numbers, lists and null come out typed), for `load_sweep`'s
    `overrides`; a malformed item raises ConfigError naming it.

    Example:
        >>> parse_overrides(["execution.max_concurrent=4", "storage.url=null"])
        {'execution.max_concurrent': 4, 'storage.url': None}
    """
    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key or not _DOTTED_RE.fullmatch(key):
            raise ConfigError(source, item, "expected dotted.key=value, e.g. train.steps=50")
        try:
            out[key] = yaml.safe_load(text) if text.strip() else None
        except yaml.YAMLError:
            raise ConfigError(source, key, f"value is not valid YAML: {text!r}") from None
    return out
