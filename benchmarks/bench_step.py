"""Training-step speed: our u-μP proxy vs plain PyTorch SP vs the reference `unit_scaling`.

Width 256, depth 4, batch 16 × seq 128, CPU, 2 threads (by default): median over repeats of
the time for N steps (forward + backward + optimizer step), models interleaved so machine
noise hits all of them alike. Targets: u-μP/SP ≤ 1.05, u-μP/reference ≤ 1.00.

    PYTHONPATH=. python benchmarks/bench_step.py [--repeats 7] [--steps 5] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

import torch

from umup_sweep.models import build_model, make_optimizer
from umup_sweep.spec import ModelSpec


def _step_fn(model: torch.nn.Module, opt: torch.optim.Optimizer, loss_fn: Callable) -> Callable:
    def step(x: torch.Tensor, y: torch.Tensor) -> None:
        opt.zero_grad(set_to_none=True)
        loss_fn(model, x, y).backward()
        opt.step()

    return step


def make_runners(width: int, depth: int, vocab: int, pos: str) -> dict[str, Callable]:
    """name → step(x, y) for each contender, all the same shape (SwiGLU ×4, RMSNorm)."""
    runners = {}
    for name, param in (("umup", "umup"), ("sp", "sp")):
        spec = ModelSpec(width=width, depth=depth, head_dim=32, vocab_size=vocab, pos=pos,
                         parametrization=param)  # fmt: skip
        torch.manual_seed(0)
        model = build_model(spec)
        opt = make_optimizer(model, lr=1e-3)
        runners[name] = _step_fn(model, opt, lambda m, x, y: m.compute_loss(m(x), y))
    try:
        import unit_scaling as uu  # the reference library, only for comparison
    except ImportError:
        return runners
    torch.manual_seed(0)
    ref = uu.TransformerDecoder(hidden_size=width, vocab_size=vocab, layers=depth,
                                heads=width // 32)  # fmt: skip
    ref_opt = uu.optim.AdamW(ref.parameters(), lr=1e-3, betas=(0.9, 0.95))

    def ref_loss(m: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        logits = m(x)
        return uu.functional.cross_entropy(logits.flatten(end_dim=-2), y.flatten())

    runners["reference"] = _step_fn(ref, ref_opt, ref_loss)
    return runners


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--pos", default="none", choices=["none", "rope"])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    vocab = 256
    runners = make_runners(args.width, args.depth, vocab, args.pos)
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, vocab, (args.batch, args.seq), generator=g)
    y = torch.randint(0, vocab, (args.batch, args.seq), generator=g)
    for step in runners.values():  # warm-up
        for _ in range(2):
            step(x, y)
    wall: dict[str, list[float]] = {name: [] for name in runners}
    cpu: dict[str, list[float]] = {name: [] for name in runners}
    names = list(runners)
    for rep in range(args.repeats):
        # rotate the order every repeat: none of the models always runs first or after another
        k = rep % len(names)
        for name in names[k:] + names[:k]:
            step = runners[name]
            t0, c0 = time.perf_counter(), time.process_time()
            for _ in range(args.steps):
                step(x, y)
            wall[name].append((time.perf_counter() - t0) / args.steps)
            cpu[name].append((time.process_time() - c0) / args.steps)
    print(f"width {args.width} depth {args.depth} batch {args.batch}x{args.seq} pos={args.pos} "
          f"threads {args.threads}, median of {args.repeats} x {args.steps} steps, "
          f"load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    # Wall time is what a trial costs; CPU time (all threads of this process) is far less
    # sensitive to other processes on a shared machine.
    for label, times in (("wall", wall), ("cpu", cpu)):
        med = {name: statistics.median(ts) for name, ts in times.items()}
        row = "  ".join(f"{name} {t * 1e3:7.1f} ms" for name, t in med.items())
        ratios = f"umup/sp {med['umup'] / med['sp']:.3f} (target <= 1.05)"
        if "reference" in med:
            ratios += f"  umup/reference {med['umup'] / med['reference']:.3f} (target <= 1.00)"
        print(f"  {label:4s} per step: {row}")
        print(f"       {ratios}")


if __name__ == "__main__":
    main()
