"""Generic validation of parsed YAML, and the one-line `ConfigError` every check raises.

Each validator returns the converted value or raises `ConfigError(source, "dotted.key",
expectation)`; callers pass the dotted key of the value they check.

Example:
    >>> number("1e-3", "s.yaml", "defaults.lr")  # PyYAML reads 1e-3 as a string
    0.001
    >>> number(True, "s.yaml", "train.steps", integer=True)
    Traceback (most recent call last):
    ...
    umup_sweep.errors.ConfigError: s.yaml: train.steps: expected an integer, got True (bool)
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import reprlib
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

from umup_sweep.config._spec import AnalysisSpec, ExecutionSpec, PruningSpec
from umup_sweep.errors import ConfigError
from umup_sweep.spec import MODEL_HPS, DataSpec, ModelSpec, TrainSpec

__all__ = [
    "NONNEG",
    "POS",
    "Check",
    "as_mapping",
    "build_section",
    "check_keys",
    "convert",
    "did_you_mean",
    "fail",
    "fields",
    "int_list",
    "join",
    "number",
]

# Value ranges checked after type conversion: (description, predicate).
Check = tuple[str, Callable[[Any], bool]]
POS: Check = ("> 0", lambda v: v > 0)
NONNEG: Check = (">= 0", lambda v: v >= 0)
_UNIT_OPEN: Check = ("in [0, 1)", lambda v: 0 <= v < 1)
_UNIT_CLOSED: Check = ("in [0, 1]", lambda v: 0 <= v <= 1)
# train.device requests, as `umup_sweep.device.parse_device` accepts them (kept torch-free here;
# tests check the two agree). "auto" is resolved by the driver before any trial starts.
DEVICE_RE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")
_DEVICE_CHOICES = "auto, cpu, cuda or cuda:N"
_RANGES: dict[type, dict[str, Check]] = {
    ModelSpec: {
        "width": POS,
        "depth": POS,
        "head_dim": POS,
        "n_kv_heads": POS,
        "n_heads": POS,
        "ffn_ratio": POS,
        "ffn_hidden_size": POS,
        "rope_theta": POS,
        "vocab_size": POS,
        "seq_len": POS,
    }
    | {name: POS for name in MODEL_HPS},
    TrainSpec: {
        "steps": POS,
        "batch_size": POS,
        "beta1": _UNIT_OPEN,
        "beta2": _UNIT_OPEN,
        "eps": POS,
        "warmup_frac": _UNIT_CLOSED,
        "final_lr_frac": _UNIT_CLOSED,
        "grad_clip": POS,
        "final_window": POS,
        "eval_batches": POS,
        "eval_every": NONNEG,
        "diverge_loss": POS,
        "threads": POS,
        "device": (
            f"one of {_DEVICE_CHOICES}",
            lambda v: bool(DEVICE_RE.match(v.strip().lower())),
        ),
    },
    DataSpec: {"val_fraction": ("in (0, 1)", lambda v: 0 < v < 1), "vocab_size": POS},
    ExecutionSpec: {
        "max_concurrent": POS,
        "cpus_per_trial": POS,
        # As Ray takes it (`umup_sweep.device.check_gpus_per_trial`): ⌊1/f⌋ trials share a GPU.
        "gpus_per_trial": (
            "0, a fraction in (0, 1] (trials sharing a GPU) or a whole number of GPUs",
            lambda v: v >= 0 and (v <= 1 or float(v).is_integer()),
        ),
        "max_failures": NONNEG,
    },
    PruningSpec: {
        "every": POS,
        "margin_factor": POS,
        "min_references": (">= 2 (the margin is measured between stored trials)", lambda v: v >= 2),
    },
    AnalysisSpec: {
        "tolerance": POS,
        "precision_tolerance": POS,
        "precision_loss_threshold": POS,
    },
}

_REPR = reprlib.Repr()  # keyword arguments need Python 3.12
_REPR.maxlevel, _REPR.maxstring, _REPR.maxother = 2, 60, 60
_REPR.maxlist = _REPR.maxtuple = _REPR.maxdict = _REPR.maxset = 4


def _got(value: Any) -> str:
    """Short one-line description of a bad value, for messages."""
    text = _REPR.repr(value)  # bounded: a YAML alias bomb must not be expanded in full
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{text} ({type(value).__name__})"


def fail(source: str, key: str, expected: str, value: Any = ...) -> ConfigError:
    """The error to raise: `expected`, plus a short description of `value` when given.

    Example:
        >>> str(fail("s.yaml", "seeds[0]", "expected an integer", "x"))
        "s.yaml: seeds[0]: expected an integer, got 'x' (str)"
    """
    msg = expected if value is ... else f"{expected}, got {_got(value)}"
    return ConfigError(source, key, " ".join(msg.split()))


def join(prefix: str, key: str | int) -> str:
    """The dotted key of `key` under `prefix` (list items as ``prefix[i]``).

    Example:
        >>> join("", "train"), join("train", "steps"), join("seeds", 2)
        ('train', 'train.steps', 'seeds[2]')
    """
    if isinstance(key, int):
        return f"{prefix}[{key}]"
    return f"{prefix}.{key}" if prefix else str(key)


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """``"; did you mean 'x'?"`` for the closest choice, or ``""`` when none is close.

    Example:
        >>> did_you_mean("stpes", ["steps", "seeds"])
        "; did you mean 'steps'?"
    """
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


def as_mapping(value: Any, source: str, key: str) -> dict[str, Any]:
    """A mapping with string keys (None reads as empty), as a new dict."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise fail(source, key, "expected a mapping", value)
    for k in value:
        if not isinstance(k, str):
            raise fail(source, join(key, str(k)), "keys must be strings", k)
    return dict(value)


def check_keys(
    mapping: Mapping[str, Any], allowed: Iterable[str], source: str, prefix: str
) -> None:
    """Unknown keys → ConfigError with the closest valid key suggested.

    Example:
        >>> check_keys({"step": 1}, ["steps"], "s", "t")
        Traceback (most recent call last):
        ...
        umup_sweep.errors.ConfigError: s: t.step: unknown key; did you mean 'steps'? (valid: steps)
    """
    allowed = list(allowed)
    for k in mapping:
        if k not in allowed:
            hint = did_you_mean(k, allowed)
            raise fail(source, join(prefix, k), f"unknown key{hint} (valid: {', '.join(allowed)})")


def number(value: Any, source: str, key: str, *, integer: bool = False) -> Any:
    """An int or finite float (PyYAML reads `1e-3` as a string: accept numeric strings)."""
    kind = "an integer" if integer else "a number"
    if isinstance(value, bool):
        raise fail(source, key, f"expected {kind}", value)
    if integer:
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise fail(source, key, f"expected {kind}", value)
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise fail(source, key, f"expected {kind}", value) from None
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        raise fail(source, key, f"expected {kind} (finite)", value)
    return float(value)


def int_list(value: Any, source: str, key: str, check: Check, *, unique: bool) -> list[int]:
    """A non-empty list of integers passing `check` (a bare integer is a list of one).

    Example:
        >>> int_list([64, 32], "s.yaml", "widths", POS, unique=True)
        [64, 32]
    """
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, (list, tuple)) or not value:
        raise fail(source, key, "expected a non-empty list of integers", value)
    out = [number(v, source, join(key, i), integer=True) for i, v in enumerate(value)]
    for i, v in enumerate(out):
        if not check[1](v):
            raise fail(source, join(key, i), f"expected {check[0]}", v)
    if unique and len(set(out)) != len(out):
        raise fail(source, key, "expected distinct values", value)
    return out


def convert(tp: Any, value: Any, source: str, key: str) -> Any:
    """Convert `value` to the annotated dataclass field type `tp` or raise."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None and len(args) < len(typing.get_args(tp)):
            return None
        return convert(args[0], value, source, key)
    if origin is Literal:
        choices = typing.get_args(tp)
        if value not in choices:
            raise fail(source, key, f"expected one of {', '.join(map(str, choices))}", value)
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise fail(source, key, "expected true or false", value)
        return value
    if tp is int:
        return number(value, source, key, integer=True)
    if tp is float:
        return number(value, source, key)
    if tp is str:
        if not isinstance(value, str):
            raise fail(source, key, "expected a string", value)
        return value
    if tp is Path:
        if not isinstance(value, (str, Path)):
            raise fail(source, key, "expected a path (string)", value)
        return Path(value)
    raise TypeError(f"unsupported field type {tp!r}")  # a bug here, not user input


def fields(cls: type, mapping: Mapping[str, Any], source: str, prefix: str) -> dict[str, Any]:
    """Validate `mapping` against dataclass `cls`: keys, types and value ranges."""
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    check_keys(mapping, names, source, prefix)
    ranges = _RANGES.get(cls, {})
    out = {}
    for k, v in mapping.items():
        key = join(prefix, k)
        value = convert(hints[k], v, source, key)
        if value is not None and k in ranges and not ranges[k][1](value):
            raise fail(source, key, f"expected {ranges[k][0]}", v)
        out[k] = value
    return out


def build_section(
    cls: Any, mapping: Any, source: str, prefix: str, drop: tuple[str, ...] = ()
) -> Any:
    """Instantiate dataclass `cls` (ModelSpec, TrainSpec, ...) from a YAML mapping: unknown
    keys, wrong types, out-of-range values → `ConfigError` naming `source` and `prefix.key`.

    Example:
        >>> build_section(TrainSpec, {"steps": 50, "eps": "1e-6"}, "t.yaml", "train").eps
        1e-06
        >>> build_section(TrainSpec, {"beta1": 1.5}, "t.yaml", "train")
        Traceback (most recent call last):
        ...
        umup_sweep.errors.ConfigError: t.yaml: train.beta1: expected in [0, 1), got 1.5 (float)
    """
    values = fields(cls, as_mapping(mapping, source, prefix), source, prefix)
    for k in drop:
        values.pop(k, None)
    try:
        return cls(**values)
    except (TypeError, ValueError) as exc:
        raise fail(source, prefix, str(exc)) from None
