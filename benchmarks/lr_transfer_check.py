"""LR transfer check: does the optimal LR stay put across width (u-μP) or drift (SP)?

A short LR sweep of u-μP and SP proxies (depth 2, head dim 32, SwiGLU, batch 16 × seq 128,
warmup 10% then cosine to 10%, stdlib corpus) through the real `run_trial`, two 1-thread
processes at once. Prints, per parametrization and width, the loss per log2 lr, the grid
argmin and a parabola fit around it, and the drift of the optimum per width doubling.
Reference (docs/DESIGN.md, "Reference measurements"): the u-μP optimum ≈ 2^-1 at every width;
the SP optimum moves ≈ −1 log2 per width doubling.

    PYTHONPATH=. python benchmarks/lr_transfer_check.py [--widths 64 256] [--steps 300]
"""

from __future__ import annotations

import argparse
import json
import math
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

GRIDS = {"umup": range(-3, 2), "sp": range(-10, -4)}


def _trial(args: tuple[str, int, int, int, int]) -> dict:
    import torch

    from umup_sweep.spec import DataSpec, ModelSpec, TrainSpec, TrialSpec
    from umup_sweep.train import run_trial

    param, width, log2_lr, steps, seed = args
    torch.set_num_threads(1)
    spec = TrialSpec(
        model=ModelSpec(width=width, depth=2, head_dim=32, ffn="swiglu", parametrization=param),
        train=TrainSpec(steps=steps, batch_size=16, lr=2.0**log2_lr, threads=1),
        data=DataSpec(source="stdlib"),
        seed=seed,
    )
    t0 = time.time()
    res = run_trial(spec)
    return {
        "param": param,
        "width": width,
        "log2_lr": log2_lr,
        "seed": seed,
        "status": res.status,
        "final_train_loss": res.final_train_loss,
        "val_loss": res.val_loss,
        "wall_s": time.time() - t0,
    }


def parabola_optimum(xs: list[float], ys: list[float]) -> float:
    """Vertex of a quadratic through the grid argmin and its neighbours (argmin at an edge)."""
    i = int(np.argmin(ys))
    lo, hi = max(0, i - 1), min(len(xs), i + 2)
    if hi - lo < 3:
        return xs[i]
    a, b, _ = np.polyfit(xs[lo:hi], ys[lo:hi], 2)
    return float(-b / (2 * a)) if a > 0 else xs[i]


def summarise(rows: list[dict]) -> None:
    for param in GRIDS:
        optima = {}
        for width in sorted({r["width"] for r in rows}):
            pts = sorted(
                (r["log2_lr"], r["final_train_loss"])
                for r in rows
                if r["param"] == param and r["width"] == width and r["status"] == "ok"
            )
            if not pts:
                continue
            xs, ys = [float(p[0]) for p in pts], [float(p[1]) for p in pts]
            best = xs[int(np.argmin(ys))]
            fit = parabola_optimum(xs, ys)
            optima[width] = fit
            curve = "  ".join(f"{x:+.0f}:{y:.3f}" for x, y in pts)
            print(f"{param:4s} width {width:4d}  grid {best:+.0f}  fit {fit:+.2f}  "
                  f"loss {min(ys):.3f}   [{curve}]")  # fmt: skip
        ws = sorted(optima)
        if len(ws) >= 2:
            drift = (optima[ws[-1]] - optima[ws[0]]) / math.log2(ws[-1] / ws[0])
            print(f"{param:4s} drift per width doubling: {drift:+.2f} log2")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--widths", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("runs/lr_transfer_check.jsonl"))
    args = parser.parse_args()
    jobs = [
        (param, width, lr, args.steps, args.seed)
        for width in args.widths
        for param, grid in GRIDS.items()
        for lr in grid
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    rows = []
    with ProcessPoolExecutor(args.workers) as pool, args.out.open("a") as f:
        for row in pool.map(_trial, jobs):
            rows.append(row)
            f.write(json.dumps(row) + "\n")
            f.flush()
            print(json.dumps(row), flush=True)
    summarise(rows)


if __name__ == "__main__":
    main()
