"""The trials-table contract (`trials.csv` columns) and the per-trial curve files.

Pure functions: a (TrialSpec, TrialResult) pair becomes one row; rows become the contract
DataFrame; curves are written atomically and read back with a clear error when damaged.
"""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from umup_sweep.errors import StoreError
from umup_sweep.spec import HP_NAMES, TrialResult, TrialSpec

# Column order of `trials.csv` and of `RunStore.results()` (the contract in DESIGN.md).
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
CURVE_COLUMNS = ("step", "train_loss", "val_loss")
# Statuses that are final: a trial stored with one of these is never run again.
FINAL_STATUSES = ("ok", "diverged")
# The process umask (read once: os.umask can only be read by setting it).
_UMASK = os.umask(0o022)
os.umask(_UMASK)


def trial_row(spec: TrialSpec, result: TrialResult) -> dict[str, Any]:
    """One `trials.csv` row for a finished trial.

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
    """The contract DataFrame (columns in `TRIAL_COLUMNS` order, even when empty)."""
    frame = pd.DataFrame(rows, columns=list(TRIAL_COLUMNS))
    for name in ("final_train_loss", "val_loss", "wall_s", "tokens_per_s", "peak_rss_mb"):
        frame[name] = pd.to_numeric(frame[name], errors="coerce").astype(float)
    return frame


def atomic_write_text(path: Path, text: str) -> None:
    """Write `text` to `path` so readers see the old or the new file, never half of one."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes 0600: give the file normal permissions
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_curve(path: Path, curve: list[tuple[int, float, float | None]]) -> None:
    """Write a loss curve (step, train_loss, val_loss) as CSV, atomically."""
    lines = [",".join(CURVE_COLUMNS)]
    for step, train_loss, val_loss in curve:
        val = "" if val_loss is None else repr(float(val_loss))
        lines.append(f"{int(step)},{float(train_loss)!r},{val}")
    atomic_write_text(path, "\n".join(lines) + "\n")


def read_curve(path: Path) -> pd.DataFrame:
    """Read a curve written by `write_curve`.

    Raises:
        StoreError: the file is missing, truncated or not a curve file.
    """
    try:
        frame = pd.read_csv(path)
    except FileNotFoundError:
        raise StoreError(f"{path} is missing: rerun the sweep to recompute it") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise StoreError(_damaged(path, str(exc).splitlines()[0] if str(exc) else "")) from None
    if tuple(frame.columns) != CURVE_COLUMNS:
        raise StoreError(_damaged(path, f"expected columns {','.join(CURVE_COLUMNS)}"))
    steps = pd.to_numeric(frame["step"], errors="coerce")
    losses = pd.to_numeric(frame["train_loss"], errors="coerce")
    if steps.isna().any() or (losses.isna() & ~frame["train_loss"].isna()).any():
        raise StoreError(_damaged(path, "non-numeric step or train_loss"))
    return frame.astype({"step": int, "train_loss": float, "val_loss": float})


def _damaged(path: Path, why: str) -> str:
    return (
        f"{path} is damaged ({why}); the other trials are intact: delete this file to go on "
        "without that curve (its trial's result stays in study.db)"
    )


def finite_or_inf(value: float | None) -> float:
    """The Optuna objective value of a trial: the metric, or +inf when missing or non-finite."""
    if value is None or not math.isfinite(value):
        return math.inf
    return float(value)
