"""The sweep file's `execution` section, with its one non-scalar key `fuse`.

`fuse` is `auto`, `off` or a whole number K >= 1 (K = 1 is the same as `off`). YAML 1.1
reads a bare `off` as false, so false means `off` too.

Example:
    >>> execution_section({"executor": "serial", "fuse": 4}, "s.yaml").fuse
    4
    >>> execution_section({"fuse": False}, "s.yaml").fuse
    'off'
    >>> execution_section({"fuse": "sometimes"}, "s.yaml")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    umup_sweep.errors.ConfigError: s.yaml: execution.fuse: expected auto, off or a whole ...
"""

from __future__ import annotations

import dataclasses
from typing import Any

from umup_sweep.config._spec import ExecutionSpec, FuseSetting
from umup_sweep.config._validate import as_mapping, build_section, fail

__all__ = ["execution_section", "fuse_setting"]

_FUSE_EXPECTED = "expected auto, off or a whole number of trials >= 1"


def fuse_setting(value: Any, source: str, key: str = "execution.fuse") -> FuseSetting:
    """`execution.fuse` as `ExecutionSpec` holds it: "auto", "off" or an int >= 1.

    Example:
        >>> fuse_setting("AUTO", "s.yaml"), fuse_setting(8.0, "s.yaml"), fuse_setting(1, "s.yaml")
        ('auto', 8, 1)
    """
    if value is False:
        return "off"
    if isinstance(value, str) and value.strip().lower() in ("auto", "off"):
        return value.strip().lower()  # type: ignore[return-value]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise fail(source, key, _FUSE_EXPECTED, value)
    if not float(value).is_integer() or value < 1:
        raise fail(source, key, _FUSE_EXPECTED, value)
    return int(value)


def execution_section(value: Any, source: str) -> ExecutionSpec:
    """The `ExecutionSpec` of a sweep's `execution` mapping (None: the defaults), checked:
    unknown keys, wrong types and bad values raise a one-line `ConfigError`."""
    mapping = as_mapping(value, source, "execution")
    raw = mapping.pop("fuse", "off")
    execution = build_section(ExecutionSpec, mapping, source, "execution")
    return dataclasses.replace(execution, fuse=fuse_setting(raw, source))
