"""Fused trials vs trials alone: where does fusing K trials into one stacked model pay?

For each width, the same 8 trials (one proxy shape, 8 learning rates / seeds) run alone
(`run_trial`, one after another) and as fused groups of K (`run_fused`, 8/K groups), on one
thread; each number is 8 / wall time of the whole batch (trials/s, setup and final evaluation
included, as a sweep sees them), the median over `--repeats` interleaved repeats. The speed-up
column is fused / alone: above 1 fusing pays. `execution.fuse: auto` (umup_sweep.fused) uses
the widest width where K = 8 still pays on CPU.

    PYTHONPATH=. python benchmarks/bench_fused.py [--widths 32 64 128 256] [--ks 2 4 8]
        [--steps 20] [--repeats 3] [--threads 1] [--batch 16] [--seq 128]
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import statistics
import time
from collections.abc import Callable

import torch

from umup_sweep.fused import run_fused
from umup_sweep.spec import ModelSpec, TrainSpec, TrialSpec
from umup_sweep.train import run_trial

N_TRIALS = 8


def trials(width: int, steps: int, threads: int, batch: int, seq: int) -> list[TrialSpec]:
    """8 trials of one proxy (depth 2, `batch` × `seq` tokens per step, byte vocab): 4 lrs ×
    2 seeds."""
    base = TrialSpec(
        ModelSpec(width=width, depth=2, head_dim=32, seq_len=seq),
        TrainSpec(steps=steps, batch_size=batch, eval_batches=2, final_window=5, threads=threads),
    )
    lrs = (0.25, 0.5, 1.0, 2.0)
    return [dataclasses.replace(base.with_hps(lr=lr), seed=s) for s in (0, 1) for lr in lrs]


def runner(k: int) -> Callable[[list[TrialSpec]], None]:
    """Run the trials alone (k = 1) or in fused groups of k."""

    def run(specs: list[TrialSpec]) -> None:
        if k == 1:
            for spec in specs:
                run_trial(spec)
        else:
            for i in range(0, len(specs), k):
                run_fused(specs[i : i + k])

    return run


def measure(args: argparse.Namespace, width: int) -> dict[int, float]:
    """k → median trials/s (k = 1: alone), the contenders interleaved in every repeat."""
    specs = trials(width, args.steps, args.threads, args.batch, args.seq)
    ks, repeats = args.ks, args.repeats
    runners = {k: runner(k) for k in [1, *ks]}
    for run in runners.values():  # warm-up: corpus cache, allocator, vmap tracing
        run(specs[:2] if len(specs) > 2 else specs)
    times: dict[int, list[float]] = {k: [] for k in runners}
    for _ in range(repeats):
        for k, run in runners.items():
            start = time.perf_counter()
            run(specs)
            times[k].append(time.perf_counter() - start)
    return {k: len(specs) / statistics.median(t) for k, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--widths", type=int, nargs="+", default=[32, 64, 128, 256])
    parser.add_argument("--ks", type=int, nargs="+", default=[2, 4, 8])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--seq", type=int, default=128)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(
        f"# fused vs alone: {N_TRIALS} trials per batch, depth 2, batch {args.batch} x seq "
        f"{args.seq}, "
        f"{args.steps} steps, {args.threads} thread(s), median of {args.repeats}; "
        f"torch {torch.__version__}, {platform.processor() or platform.machine()}"
    )
    header = f"{'width':>5} {'alone':>8}" + "".join(f" {'K=' + str(k):>8}" for k in args.ks)
    header += "".join(f" {'x K=' + str(k):>8}" for k in args.ks)
    print("# trials/s (higher is better); x: speed-up of fused over alone")
    print(header)
    for width in args.widths:
        rates = measure(args, width)
        alone = rates[1]
        row = f"{width:>5} {alone:>8.3f}" + "".join(f" {rates[k]:>8.3f}" for k in args.ks)
        row += "".join(f" {rates[k] / alone:>8.2f}" for k in args.ks)
        print(row, flush=True)


if __name__ == "__main__":
    main()
