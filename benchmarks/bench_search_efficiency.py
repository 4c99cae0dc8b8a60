"""How many trials do the independent search, random and TPE need to get within 1% of the best
loss a full grid finds, on the same proxy and the same 2-HP space (lr × residual_mult)?

Two objectives: a real tiny u-μP proxy trained by `umup_sweep.train.run_trial` (width 64,
depth 2, 150 steps, stdlib corpus; 5×5 log2 grid: lr 2^-3..2^1, residual_mult 2^-2..2^2), and a
synthetic coupled quadratic (no training; many sampler seeds). Trials run in proposal order,
two at a time (as `max_concurrent: 2` would), and "trials to X%" counts trials until the first
one whose loss is within X% of the grid's best. Random/TPE get the same budget as the grid and
are repeated over sampler seeds (median shown, with how many seeds got there at all).

Real-proxy results are cached by trial key in a JSON file, so reruns only train what is new.

    PYTHONPATH=. python benchmarks/bench_search_efficiency.py              # both objectives
    PYTHONPATH=. python benchmarks/bench_search_efficiency.py --synthetic-only
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import multiprocessing as mp
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from umup_sweep.config import SweepSpec, load_sweep
from umup_sweep.search import make_strategy
from umup_sweep.spec import TrialSpec

HERE = Path(__file__).resolve().parent
LR_LOG2 = (-3, 1)
RM_LOG2 = (-2, 2)
TARGETS = (0.01, 0.0025)  # relative gaps to the grid's best loss


def make_sweep(strategy: str, steps: int, budget: int | None, sampler_seed: int = 0) -> SweepSpec:
    """The benchmark's sweep for `strategy` (same proxy, training and HP ranges for all)."""
    if strategy in ("grid", "independent"):
        hps: dict[str, Any] = {
            "lr": {"log2_range": list(LR_LOG2)},
            "residual_mult": {"log2_range": list(RM_LOG2)},
        }
    else:
        hps = {
            "lr": {
                "distribution": "log_uniform_values",
                "min": 2.0 ** LR_LOG2[0],
                "max": 2.0 ** LR_LOG2[1],
            },
            "residual_mult": {
                "distribution": "log_uniform_values",
                "min": 2.0 ** RM_LOG2[0],
                "max": 2.0 ** RM_LOG2[1],
            },
        }
    d: dict[str, Any] = {
        "name": f"bench_{strategy}",
        "proxy": {
            "name": "bench",
            "base": {"head_dim": 32, "seq_len": 128},
            "widths": [64],
            "depths": [2],
        },
        "strategy": strategy,
        "hyperparameters": hps,
        "train": {"steps": steps, "batch_size": 16},
        "execution": {"executor": "serial"},
    }
    if strategy in ("random", "tpe"):
        d["budget"] = budget
        d["strategy_options"] = {"sampler_seed": sampler_seed}
    return load_sweep(d)


# -- objectives -------------------------------------------------------------------------------


def synthetic(trial: TrialSpec) -> float:
    """Coupled quadratic in log2 space: optimum lr 2^-0.7, residual_mult 2^-1; seed noise."""
    x_lr, x_rm = math.log2(trial.train.lr), math.log2(trial.model.residual_mult)
    loss = 2.3 + 0.03 * (x_rm + 1.0) ** 2 + 0.08 * (x_lr + 0.7 - 0.3 * (x_rm + 1.0)) ** 2
    blob = repr((x_lr, x_rm, trial.seed)).encode()
    rng = random.Random(int(hashlib.sha256(blob).hexdigest()[:12], 16))
    return loss + rng.gauss(0.0, 0.003)


class RealProxy:
    """Trains trials with `run_trial` in a 2-process pool; results cached by trial key."""

    def __init__(self, cache: Path, metric: str, workers: int) -> None:
        self.cache_path = cache
        self.metric = metric
        self.cache: dict[str, dict[str, Any]] = (
            json.loads(cache.read_text()) if cache.exists() else {}
        )
        self.pool = mp.get_context("spawn").Pool(workers)
        self.trained = 0

    def run(self, trials: Sequence[TrialSpec]) -> list[float]:
        todo = [t for t in trials if t.trial_key not in self.cache]
        if todo:
            for t, res in zip(
                todo, self.pool.map(_train, [t.to_dict() for t in todo]), strict=True
            ):
                self.cache[t.trial_key] = res
                self.trained += 1
            self.cache_path.parent.mkdir(parents=True, exist_ok=True)
            self.cache_path.write_text(json.dumps(self.cache, indent=1, sort_keys=True))
        out = []
        for t in trials:
            res = self.cache[t.trial_key]
            out.append(res[self.metric] if res["status"] == "ok" else math.inf)
        return out

    def close(self) -> None:
        self.pool.close()
        self.pool.join()


def _train(spec: dict[str, Any]) -> dict[str, Any]:
    from umup_sweep.train import run_trial

    res = run_trial(TrialSpec.from_dict(spec))
    return {
        "status": res.status,
        "val_loss": res.val_loss,
        "final_train_loss": res.final_train_loss,
        "wall_s": res.wall_s,
    }


# -- driving a strategy ---------------------------------------------------------------------


def drive(
    sweep: SweepSpec,
    evaluate: Callable[[Sequence[TrialSpec]], list[float]],
    fingerprint: str,
    concurrency: int = 2,
) -> list[float]:
    """Losses in proposal order, proposing `concurrency` trials at a time."""
    strategy = make_strategy(sweep, fingerprint)
    rows: list[dict[str, Any]] = []
    while True:
        frame = pd.DataFrame(rows)
        new = strategy.propose(frame, [], concurrency)
        if not new:
            return [r[sweep.metric] for r in rows]
        for t, loss in zip(new, evaluate(new), strict=True):
            rows.append(
                {
                    "trial_key": t.trial_key,
                    "stage": t.labels["stage"],
                    "width": t.model.width,
                    "depth": t.model.depth,
                    "parametrization": t.model.parametrization,
                    "seed": t.seed,
                    **t.hps,
                    "status": "ok" if math.isfinite(loss) else "diverged",
                    sweep.metric: loss if math.isfinite(loss) else None,
                }
            )


def trials_to(losses: Sequence[float], target: float) -> int | None:
    """1-based index of the first loss <= target, or None."""
    for i, x in enumerate(losses):
        if x is not None and x <= target:
            return i + 1
    return None


def summarise(name: str, runs: list[list[float]], grid_best: float) -> dict[str, str]:
    row = {"method": name}
    for gap in TARGETS:
        hits = [trials_to(r, grid_best * (1 + gap)) for r in runs]
        reached = [h for h in hits if h is not None]
        med = f"{statistics.median(reached):g}" if reached else "never"
        row[f"to {gap:.2%}"] = med if len(runs) == 1 else f"{med} ({len(reached)}/{len(runs)})"
    bests = [min(x for x in r if x is not None) for r in runs]
    row["best loss"] = f"{statistics.median(bests):.4f}"
    row["trials"] = f"{statistics.median(len(r) for r in runs):g}"
    return row


def benchmark(label: str, evaluate, fingerprint: str, steps: int, seeds: int) -> list[dict]:
    grid = drive(make_sweep("grid", steps, None), evaluate, fingerprint)
    grid_best = min(x for x in grid if x is not None)
    budget = len(grid)
    table = [summarise("grid (5×5)", [grid], grid_best)]
    table.append(
        summarise(
            "independent",
            [drive(make_sweep("independent", steps, None), evaluate, fingerprint)],
            grid_best,
        )
    )
    for method in ("random", "tpe"):
        runs = [
            drive(make_sweep(method, steps, budget, s), evaluate, fingerprint) for s in range(seeds)
        ]
        table.append(summarise(f"{method} (×{seeds} seeds)", runs, grid_best))
    for row in table:
        row["objective"] = label
    print_table(table, f"{label}: grid best {grid_best:.4f}")
    return table


def print_table(rows: list[dict[str, str]], title: str) -> None:
    cols = ["objective", "method", *(f"to {g:.2%}" for g in TARGETS), "best loss", "trials"]
    widths = [max(len(c), *(len(r[c]) for r in rows)) for c in cols]
    print(f"\n{title}")
    print(" | ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)))
    print("-+-".join("-" * w for w in widths))
    for r in rows:
        print(" | ".join(r[c].ljust(w) for c, w in zip(cols, widths, strict=True)))
    sys.stdout.flush()


def main() -> None:
    global LR_LOG2, RM_LOG2
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--seeds", type=int, default=3, help="sampler seeds (real proxy)")
    parser.add_argument("--synthetic-seeds", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--cache", type=Path, default=HERE / "results" / "search_cache.json")
    parser.add_argument("--synthetic-only", action="store_true")
    parser.add_argument("--lr-log2", type=int, nargs=2, default=LR_LOG2, metavar=("LO", "HI"))
    parser.add_argument("--rm-log2", type=int, nargs=2, default=RM_LOG2, metavar=("LO", "HI"))
    args = parser.parse_args()
    LR_LOG2, RM_LOG2 = tuple(args.lr_log2), tuple(args.rm_log2)

    def synth_eval(trials: Sequence[TrialSpec]) -> list[float]:
        return [synthetic(t) for t in trials]

    benchmark("synthetic", synth_eval, "synthetic", args.steps, args.synthetic_seeds)
    if args.synthetic_only:
        return
    from umup_sweep.data import data_fingerprint

    sweep = make_sweep("grid", args.steps, None)
    real = RealProxy(args.cache, sweep.metric, args.workers)
    start = time.time()
    try:
        benchmark("u-μP w64 d2", real.run, data_fingerprint(sweep.data), args.steps, args.seeds)
    finally:
        real.close()
    print(
        f"\ntrained {real.trained} new trials in {time.time() - start:.0f} s (cache: {args.cache})"
    )


if __name__ == "__main__":
    main()
