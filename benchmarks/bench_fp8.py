"""Simulated FP8 (`precision: fp8_sim`): its cost against fp32 on CPU, and what it does to loss.

Speed: median over interleaved repeats of the time per training step (forward + backward +
AdamW), fp32 vs fp8_sim (and bf16 autocast where the proxy supports it), per proxy width, for
the u-μP and SP proxies; plus the raw cast throughput. Loss (`--losses`): each proxy trained at
its best fp32 LR (u-μP 2^-1, SP 2^-7) under fp32 and fp8_sim, same batches, as a trial
(`umup_sweep.train.run_trial`). Steps are `umup_sweep.train.train_steps`, the trials' own loop.

    PYTHONPATH=. python benchmarks/bench_fp8.py [--widths 64,128] [--repeats 5] [--losses]
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import statistics
import time
from collections.abc import Callable

import torch

from umup_sweep.models import ProxyModel, build_model
from umup_sweep.precision import PrecisionPolicy, fp8_cast, make_precision_aware
from umup_sweep.spec import ModelSpec, TrainSpec, TrialSpec
from umup_sweep.train import make_trial_optimizer, run_trial, train_steps

LRS = {"umup": 2.0**-1, "sp": 2.0**-7}
# One step at the base LR; only a NaN loss skips the update (as a timing run should not stop).
ONE_STEP = TrainSpec(steps=1, warmup_frac=0.0, schedule="constant", diverge_loss=math.inf)


def make_step(param: str, width: int, depth: int, precision: str) -> Callable[..., None]:
    """One training step of a fresh proxy under `precision`."""
    torch.manual_seed(0)
    model = make_precision_aware(
        build_model(ModelSpec(width=width, depth=depth, parametrization=param))  # type: ignore[arg-type]
    )
    assert isinstance(model, ProxyModel)
    opt = make_trial_optimizer(model, dataclasses.replace(ONE_STEP, lr=LRS[param]))
    policy = PrecisionPolicy(precision)

    def step(x: torch.Tensor, y: torch.Tensor) -> None:
        train_steps(model, opt, [(x, y)], ONE_STEP, policy=policy)

    return step


def bf16_works(param: str) -> bool:
    """Whether the proxy survives a bf16 autocast step (the u-μP core needs a fix first)."""
    try:
        make_step(param, 32, 1, "bf16")(torch.zeros(1, 8, dtype=torch.long),
                                         torch.zeros(1, 8, dtype=torch.long))  # fmt: skip
    except RuntimeError:
        return False
    return True


def bench_speed(
    widths: list[int], depth: int, batch: int, seq: int, steps: int, repeats: int
) -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (batch, seq), generator=gen)
    y = torch.randint(0, 256, (batch, seq), generator=gen)
    print(f"ms per training step, depth {depth}, batch {batch}x{seq}, "
          f"median of {repeats} x {steps} steps (interleaved)")  # fmt: skip
    print(f"  {'proxy':6s} {'width':>5s} {'fp32':>8s} {'fp8_sim':>8s} {'bf16':>8s}"
          f" {'fp8/fp32':>9s} {'bf16/fp32':>9s}")  # fmt: skip
    for param in ("umup", "sp"):
        precisions = ["fp32", "fp8_sim"] + (["bf16"] if bf16_works(param) else [])
        for width in widths:
            steps_fns = {p: make_step(param, width, depth, p) for p in precisions}
            for fn in steps_fns.values():  # warm-up
                fn(x, y)
                fn(x, y)
            times: dict[str, list[float]] = {p: [] for p in precisions}
            for _ in range(repeats):
                for p, fn in steps_fns.items():
                    t0 = time.perf_counter()
                    for _ in range(steps):
                        fn(x, y)
                    times[p].append((time.perf_counter() - t0) / steps)
            med = {p: statistics.median(ts) * 1e3 for p, ts in times.items()}
            bf16 = f"{med['bf16']:8.1f}" if "bf16" in med else f"{'n/a':>8s}"
            bf16_ratio = f"{med['bf16'] / med['fp32']:9.2f}" if "bf16" in med else f"{'n/a':>9s}"
            print(f"  {param:6s} {width:5d} {med['fp32']:8.1f} {med['fp8_sim']:8.1f} {bf16}"
                  f" {med['fp8_sim'] / med['fp32']:9.2f} {bf16_ratio}")  # fmt: skip


def bench_cast(repeats: int) -> None:
    x = torch.randn(1024, 256)
    cases = {
        "fp8_cast e4m3": lambda: fp8_cast(x, "e4m3"),
        "fp8_cast e5m2": lambda: fp8_cast(x, "e5m2"),
        "bf16 round trip": lambda: x.bfloat16().float(),
        "matmul 1024x256 @ 256x256": lambda: x @ x[:256].T,
    }
    print(f"cast cost on a 1024x256 fp32 tensor, median of {repeats} x 20 calls")
    for name, fn in cases.items():
        ts = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            for _ in range(20):
                fn()
            ts.append((time.perf_counter() - t0) / 20)
        med = statistics.median(ts)
        print(f"  {name:26s} {med * 1e6:8.1f} us  ({med / x.numel() * 1e9:5.2f} ns/element)")


def train_loss(param: str, precision: str, width: int, depth: int, steps: int, seed: int) -> float:
    """Mean loss over 8 validation batches after `steps` steps (batch 16 x 128); NaN if the
    loss became NaN/inf (a finite loss, however large, trains on)."""
    model = ModelSpec(width=width, depth=depth, seq_len=128, parametrization=param)  # type: ignore[arg-type]
    train = TrainSpec(
        steps=steps,
        batch_size=16,
        lr=LRS[param],
        eval_batches=8,
        diverge_loss=math.inf,
        precision=precision,  # type: ignore[arg-type]
        threads=torch.get_num_threads(),
    )
    value = run_trial(TrialSpec(model, train, seed=seed)).val_loss
    return value if value is not None and math.isfinite(value) else float("nan")


def bench_losses(width: int, depth: int, steps: int, seeds: list[int]) -> None:
    print(f"val loss after {steps} steps, width {width} depth {depth}, batch 16x128, "
          f"seeds {seeds} (mean)")  # fmt: skip
    print(f"  {'proxy':6s} {'lr':>8s} {'fp32':>7s} {'fp8_sim':>8s} {'gap':>7s}")
    for param in ("umup", "sp"):
        mean = {
            p: statistics.mean(train_loss(param, p, width, depth, steps, s) for s in seeds)
            for p in ("fp32", "fp8_sim")
        }
        print(f"  {param:6s} {LRS[param]:8.4g} {mean['fp32']:7.3f} {mean['fp8_sim']:8.3f}"
              f" {mean['fp8_sim'] - mean['fp32']:+7.3f}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--widths", default="64,128")
    parser.add_argument("--depth", type=int, default=2)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--losses", action="store_true", help="also train and compare losses")
    parser.add_argument("--loss-steps", type=int, default=100)
    parser.add_argument("--seeds", default="0,1")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s)")
    widths = [int(w) for w in args.widths.split(",")]
    bench_speed(widths, args.depth, args.batch, args.seq, args.steps, args.repeats)
    bench_cast(args.repeats)
    if args.losses:
        seeds = [int(s) for s in args.seeds.split(",")]
        bench_losses(widths[0], args.depth, args.loss_steps, seeds)


if __name__ == "__main__":
    main()
