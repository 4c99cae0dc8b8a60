"""What a run directory holds, for `umup-sweep status`: counts by status, the best trial, the
driver running it (if any) and the sweep's estimated size. Reads only: safe while a sweep runs.

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> from umup_sweep.config import HPSpace, ProxyFamily, StorageSpec, SweepSpec
    >>> from umup_sweep.spec import ModelSpec, TrainSpec
    >>> family = ProxyFamily("tiny", ModelSpec(width=32, depth=1), (32,), (1,))
    >>> sweep = SweepSpec("demo", family, {"lr": HPSpace(values=(0.5, 1.0))}, {},
    ...                   TrainSpec(steps=5), storage=StorageSpec(run_dir=Path(tempfile.mkdtemp())))
    >>> RunStore.open(sweep).close()
    >>> status = run_status(RunStore.load(sweep.run_dir))
    >>> status.counts["total"], status.best, status.driver_pid, status.total_estimate
    (0, None, None, 2)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from umup_sweep.store import Growth, RunStore, lock_holder, status_counts


def summarize_store(store: RunStore) -> dict[str, Any]:
    """Counts by status and the best ok trial of a stored run."""
    df = store.results()
    counts = status_counts(df["status"])
    ok = df[(df["status"] == "ok") & df[store.metric].notna()]
    best = ok.loc[ok[store.metric].idxmin()].to_dict() if len(ok) else None
    return {"counts": counts, "best": best, "pruning": pruning_savings(store, df)}


@dataclass(frozen=True)
class PruningSavings:
    """What pruning saved in a run: trials stopped early and trial-seconds.

    Attributes:
        n_pruned: trials stored as pruned.
        saved_s: trial-seconds the pruned trials would still have taken (each one's time per
            step × the steps it did not run).
        spent_s: trial-seconds every stored trial took (the pruned ones' partial runs too).
    """

    n_pruned: int
    saved_s: float
    spent_s: float

    @property
    def fraction(self) -> float:
        """The saved share of what the sweep would have taken without pruning."""
        total = self.saved_s + self.spent_s
        return self.saved_s / total if total > 0 else 0.0


def pruning_savings(store: RunStore, df: pd.DataFrame | None = None) -> PruningSavings | None:
    """The savings of a run's pruned trials (`df`: its results, read when not given); None
    when no trial was pruned."""
    df = store.results() if df is None else df
    pruned = df[df["status"] == "pruned"]
    if not len(pruned):
        return None
    planned = store.train_settings()
    saved = 0.0
    for row in pruned.itertuples(index=False):
        steps = planned.get(str(row.trial_key), (int(row.steps), 0))[0]
        if row.steps and row.wall_s == row.wall_s:  # not NaN
            saved += float(row.wall_s) / int(row.steps) * max(0, steps - int(row.steps))
    spent = float(df["wall_s"].fillna(0.0).sum())
    return PruningSavings(len(pruned), saved, spent)


@dataclass(frozen=True)
class RunStatus:
    """What a run directory holds.

    Attributes:
        run_dir, metric, swept: the run directory, its metric and swept HP names.
        counts: stored trials by status (`ok`, `diverged`, `pruned`, `failed`) and `total`.
        best: the best ok trial's row, or None.
        driver_pid: the process running the sweep now, or None.
        total_estimate: the strategy's estimate of the sweep's size, or None when the
            sweep's strategy cannot be rebuilt.
        growth: how the sweep last grew or shrank, with trials reused and new; None if never.
        pruning: what pruned trials saved; None when no trial was pruned.
    """

    run_dir: Path
    metric: str
    swept: tuple[str, ...]
    counts: dict[str, int]
    best: dict[str, Any] | None
    driver_pid: int | None
    total_estimate: int | None
    growth: Growth | None = None
    pruning: PruningSavings | None = None


def run_status(store: RunStore) -> RunStatus:
    """The status of a stored run (`RunStore.load(run_dir)`; see the module example)."""
    stats = summarize_store(store)
    return RunStatus(
        run_dir=store.run_dir,
        metric=store.metric,
        swept=store.swept,
        counts=stats["counts"],
        best=stats["best"],
        driver_pid=lock_holder(store.run_dir),
        total_estimate=_total_estimate(store),
        growth=store.growth(),
        pruning=stats["pruning"],
    )


def _total_estimate(store: RunStore) -> int | None:
    """The strategy's estimate of the sweep's size, or None when it cannot be rebuilt."""
    try:
        from umup_sweep.data import data_fingerprint
        from umup_sweep.search import make_strategy

        sweep = store.sweep()
        strategy = make_strategy(sweep, data_fingerprint(sweep.data))
        return strategy.total_estimate(store.results())
    except Exception:  # no strategy module yet, or a sweep this version cannot read
        return None
