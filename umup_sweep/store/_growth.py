"""Growing a sweep: which changes to a stored sweep keep its trials, and which trials of the
store belong to the sweep it holds now.

Trials are keyed by a hash of their inputs and every strategy is a pure function of (sweep,
stored results), so a run directory may take a *grown* sweep: every stored trial whose key the
grown sweep still produces is reused, and only the new ones run. The rule, key by key of the
resolved sweep (`sweep_to_dict`, less `UNHASHED_KEYS` and `train.precision`, which follows
`precisions`):

- a list that only gained values grows the sweep (`seeds`, `precisions`, `proxy.widths`,
  `proxy.depths`, `hyperparameters.<hp>.values`, and any list axis such as `train.steps:
  [150, 300]`); a scalar counts as a list of one next to a list, so `train.steps: 150` ->
  `[150, 300]` grows too. Lists under `data`, `strategy_options` and `proxy.base` are
  contents, not axes: changing them changes trials.
- `hyperparameters.<hp>.min` lowered or `.max` raised (a wider range) and `budget` raised
  grow the sweep.
- the reverse (a list that lost values, a narrower range, a lower budget) shrinks it; a key
  that both gained and lost values does both.
- `strategy_options` change no stored trial, only the decisions of a strategy that reruns
  from the stored results: a budget raised (`max_trials`, `n_trials`) grows the sweep, any
  other change
  (an option resolved from the axes, such as independent's `confirm_seeds: auto`, or one the
  user changed) *retunes* it; both are refused for `grid` and `random`, whose options
  define their trials (`sampler_seed`).
- any other difference (a changed scalar such as `train.steps: 150` -> `300`, anything under
  `data`, `proxy.base`, `metric`, `strategy`, `defaults`, a key that appears or disappears)
  changes existing trials: refused, as before.

Strategies decide what else is allowed (`refusal`). Growth is allowed for every strategy: the
strategy reruns from the stored results (see docs/DESIGN.md). Shrinking is allowed only where
membership is exact from the axes alone (`grid`: every axis; `random`: seeds, widths,
depths, precisions); a random sweep cannot widen a range or take values (its configurations
are drawn from the ranges: all of them would change).

Example:
    >>> old = {"seeds": [0], "train": {"steps": 150}, "proxy": {"widths": [32]}}
    >>> change = classify_change(old, {"seeds": [0, 1], "train": {"steps": [150, 300]},
    ...                                "proxy": {"widths": [32]}})
    >>> change.grown, change.shrunk, change.changed
    ({'seeds': 'seeds +[1]', 'train.steps': 'train.steps +[300]'}, {}, [])
    >>> classify_change(old, {**old, "train": {"steps": 300}}).changed
    ['train.steps']
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from umup_sweep.config import UNHASHED_KEYS
from umup_sweep.store._sweep import flatten, plain

if TYPE_CHECKING:
    from umup_sweep.config import SweepSpec

# Not compared: what sweep_hash leaves out, and train.precision (precisions[0] decides it;
# each trial's precision comes from the `precisions` axis).
_NOT_COMPARED = (*UNHASHED_KEYS, "train.precision")
# Lists here are contents (files, HP names, the model), not axes: a change changes trials.
_CONTENT = ("data", "proxy.base", "defaults", "metric")
_RAISABLE = ("budget",)  # counts of the strategy's own: raising one grows the sweep
_OPTION_BUDGETS = ("max_trials", "n_trials", "budget")  # the same, as strategy_options
# Keys a strategy may shrink: those its stored trials can be matched against one by one.
_PROXY_AXES = ("seeds", "precisions", "proxy.widths", "proxy.depths")
SHRINKABLE: dict[str, tuple[str, ...]] = {
    "grid": (*_PROXY_AXES, *(f"hyperparameters.*.{k}" for k in ("values", "min", "max"))),
    "random": _PROXY_AXES,
}
_MISSING = object()


@dataclass(frozen=True)
class SweepChange:
    """How a new sweep differs from the stored one: `grown` and `shrunk` map each dotted key
    to a description (``seeds +[2]``); `changed` lists the keys that alter existing trials."""

    grown: dict[str, str] = field(default_factory=dict)
    shrunk: dict[str, str] = field(default_factory=dict)
    changed: list[str] = field(default_factory=list)
    retuned: dict[str, str] = field(default_factory=dict)  # strategy options, not raised


@dataclass(frozen=True)
class Growth:
    """What the last accepted change of a run's sweep did (`RunStore.growth()`).

    Attributes:
        grown, shrunk: what grew (``seeds +[2]``) and shrank (``proxy.widths -[32]``).
        reused: final trials of the sweep stored before the change.
        new: trials of the sweep committed since the change.
        outside: stored trials the sweep no longer holds (kept in the database, not used).
        retuned: strategy options that changed otherwise than by rising.
    """

    grown: tuple[str, ...]
    shrunk: tuple[str, ...]
    reused: int
    new: int
    outside: int = 0
    retuned: tuple[str, ...] = ()


def classify_change(old: dict[str, Any], new: dict[str, Any]) -> SweepChange:
    """Sort the differences between two resolved sweeps (see the module docstring)."""
    a, b = flatten(plain(old)), flatten(plain(new))
    if "precisions" not in a and "train.precision" in a:  # written before the precision axis
        a["precisions"] = [a["train.precision"]]
    change = SweepChange()
    for key in sorted(set(a) | set(b)):
        before, after = a.get(key, _MISSING), b.get(key, _MISSING)
        if _under(key, _NOT_COMPARED) or before == after:
            continue
        if _under(key, ("strategy_options",)):
            raised = _number(before) and _number(after) and after > before
            if raised and key.rpartition(".")[2] in _OPTION_BUDGETS:
                change.grown[key] = f"{key} {before:g} -> {after:g}"
            else:
                change.retuned[key] = f"{key} {_shown(before)} -> {_shown(after)}"
            continue
        grown, shrunk = _compare(key, before, after)
        if grown is None and shrunk is None:
            change.changed.append(key)
        if grown:
            change.grown[key] = grown
        if shrunk:
            change.shrunk[key] = shrunk
    return change


def _compare(key: str, before: Any, after: Any) -> tuple[str | None, str | None]:
    """(growth text, shrink text) of one key; (None, None) when it changes trials. A
    reordered list is neither: ("", "")."""
    if before is _MISSING or after is _MISSING:
        return None, None
    if (isinstance(before, list) or isinstance(after, list)) and not _under(key, _CONTENT):
        old, new = _as_list(before), _as_list(after)
        added = [v for v in new if v not in old]
        removed = [v for v in old if v not in new]
        return (f"{key} +{added}" if added else ""), (f"{key} -{removed}" if removed else "")
    if not (_number(before) and _number(after)):
        return None, None
    parts = key.split(".")
    if len(parts) == 3 and parts[0] == "hyperparameters" and parts[2] in ("min", "max"):
        wider = after < before if parts[2] == "min" else after > before
    elif key in _RAISABLE:
        wider = after > before
    else:
        return None, None
    text = f"{key} {before:g} -> {after:g}"
    return (text, "") if wider else ("", text)


def refusal(change: SweepChange, strategy: str, run_dir: Path) -> str | None:
    """Why a run directory cannot take a sweep that differs from its own by `change` (one
    line naming the directory, the keys and what would be accepted), or None."""
    keys = sorted(change.changed)
    if strategy in SHRINKABLE:  # grid and random: their options define their trials
        keys = sorted({*keys, *change.retuned, *_under_all(change.grown, "strategy_options")})
    if keys:
        shown = ", ".join(keys[:8]) + (f", ... ({len(keys)} in all)" if len(keys) > 8 else "")
        return (
            f"{run_dir} holds a different sweep (changed keys: {shown}); "
            "use --force to start over (the old run is moved aside) or give a new name"
        )
    redo = "use --force to start over (the old run is moved aside) or give a new name"
    if strategy == "random":
        ranges = [k for k in change.grown if k.startswith("hyperparameters.")]
        if ranges:
            return (
                f"{run_dir}: a random sweep draws its configurations from the ranges, so "
                f"changing {ranges[0]} would redraw all of them (none reused); raise budget, "
                f"add seeds, widths, depths or precisions instead, or {redo}"
            )
    allowed = SHRINKABLE.get(strategy, ())
    refused = [text for key, text in change.shrunk.items() if not _matches(key, allowed)]
    if refused:
        can = ", ".join(allowed) if allowed else "nothing"
        return (
            f"{run_dir} holds trials this sweep would drop ({'; '.join(refused)}); a "
            f"{strategy} sweep may only grow (it may drop: {can}); {redo}"
        )
    return None


def in_sweep(frame: pd.DataFrame, sweep: SweepSpec) -> pd.Series:
    """Which stored trials (rows of the trials frame) belong to `sweep`: every one, except for
    the strategies that may shrink, whose trials are matched by their axis values.

    Example:
        >>> from umup_sweep.config import load_sweep
        >>> proxy = {"base": {"head_dim": 16}, "widths": [32], "depths": [1]}
        >>> sweep = load_sweep({"name": "g", "proxy": proxy, "hyperparameters": {"lr": [1, 2]}})
        >>> frame = pd.DataFrame({"width": [32, 64], "depth": [1, 1], "seed": [0, 0],
        ...                       "precision": ["fp32", "fp32"], "lr": [1.0, 1.0]})
        >>> in_sweep(frame, sweep).tolist()
        [True, False]
    """
    mask = pd.Series(True, index=frame.index)
    if sweep.strategy not in SHRINKABLE or frame.empty:
        return mask
    mask &= frame["width"].isin(sweep.family.widths) & frame["depth"].isin(sweep.family.depths)
    mask &= frame["seed"].isin(sweep.seeds) & frame["precision"].isin(sweep.precisions)
    if sweep.strategy == "grid":
        for name, space in sweep.hyperparameters.items():
            mask &= frame[name].isin(space.values)
    return mask


def _matches(key: str, patterns: tuple[str, ...]) -> bool:
    """`key` is one of `patterns`, where a `*` stands for one dotted part."""
    parts = key.split(".")
    for pattern in patterns:
        want = pattern.split(".")
        if len(want) == len(parts) and all(w in ("*", p) for w, p in zip(want, parts, strict=True)):
            return True
    return False


def _under(key: str, prefixes: tuple[str, ...]) -> bool:
    return any(key == p or key.startswith(p + ".") for p in prefixes)


def _under_all(keys: Iterable[str], prefix: str) -> list[str]:
    return [k for k in keys if _under(k, (prefix,))]


def _shown(value: Any) -> str:
    return "unset" if value is _MISSING else repr(value)


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else [value]


def _number(value: Any) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )
