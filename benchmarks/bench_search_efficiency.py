"""How many trials do the independent search, random search and TPE need to come within 1% and
0.5% of the best loss a full grid finds, on the same proxy and the same 2-HP space
(lr × residual_mult), and how good is the configuration each one recommends?

The space (6×6 log2 grid by default: lr 2^-2..2^3, residual_mult 2^-4..2^1) should hold the
optimum inside it; the script says, per searcher seed, whether the grid's best sits on an edge.

Searcher seed i (0..--seeds-1): every method trains at training seed i·--seed-stride (default
10), the grid too, which gives that seed's reference best; random and TPE draw with
sampler_seed i and get the grid's budget; the independent search runs with `seeds: [i·10]`, so
its fresh confirmation seeds (i·10+1 .. i·10+4 with confirm_seeds 2) never coincide with
another searcher seed's trials. Trials run in proposal order, two at a time (as
`max_concurrent: 2`). "To X%" is the number of trials (fresh-seed confirmations included)
until the first trial at the training seed whose loss is within X% of that seed's grid best:
the median over searcher seeds of those that got there, with how many did.

Each method's pick (the grid/random/TPE best trial, the independent search's final config) is
also scored at the training seed and, unless --holdout-seeds 0, as its mean loss on held-out
seeds 1000, 1001, ... (the same for every method and searcher seed).

Two objectives: a synthetic coupled quadratic (no training; --synthetic-seeds searcher seeds)
and, unless --synthetic-only, a real u-μP proxy trained by `umup_sweep.train.run_trial`
(width 64, depth 2, head_dim 32, seq_len 128, batch 16, --steps, stdlib corpus) in a 2-process
pool. Real results are cached by trial key (--cache), so reruns only train what is new; the
script prints how many new trials it expects before it starts (--max-new-trials caps it).

    PYTHONPATH=. python benchmarks/bench_search_efficiency.py              # both objectives
    PYTHONPATH=. python benchmarks/bench_search_efficiency.py --synthetic-only
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import multiprocessing as mp
import random
import shlex
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from umup_sweep.config import SweepSpec, load_sweep
from umup_sweep.search import IndependentStrategy, make_strategy
from umup_sweep.spec import TrialSpec

HERE = Path(__file__).resolve().parent
METHODS = ("grid", "independent", "random", "tpe")
TARGETS = (0.01, 0.005)  # relative gaps to the seed's grid best
PICK_GAP = 0.005  # "pick within 0.5%" column
HOLDOUT_BASE = 1000  # first held-out seed
SECONDS_PER_STEP = 0.06  # one w64 d2 trial on one CPU thread (150 steps ≈ 9 s)

Evaluate = Callable[[Sequence[TrialSpec]], list[float]]


@dataclass(frozen=True)
class Setup:
    """What every search of one benchmark shares."""

    steps: int
    lr_log2: tuple[int, int]
    rm_log2: tuple[int, int]
    stride: int
    holdout: int
    methods: tuple[str, ...]
    fingerprint: str = ""
    confirm_seeds: int = 2  # the independent search's fresh seeds per confirmation round

    def train_seed(self, i: int) -> int:
        return i * self.stride


def make_sweep(setup: Setup, strategy: str, seed: int, sampler_seed: int = 0) -> SweepSpec:
    """The benchmark's sweep for `strategy` at training seed `seed` (same proxy, training and
    HP ranges for all; random/TPE get the grid's budget)."""
    ranges = {"lr": setup.lr_log2, "residual_mult": setup.rm_log2}
    d: dict[str, Any] = {
        "name": f"bench_{strategy}",
        "proxy": {
            "name": "bench",
            "base": {"head_dim": 32, "seq_len": 128},
            "widths": [64],
            "depths": [2],
        },
        "seeds": [seed],
        "strategy": strategy,
        "hyperparameters": {hp: {"log2_range": list(r)} for hp, r in ranges.items()},
        "train": {"steps": setup.steps, "batch_size": 16},
        "execution": {"executor": "serial"},
    }
    if strategy == "independent":
        d["strategy_options"] = {"confirm_seeds": setup.confirm_seeds}
    if strategy in ("random", "tpe"):
        d["budget"] = _grid_size(setup)
        d["strategy_options"] = {"sampler_seed": sampler_seed}
        d["hyperparameters"] = {
            hp: {"distribution": "log_uniform_values", "min": 2.0 ** r[0], "max": 2.0 ** r[1]}
            for hp, r in ranges.items()
        }
    return load_sweep(d)


def _grid_size(setup: Setup) -> int:
    return (setup.lr_log2[1] - setup.lr_log2[0] + 1) * (setup.rm_log2[1] - setup.rm_log2[0] + 1)


# -- objectives -------------------------------------------------------------------------------


def synthetic(trial: TrialSpec) -> float:
    """Coupled quadratic in log2 space, shaped like the real proxy at 150 steps (a lower
    residual_mult wants a higher lr): optimum lr 2^1, residual_mult 2^-2.5, inside the default
    space (the best lr stays inside it at every residual_mult); seed noise sd 0.003."""
    x_lr, x_rm = math.log2(trial.train.lr), math.log2(trial.model.residual_mult)
    loss = 2.05 + 0.03 * (x_rm + 2.5) ** 2 + 0.035 * (x_lr - 1.0 + 0.5 * (x_rm + 2.5)) ** 2
    blob = repr((x_lr, x_rm, trial.seed)).encode()
    rng = random.Random(int(hashlib.sha256(blob).hexdigest()[:12], 16))
    return loss + rng.gauss(0.0, 0.003)


def synthetic_eval(trials: Sequence[TrialSpec]) -> list[float]:
    return [synthetic(t) for t in trials]


class Recorder:
    """The synthetic objective, remembering every trial key asked for (for the estimate)."""

    def __init__(self) -> None:
        self.keys: set[str] = set()

    def __call__(self, trials: Sequence[TrialSpec]) -> list[float]:
        self.keys.update(t.trial_key for t in trials)
        return synthetic_eval(trials)


class TrialLimit(Exception):
    """Training more trials would pass --max-new-trials."""


class RealProxy:
    """Trains trials with `run_trial` in a spawn pool; results cached by trial key."""

    def __init__(self, cache: Path, metric: str, workers: int, max_new: int | None) -> None:
        self.cache_path, self.metric, self.max_new = cache, metric, max_new
        self.cache: dict[str, dict[str, Any]] = (
            json.loads(cache.read_text()) if cache.exists() else {}
        )
        self.pool = mp.get_context("spawn").Pool(workers)
        self.trained = 0

    def __call__(self, trials: Sequence[TrialSpec]) -> list[float]:
        todo = list({t.trial_key: t for t in trials if t.trial_key not in self.cache}.values())
        if todo:
            if self.max_new is not None and self.trained + len(todo) > self.max_new:
                raise TrialLimit(f"the next batch would pass --max-new-trials {self.max_new}")
            results = self.pool.map(_train, [t.to_dict() for t in todo])
            for t, res in zip(todo, results, strict=True):
                self.cache[t.trial_key] = res
            self.trained += len(todo)
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


# -- one search -------------------------------------------------------------------------------


@dataclass
class Search:
    """One method at one searcher seed: its trials and losses in proposal order, its pick."""

    method: str
    seed: int  # the training seed
    trials: list[TrialSpec]
    losses: list[float]
    pick: dict[str, float]  # lr and residual_mult it recommends
    pick_loss: float = math.nan  # the pick at the training seed
    holdout: float | None = None  # the pick's mean loss on the held-out seeds


def drive(sweep: SweepSpec, evaluate: Evaluate, fingerprint: str, concurrency: int = 2) -> Search:
    """Run a strategy to completion, proposing `concurrency` trials at a time."""
    strategy = make_strategy(sweep, fingerprint)
    rows: list[dict[str, Any]] = []
    trials: list[TrialSpec] = []
    while True:
        new = strategy.propose(pd.DataFrame(rows), [], concurrency)
        if not new:
            break
        for t, loss in zip(new, evaluate(new), strict=True):
            ok = math.isfinite(loss)
            trials.append(t)
            rows.append(
                {
                    "trial_key": t.trial_key,
                    "stage": t.labels["stage"],
                    "width": t.model.width,
                    "depth": t.model.depth,
                    "parametrization": t.model.parametrization,
                    "seed": t.seed,
                    **t.hps,
                    "status": "ok" if ok else "diverged",
                    sweep.metric: loss if ok else None,
                }
            )
    losses = [math.inf if r[sweep.metric] is None else r[sweep.metric] for r in rows]
    if isinstance(strategy, IndependentStrategy):
        final = strategy.summary(pd.DataFrame(rows))["final"]
    else:
        final = trials[min(range(len(losses)), key=losses.__getitem__)].hps
    pick = {hp: float(final[hp]) for hp in ("lr", "residual_mult")}
    return Search(sweep.strategy, sweep.seeds[0], trials, losses, pick)


def at(template: TrialSpec, hps: dict[str, float], seed: int) -> TrialSpec:
    """`template` with these HPs at this seed (labels do not enter the trial key)."""
    return dataclasses.replace(template.with_hps(**hps), seed=seed, labels={})


def search_seed(i: int, setup: Setup, evaluate: Evaluate) -> dict[str, Search]:
    """Every method at searcher seed `i`, its pick scored at the training seed and held out."""
    seed = setup.train_seed(i)
    out = {}
    for method in setup.methods:
        sweep = make_sweep(setup, method, seed, sampler_seed=i)
        search = drive(sweep, evaluate, setup.fingerprint)
        template = search.trials[0]
        search.pick_loss = evaluate([at(template, search.pick, seed)])[0]
        if setup.holdout:
            held = [at(template, search.pick, HOLDOUT_BASE + j) for j in range(setup.holdout)]
            search.holdout = statistics.fmean(evaluate(held))
        out[method] = search
    return out


def benchmark(setup: Setup, evaluate: Evaluate, n_seeds: int) -> list[dict[str, Search]]:
    return [search_seed(i, setup, evaluate) for i in range(n_seeds)]


# -- reporting --------------------------------------------------------------------------------


def grid_best(searches: dict[str, Search]) -> float:
    return min(searches["grid"].losses)


def best_at_seed(search: Search) -> float:
    """The lowest loss among the trials at the training seed (not the fresh seeds)."""
    return min(
        x for t, x in zip(search.trials, search.losses, strict=True) if t.seed == search.seed
    )


def trials_to(search: Search, target: float) -> int | None:
    """1-based index of the first trial at the training seed with loss <= target, or None."""
    for i, (t, x) in enumerate(zip(search.trials, search.losses, strict=True)):
        if t.seed == search.seed and x <= target:
            return i + 1
    return None


def _log2(x: float) -> str:
    return f"2^{round(math.log2(x), 2):g}"


def edge_lines(per_seed: list[dict[str, Search]], setup: Setup) -> list[str]:
    """Where each seed's grid best lies, loudly when on an edge of the space."""
    lines = []
    bounds = {"lr": setup.lr_log2, "residual_mult": setup.rm_log2}
    for searches in per_seed:
        grid = searches["grid"]
        best = grid.trials[grid.losses.index(min(grid.losses))].hps
        where = ", ".join(f"{hp} {_log2(best[hp])}" for hp in bounds)
        edges = [
            f"{hp} at its {'lower' if round(math.log2(best[hp])) == lo else 'upper'} bound"
            for hp, (lo, hi) in bounds.items()
            if round(math.log2(best[hp])) in (lo, hi)
        ]
        head = f"seed {grid.seed}: grid best {min(grid.losses):.4f} at {where}"
        if edges:
            lines.append(
                f"!!! {head}: ON THE EDGE ({'; '.join(edges)}): the optimum may lie outside the "
                "space, so this seed favours methods that extrapolate; widen --lr-log2/--rm-log2"
            )
        else:
            lines.append(f"{head} (interior)")
        for method, s in searches.items():
            if method != "grid":
                picked = ", ".join(f"{hp} {_log2(v)}" for hp, v in s.pick.items())
                lines.append(f"    {method} picks {picked}: {s.pick_loss:.4f}")
    return lines


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else math.nan


def summarise(method: str, per_seed: list[dict[str, Search]], label: str) -> dict[str, str]:
    runs = [s[method] for s in per_seed]
    refs = [grid_best(s) for s in per_seed]
    n = len(runs)
    row = {"method": label, "trials": f"{_median([len(r.losses) for r in runs]):g}"}
    for gap in TARGETS:
        hits = [trials_to(r, ref * (1 + gap)) for r, ref in zip(runs, refs, strict=True)]
        reached = [h for h in hits if h is not None]
        med = f"{_median(reached):g}" if reached else "never"
        row[f"to {gap:.1%}"] = f"{med} ({len(reached)}/{n})"
    row["best loss"] = f"{_median([best_at_seed(r) for r in runs]):.4f}"
    within = sum(r.pick_loss <= ref * (1 + PICK_GAP) for r, ref in zip(runs, refs, strict=True))
    row["pick loss"] = f"{_median([r.pick_loss for r in runs]):.4f} ({within}/{n} ≤{PICK_GAP:.1%})"
    held = [r.holdout for r in runs]
    grid_held = [s["grid"].holdout for s in per_seed]
    if all(h is not None for h in held + grid_held):
        pairs = [(h, g) for h, g in zip(held, grid_held, strict=True) if h and g]
        row["pick held-out"] = f"{_median([h for h, _ in pairs]):.4f}"
        row["vs grid pick"] = f"{_median([h / g - 1 for h, g in pairs]):+.2%}"
    return row


def table(per_seed: list[dict[str, Search]], setup: Setup) -> str:
    """The results as a Markdown table."""
    names = {"grid": "grid {}×{}", "independent": "independent", "random": "random", "tpe": "TPE"}
    lr_n = setup.lr_log2[1] - setup.lr_log2[0] + 1
    rm_n = setup.rm_log2[1] - setup.rm_log2[0] + 1
    rows = [summarise(m, per_seed, names[m].format(lr_n, rm_n)) for m in setup.methods]
    cols = list(rows[0])
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(r[c] for c in cols) + " |" for r in rows]
    return "\n".join(lines)


def report(title: str, per_seed: list[dict[str, Search]], setup: Setup) -> None:
    print(f"\n## {title}\n")
    print("\n".join(edge_lines(per_seed, setup)))
    print()
    print(table(per_seed, setup))
    sys.stdout.flush()


# -- main -------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=150, help="training steps per trial")
    p.add_argument("--seeds", type=int, default=3, help="searcher seeds, real proxy (>= 1)")
    p.add_argument("--synthetic-seeds", type=int, default=20, help="searcher seeds, synthetic")
    p.add_argument("--seed-stride", type=int, default=10, help="training seed = i * this")
    p.add_argument("--holdout-seeds", type=int, default=2, help="held-out seeds per pick (0: off)")
    p.add_argument("--methods", default=",".join(METHODS), help="comma-separated; needs grid")
    p.add_argument("--confirm-seeds", type=int, default=2, help="independent: fresh seeds/round")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--cache", type=Path, default=HERE / "results" / "search_cache.json")
    p.add_argument("--max-new-trials", type=int, default=None, help="stop before training more")
    p.add_argument("--synthetic-only", action="store_true")
    p.add_argument("--lr-log2", type=int, nargs=2, default=(-2, 3), metavar=("LO", "HI"))
    p.add_argument("--rm-log2", type=int, nargs=2, default=(-4, 1), metavar=("LO", "HI"))
    args = p.parse_args(argv)
    methods = tuple(m.strip() for m in args.methods.split(",") if m.strip())
    bad = [m for m in methods if m not in METHODS]
    if bad or "grid" not in methods:
        p.error(f"--methods: expected a comma-separated subset of {', '.join(METHODS)} with grid")
    if args.seeds < 1 or args.synthetic_seeds < 1 or args.holdout_seeds < 0:
        p.error("--seeds and --synthetic-seeds must be >= 1, --holdout-seeds >= 0")
    if args.confirm_seeds < 1:
        p.error("--confirm-seeds: expected >= 1")
    min_stride = 1 + 2 * args.confirm_seeds  # the independent search's two rounds of fresh seeds
    if args.seed_stride < min_stride:
        p.error(f"--seed-stride: expected >= {min_stride} so searcher seeds share no trials")
    if args.seed_stride * (max(args.seeds, args.synthetic_seeds) - 1) + min_stride > HOLDOUT_BASE:
        p.error(f"--seed-stride × seeds: training seeds must stay below {HOLDOUT_BASE} (held out)")
    if args.lr_log2[0] >= args.lr_log2[1] or args.rm_log2[0] >= args.rm_log2[1]:
        p.error("--lr-log2/--rm-log2: expected LO < HI")
    args.methods = tuple(m for m in METHODS if m in methods)
    return args


def estimate(setup: Setup, n_seeds: int, cache: Path) -> int:
    """New trials the real run would train: every trial key the same searches ask for on the
    synthetic objective, less those in the cache (exact for grid and random; TPE and the
    independent search follow the losses, so theirs is an estimate)."""
    recorder = Recorder()
    benchmark(setup, recorder, n_seeds)
    cached = set(json.loads(cache.read_text())) if cache.exists() else set()
    return len(recorder.keys - cached)


def run_real(args: argparse.Namespace, setup: Setup) -> int:
    from umup_sweep.data import data_fingerprint

    sweep = make_sweep(setup, "grid", 0)
    setup = dataclasses.replace(setup, fingerprint=data_fingerprint(sweep.data))
    n_new = estimate(setup, args.seeds, args.cache)
    minutes = n_new * args.steps * SECONDS_PER_STEP / args.workers / 60
    print(
        f"\nreal proxy: about {n_new} new trials to train (cache {args.cache}), "
        f"≈ {minutes:.0f} min on {args.workers} workers at ~{SECONDS_PER_STEP} s per step "
        "(longer on a busy machine)"
    )
    if args.max_new_trials is not None and n_new > args.max_new_trials:
        print(f"stopped: more than --max-new-trials {args.max_new_trials}; nothing trained")
        return 3
    real = RealProxy(args.cache, sweep.metric, args.workers, args.max_new_trials)
    start = time.time()
    try:
        per_seed = benchmark(setup, real, args.seeds)
    except TrialLimit as exc:
        print(f"stopped: {exc} (trained {real.trained}, saved in the cache)")
        return 3
    finally:
        real.close()
    title = f"u-μP w64 d2, {args.steps} steps, {_plural(args.seeds, 'searcher seed')}"
    report(title, per_seed, setup)
    print(f"\ntrained {real.trained} new trials in {time.time() - start:.0f} s")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    print("command: PYTHONPATH=. python " + shlex.join([sys.argv[0], *(argv or sys.argv[1:])]))
    setup = Setup(
        steps=args.steps,
        lr_log2=tuple(args.lr_log2),
        rm_log2=tuple(args.rm_log2),
        stride=args.seed_stride,
        holdout=args.holdout_seeds,
        methods=args.methods,
        fingerprint="synthetic",
        confirm_seeds=args.confirm_seeds,
    )
    per_seed = benchmark(setup, synthetic_eval, args.synthetic_seeds)
    report(f"synthetic, {_plural(args.synthetic_seeds, 'searcher seed')}", per_seed, setup)
    if args.synthetic_only:
        return 0
    return run_real(args, setup)


if __name__ == "__main__":
    sys.exit(main())
