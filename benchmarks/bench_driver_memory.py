"""Driver memory as a sweep grows: does the driver's peak RSS stay flat from 100 to 1,000 trials?

Runs the real driver (`run_sweep`: grid strategy, serial executor, SQLite study, trials.csv
and a curve file per trial) over N instant trials, in a fresh process per repeat, and records
the driver's peak RSS (ru_maxrss) after 100 trials and after all N. Prints the medians over R
repeats side by side, the growth per trial and the wall time, and the run directory's size.
Target: growth <= 10 KiB per trial (1,000 trials cost the driver under 10 MiB).

Run: PYTHONPATH=. python benchmarks/bench_driver_memory.py [--trials 1000 --repeats 3]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from umup_sweep.config import ExecutionSpec, HPSpace, ProxyFamily, StorageSpec, SweepSpec
from umup_sweep.spec import ModelSpec, TrainSpec, TrialResult, TrialSpec

CHECKPOINT = 100  # trials after which the first peak is read
CURVE_POINTS = 20  # points per loss curve (a 300-step trial logged every 15 steps)


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far (ru_maxrss is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class InstantTrial:
    """A trial that returns at once (a known loss and a curve); notes the driver's peak RSS
    when trial number CHECKPOINT + 1 starts, i.e. after CHECKPOINT trials were committed."""

    def __init__(self) -> None:
        self.calls = 0
        self.peak_at_checkpoint: float | None = None

    def __call__(self, spec: TrialSpec) -> TrialResult:
        self.calls += 1
        if self.calls == CHECKPOINT + 1:
            self.peak_at_checkpoint = peak_rss_mib()
        loss = 2.0 + (spec.train.lr - 1.0) ** 2
        curve = [(s * 15, loss + 1.0 / (s + 1), None) for s in range(CURVE_POINTS)]
        curve[-1] = (curve[-1][0], curve[-1][1], loss)
        return TrialResult(
            spec.trial_key,
            "ok",
            final_train_loss=loss + 0.01,
            val_loss=loss,
            steps=300,
            tokens=300 * 2048,
            wall_s=0.0,
            n_params=123_456,
            curve=curve,
        )


def sweep_of(n_trials: int, run_root: Path) -> SweepSpec:
    """A grid of `n_trials` learning rates on one tiny proxy (nothing is trained)."""
    lrs = tuple(2.0 ** (-4 + 8 * i / n_trials) for i in range(n_trials))
    return SweepSpec(
        name="memory",
        family=ProxyFamily("tiny", ModelSpec(width=32, depth=1, head_dim=16), (32,), (1,)),
        hyperparameters={"lr": HPSpace(values=lrs)},
        defaults={},
        train=TrainSpec(steps=300, batch_size=4),
        execution=ExecutionSpec(executor="serial", max_concurrent=1, max_failures=0),
        storage=StorageSpec(run_dir=run_root),
    )


def one_run(n_trials: int) -> dict[str, float]:
    """One driver run in this process: peak RSS after CHECKPOINT trials and at the end."""
    from umup_sweep.runner import run_sweep

    with tempfile.TemporaryDirectory() as tmp:
        sweep = sweep_of(n_trials, Path(tmp))
        trial = InstantTrial()
        start_rss = peak_rss_mib()
        start = time.perf_counter()
        summary = run_sweep(sweep, trial_fn=trial, analyze=False)
        wall = time.perf_counter() - start
        assert summary.counts["ok"] == n_trials, summary.counts
        size = sum(p.stat().st_size for p in sweep.run_dir.rglob("*") if p.is_file())
        return {
            "start_mib": start_rss,
            "peak_at_100_mib": trial.peak_at_checkpoint or float("nan"),
            "peak_at_end_mib": peak_rss_mib(),
            "wall_s": wall,
            "run_dir_mib": size / 2**20,
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(one_run(args.trials)))
        return

    runs = []
    for i in range(args.repeats):
        out = subprocess.run(
            [sys.executable, __file__, "--child", "--trials", str(args.trials)],
            capture_output=True,
            text=True,
            check=True,
        )
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(f"repeat {i + 1}/{args.repeats}: {runs[-1]}", file=sys.stderr)

    def med(key: str) -> float:
        return statistics.median(r[key] for r in runs)

    at_100, at_end = med("peak_at_100_mib"), med("peak_at_end_mib")
    per_trial_kib = (at_end - at_100) * 1024 / (args.trials - CHECKPOINT)
    print(f"driver peak RSS, serial executor, medians of {args.repeats} fresh processes")
    print(f"{'':28s}{'100 trials':>12s}{f'{args.trials} trials':>14s}{'ratio':>8s}")
    print(f"{'peak RSS (MiB)':28s}{at_100:12.1f}{at_end:14.1f}{at_end / at_100:8.3f}")
    print(f"{'growth per trial (KiB)':28s}{'':12s}{per_trial_kib:14.2f}")
    print(f"{'RSS before the run (MiB)':28s}{med('start_mib'):12.1f}")
    print(f"{'wall time of the run (s)':28s}{'':12s}{med('wall_s'):14.1f}")
    print(f"{'run directory (MiB)':28s}{'':12s}{med('run_dir_mib'):14.2f}")
    verdict = "flat" if per_trial_kib <= 10 else "GROWS"
    print(f"target <= 10 KiB/trial: {verdict}")


if __name__ == "__main__":
    main()
