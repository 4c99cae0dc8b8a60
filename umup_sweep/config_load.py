"""Sweep and proxy-family YAML → validated `SweepSpec` / `ProxyFamily`.

Everything the user can get wrong is raised as `ConfigError(file, "dotted.key", expectation)`:
one line that names the file, the key and what would have been accepted. Keys follow the
W&B sweep conventions where they fit (`method` is accepted for `strategy`, `parameters` for
`hyperparameters`, `metric` may be `{name:, goal: minimize}`).

Sweep keys (all optional unless marked):
    name            run folder name (default: file stem); letters, digits, . _ - only
    proxy*          proxy YAML path (next to the sweep file, the CWD, or one folder up) or an
                    inline mapping {name, base: ModelSpec keys, widths, depths}
    widths, depths, parametrization, model
                    override the family's widths/depths, parametrization, other base keys
    seeds           list of ints (default [0])
    precisions      list of fp32 | bf16 | fp8_sim: every proxy runs at each (default
                    [train.precision]); train.precision, if given, must be one of them
    strategy        grid | independent | random | tpe (alias: method; default grid)
    hyperparameters* (alias: parameters) per HP in spec.HP_NAMES: a list, {values: [...]},
                    {log2_range: [lo, hi], step: 1}, or {distribution: log_uniform_values |
                    uniform, min, max}; values > 0 (weight_decay >= 0)
    defaults        values of the HPs not swept (else proxy base, else spec.HP_DEFAULTS)
    train, data     TrainSpec / DataSpec keys (lr and weight_decay go in defaults)
    metric          val_loss | final_train_loss, or {name:, goal: minimize}
    divergence      {max_loss: x} (= train.diverge_loss)
    execution       {executor: ray|serial, max_concurrent, cpus_per_trial, gpus_per_trial,
                    address, max_failures}
    storage         {run_dir, url}, or a bare Optuna storage URL string (= {url: ...});
                    analysis: {tolerance}
    budget          configurations per proxy (random/tpe only, required there)
    strategy_options  per strategy, see STRATEGY_OPTIONS
    description     free text

Example:
    >>> from umup_sweep.config_load import load_sweep, sweep_to_dict
    >>> sweep = load_sweep("sweeps/smoke.yaml")  # doctest: +SKIP
    >>> load_sweep(write(sweep_to_dict(sweep))) == sweep  # doctest: +SKIP
    True
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import hashlib
import json
import math
import re
import reprlib
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import yaml

from umup_sweep.config import (
    AnalysisSpec,
    ExecutionSpec,
    HPSpace,
    ProxyFamily,
    StorageSpec,
    StrategyName,
    SweepSpec,
)
from umup_sweep.errors import ConfigError
from umup_sweep.spec import HP_DEFAULTS, HP_NAMES, MODEL_HPS, DataSpec, ModelSpec, TrainSpec

__all__ = [
    "STRATEGY_OPTIONS",
    "build_section",
    "load_proxy_family",
    "load_sweep",
    "parse_overrides",
    "precision_names",
    "read_yaml",
    "sweep_hash",
    "sweep_to_dict",
]

_TOP_KEYS = (
    "name",
    "description",
    "proxy",
    "widths",
    "depths",
    "parametrization",
    "model",
    "seeds",
    "precisions",
    "strategy",
    "hyperparameters",
    "defaults",
    "train",
    "data",
    "metric",
    "divergence",
    "execution",
    "storage",
    "budget",
    "analysis",
    "strategy_options",
)
_ALIASES = {"method": "strategy", "parameters": "hyperparameters"}
_PROXY_KEYS = ("name", "description", "base", "widths", "depths")
_HP_SPACE_KEYS = ("values", "log2_range", "step", "distribution", "min", "max")
_DISTRIBUTIONS = ("log_uniform_values", "uniform")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
# train.device requests, as `umup_sweep.device.parse_device` accepts them (kept torch-free here;
# tests check the two agree). "auto" is resolved by the driver before any trial starts.
_DEVICE_RE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")
_DEVICE_CHOICES = "auto, cpu, cuda or cuda:N"

# Per-strategy options and their defaults (None: computed from the sweep, see _strategy_options).
STRATEGY_OPTIONS: dict[str, dict[str, Any]] = {
    "grid": {},
    "independent": {
        "stage2": None,  # HPs swept one at a time in stage 2 (default: every swept HP but lr)
        "noise_threshold": 0.01,  # adopt an HP change only if it beats this loss gain ("auto")
        "resweep_step": 1.0,  # log2 spacing of the stage-3 lr re-sweep
        "resweep_points": 3,  # points of the stage-3 lr re-sweep (odd, centred on the best lr)
        "confirm_seeds": 2,  # extra seeds for the final config
        "select_width": None,  # choose stage bests at this width only (None: pooled)
        "fit_resolution": 0.125,  # fitted optima are rounded to this many log2 units
    },
    "random": {"sampler_seed": 0},
    "tpe": {"sampler_seed": 0, "n_startup_trials": None},
}

# Value ranges checked after type conversion: (description, predicate).
_Check = tuple[str, Callable[[Any], bool]]
_POS: _Check = ("> 0", lambda v: v > 0)
_NONNEG: _Check = (">= 0", lambda v: v >= 0)
_UNIT_OPEN: _Check = ("in [0, 1)", lambda v: 0 <= v < 1)
_UNIT_CLOSED: _Check = ("in [0, 1]", lambda v: 0 <= v <= 1)
_RANGES: dict[type, dict[str, _Check]] = {
    ModelSpec: {
        "width": _POS,
        "depth": _POS,
        "head_dim": _POS,
        "n_heads": _POS,
        "ffn_ratio": _POS,
        "vocab_size": _POS,
        "seq_len": _POS,
    }
    | {name: _POS for name in MODEL_HPS},
    TrainSpec: {
        "steps": _POS,
        "batch_size": _POS,
        "beta1": _UNIT_OPEN,
        "beta2": _UNIT_OPEN,
        "eps": _POS,
        "warmup_frac": _UNIT_CLOSED,
        "final_lr_frac": _UNIT_CLOSED,
        "grad_clip": _POS,
        "final_window": _POS,
        "eval_batches": _POS,
        "eval_every": _NONNEG,
        "diverge_loss": _POS,
        "threads": _POS,
        "device": (
            f"one of {_DEVICE_CHOICES}",
            lambda v: bool(_DEVICE_RE.match(v.strip().lower())),
        ),
    },
    DataSpec: {"val_fraction": ("in (0, 1)", lambda v: 0 < v < 1), "vocab_size": _POS},
    ExecutionSpec: {
        "max_concurrent": _POS,
        "cpus_per_trial": _POS,
        # As Ray takes it (`umup_sweep.device.check_gpus_per_trial`): ⌊1/f⌋ trials share a GPU.
        "gpus_per_trial": (
            "0, a fraction in (0, 1] (trials sharing a GPU) or a whole number of GPUs",
            lambda v: v >= 0 and (v <= 1 or float(v).is_integer()),
        ),
        "max_failures": _NONNEG,
    },
    AnalysisSpec: {
        "tolerance": _POS,
        "precision_tolerance": _POS,
        "precision_loss_threshold": _POS,
    },
}


# ---------------------------------------------------------------------------------------------
# Small validators: each returns the converted value or raises ConfigError naming the key.


_REPR = reprlib.Repr()  # keyword arguments need Python 3.12
_REPR.maxlevel, _REPR.maxstring, _REPR.maxother = 2, 60, 60
_REPR.maxlist = _REPR.maxtuple = _REPR.maxdict = _REPR.maxset = 4


def _got(value: Any) -> str:
    """Short one-line description of a bad value, for messages."""
    text = _REPR.repr(value)  # bounded: a YAML alias bomb must not be expanded in full
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{text} ({type(value).__name__})"


def _fail(source: str, key: str, expected: str, value: Any = ...) -> ConfigError:
    msg = expected if value is ... else f"{expected}, got {_got(value)}"
    return ConfigError(source, key, " ".join(msg.split()))


def _join(prefix: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{prefix}[{key}]"
    return f"{prefix}.{key}" if prefix else str(key)


def _mapping(value: Any, source: str, key: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise _fail(source, key, "expected a mapping", value)
    for k in value:
        if not isinstance(k, str):
            raise _fail(source, _join(key, str(k)), "keys must be strings", k)
    return dict(value)


def _check_keys(mapping: Mapping[str, Any], allowed: Any, source: str, prefix: str) -> None:
    """Unknown keys → ConfigError with the closest valid key suggested."""
    allowed = list(allowed)
    for k in mapping:
        if k not in allowed:
            close = difflib.get_close_matches(k, allowed, n=1, cutoff=0.6)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise _fail(
                source, _join(prefix, k), f"unknown key{hint} (valid: {', '.join(allowed)})"
            )


def _number(value: Any, source: str, key: str, *, integer: bool = False) -> Any:
    """An int or finite float (PyYAML reads `1e-3` as a string: accept numeric strings)."""
    kind = "an integer" if integer else "a number"
    if isinstance(value, bool):
        raise _fail(source, key, f"expected {kind}", value)
    if integer:
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise _fail(source, key, f"expected {kind}", value)
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise _fail(source, key, f"expected {kind}", value) from None
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _fail(source, key, f"expected {kind} (finite)", value)
    return float(value)


def _int_list(value: Any, source: str, key: str, check: _Check, *, unique: bool) -> list[int]:
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, (list, tuple)) or not value:
        raise _fail(source, key, "expected a non-empty list of integers", value)
    out = [_number(v, source, _join(key, i), integer=True) for i, v in enumerate(value)]
    for i, v in enumerate(out):
        if not check[1](v):
            raise _fail(source, _join(key, i), f"expected {check[0]}", v)
    if unique and len(set(out)) != len(out):
        raise _fail(source, key, "expected distinct values", value)
    return out


def _convert(tp: Any, value: Any, source: str, key: str) -> Any:
    """Convert `value` to the annotated dataclass field type `tp` or raise."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None and len(args) < len(typing.get_args(tp)):
            return None
        return _convert(args[0], value, source, key)
    if origin is Literal:
        choices = typing.get_args(tp)
        if value not in choices:
            raise _fail(source, key, f"expected one of {', '.join(map(str, choices))}", value)
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise _fail(source, key, "expected true or false", value)
        return value
    if tp is int:
        return _number(value, source, key, integer=True)
    if tp is float:
        return _number(value, source, key)
    if tp is str:
        if not isinstance(value, str):
            raise _fail(source, key, "expected a string", value)
        return value
    if tp is Path:
        if not isinstance(value, (str, Path)):
            raise _fail(source, key, "expected a path (string)", value)
        return Path(value)
    raise TypeError(f"unsupported field type {tp!r}")  # a bug here, not user input


def _fields(cls: type, mapping: Mapping[str, Any], source: str, prefix: str) -> dict[str, Any]:
    """Validate `mapping` against dataclass `cls`: keys, types and value ranges."""
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    _check_keys(mapping, names, source, prefix)
    ranges = _RANGES.get(cls, {})
    out = {}
    for k, v in mapping.items():
        key = _join(prefix, k)
        value = _convert(hints[k], v, source, key)
        if value is not None and k in ranges and not ranges[k][1](value):
            raise _fail(source, key, f"expected {ranges[k][0]}", v)
        out[k] = value
    return out


def build_section(
    cls: Any, mapping: Any, source: str, prefix: str, drop: tuple[str, ...] = ()
) -> Any:
    """Instantiate dataclass `cls` (ModelSpec, TrainSpec, ...) from a YAML mapping: unknown
    keys, wrong types, out-of-range values → `ConfigError` naming `source` and `prefix.key`."""
    values = _fields(cls, _mapping(mapping, source, prefix), source, prefix)
    for k in drop:
        values.pop(k, None)
    try:
        return cls(**values)
    except (TypeError, ValueError) as exc:
        raise _fail(source, prefix, str(exc)) from None


def _hp_value(name: str, value: Any, source: str, key: str) -> float:
    v = _number(value, source, key)
    if name == "weight_decay":
        if v < 0:
            raise _fail(source, key, "weight_decay must be >= 0", value)
    elif v <= 0:
        raise _fail(source, key, f"{name} must be > 0", value)
    return v


def _hp_name(name: Any, source: str, key: str) -> str:
    if name not in HP_NAMES:
        close = difflib.get_close_matches(str(name), HP_NAMES, n=1, cutoff=0.6)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise _fail(source, key, f"unknown hyperparameter{hint} (valid: {', '.join(HP_NAMES)})")
    return str(name)


# ---------------------------------------------------------------------------------------------
# YAML reading


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
    syntax error → ConfigError with the line."""
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


def _document(data: Any, source: str, what: str) -> dict[str, Any]:
    if data is None:
        raise ConfigError(source, "", f"empty document: expected a mapping of {what} keys")
    if not isinstance(data, Mapping):
        raise _fail(source, "", f"expected a mapping of {what} keys at the top level", data)
    return _mapping(data, source, "")


# ---------------------------------------------------------------------------------------------
# Proxy families


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
        data = _document(read_yaml(path_or_mapping), source, "proxy family")
        default_name = Path(path_or_mapping).stem
    else:
        data = _mapping(path_or_mapping, source, key)
        default_name = "inline"
    _check_keys(data, _PROXY_KEYS, source, key)
    name = data.get("name", default_name)
    if not isinstance(name, str) or not name:
        raise _fail(source, _join(key, "name"), "expected a non-empty string", name)
    if "widths" not in data:
        raise _fail(source, _join(key, "widths"), "missing: expected a list of widths")
    if "depths" not in data:
        raise _fail(source, _join(key, "depths"), "missing: expected a list of depths")
    widths = _int_list(data["widths"], source, _join(key, "widths"), _POS, unique=True)
    depths = _int_list(data["depths"], source, _join(key, "depths"), _POS, unique=True)
    base_key = _join(key, "base")
    base_values = _fields(ModelSpec, _mapping(data.get("base"), source, base_key), source, base_key)
    base_values.setdefault("width", widths[0])
    base_values.setdefault("depth", depths[0])
    try:
        base = ModelSpec(**base_values)
    except ValueError as exc:
        raise _fail(source, base_key, str(exc)) from None
    return _family(name, base, widths, depths, source, key)


def _family(
    name: str, base: ModelSpec, widths: list[int], depths: list[int], source: str, key: str
) -> ProxyFamily:
    """Build the family, checking every width fits the base's head size."""
    for i, w in enumerate(widths):
        if w % base.head_dim:
            raise _fail(
                source,
                _join(_join(key, "widths"), i),
                f"width must be a multiple of head_dim {base.head_dim}",
                w,
            )
    return ProxyFamily(name, base, tuple(sorted(widths)), tuple(sorted(depths)))


# ---------------------------------------------------------------------------------------------
# Hyperparameter spaces


def _hp_space(name: str, value: Any, source: str, key: str) -> HPSpace:
    """`values: [...]`, a plain list, `{log2_range: [lo, hi], step:}` or a distribution."""
    if isinstance(value, (list, tuple)):
        value = {"values": list(value)}
    spec = _mapping(value, source, key)
    if not spec:
        raise _fail(source, key, "expected values, log2_range or distribution", value)
    _check_keys(spec, _HP_SPACE_KEYS, source, key)
    values: list[float] = []
    low = high = None
    log = True
    if "values" in spec and "log2_range" in spec:
        raise _fail(source, key, "give either values or log2_range, not both")
    if "step" in spec and "log2_range" not in spec:
        raise _fail(source, _join(key, "step"), "step only goes with log2_range")
    if "values" in spec:
        raw = spec["values"]
        vkey = _join(key, "values")
        if not isinstance(raw, (list, tuple)) or not raw:
            raise _fail(source, vkey, "expected a non-empty list of numbers", raw)
        values = [_hp_value(name, v, source, _join(vkey, i)) for i, v in enumerate(raw)]
        if len(set(values)) != len(values):
            raise _fail(source, vkey, "expected distinct values", raw)
    if "log2_range" in spec:
        rkey = _join(key, "log2_range")
        raw = spec["log2_range"]
        if not isinstance(raw, (list, tuple)) or len(raw) != 2:
            raise _fail(source, rkey, "expected [low, high] exponents of 2", raw)
        lo, hi = (_number(v, source, _join(rkey, i)) for i, v in enumerate(raw))
        if lo > hi:
            raise _fail(source, rkey, "expected low <= high", raw)
        step = _number(spec.get("step", 1), source, _join(key, "step"))
        if step <= 0:
            raise _fail(source, _join(key, "step"), "expected > 0", spec.get("step"))
        n = int(math.floor((hi - lo) / step + 1e-9)) + 1
        if n > 1000:
            raise _fail(source, rkey, "expected at most 1000 grid points", raw)
        values = [2.0 ** (lo + i * step) for i in range(n)]
        low, high = 2.0**lo, 2.0**hi
    if "distribution" in spec:
        dkey = _join(key, "distribution")
        dist = spec["distribution"]
        if dist not in _DISTRIBUTIONS:
            raise _fail(source, dkey, f"expected one of {', '.join(_DISTRIBUTIONS)}", dist)
        for bound in ("min", "max"):
            if bound not in spec:
                raise _fail(source, _join(key, bound), f"missing: {dist} needs min and max")
        low = _hp_value(name, spec["min"], source, _join(key, "min"))
        high = _hp_value(name, spec["max"], source, _join(key, "max"))
        if not low < high:
            raise _fail(source, _join(key, "max"), f"expected max > min ({low})", spec["max"])
        log = dist == "log_uniform_values"
        if log and low <= 0:
            raise _fail(source, _join(key, "min"), "log_uniform_values needs min > 0", low)
    elif "min" in spec or "max" in spec:
        bad = "min" if "min" in spec else "max"
        raise _fail(source, _join(key, bad), "min/max need distribution: log_uniform_values")
    return HPSpace(values=tuple(sorted(values)), low=low, high=high, log=log)


def _hyperparameters(data: Any, source: str) -> dict[str, HPSpace]:
    mapping = _mapping(data, source, "hyperparameters")
    if not mapping:
        raise _fail(source, "hyperparameters", "expected at least one swept hyperparameter")
    out = {}
    for name, value in mapping.items():
        key = _join("hyperparameters", name)
        out[_hp_name(name, source, key)] = _hp_space(name, value, source, key)
    return out


def _fit_space_to_strategy(
    spaces: dict[str, HPSpace], strategy: str, source: str
) -> dict[str, HPSpace]:
    """Grid-like strategies need values; Optuna samplers need bounds (derived from values)."""
    out = {}
    for name, space in spaces.items():
        key = _join("hyperparameters", name)
        if strategy in ("grid", "independent") and not space.values:
            raise _fail(
                source,
                key,
                f"strategy {strategy} needs grid points: give values or log2_range "
                "(a distribution alone is for random/tpe)",
            )
        if strategy in ("random", "tpe") and space.low is None:
            lo, hi = min(space.values), max(space.values)
            if not lo < hi:
                raise _fail(
                    source, key, f"strategy {strategy} needs a range: give 2+ values or min/max"
                )
            space = dataclasses.replace(space, low=lo, high=hi, log=lo > 0)
        out[name] = space
    return out


def precision_names() -> tuple[str, ...]:
    """The precisions a trial can run in (`TrainSpec.precision`; = `precision.PRECISIONS`).

    Example:
        >>> precision_names()
        ('fp32', 'bf16', 'fp8_sim')
    """
    return typing.get_args(typing.get_type_hints(TrainSpec)["precision"])


def _precisions(value: Any, train_precision: str | None, source: str) -> tuple[str, ...]:
    """The `precisions:` axis (default `[train.precision]`, else `[fp32]`).

    `train.precision` is the axis's default; given together with `precisions` it must be one
    of them, and the resolved `train.precision` is the axis's first entry.
    """
    names = precision_names()
    if value is None:
        return (train_precision or "fp32",)
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)) or not value:
        raise _fail(source, "precisions", f"expected a non-empty list of {', '.join(names)}", value)
    for i, v in enumerate(value):
        if v not in names:
            close = difflib.get_close_matches(str(v), names, n=1, cutoff=0.6)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise _fail(
                source, _join("precisions", i), f"expected one of {', '.join(names)}{hint}", v
            )
    if len(set(value)) != len(value):
        raise _fail(source, "precisions", "expected distinct precisions", value)
    if train_precision is not None and train_precision not in value:
        raise _fail(
            source,
            "train.precision",
            f"expected one of precisions ({', '.join(value)}), or leave it out",
            train_precision,
        )
    return tuple(value)


# ---------------------------------------------------------------------------------------------
# Strategy options


def _strategy_options(
    raw: Any, strategy: str, sweep: dict[str, Any], source: str
) -> dict[str, Any]:
    """Validate and fill in the options of `strategy` (resolved: every option explicit)."""
    key = "strategy_options"
    given = _mapping(raw, source, key)
    defaults = STRATEGY_OPTIONS[strategy]
    _check_keys(given, defaults, source, key)
    opts = {**defaults, **given}
    swept: dict[str, HPSpace] = sweep["hyperparameters"]
    if strategy == "independent":
        stage2 = opts["stage2"]
        if stage2 is None:
            stage2 = [n for n in swept if n != "lr"]
        if not isinstance(stage2, (list, tuple)):
            raise _fail(source, f"{key}.stage2", "expected a list of swept HP names", stage2)
        for i, n in enumerate(stage2):
            if not isinstance(n, str) or n == "lr" or n not in swept:
                raise _fail(source, f"{key}.stage2[{i}]", "expected a swept HP other than lr", n)
        opts["stage2"] = list(stage2)
        noise = opts["noise_threshold"]
        if noise != "auto":
            noise = _number(noise, source, f"{key}.noise_threshold")
            if noise < 0:
                raise _fail(source, f"{key}.noise_threshold", "expected >= 0 or auto", noise)
        opts["noise_threshold"] = noise
        opts["resweep_step"] = _number(opts["resweep_step"], source, f"{key}.resweep_step")
        if opts["resweep_step"] <= 0:
            raise _fail(source, f"{key}.resweep_step", "expected > 0", opts["resweep_step"])
        pts = _number(opts["resweep_points"], source, f"{key}.resweep_points", integer=True)
        if pts < 1 or pts % 2 == 0:
            raise _fail(source, f"{key}.resweep_points", "expected an odd integer >= 1", pts)
        opts["resweep_points"] = pts
        cs = _number(opts["confirm_seeds"], source, f"{key}.confirm_seeds", integer=True)
        if cs < 0:
            raise _fail(source, f"{key}.confirm_seeds", "expected >= 0", cs)
        opts["confirm_seeds"] = cs
        sw = opts["select_width"]
        if sw is not None:
            sw = _number(sw, source, f"{key}.select_width", integer=True)
            if sw not in sweep["family"].widths:
                raise _fail(
                    source,
                    f"{key}.select_width",
                    f"expected one of the widths {list(sweep['family'].widths)} or null",
                    sw,
                )
        opts["select_width"] = sw
        res = _number(opts["fit_resolution"], source, f"{key}.fit_resolution")
        if res <= 0:
            raise _fail(source, f"{key}.fit_resolution", "expected > 0", res)
        opts["fit_resolution"] = res
    if strategy in ("random", "tpe"):
        opts["sampler_seed"] = _number(
            opts["sampler_seed"], source, f"{key}.sampler_seed", integer=True
        )
    if strategy == "tpe":
        n = opts["n_startup_trials"]
        if n is None:
            n = max(2, min(10, (sweep["budget"] or 0) // 3))
        n = _number(n, source, f"{key}.n_startup_trials", integer=True)
        if n < 0:
            raise _fail(source, f"{key}.n_startup_trials", "expected >= 0", n)
        opts["n_startup_trials"] = n
    return opts


# ---------------------------------------------------------------------------------------------
# Sweeps


def _set_dotted(target: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = target
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[parts[-1]] = value


def _merge(
    base: dict[str, Any], extra: Mapping[str, Any], path: tuple[str, ...] = ()
) -> dict[str, Any]:
    """Deep-merge `extra` (nested mappings and/or dotted keys) into a copy of `base`.

    An HP's search space (``hyperparameters.<hp>``) is replaced whole, not merged.
    """
    out = copy.deepcopy(base)
    for k, v in extra.items():
        k = _ALIASES.get(k, k) if not path else k
        if "." in k:
            head, rest = k.split(".", 1)
            head = _ALIASES.get(head, head) if not path else head
            node = out.get(head)
            out[head] = _merge(node if isinstance(node, dict) else {}, {rest: v}, path + (head,))
        elif (
            isinstance(v, Mapping) and isinstance(out.get(k), dict) and path != ("hyperparameters",)
        ):
            out[k] = _merge(out[k], v, path + (k,))
        else:
            out[k] = copy.deepcopy(v)
    return out


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
        if not sep or not key or not re.fullmatch(r"[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*", key):
            raise ConfigError(source, item, "expected dotted.key=value, e.g. train.steps=50")
        try:
            out[key] = yaml.safe_load(text) if text.strip() else None
        except yaml.YAMLError:
            raise ConfigError(source, key, f"value is not valid YAML: {text!r}") from None
    return out


def _normalise_aliases(data: dict[str, Any], source: str) -> dict[str, Any]:
    out = dict(data)
    for alias, canonical in _ALIASES.items():
        if alias in out:
            if canonical in out:
                raise _fail(source, alias, f"give either {alias} or {canonical}, not both")
            out[canonical] = out.pop(alias)
    return _storage_shorthand(out)


def _storage_shorthand(data: dict[str, Any]) -> dict[str, Any]:
    """``storage: postgresql://...`` (a bare string) means ``storage: {url: postgresql://...}``."""
    storage = data.get("storage")
    if isinstance(storage, str) and storage:
        data = {**data, "storage": {"url": storage}}
    return data


def load_sweep(
    path: str | Path | Mapping[str, Any], overrides: Mapping[str, Any] | None = None
) -> SweepSpec:
    """Read, validate and resolve a sweep YAML (a path, or an already-parsed mapping).

    Args:
        path: the sweep file (or a mapping, reported as ``<inline>`` in errors).
        overrides: values laid over the file before validation, as nested mappings or dotted
            keys, e.g. ``{"execution.max_concurrent": 4, "train": {"steps": 50}}``.

    Raises:
        ConfigError: one line naming the file, the dotted key and what was expected.

    Example:
        >>> proxy = {"base": {"head_dim": 16}, "widths": [32, 64], "depths": [1]}
        >>> s = load_sweep({"name": "demo", "proxy": proxy, "hyperparameters": {
        ...     "lr": {"log2_range": [-2, 1]}}}, overrides={"train.steps": 50})
        >>> s.hyperparameters["lr"].values, s.train.steps, len(s.family.specs())
        ((0.25, 0.5, 1.0, 2.0), 50, 2)
    """
    if isinstance(path, Mapping):
        source = "<inline>"
        data = _document(dict(path), source, "sweep")
    else:
        source = str(path)
        data = _document(read_yaml(path), source, "sweep")
    data = _normalise_aliases(data, source)
    if overrides:
        data = _merge(data, overrides)
    return _sweep_from_mapping(data, source)


def _sweep_from_mapping(data: dict[str, Any], source: str) -> SweepSpec:
    _check_keys(data, _TOP_KEYS, source, "")

    # name: becomes a folder under the runs directory, so it must not escape it.
    default_name = Path(source).stem if source != "<inline>" else None
    name = data.get("name", default_name)
    if name is None:
        raise _fail(source, "name", "missing: expected the sweep name")
    if not isinstance(name, str) or not _NAME_RE.match(name) or ".." in name:
        raise _fail(
            source,
            "name",
            "expected letters, digits, '.', '_' or '-' (no path separators or '..')",
            name,
        )
    description = data.get("description", "")
    if not isinstance(description, str):
        raise _fail(source, "description", "expected a string", description)

    # proxy family, then the sweep's overrides of what varies.
    if "proxy" not in data:
        raise _fail(source, "proxy", "missing: expected a proxy file path or an inline mapping")
    proxy = data["proxy"]
    if isinstance(proxy, str):
        try:
            found = _resolve_proxy_path(proxy, source)
        except (OSError, ValueError) as exc:  # e.g. ENAMETOOLONG, or an embedded NUL byte
            reason = getattr(exc, "strerror", None) or str(exc)
            raise _fail(source, "proxy", f"cannot read proxy file ({reason})", proxy) from None
        if found is None:
            raise _fail(
                source,
                "proxy",
                "proxy file not found (looked next to the sweep file, in the CWD, one folder up)",
                proxy,
            )
        family = load_proxy_family(found)
    elif isinstance(proxy, Mapping):
        family = load_proxy_family(proxy, source, key="proxy")
    else:
        raise _fail(source, "proxy", "expected a proxy file path or an inline mapping", proxy)
    base = family.base
    model_over = _fields(ModelSpec, _mapping(data.get("model"), source, "model"), source, "model")
    for k in ("width", "depth"):
        if k in model_over:
            raise _fail(source, f"model.{k}", f"set {k}s at the top level instead")
    if "parametrization" in data:
        model_over["parametrization"] = _convert(
            typing.get_type_hints(ModelSpec)["parametrization"],
            data["parametrization"],
            source,
            "parametrization",
        )
    widths = list(family.widths)
    depths = list(family.depths)
    wkey = "widths" if "widths" in data else "proxy.widths"
    if "widths" in data:
        widths = _int_list(data["widths"], source, "widths", _POS, unique=True)
    if "depths" in data:
        depths = _int_list(data["depths"], source, "depths", _POS, unique=True)
    if model_over:
        # n_heads is re-derived from head_dim (ProxyFamily.specs) unless given here.
        model_over = {"n_heads": None, **model_over}
        try:
            base = dataclasses.replace(
                base, width=sorted(widths)[0], depth=sorted(depths)[0], **model_over
            )
        except ValueError as exc:
            bad = next((k for k in ("head_dim", "n_heads") if model_over.get(k)), None)
            raise _fail(source, f"model.{bad}" if bad else "model", str(exc)) from None
    try:
        family = _family(family.name, base, widths, depths, source, "")
    except ConfigError as exc:
        raise ConfigError(source, exc.key.replace("widths", wkey, 1), exc.expected) from None

    # seeds
    seeds = _int_list(data.get("seeds", [0]), source, "seeds", _NONNEG, unique=True)

    # strategy and what it needs
    strategy = data.get("strategy", "grid")
    if not isinstance(strategy, str) or strategy not in STRATEGY_OPTIONS:
        close = difflib.get_close_matches(str(strategy), list(STRATEGY_OPTIONS), n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise _fail(
            source, "strategy", f"expected one of {', '.join(STRATEGY_OPTIONS)}{hint}", strategy
        )
    if "hyperparameters" not in data:
        raise _fail(source, "hyperparameters", "missing: expected the HPs to sweep")
    spaces = _fit_space_to_strategy(
        _hyperparameters(data["hyperparameters"], source), strategy, source
    )
    budget = data.get("budget")
    if strategy in ("random", "tpe"):
        if budget is None:
            raise _fail(source, "budget", f"missing: strategy {strategy} needs a trial budget")
        budget = _number(budget, source, "budget", integer=True)
        if budget < 1:
            raise _fail(source, "budget", "expected trials per proxy >= 1", budget)
    elif budget is not None:
        raise _fail(source, "budget", f"only random/tpe take a budget (strategy is {strategy})")

    # defaults: built-in HP defaults < proxy base multipliers < the sweep's defaults
    defaults = dict(HP_DEFAULTS) | {n: float(getattr(base, n)) for n in MODEL_HPS}
    for k, v in _mapping(data.get("defaults"), source, "defaults").items():
        key = _join("defaults", k)
        defaults[_hp_name(k, source, key)] = _hp_value(k, v, source, key)

    # train (lr and weight_decay are HPs: they live in defaults/hyperparameters)
    train_raw = _mapping(data.get("train"), source, "train")
    for k in ("lr", "weight_decay"):
        if k in train_raw:
            raise _fail(source, f"train.{k}", f"{k} is a hyperparameter: set defaults.{k}")
    train_vals = _fields(TrainSpec, train_raw, source, "train")
    div = _mapping(data.get("divergence"), source, "divergence")
    _check_keys(div, ("max_loss",), source, "divergence")
    if "max_loss" in div:
        max_loss = _number(div["max_loss"], source, "divergence.max_loss")
        if max_loss <= 0:
            raise _fail(source, "divergence.max_loss", "expected > 0", max_loss)
        if "diverge_loss" in train_vals and train_vals["diverge_loss"] != max_loss:
            raise _fail(
                source, "divergence.max_loss", "conflicts with train.diverge_loss", max_loss
            )
        train_vals["diverge_loss"] = max_loss
    train_vals.update(lr=defaults["lr"], weight_decay=defaults["weight_decay"])
    if "device" in train_vals:
        train_vals["device"] = train_vals["device"].strip().lower()
    precisions = _precisions(data.get("precisions"), train_vals.get("precision"), source)
    train_vals["precision"] = precisions[0]
    train = TrainSpec(**train_vals)

    data_spec = build_section(DataSpec, data.get("data"), source, "data")

    metric = data.get("metric", "val_loss")
    if isinstance(metric, Mapping):
        m = _mapping(metric, source, "metric")
        _check_keys(m, ("name", "goal"), source, "metric")
        if m.get("goal", "minimize") != "minimize":
            raise _fail(source, "metric.goal", "expected minimize (losses)", m.get("goal"))
        metric_key, metric = "metric.name", m.get("name")
    else:
        metric_key = "metric"
    if metric not in ("val_loss", "final_train_loss"):
        raise _fail(source, metric_key, "expected val_loss or final_train_loss", metric)

    execution = build_section(ExecutionSpec, data.get("execution"), source, "execution")
    storage = build_section(StorageSpec, _storage_shorthand(data).get("storage"), source, "storage")
    analysis = build_section(AnalysisSpec, data.get("analysis"), source, "analysis")

    options = _strategy_options(
        data.get("strategy_options"),
        strategy,
        {"hyperparameters": spaces, "family": family, "budget": budget},
        source,
    )
    return SweepSpec(
        name=name,
        family=family,
        hyperparameters=spaces,
        defaults=defaults,
        train=train,
        data=data_spec,
        seeds=tuple(seeds),
        precisions=precisions,
        strategy=typing.cast(StrategyName, strategy),  # checked against STRATEGY_OPTIONS
        metric=metric,
        budget=budget,
        execution=execution,
        storage=storage,
        analysis=analysis,
        strategy_options=options,
        source=source,
    )


# ---------------------------------------------------------------------------------------------
# Resolved form and identity


def _space_to_dict(space: HPSpace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if space.values:
        out["values"] = list(space.values)
    if space.low is not None:
        out["distribution"] = "log_uniform_values" if space.log else "uniform"
        out["min"] = space.low
        out["max"] = space.high
    return out


def sweep_to_dict(sweep: SweepSpec) -> dict[str, Any]:
    """The resolved sweep as plain data (what `runs/<name>/sweep.yaml` holds).

    Everything is explicit (proxy inlined, defaults filled in), so `load_sweep` of the written
    file gives an equal `SweepSpec` wherever it is read from.
    """
    base = dataclasses.asdict(sweep.family.base)
    base.pop("n_heads")  # derived from head_dim per width (ProxyFamily.specs)
    train = dataclasses.asdict(sweep.train)
    for k in ("lr", "weight_decay"):
        train.pop(k)
    storage = dataclasses.asdict(sweep.storage)
    storage["run_dir"] = str(sweep.storage.run_dir)
    return {
        "name": sweep.name,
        "proxy": {
            "name": sweep.family.name,
            "base": base,
            "widths": list(sweep.family.widths),
            "depths": list(sweep.family.depths),
        },
        "seeds": list(sweep.seeds),
        "precisions": list(sweep.precisions),
        "strategy": sweep.strategy,
        "metric": {"name": sweep.metric, "goal": "minimize"},
        "hyperparameters": {n: _space_to_dict(s) for n, s in sweep.hyperparameters.items()},
        "defaults": dict(sweep.defaults),
        "budget": sweep.budget,
        "strategy_options": copy.deepcopy(sweep.strategy_options),
        "train": train,
        "data": dataclasses.asdict(sweep.data),
        "execution": dataclasses.asdict(sweep.execution),
        "storage": storage,
        "analysis": dataclasses.asdict(sweep.analysis),
    }


def sweep_hash(sweep: SweepSpec) -> str:
    """Hash of what decides which trials run (not name, execution, storage or analysis).

    Two sweeps with the same hash propose the same trials from the same results, so a run
    directory may be resumed with either; a different hash under the same name is refused.

    Example:
        >>> proxy = {"base": {"head_dim": 16}, "widths": [32], "depths": [1]}
        >>> a = load_sweep({"name": "a", "proxy": proxy, "hyperparameters": {"lr": [1, 2]}})
        >>> b = load_sweep({"name": "a", "proxy": proxy, "hyperparameters": {"lr": [1, 2]},
        ...                 "execution": {"max_concurrent": 8}})
        >>> sweep_hash(a) == sweep_hash(b)
        True
    """
    d = sweep_to_dict(sweep)
    for k in ("name", "execution", "storage", "analysis"):
        d.pop(k)
    d["train"].pop("threads")  # not part of trial_key either
    if d["precisions"] == [sweep.train.precision]:
        d.pop("precisions")  # a one-precision sweep hashes as before the axis existed
    blob = json.dumps(d, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]
