"""Read a run directory into a `RunData` for the analyses, through the run store.

The store is the only reader of a run: the trials come from its trial database
(`RunStore.results()`), the sweep is the validated `SweepSpec` (`RunStore.sweep()`), and the
analysis settings are that sweep's `analysis:` section. `trials.csv` is an export for people;
nothing here reads it. The run directory's file names live in `umup_sweep.store`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from umup_sweep.config import AnalysisSpec, SweepSpec, sweep_to_dict
from umup_sweep.errors import UserError
from umup_sweep.spec import ModelSpec
from umup_sweep.store import SWEEP_FILE, RunStore

DEFAULT_PRECISION = "fp32"  # the reference precision (and that of trials without one)
# Highest precision first: the first one present is the reference the others are compared with.
PRECISION_ORDER = ("fp32", "bf16", "fp8_sim")
# The analysis defaults are AnalysisSpec's (the sweep's `analysis:` section); these names are
# kept for the keyword defaults of the precision comparison.
_ANALYSIS_DEFAULTS = AnalysisSpec()
DEFAULT_PRECISION_TOLERANCE = _ANALYSIS_DEFAULTS.precision_tolerance
DEFAULT_PRECISION_LOSS_THRESHOLD = _ANALYSIS_DEFAULTS.precision_loss_threshold


def precision_rank(name: str) -> tuple[int, str]:
    """Sort key: fp32, bf16, fp8_sim, then any other name alphabetically.

    Example:
        >>> sorted(["fp8_sim", "fp32", "bf16"], key=precision_rank)
        ['fp32', 'bf16', 'fp8_sim']
    """
    order = PRECISION_ORDER.index(name) if name in PRECISION_ORDER else len(PRECISION_ORDER)
    return order, name


@dataclass
class RunData:
    """What the analyses need from one run directory.

    Attributes:
        path: the run directory.
        name: the sweep name.
        metric: the column the sweep minimised (`val_loss` by default).
        swept: the swept HP names, in declaration order.
        tolerance: the transfer tolerance (log2 per doubling) from `analysis.tolerance`.
        trials: the trials table from the store (`TRIAL_COLUMNS`; `status` ok|diverged|failed).
        sweep: the sweep as plain data (`sweep_to_dict` of `spec`; {} without one).
        base: the proxy family's base ModelSpec.
        precision_tolerance: |shift| (log2) of a low precision's optimum that still holds
            (`analysis.precision_tolerance`).
        precision_loss_threshold: loss gap at the optimum beyond which a low precision
            degrades (`analysis.precision_loss_threshold`).
        spec: the validated sweep the run was made with.
        data_fingerprint: the corpus fingerprint the trials ran with (part of their keys).

    Example:
        >>> import pandas as pd
        >>> run = RunData(Path("runs/x"), "x", "val_loss", ("lr",), 0.25,
        ...               pd.DataFrame({"precision": ["fp8_sim", "fp32"]}))
        >>> run.precisions, run.precision_tolerance
        (['fp32', 'fp8_sim'], 0.5)
    """

    path: Path
    name: str
    metric: str
    swept: tuple[str, ...]
    tolerance: float
    trials: pd.DataFrame
    sweep: dict[str, Any] = field(default_factory=dict)
    base: ModelSpec | None = None
    precision_tolerance: float = DEFAULT_PRECISION_TOLERANCE
    precision_loss_threshold: float = DEFAULT_PRECISION_LOSS_THRESHOLD
    spec: SweepSpec | None = None
    data_fingerprint: str = ""

    @property
    def precisions(self) -> list[str]:
        """The precisions in the trials, highest first."""
        return sorted({str(p) for p in self.trials["precision"]}, key=precision_rank)


# The planned training setting of each trial, added to the trials frame of a run with train
# axes (`train: {steps: [...]}` or tokens with a batch-size list): the store's `steps` and
# `tokens` columns are what a trial got through, which is fewer when it diverged.
TRAIN_COLUMNS = ("train_steps", "batch_size", "train_tokens")


def with_train_columns(
    trials: pd.DataFrame, settings: dict[str, tuple[int, int]], seq_len: int
) -> pd.DataFrame:
    """`trials` with `TRAIN_COLUMNS`: planned steps, batch size (sequences) and tokens
    (steps × batch × seq_len) per trial, from ``{trial_key: (steps, batch_size)}``.

    Example:
        >>> frame = pd.DataFrame({"trial_key": ["a", "b"]})
        >>> with_train_columns(frame, {"a": (150, 16), "b": (300, 8)}, 128)["train_tokens"].tolist()
        [307200, 307200]
    """
    steps = trials["trial_key"].map(lambda k: settings.get(str(k), (0, 0))[0])
    batch = trials["trial_key"].map(lambda k: settings.get(str(k), (0, 0))[1])
    return trials.assign(
        train_steps=steps.astype(int),
        batch_size=batch.astype(int),
        train_tokens=(steps * batch * seq_len).astype(int),
    )


def load_run(run_dir: str | Path, metric: str | None = None) -> RunData:
    """Load a run directory for analysis: its trials and validated sweep, from the store.

    Args:
        run_dir: `runs/<name>/`, as `umup-sweep run` wrote it.
        metric: override the sweep's metric column.

    Raises:
        UserError: the directory does not exist or holds no trials yet; `StoreError` (a
            UserError) when its sweep.yaml is damaged or its trial database unreadable.

    Example:
        >>> import tempfile
        >>> load_run(tempfile.mkdtemp())  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        umup_sweep.errors.UserError: ... has no trials yet: run `umup-sweep run <sweep.yaml>` first
    """
    path = Path(run_dir)
    if not path.is_dir():
        raise UserError(f"{path} is not a run directory (it does not exist)")
    no_trials = f"{path} has no trials yet: run `umup-sweep run <sweep.yaml>` first"
    if not (path / SWEEP_FILE).is_file():
        raise UserError(no_trials)
    store = RunStore.load(path)
    trials = store.results()
    if trials.empty:
        raise UserError(no_trials)
    sweep = store.sweep()
    if sweep.train_axes is not None:
        trials = with_train_columns(trials, store.train_settings(), sweep.family.base.seq_len)
    metric = metric or sweep.metric
    if metric not in trials.columns:
        raise UserError(f"{path}: no metric column {metric!r} (columns: {', '.join(trials)})")
    return RunData(
        path=path,
        name=sweep.name,
        metric=metric,
        swept=sweep.swept,
        tolerance=sweep.analysis.tolerance,
        trials=trials,
        sweep=sweep_to_dict(sweep),
        base=sweep.family.base,
        precision_tolerance=sweep.analysis.precision_tolerance,
        precision_loss_threshold=sweep.analysis.precision_loss_threshold,
        spec=sweep,
        data_fingerprint=store.data_fingerprint,
    )
