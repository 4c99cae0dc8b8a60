"""Orchestration overhead of the sweep driver: Ray Core tasks vs serial vs a Ray Tune Tuner.

A sweep of N fixed-length trials (each busy-waits T seconds of CPU) on W workers ideally takes
N·T/W. We report, as medians over R repeats:
- Ray start-up (embedded local cluster: init + shutdown),
- the driver with the Ray executor (`run_sweep`, store commits included) vs that ideal, and
  its per-trial overhead = (wall - ideal)·W/N,
- the same sweep on the serial executor (W = 1),
- a Ray Tune Tuner running the same trials (the alternative the Ray executor replaces).
Target: Ray executor wall <= 1.15 × ideal (start-up excluded).

Run: PYTHONPATH=. python benchmarks/bench_orchestration.py [--trials 16 --seconds 3
     --repeats 3 --workers 2 --no-tune --no-serial]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from umup_sweep.config import ExecutionSpec, HPSpace, ProxyFamily, StorageSpec, SweepSpec
from umup_sweep.execute import BaseExecutor
from umup_sweep.execute._ray_cluster import RayConnection
from umup_sweep.runner import run_sweep
from umup_sweep.search import GridStrategy
from umup_sweep.spec import ModelSpec, TrainSpec, TrialResult, TrialSpec

SECONDS = 3.0


def busy_trial(spec: TrialSpec) -> TrialResult:
    """A trial that keeps one core busy for `SECONDS` (set in the spec's steps field)."""
    seconds = spec.train.steps / 1000
    start = time.perf_counter()
    x = 0
    while time.perf_counter() - start < seconds:
        x += 1
    wall = time.perf_counter() - start
    return TrialResult(spec.trial_key, "ok", val_loss=1.0 + spec.train.lr, wall_s=wall)


def make_sweep(root: Path, n_trials: int, seconds: float, workers: int, executor: str) -> SweepSpec:
    base = ModelSpec(width=32, depth=1, head_dim=16, seq_len=32)
    return SweepSpec(
        name=f"bench-{executor}",
        family=ProxyFamily("bench", base, (32,), (1,)),
        hyperparameters={"lr": HPSpace(values=tuple(2.0**k for k in range(n_trials)))},
        defaults={},
        train=TrainSpec(steps=int(seconds * 1000)),
        execution=ExecutionSpec(executor=executor, max_concurrent=workers),  # type: ignore[arg-type]
        storage=StorageSpec(run_dir=root),
    )


class TimedExecutor(BaseExecutor):
    """Wraps an executor to time the sweep loop: first submit to last result."""

    def __init__(self, inner: BaseExecutor) -> None:
        self.inner = inner
        self.first_submit: float | None = None
        self.last_result = 0.0

    def submit(self, trials: Sequence[TrialSpec]) -> None:
        if self.first_submit is None:
            self.first_submit = time.perf_counter()
        self.inner.submit(trials)

    def results(self, timeout: float | None = None) -> Iterator[tuple[TrialSpec, TrialResult]]:
        for pair in self.inner.results(timeout):
            self.last_result = time.perf_counter()
            yield pair

    @property
    def in_flight(self) -> int:
        return self.inner.in_flight

    def close(self) -> None:
        self.inner.close()


def time_driver(executor: str, n: int, seconds: float, workers: int) -> tuple[float, float, float]:
    """(wall of run_sweep, wall of its loop: first submit to last result, sum of trial times)."""
    from umup_sweep.execute import make_executor

    with tempfile.TemporaryDirectory() as tmp:
        sweep = make_sweep(Path(tmp), n, seconds, workers, executor)
        ex = TimedExecutor(make_executor(sweep.execution, busy_trial))
        try:
            start = time.perf_counter()
            run_sweep(sweep, executor=ex, strategy=GridStrategy(sweep), analyze=False)
            wall = time.perf_counter() - start
        finally:
            ex.close()
        from umup_sweep.store import RunStore

        busy = float(RunStore.load(Path(tmp) / sweep.name).results()["wall_s"].sum())
    assert ex.first_submit is not None
    return wall, ex.last_result - ex.first_submit, busy


def time_tune(n: int, seconds: float, workers: int) -> tuple[float, float]:
    """(wall of Tuner.fit, sum of trial times) for the same busy trials under Ray Tune."""
    import os

    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # no experiment tables on the terminal
    from ray import tune

    def trainable(config: dict) -> dict:
        start = time.perf_counter()
        while time.perf_counter() - start < config["seconds"]:
            pass
        return {"loss": 1.0, "busy": time.perf_counter() - start}

    with tempfile.TemporaryDirectory() as tmp:
        tuner = tune.Tuner(
            tune.with_resources(trainable, {"cpu": 1}),
            param_space={"i": tune.grid_search(list(range(n))), "seconds": seconds},
            tune_config=tune.TuneConfig(max_concurrent_trials=workers),
            run_config=tune.RunConfig(storage_path=tmp, verbose=0),
        )
        start = time.perf_counter()
        grid = tuner.fit()
        wall = time.perf_counter() - start
        busy = float(sum((grid[i].metrics or {}).get("busy", 0.0) for i in range(len(grid))))
    return wall, busy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=SECONDS)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--no-tune", action="store_true")
    parser.add_argument("--no-serial", action="store_true")
    args = parser.parse_args()
    n, t, w = args.trials, args.seconds, args.workers

    startups: list[float] = []
    ray_rows: list[tuple[float, ...]] = []
    tune_rows: list[tuple[float, ...]] = []
    serial_rows: list[tuple[float, ...]] = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        conn = RayConnection(num_cpus=w)
        startups.append(time.perf_counter() - start)
        try:
            ray_rows.append(time_driver("ray", n, t, w))
            if not args.no_tune:
                tune_rows.append(time_tune(n, t, w))
        finally:
            start = time.perf_counter()
            conn.close()
            startups[-1] += time.perf_counter() - start
        if not args.no_serial:
            serial_rows.append(time_driver("serial", n, t, 1))

    def report(name: str, rows: list[tuple[float, ...]], workers: int) -> None:
        """One line per setup: median walls, ideal, ratio and overhead per trial."""
        if not rows:
            return
        for label, col in (("", 0), (" (loop)", 1)) if len(rows[0]) == 3 else (("", 0),):
            walls = [r[col] for r in rows]
            ideals = [r[-1] / workers for r in rows]
            pairs = list(zip(walls, ideals, strict=True))
            ratio = statistics.median(wl / il for wl, il in pairs)
            per_trial = statistics.median((wl - il) * workers / n for wl, il in pairs)
            print(
                f"{name + label:34s} wall {statistics.median(walls):7.2f} s  ideal "
                f"{statistics.median(ideals):7.2f} s  ratio {ratio:5.3f}  "
                f"overhead/trial {per_trial:6.3f} s"
            )

    print(f"{n} trials x {t:.1f} s busy CPU, {w} workers, medians of {args.repeats} repeats")
    print("(loop) = first submit to last result: excludes opening the store and start-up")
    print(f"{'ray start-up + shutdown':34s} {statistics.median(startups):7.2f} s")
    report("driver + ray executor", ray_rows, w)
    report("ray tune Tuner", tune_rows, w)
    report("driver + serial executor", serial_rows, 1)
    if ray_rows:
        ratio = statistics.median(r[1] / (r[-1] / w) for r in ray_rows)
        setup = statistics.median(r[0] - r[1] for r in ray_rows)
        verdict = "meets" if ratio <= 1.15 else "MISSES"
        print(
            f"ray executor {verdict} the 1.15x target: loop ratio {ratio:.3f}; start-up = Ray "
            f"{statistics.median(startups):.1f} s + driver (store, strategy) {setup:.1f} s"
        )
    if ray_rows and serial_rows:
        speedup = statistics.median(s[0] for s in serial_rows) / statistics.median(
            r[0] for r in ray_rows
        )
        print(f"ray ({w} workers) vs serial: {speedup:.2f}x faster (Ray start-up excluded)")


if __name__ == "__main__":
    main()
