"""Hyperparameter search spaces: `hyperparameters:` (and `defaults:`) of a sweep → `HPSpace`.

A space is a plain list, ``{values: [...]}``, ``{log2_range: [lo, hi], step: 1}`` or
``{distribution: log_uniform_values | uniform, min, max}``; values are > 0 (weight_decay >= 0).

Example:
    >>> hyperparameters({"lr": {"log2_range": [-1, 1]}}, "s.yaml")["lr"].values
    (0.5, 1.0, 2.0)
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from umup_sweep.config._spec import HPSpace
from umup_sweep.config._validate import as_mapping, check_keys, did_you_mean, fail, join, number
from umup_sweep.spec import HP_NAMES

__all__ = ["fit_to_strategy", "hp_name", "hp_value", "hyperparameters"]

_HP_SPACE_KEYS = ("values", "log2_range", "step", "distribution", "min", "max", "coupled")
_DISTRIBUTIONS = ("log_uniform_values", "uniform")
_MAX_GRID_POINTS = 1000


def hp_value(name: str, value: Any, source: str, key: str) -> float:
    """A value of HP `name`: a number > 0 (weight_decay: >= 0)."""
    v = number(value, source, key)
    if name == "weight_decay":
        if v < 0:
            raise fail(source, key, "weight_decay must be >= 0", value)
    elif v <= 0:
        raise fail(source, key, f"{name} must be > 0", value)
    return v


def hp_name(name: Any, source: str, key: str) -> str:
    """`name` if it is a hyperparameter (`spec.HP_NAMES`), else a ConfigError with a hint."""
    if name not in HP_NAMES:
        hint = did_you_mean(str(name), HP_NAMES)
        raise fail(source, key, f"unknown hyperparameter{hint} (valid: {', '.join(HP_NAMES)})")
    return str(name)


def _values(name: str, raw: Any, source: str, key: str) -> list[float]:
    if not isinstance(raw, (list, tuple)) or not raw:
        raise fail(source, key, "expected a non-empty list of numbers", raw)
    values = [hp_value(name, v, source, join(key, i)) for i, v in enumerate(raw)]
    if len(set(values)) != len(values):
        raise fail(source, key, "expected distinct values", raw)
    return values


def _log2_range(spec: dict[str, Any], source: str, key: str) -> tuple[list[float], float, float]:
    """The grid ``2**lo, 2**(lo + step), ... <= 2**hi``, and its bounds ``2**lo, 2**hi``."""
    rkey = join(key, "log2_range")
    raw = spec["log2_range"]
    if not isinstance(raw, (list, tuple)) or len(raw) != 2:
        raise fail(source, rkey, "expected [low, high] exponents of 2", raw)
    lo, hi = (number(v, source, join(rkey, i)) for i, v in enumerate(raw))
    if lo > hi:
        raise fail(source, rkey, "expected low <= high", raw)
    step = number(spec.get("step", 1), source, join(key, "step"))
    if step <= 0:
        raise fail(source, join(key, "step"), "expected > 0", spec.get("step"))
    n = int(math.floor((hi - lo) / step + 1e-9)) + 1
    if n > _MAX_GRID_POINTS:
        raise fail(source, rkey, f"expected at most {_MAX_GRID_POINTS} grid points", raw)
    return [2.0 ** (lo + i * step) for i in range(n)], 2.0**lo, 2.0**hi


def _distribution(
    name: str, spec: dict[str, Any], source: str, key: str
) -> tuple[float, float, bool]:
    """(low, high, log) of ``{distribution:, min:, max:}``."""
    dist = spec["distribution"]
    if dist not in _DISTRIBUTIONS:
        raise fail(
            source, join(key, "distribution"), f"expected one of {', '.join(_DISTRIBUTIONS)}", dist
        )
    for bound in ("min", "max"):
        if bound not in spec:
            raise fail(source, join(key, bound), f"missing: {dist} needs min and max")
    low = hp_value(name, spec["min"], source, join(key, "min"))
    high = hp_value(name, spec["max"], source, join(key, "max"))
    if not low < high:
        raise fail(source, join(key, "max"), f"expected max > min ({low})", spec["max"])
    log = dist == "log_uniform_values"
    if log and low <= 0:
        raise fail(source, join(key, "min"), "log_uniform_values needs min > 0", low)
    return low, high, log


def _hp_space(name: str, value: Any, source: str, key: str) -> HPSpace:
    """`values: [...]`, a plain list, `{log2_range: [lo, hi], step:}` or a distribution."""
    if isinstance(value, (list, tuple)):
        value = {"values": list(value)}
    spec = as_mapping(value, source, key)
    if not spec:
        raise fail(source, key, "expected values, log2_range or distribution", value)
    check_keys(spec, _HP_SPACE_KEYS, source, key)
    if set(spec) == {"coupled"}:
        raise fail(source, key, "expected values, log2_range or distribution", value)
    if "values" in spec and "log2_range" in spec:
        raise fail(source, key, "give either values or log2_range, not both")
    if "step" in spec and "log2_range" not in spec:
        raise fail(source, join(key, "step"), "step only goes with log2_range")
    values: list[float] = []
    low = high = None
    log = True
    if "values" in spec:
        values = _values(name, spec["values"], source, join(key, "values"))
    if "log2_range" in spec:
        values, low, high = _log2_range(spec, source, key)
    if "distribution" in spec:
        low, high, log = _distribution(name, spec, source, key)
    elif "min" in spec or "max" in spec:
        bad = "min" if "min" in spec else "max"
        raise fail(source, join(key, bad), "min/max need distribution: log_uniform_values")
    coupled = _coupled(name, spec, source, key)
    return HPSpace(values=tuple(sorted(values)), low=low, high=high, log=log, coupled=coupled)


def _coupled(name: str, spec: dict[str, Any], source: str, key: str) -> str | None:
    """``coupled: lr`` (weight_decay only): the values are factors of the trial's lr."""
    if "coupled" not in spec:
        return None
    if name != "weight_decay":
        raise fail(source, join(key, "coupled"), "only weight_decay can be coupled (to lr)")
    if spec["coupled"] != "lr":
        raise fail(
            source,
            join(key, "coupled"),
            "expected lr (each value λ then runs as weight decay λ × lr)",
            spec["coupled"],
        )
    return "lr"


def hyperparameters(data: Any, source: str) -> dict[str, HPSpace]:
    """The `hyperparameters:` section: at least one HP, each with a valid space."""
    mapping = as_mapping(data, source, "hyperparameters")
    if not mapping:
        raise fail(source, "hyperparameters", "expected at least one swept hyperparameter")
    out = {}
    for name, value in mapping.items():
        key = join("hyperparameters", name)
        out[hp_name(name, source, key)] = _hp_space(name, value, source, key)
    return out


def fit_to_strategy(
    spaces: dict[str, HPSpace], strategy: str, sampled: bool, source: str
) -> dict[str, HPSpace]:
    """Grid-like strategies need values; samplers (`sampled`) need bounds (derived from values).

    Example:
        >>> fit_to_strategy({"lr": HPSpace(values=(0.5, 2.0))}, "tpe", True, "s.yaml")["lr"]
        HPSpace(values=(0.5, 2.0), low=0.5, high=2.0, log=True)
    """
    out = {}
    for name, space in spaces.items():
        key = join("hyperparameters", name)
        if not sampled and not space.values:
            raise fail(
                source,
                key,
                f"strategy {strategy} needs grid points: give values or log2_range "
                "(a distribution alone is for random/tpe)",
            )
        if sampled and space.low is None:
            lo, hi = min(space.values), max(space.values)
            if not lo < hi:
                raise fail(
                    source, key, f"strategy {strategy} needs a range: give 2+ values or min/max"
                )
            space = dataclasses.replace(space, low=lo, high=hi, log=lo > 0)
        out[name] = space
    return out
