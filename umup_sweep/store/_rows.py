"""The trials-table contract: the columns of `RunStore.results()` (and of its `trials.csv`
export), and how one finished trial becomes one row.

Pure functions: a (TrialSpec, TrialResult) pair becomes one row; rows become the contract
DataFrame.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from umup_sweep.spec import HP_NAMES, STATUSES, TrialResult, TrialSpec

# Column order of `RunStore.results()` and of `trials.csv`.
TRIAL_COLUMNS: tuple[str, ...] = (
    "trial_key",
    "stage",
    "parametrization",
    "width",
    "depth",
    "seed",
    *HP_NAMES,
    "status",
    "final_train_loss",
    "val_loss",
    "steps",
    "tokens",
    "wall_s",
    "tokens_per_s",
    "n_params",
    "peak_rss_mb",
    "node_id",
    "precision",  # the trial's TrainSpec.precision (the sweep's `precisions:` axis)
    "error",
)
# Statuses that are final: a trial stored with one of these is never run again (a pruned one
# only when asked: `umup-sweep run --rerun-pruned`).
FINAL_STATUSES = ("ok", "diverged", "pruned")


def status_counts(status: pd.Series) -> dict[str, int]:
    """``total`` and the number of trials with each status (every one of `STATUSES`), from
    a results frame's ``status`` column.

    Example:
        >>> status_counts(pd.Series(["ok", "ok", "pruned"]))
        {'total': 3, 'ok': 2, 'diverged': 0, 'pruned': 1, 'failed': 0}
    """
    n = status.value_counts()
    return {"total": int(len(status))} | {s: int(n.get(s, 0)) for s in STATUSES}


_FLOAT_COLUMNS = ("final_train_loss", "val_loss", "wall_s", "tokens_per_s", "peak_rss_mb")


def trial_row(spec: TrialSpec, result: TrialResult) -> dict[str, Any]:
    """One contract row for a finished trial.

    Example:
        >>> from umup_sweep.spec import ModelSpec, TrainSpec
        >>> spec = TrialSpec(ModelSpec(width=32, depth=1), TrainSpec(steps=5))
        >>> trial_row(spec, TrialResult(spec.trial_key, "ok", val_loss=2.5))["val_loss"]
        2.5
    """
    row: dict[str, Any] = {
        "trial_key": spec.trial_key,
        "stage": spec.labels.get("stage"),
        "parametrization": spec.model.parametrization,
        "width": spec.model.width,
        "depth": spec.model.depth,
        "seed": spec.seed,
        **spec.hps,
    }
    for name in TRIAL_COLUMNS[len(row) :]:
        row[name] = spec.train.precision if name == "precision" else getattr(result, name)
    return row


def rows_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """The contract DataFrame (columns in `TRIAL_COLUMNS` order, even when empty).

    Example:
        >>> frame = rows_frame([])
        >>> list(frame.columns) == list(TRIAL_COLUMNS), len(frame)
        (True, 0)
    """
    frame = pd.DataFrame(rows, columns=list(TRIAL_COLUMNS))
    for name in _FLOAT_COLUMNS:
        frame[name] = pd.to_numeric(frame[name], errors="coerce").astype(float)
    return frame


def finite_or_inf(value: float | None) -> float:
    """The Optuna objective value of a trial: the metric, or +inf when missing or non-finite.

    Example:
        >>> finite_or_inf(2.5), finite_or_inf(None), finite_or_inf(float("nan"))
        (2.5, inf, inf)
    """
    if value is None or not math.isfinite(value):
        return math.inf
    return float(value)
