"""Error rates of the independent search over many simulated searches (no training).

The same scenarios as tests/search/test_search_independent_stats.py (which asserts the
bounds), with more searches and a 95% Wilson interval for each rate:

- null, 2 seeds: only lr matters, five HPs do nothing; noise estimated from the seeds.
- null, 1 seed: the same with one seed and the noise sd given.
- power: two HPs whose best value gains 3σ, three that do nothing; 2 widths × 2 seeds.
- antagonist: two changes that gain 3σ alone and lose 6σ together.

    .venv/bin/python benchmarks/bench_independent_errors.py --searches 400
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "search"))

import test_search_independent_stats as sim  # noqa: E402


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def rate(label: str, k: int, n: int) -> None:
    lo, hi = wilson(k, n)
    print(f"  {label:<48} {k:>4}/{n} = {k / n:6.1%}  [{lo:.1%}, {hi:.1%}]")


def antagonist_truth(hps):
    rm, ls = hps["residual_mult"] == 0.5, hps["loss_softmax_mult"] == 2.0
    loss = 2.0 + 0.08 * (math.log2(hps["lr"]) + 0.5) ** 2
    return loss - 3 * sim.SIGMA * (rm + ls) + 12 * sim.SIGMA * (rm and ls)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--searches", type=int, default=400)
    n = sim.N_SEARCHES = parser.parse_args().searches
    null_hps = sim.HPS[1:4]
    start = time.perf_counter()

    print(f"sigma = {sim.SIGMA} per trial, {n} searches per scenario")
    s = sim.run_many(sim.sweep(), {})
    print("null (only lr matters), 1 width x 2 seeds, noise_sd auto:")
    rate("final config changes a no-effect HP", sum(bool(x["final_changes"]) for x in s), n)
    rate("stage 2 adopts a no-effect HP", sum(bool(x["adopted"]) for x in s), n)
    ratio = statistics.fmean(x["noise"]["sd"] for x in s) / (sim.SIGMA * math.sqrt(2))
    print(f"  mean estimated paired-difference sd / true: {ratio:.3f}")
    trials = statistics.fmean(x["n_trials"] for x in s)
    print(f"  trials per search: {trials:.1f}")

    s = sim.run_many(sim.sweep(seeds=(0,), noise_sd=sim.SIGMA * math.sqrt(2)), {})
    print("null, 1 width x 1 seed, noise_sd given:")
    rate("final config changes a no-effect HP", sum(bool(x["final_changes"]) for x in s), n)

    effects = {"residual_mult": (-1.0, 3 * sim.SIGMA), "loss_softmax_mult": (1.0, 3 * sim.SIGMA)}
    s = sim.run_many(sim.sweep(widths=(32, 64)), effects)
    print("power: two 3-sigma effects + three no-effect HPs, 2 widths x 2 seeds:")
    both = sum(
        x["final_changes"].get("residual_mult") == 0.5
        and x["final_changes"].get("loss_softmax_mult") == 2.0
        for x in s
    )
    rate("both real effects in the final config", both, n)
    null = sum(any(h in x["final_changes"] for h in null_hps) for x in s)
    rate("a no-effect HP in the final config", null, n)

    both_of = lambda s: sum(  # noqa: E731
        x["final_changes"].get("residual_mult") == 0.5
        and x["final_changes"].get("loss_softmax_mult") == 2.0
        for x in s
    )
    for widths in ((32,), (32, 64)):
        for options in ({}, {"confirm_seeds": 2}):
            label = "confirm_seeds auto (4)" if not options else "confirm_seeds 2"
            print(f"power, 1 seed, noise_sd auto, {len(widths)} width(s), {label}:")
            s = sim.run_many(sim.sweep(widths=widths, seeds=(0,), **options), effects)
            rate("both real effects in the final config", both_of(s), n)
            rate(
                "a no-effect HP in the final config",
                sum(any(h in x["final_changes"] for h in null_hps) for x in s),
                n,
            )
            print(f"  trials per search: {statistics.fmean(x['n_trials'] for x in s):.1f}")

    s = sim.run_many(sim.sweep(), {}, antagonist_truth)
    print("antagonist: each change +3 sigma alone, -6 sigma together:")
    worse = 0
    for x in s:
        baseline = {**x["final"], **{h: 1.0 for h in sim.HPS}, "lr": x["stage1_lr"]}
        worse += antagonist_truth(x["final"]) > antagonist_truth(baseline) + 1e-12
    rate("final config truly worse than the baseline", worse, n)
    rate(
        "final config is the harmful combination",
        sum(
            x["final"]["residual_mult"] == 0.5 and x["final"]["loss_softmax_mult"] == 2.0 for x in s
        ),
        n,
    )
    rate("reverted to the baseline at the final check", sum(x["reverted"] for x in s), n)
    print(f"wall: {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
