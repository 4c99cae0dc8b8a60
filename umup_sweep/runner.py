"""The sweep driver: strategy -> executor -> store, one committed trial at a time.

`run_sweep` opens the run directory (taking its lock), asks the strategy for as many trials as
there are free slots, and commits every finished trial to the store before proposing more.
The store is the record of what is done, so a rerun (after Ctrl-C, a crash or `kill -9`)
skips every finished trial and loses at most the ones that were in flight. Trials that failed
in an earlier run are tried again; a trial that failed in this run is not.
"""

from __future__ import annotations

import dataclasses
import math
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from umup_sweep.config import SweepSpec
from umup_sweep.execute import BaseExecutor, TrialFn, make_executor
from umup_sweep.search._base import BaseStrategy
from umup_sweep.spec import TrialResult, TrialSpec
from umup_sweep.store import RunStore


@dataclass
class RunSummary:
    """What a sweep run did, for the end-of-run screen and for scripts.

    Attributes:
        run_dir: the run directory.
        metric: the column minimised.
        counts: stored trials by status (`ok`, `diverged`, `failed`) and `total`.
        n_new: trials finished in this run; `n_resumed`: final trials found at the start.
        best: the best ok trial's row (trials.csv columns), or None.
        swept: the swept HP names (to show the best trial's HPs).
        elapsed_s: wall time of this run.
        outputs: files and folders the run directory holds now.
        analysis_error: why the post-sweep analysis did not run, if it did not.
        interrupted: stopped by Ctrl-C before the sweep completed.
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

    def lines(self) -> list[str]:
        """The one-screen summary as plain text lines."""
        c = self.counts
        out = [
            f"{'interrupted' if self.interrupted else 'finished'}: {self.run_dir}  "
            f"({self.n_new} trials run now, {self.n_resumed} already done, "
            f"{_duration(self.elapsed_s)})",
            f"trials: {c.get('total', 0)} stored — {c.get('ok', 0)} ok, "
            f"{c.get('diverged', 0)} diverged, {c.get('failed', 0)} failed",
        ]
        if self.best is None:
            out.append("best: none (no trial finished ok)")
        else:
            b = self.best
            hps = ", ".join(f"{k}={_fmt(b[k])}" for k in self.swept if k in b)
            out.append(
                f"best {self.metric} {b[self.metric]:.4f}: width {b['width']}, depth "
                f"{b['depth']}, seed {b['seed']}" + (f", {hps}" if hps else "")
            )
        if self.analysis_error:
            out.append(f"analysis skipped: {self.analysis_error}")
        out.append("outputs:")
        out.extend(f"  {p}" for p in self.outputs)
        return out


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
    progress: bool = True,
    verbose: bool = False,
    strategy: BaseStrategy | None = None,
    trial_fn: TrialFn | None = None,
    analyze: bool = True,
) -> RunSummary:
    """Run (or resume) a sweep to completion and return its summary.

    Args:
        sweep: the validated sweep (`umup_sweep.config_load.load_sweep`).
        force: if the run directory holds a different sweep, move it aside and start over.
        executor: `"ray"` / `"serial"` to override `sweep.execution.executor`, or a ready
            executor (which the caller closes).
        address: Ray cluster to attach to (overrides `execution.address`).
        progress: live progress bar on stderr.
        verbose: one line per finished trial, Ray's logs, analysis tracebacks.
        strategy: override the sweep's strategy (default `make_strategy(sweep, fingerprint)`).
        trial_fn: what runs one trial (default `umup_sweep.train.run_trial`).
        analyze: run `umup_sweep.analysis.analyze_run` on the finished run directory.

    Raises:
        StoreError: the run directory is locked, holds a different sweep, or is damaged.
        SweepInterrupted: on Ctrl-C, after committing what finished (carries the summary).

    Example:
        >>> from umup_sweep.config_load import load_sweep  # doctest: +SKIP
        >>> summary = run_sweep(load_sweep("sweeps/lr_width.yaml"))  # doctest: +SKIP
        >>> print("\\n".join(summary.lines()))  # doctest: +SKIP
    """
    start = time.monotonic()
    console = Console(stderr=True)
    # The device check comes first: `device: cuda` without a GPU is one line, before any trial.
    executor_name = _executor_name(executor, sweep)
    device = trial_device(sweep, executor_name)
    if sweep.execution.gpus_per_trial > 0 and sweep.train.device == "cpu":
        console.print(
            "warning: execution.gpus_per_trial > 0 but train.device is cpu: the trials will "
            "reserve GPUs without using them (set train.device: cuda)",
            highlight=False,
        )
    if strategy is None:  # before the run directory exists: bad data leaves nothing behind
        # Trials carry the resolved device ("auto" never reaches a trial key); the store keeps
        # the sweep as written, so the same sweep.yaml resumes on any machine.
        trial_sweep = sweep
        if device != sweep.train.device:
            trial_sweep = dataclasses.replace(
                sweep, train=dataclasses.replace(sweep.train, device=device)
            )
        strategy = _default_strategy(trial_sweep)
    store = RunStore.open(sweep, force=force)
    n_resumed = int(store.results()["status"].isin(("ok", "diverged")).sum())
    owns_executor = not isinstance(executor, BaseExecutor)
    ex: BaseExecutor | None = None
    loop = _Loop(store, console, verbose)
    try:
        if isinstance(executor, BaseExecutor):
            ex = executor
        else:
            execution = sweep.execution
            if executor is not None:
                execution = dataclasses.replace(execution, executor=executor)  # type: ignore[arg-type]
            ex = make_executor(execution, trial_fn, address=address, verbose=verbose)
        if _needs_cluster(sweep, executor_name):  # GPUs reserved: does the cluster have them?
            trial_device(sweep, executor_name, ex.cluster_resources())  # type: ignore[attr-defined]
        with _progress(console, progress) as bar:
            loop.run(strategy, ex, sweep.execution.max_concurrent, bar)
        store.export()
        analysis_error = _analyze(store.run_dir, verbose, console) if analyze else None
    except KeyboardInterrupt:
        if ex is not None and owns_executor:
            ex.close()
            ex = None
        store.export()
        summary = _summary(store, sweep, loop.n_new, n_resumed, start, interrupted=True)
        raise SweepInterrupted(summary) from None
    except Exception:
        # e.g. Ray unreachable: a run that stored nothing leaves no run directory behind.
        if ex is not None and owns_executor:
            ex.close()
            ex = None
        store.discard_if_unused()
        raise
    finally:
        if ex is not None and owns_executor:
            ex.close()
        store.close()
    summary = _summary(store, sweep, loop.n_new, n_resumed, start)
    summary.analysis_error = analysis_error
    return summary


class _Loop:
    """The propose -> submit -> commit loop, with the counters the summary needs."""

    def __init__(self, store: RunStore, console: Console, verbose: bool) -> None:
        self.store = store
        self.console = console
        self.verbose = verbose
        self.n_new = 0
        self.failed_now: set[str] = set()

    def visible_results(self) -> pd.DataFrame:
        """Stored results minus failures from earlier runs (so those are tried again)."""
        df = self.store.results()
        old_failures = (df["status"] == "failed") & ~df["trial_key"].isin(self.failed_now)
        return df[~old_failures].reset_index(drop=True)

    def run(self, strategy: BaseStrategy, ex: BaseExecutor, max_concurrent: int, bar: Any) -> None:
        pending: dict[str, TrialSpec] = {}
        while True:
            results = self.visible_results()
            free = max(1, max_concurrent) - ex.in_flight
            if free > 0:
                new = []
                for spec in strategy.propose(results, list(pending.values()), free)[:free]:
                    key = spec.trial_key
                    if key in pending or self.store.has(key) or key in self.failed_now:
                        continue  # a strategy bug would otherwise loop or recompute
                    pending[key] = spec
                    new.append(spec)
                if new:
                    ex.submit(new)
            if bar is not None:
                self._update_bar(bar, strategy, results)
            if ex.in_flight == 0:
                return
            for spec, result in ex.results():
                pending.pop(spec.trial_key, None)
                self.commit(spec, result)
                break

    def commit(self, spec: TrialSpec, result: TrialResult) -> None:
        self.store.commit(spec, result)
        self.n_new += 1
        if result.status == "failed":
            self.failed_now.add(spec.trial_key)
        if self.verbose or result.status == "failed":
            self.console.print(_trial_line(spec, result, self.store.metric), highlight=False)

    def _update_bar(self, bar: Progress, strategy: BaseStrategy, results: pd.DataFrame) -> None:
        done = len(results)
        total = max(done, strategy.total_estimate(results))
        ok = results[results["status"] == "ok"][self.store.metric]
        best = f"best {ok.min():.4f}" if len(ok) and math.isfinite(ok.min()) else ""
        bar.update(bar.task_ids[0], completed=done, total=total, best=best)


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
        >>> from umup_sweep.config_load import load_sweep  # doctest: +SKIP
        >>> trial_device(load_sweep("sweeps/smoke.yaml"), "serial")  # doctest: +SKIP
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


class _NoBar:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def _progress(console: Console, enabled: bool) -> Any:
    if not enabled:
        return _NoBar()
    bar = Progress(
        TextColumn("[bold]trials"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[best]}"),
        console=console,
    )
    bar.add_task("trials", total=None, best="")
    return bar


def _trial_line(spec: TrialSpec, result: TrialResult, metric: str) -> str:
    value = getattr(result, metric)
    shown = f"{metric} {value:.4f}" if isinstance(value, float) else ""
    hps = ", ".join(f"{k}={_fmt(v)}" for k, v in spec.hps.items())
    extra = f" — {result.error}" if result.error else ""
    return (
        f"{result.status:8s} {spec.trial_key} w{spec.model.width} d{spec.model.depth} "
        f"s{spec.seed} {hps} {shown} ({result.wall_s:.1f} s){extra}"
    )


def _analyze(run_dir: Path, verbose: bool, console: Console) -> str | None:
    """Run the transfer analysis (transfer.json, plots/, report.md); a failure is reported, not
    fatal: the trials are already saved and `umup-sweep report` retries it."""
    from umup_sweep.analysis import finalize_run

    try:
        finalize_run(run_dir)
    except Exception as exc:
        if verbose:
            console.print(traceback.format_exc(), highlight=False)
        first = (str(exc).splitlines() or [""])[0]
        return f"{type(exc).__name__}: {first} (rerun with `umup-sweep report {run_dir}`)"
    return None


def _summary(
    store: RunStore,
    sweep: SweepSpec,
    n_new: int,
    n_resumed: int,
    start: float,
    interrupted: bool = False,
) -> RunSummary:
    stats = summarize_store(store)
    outputs = sorted(p for p in store.run_dir.iterdir() if not p.name.startswith("."))
    return RunSummary(
        run_dir=store.run_dir,
        metric=store.metric,
        counts=stats["counts"],
        n_new=n_new,
        n_resumed=n_resumed,
        best=stats["best"],
        swept=sweep.swept,
        elapsed_s=time.monotonic() - start,
        outputs=outputs,
        interrupted=interrupted,
    )


def summarize_store(store: RunStore) -> dict[str, Any]:
    """Counts by status and the best ok trial of a stored run (for `umup-sweep status`)."""
    df = store.results()
    counts = {"total": len(df)} | {
        s: int((df["status"] == s).sum()) for s in ("ok", "diverged", "failed")
    }
    ok = df[(df["status"] == "ok") & df[store.metric].notna()]
    best = ok.loc[ok[store.metric].idxmin()].to_dict() if len(ok) else None
    return {"counts": counts, "best": best}


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        if value > 0 and math.log2(value).is_integer():
            return f"2^{int(math.log2(value))}" if value != 1 else "1"
        return f"{value:.4g}"
    return str(value)


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {secs:02d} s"


def status_lines(store: RunStore) -> list[str]:
    """`umup-sweep status`: counts by status, trials remaining (when the sweep's strategy can
    estimate them), whether a driver is running, and the best trial so far."""
    from umup_sweep.store_lock import lock_holder

    stats = summarize_store(store)
    c = stats["counts"]
    finals = c["ok"] + c["diverged"]
    holder = lock_holder(store.run_dir)
    lines = [
        f"{store.run_dir}: " + (f"running (driver pid {holder})" if holder else "not running"),
        f"trials: {c['total']} stored — {c['ok']} ok, {c['diverged']} diverged, "
        f"{c['failed']} failed (failed trials are retried by the next `umup-sweep run`)",
    ]
    total = _total_estimate(store)
    if total is not None:
        lines.append(f"remaining: about {max(0, total - finals)} of {max(total, finals)} trials")
    best = stats["best"]
    if best is None:
        lines.append("best: none yet")
    else:
        hps = ", ".join(f"{k}={_fmt(best[k])}" for k in store.swept if k in best)
        lines.append(
            f"best {store.metric} {best[store.metric]:.4f}: width {best['width']}, depth "
            f"{best['depth']}, seed {best['seed']}" + (f", {hps}" if hps else "")
        )
    return lines


def _total_estimate(store: RunStore) -> int | None:
    """The strategy's estimate of the sweep's size, or None when it cannot be rebuilt."""
    try:
        from umup_sweep.config_load import load_sweep

        sweep = load_sweep(store.sweep_yaml)
        return _default_strategy(sweep).total_estimate(store.results())
    except Exception:  # no strategy module yet, or a sweep this version cannot read
        return None
