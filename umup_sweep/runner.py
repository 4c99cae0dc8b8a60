"""The sweep driver: strategy -> executor -> store, one committed trial at a time.

`run_sweep` opens the run directory (taking its lock), asks the strategy for as many trials as
there are free slots, and commits every finished trial to the store before proposing more.
The store is the record of what is done, so a rerun (after Ctrl-C, a crash or `kill -9`)
skips every finished trial and loses at most the ones that were in flight. Trials that failed
in an earlier run are tried again; a trial that failed in this run is not.

The driver prints nothing: it reports through an `on_progress` callback (`SweepProgress`
after each round of proposals, `SweepNotice` for messages) and returns a `RunSummary`. The
command line's progress bar and summary text are `umup_sweep.commands`'.

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> from umup_sweep.config import ExecutionSpec, HPSpace, ProxyFamily, StorageSpec, SweepSpec
    >>> from umup_sweep.runner import run_sweep
    >>> from umup_sweep.spec import ModelSpec, TrainSpec, TrialResult
    >>> sweep = SweepSpec(
    ...     "demo", ProxyFamily("tiny", ModelSpec(width=32, depth=1), (32,), (1,)),
    ...     {"lr": HPSpace(values=(0.5, 1.0))}, {}, TrainSpec(steps=5),
    ...     execution=ExecutionSpec(executor="serial"),
    ...     storage=StorageSpec(run_dir=Path(tempfile.mkdtemp())))
    >>> def trial(spec):  # stands in for umup_sweep.train.run_trial
    ...     return TrialResult(spec.trial_key, "ok", val_loss=2 + abs(spec.train.lr - 0.5))
    >>> events = []
    >>> summary = run_sweep(sweep, trial_fn=trial, analyze=False, on_progress=events.append)
    >>> summary.counts["ok"], summary.best["lr"], (events[-1].done, events[-1].running)
    (2, 0.5, (2, 0))
"""

from __future__ import annotations

import dataclasses
import math
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from umup_sweep.config import SweepSpec
from umup_sweep.execute import BaseExecutor, TrialFn, make_executor
from umup_sweep.pruning import Pruner
from umup_sweep.run_status import PruningSavings, summarize_store
from umup_sweep.search._base import BaseStrategy
from umup_sweep.spec import TrialResult, TrialSpec
from umup_sweep.store import FINAL_STATUSES, Growth, RunStore
from umup_sweep.tracking import Tracking

UNUSED_GPUS_WARNING = (
    "warning: execution.gpus_per_trial > 0 but train.device is cpu: the trials will "
    "reserve GPUs without using them (set train.device: cuda)"
)


@dataclass
class RunSummary:
    """What a sweep run did, for the end-of-run screen and for scripts.

    Attributes:
        run_dir: the run directory.
        metric: the column minimised.
        counts: stored trials by status (`ok`, `diverged`, `pruned`, `failed`) and `total`.
        n_new: trials finished in this run; `n_resumed`: final trials found at the start.
        best: the best ok trial's row (trials.csv columns), or None.
        swept: the swept HP names (to show the best trial's HPs).
        elapsed_s: wall time of this run.
        outputs: files and folders the run directory holds now.
        analysis_error: why the post-sweep analysis did not run, if it did not.
        interrupted: stopped by Ctrl-C before the sweep completed.
        growth: when the sweep grew (or shrank) since trials were first stored: what changed,
            trials reused from before and run since (`RunStore.growth()`); else None.
        pruning: trials stopped early and the trial time that saved; None when none was.
    """

    run_dir: Path
    metric: str
    counts: dict[str, int]
    n_new: int
    n_resumed: int
    best: dict[str, Any] | None
    swept: tuple[str, ...]
    elapsed_s: float
    outputs: list[Path] = field(default_factory=list)
    analysis_error: str | None = None
    interrupted: bool = False
    growth: Growth | None = None
    pruning: PruningSavings | None = None


@dataclass(frozen=True)
class SweepProgress:
    """Where a running sweep stands, reported after each round of proposals.

    Attributes:
        metric: the sweep's metric (what `best` is the lowest of).
        done: stored trials the strategy counts (final ones, and failures of this run).
        total: the strategy's estimate of the sweep's size (at least `done`).
        running: trials in flight; 0 in the last event of the trial loop.
        best: the lowest finite `metric` of an ok trial so far, or None.
        spec, result: the trial committed since the previous event (None in the first).

    Example:
        >>> SweepProgress("val_loss", done=3, total=8, running=2, best=2.5).result is None
        True
    """

    metric: str
    done: int
    total: int
    running: int
    best: float | None = None
    spec: TrialSpec | None = None
    result: TrialResult | None = None


@dataclass(frozen=True)
class SweepNotice:
    """A message for whoever runs the sweep, as plain text: a warning before the first
    trial, or (with `verbose`) the traceback of a failed analysis.

    Example:
        >>> SweepNotice("warning: ...").text
        'warning: ...'
    """

    text: str


SweepEvent = SweepProgress | SweepNotice
ProgressFn = Callable[[SweepEvent], None]


class SweepInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped the sweep; finished trials are committed. Carries the `RunSummary`."""

    def __init__(self, summary: RunSummary) -> None:
        super().__init__("sweep interrupted")
        self.summary = summary


def run_sweep(
    sweep: SweepSpec,
    *,
    force: bool = False,
    executor: str | BaseExecutor | None = None,
    address: str | None = None,
    verbose: bool = False,
    strategy: BaseStrategy | None = None,
    trial_fn: TrialFn | None = None,
    analyze: bool = True,
    on_progress: ProgressFn | None = None,
    rerun_pruned: bool = False,
) -> RunSummary:
    """Run (or resume) a sweep to completion and return its summary.

    Args:
        sweep: the validated sweep (`umup_sweep.config.load_sweep`).
        force: if the run directory holds a different sweep, move it aside and start over.
        executor: `"ray"` / `"serial"` to override `sweep.execution.executor`, or a ready
            executor (which the caller closes).
        address: Ray cluster to attach to (overrides `execution.address`).
        verbose: Ray's logs; a failed analysis's traceback as a `SweepNotice`.
        strategy: override the sweep's strategy (default `make_strategy(sweep, fingerprint)`).
        trial_fn: what runs one trial (default `umup_sweep.train.run_trial`).
        analyze: run `umup_sweep.analysis.finalize_run` on the finished run directory.
        on_progress: called with a `SweepProgress` after each round of proposals (carrying
            the trial committed since the last one) and with each `SweepNotice`; None:
            nothing is reported (the driver itself never prints).
        rerun_pruned: run the stored pruned trials again, in full (otherwise a pruned trial
            is final, like a diverged one).

    A sweep that grew since its run directory was written (more seeds, widths, HP values...)
    reuses every stored trial it still holds and runs only the new ones; see
    `RunStore.open` for what may change. With `sweep.tracking`, each committed trial is also
    logged to the trackers, and the summary after the analysis (`umup_sweep.tracking`).
    With `sweep.pruning` enabled, each trial runs under the `PruneBound` its proxy's stored
    trials give (`umup_sweep.pruning`) and stops early, "pruned", when it is dominated.

    Raises:
        TrackingError: a tracker's package is missing (before the run directory is made).
        StoreError: the run directory is locked, holds a sweep this one changes other than by
            growing, or is damaged.
        SweepInterrupted: on Ctrl-C, after committing what finished (carries the summary).
    """
    start = time.monotonic()
    executor_name = _executor_name(executor, sweep)
    strategy = _checked_strategy(sweep, executor_name, strategy, on_progress)
    tracking = Tracking.open(sweep, _notice(on_progress))  # a missing package: one line, now
    store = RunStore.open(sweep, force=force)
    loop = _Loop(store, on_progress, tracking)
    loop.prune(Pruner.from_store(sweep.pruning, store), rerun_pruned)
    owned = not isinstance(executor, BaseExecutor)
    ex: BaseExecutor | None = None
    try:
        if isinstance(executor, BaseExecutor):
            ex = executor
        else:
            ex = _make_executor(sweep, executor, trial_fn, address, verbose)
        if _needs_cluster(sweep, executor_name):  # GPUs reserved: does the cluster have them?
            trial_device(sweep, executor_name, ex.cluster_resources())  # type: ignore[attr-defined]
        loop.run(strategy, ex, sweep.execution.max_concurrent)
        store.export()
        analysis_error = _analyze(store.run_dir, verbose, on_progress) if analyze else None
        tracking.finish(store, analysed=analyze and analysis_error is None)
    except KeyboardInterrupt:
        _close(ex, owned)
        ex = None
        store.export()
        raise SweepInterrupted(loop.summary(sweep, start, interrupted=True)) from None
    except Exception:
        # e.g. Ray unreachable: a run that stored nothing leaves no run directory behind.
        _close(ex, owned)
        ex = None
        store.discard_if_unused()
        raise
    finally:
        _close(ex, owned)
        tracking.close()
        store.close()
    return loop.summary(sweep, start, analysis_error=analysis_error)


def _checked_strategy(
    sweep: SweepSpec,
    executor_name: str,
    strategy: BaseStrategy | None,
    report: ProgressFn | None,
) -> BaseStrategy:
    """The device check, then the strategy: both before the run directory exists, so an
    impossible device (one line) or bad data leaves nothing behind."""
    device = trial_device(sweep, executor_name)
    if sweep.execution.gpus_per_trial > 0 and sweep.train.device == "cpu" and report is not None:
        report(SweepNotice(UNUSED_GPUS_WARNING))
    if strategy is not None:
        return strategy
    # Trials carry the resolved device ("auto" never reaches a trial key); the store keeps
    # the sweep as written, so the same sweep.yaml resumes on any machine.
    if device != sweep.train.device:
        sweep = dataclasses.replace(sweep, train=dataclasses.replace(sweep.train, device=device))
    return _default_strategy(sweep)


def _make_executor(
    sweep: SweepSpec,
    executor: str | None,
    trial_fn: TrialFn | None,
    address: str | None,
    verbose: bool,
) -> BaseExecutor:
    execution = sweep.execution
    if executor is not None:
        execution = dataclasses.replace(execution, executor=executor)  # type: ignore[arg-type]
    return make_executor(execution, trial_fn, address=address, verbose=verbose)


def _close(ex: BaseExecutor | None, owned: bool) -> None:
    """Close an executor this run made (a caller's own is the caller's to close)."""
    if ex is not None and owned:
        ex.close()


class _Loop:
    """The propose -> submit -> commit loop, with the counters the summary needs."""

    def __init__(
        self, store: RunStore, report: ProgressFn | None, tracking: Tracking | None = None
    ) -> None:
        self.store = store
        self.report = report
        self.tracking = tracking  # logs each trial once it is committed (never before)
        self.n_new = 0
        self.n_resumed = int(store.results()["status"].isin(FINAL_STATUSES).sum())
        self.failed_now: set[str] = set()
        self.pruner: Pruner | None = None
        self.unpruned: set[str] = set()  # stored pruned trials to run again, in full

    def prune(self, pruner: Pruner, rerun_pruned: bool = False) -> None:
        """Run new trials under `pruner`'s bounds; with `rerun_pruned`, run the stored pruned
        trials again in full (they count as not done until they finish)."""
        self.pruner = pruner
        if rerun_pruned:
            df = self.store.results()
            self.unpruned = set(df.loc[df["status"] == "pruned", "trial_key"].astype(str))
            self.n_resumed -= len(self.unpruned)

    def visible_results(self) -> pd.DataFrame:
        """Stored results minus failures from earlier runs (so those are tried again) and the
        pruned trials being run again."""
        df = self.store.results()
        old_failures = (df["status"] == "failed") & ~df["trial_key"].isin(self.failed_now)
        rerun = (df["status"] == "pruned") & df["trial_key"].isin(self.unpruned)
        return df[~(old_failures | rerun)].reset_index(drop=True)

    def run(self, strategy: BaseStrategy, ex: BaseExecutor, max_concurrent: int) -> None:
        pending: dict[str, TrialSpec] = {}
        finished: tuple[TrialSpec, TrialResult] | None = None
        while True:
            results = self.visible_results()
            # a slot runs one trial, or one fused group of up to `slot_size` (execution.fuse)
            free = max(1, max_concurrent) * ex.slot_size - ex.in_flight
            if free > 0:
                proposed = strategy.propose(results, list(pending.values()), free)[:free]
                self._submit(proposed, ex, pending)
            if self.report is not None:
                self.report(self._progress(strategy, results, ex.in_flight, finished))
            if ex.in_flight == 0:
                return
            finished = None
            for spec, result in ex.results():
                pending.pop(spec.trial_key, None)
                self.commit(spec, result)
                finished = (spec, result)
                break

    def _submit(
        self, proposed: list[TrialSpec], ex: BaseExecutor, pending: dict[str, TrialSpec]
    ) -> None:
        new = []
        for spec in proposed:
            key = spec.trial_key
            done = self.store.has(key) and key not in self.unpruned
            if key in pending or done or key in self.failed_now:
                continue  # a strategy bug would otherwise loop or recompute
            if self.pruner is not None and key not in self.unpruned:
                spec = self.pruner.attach(spec)
            pending[key] = spec
            new.append(spec)
        if new:
            ex.submit(new)

    def commit(self, spec: TrialSpec, result: TrialResult) -> None:
        self.store.commit(spec, result)
        self.unpruned.discard(spec.trial_key)
        if self.pruner is not None:
            self.pruner.add(spec, result)
        if self.tracking is not None:
            self.tracking.log_trial(spec, result)
        self.n_new += 1
        if result.status == "failed":
            self.failed_now.add(spec.trial_key)

    def _progress(
        self,
        strategy: BaseStrategy,
        results: pd.DataFrame,
        running: int,
        finished: tuple[TrialSpec, TrialResult] | None,
    ) -> SweepProgress:
        done = len(results)
        ok = results[results["status"] == "ok"][self.store.metric]
        best = float(ok.min()) if len(ok) and math.isfinite(ok.min()) else None
        spec, result = finished if finished is not None else (None, None)
        total = max(done, strategy.total_estimate(results))
        return SweepProgress(self.store.metric, done, total, running, best, spec, result)

    def summary(
        self,
        sweep: SweepSpec,
        start: float,
        interrupted: bool = False,
        analysis_error: str | None = None,
    ) -> RunSummary:
        stats = summarize_store(self.store)
        run_dir = self.store.run_dir
        return RunSummary(
            run_dir=run_dir,
            metric=self.store.metric,
            counts=stats["counts"],
            n_new=self.n_new,
            n_resumed=self.n_resumed,
            best=stats["best"],
            swept=sweep.swept,
            elapsed_s=time.monotonic() - start,
            outputs=sorted(p for p in run_dir.iterdir() if not p.name.startswith(".")),
            analysis_error=analysis_error,
            interrupted=interrupted,
            growth=self.store.growth(),
            pruning=stats["pruning"],
        )


def _executor_name(executor: str | BaseExecutor | None, sweep: SweepSpec) -> str:
    """The executor kind ("ray" or "serial"), which decides how the device request is checked.
    A ready executor counts as Ray when it can report cluster resources."""
    if isinstance(executor, BaseExecutor):
        return "ray" if hasattr(executor, "cluster_resources") else "serial"
    return executor or sweep.execution.executor


def _needs_cluster(sweep: SweepSpec, executor_name: str) -> bool:
    """Whether only the Ray cluster can tell if the device request works (GPUs reserved)."""
    return (
        executor_name == "ray"
        and sweep.execution.gpus_per_trial > 0
        and sweep.train.device.strip().lower() != "cpu"
    )


def trial_device(
    sweep: SweepSpec, executor_name: str, cluster_resources: dict[str, float] | None = None
) -> str:
    """The device the sweep's trials run on ("auto" resolved), or a one-line `ConfigError`.

    Wraps `umup_sweep.device.validate_device_request`. Under Ray with GPUs reserved, only the
    cluster can say whether there are GPUs: without `cluster_resources` everything else is
    checked (and "cuda" returned); the driver checks again with the cluster's resources once
    Ray is up, before any trial is submitted.

    Example:
        >>> from umup_sweep.config import ExecutionSpec, ProxyFamily
        >>> from umup_sweep.spec import ModelSpec, TrainSpec
        >>> family = ProxyFamily("tiny", ModelSpec(width=32, depth=1), (32,), (1,))
        >>> sweep = SweepSpec("demo", family, {}, {}, TrainSpec(device="cpu"))
        >>> trial_device(sweep, "serial")
        'cpu'
    """
    from umup_sweep.device import validate_device_request

    gpus = sweep.execution.gpus_per_trial
    if cluster_resources is None and _needs_cluster(sweep, executor_name):
        cluster_resources = {"GPU": max(1.0, float(gpus))}  # stands in for the cluster's answer
    return validate_device_request(
        sweep.train.device,
        gpus,
        executor=executor_name,
        cluster_resources=cluster_resources,
        source=sweep.source,
    )


def _default_strategy(sweep: SweepSpec) -> BaseStrategy:
    from umup_sweep.data import data_fingerprint
    from umup_sweep.search import make_strategy

    return make_strategy(sweep, data_fingerprint(sweep.data))


def _notice(report: ProgressFn | None) -> Callable[[str], None] | None:
    """One-line messages (from the trackers) as `SweepNotice`s."""
    return None if report is None else (lambda text: report(SweepNotice(text)))


def _analyze(run_dir: Path, verbose: bool, report: ProgressFn | None) -> str | None:
    """Run the transfer analysis (transfer.json, plots/, report.md); a failure is reported, not
    fatal: the trials are already saved and `umup-sweep report` retries it."""
    from umup_sweep.analysis import finalize_run

    try:
        finalize_run(run_dir)
    except Exception as exc:
        if verbose and report is not None:
            report(SweepNotice(traceback.format_exc()))
        first = (str(exc).splitlines() or [""])[0]
        return f"{type(exc).__name__}: {first} (rerun with `umup-sweep report {run_dir}`)"
    return None
