"""Random and TPE strategies: budget, bounds, determinism, resume, and TPE vs random."""

from __future__ import annotations

import math
import statistics

import pytest
from search_synthetic import OPT, drive, frame, row, synthetic_loss, trial_loss

from umup_sweep.config import SweepSpec, load_sweep
from umup_sweep.search import RandomStrategy, TPEStrategy, make_strategy

LR = (2.0**-3, 2.0**2)
RM = (2.0**-2, 2.0**2)


def make_sweep(strategy: str, budget: int = 12, seeds=(0,), widths=(32,), **options) -> SweepSpec:
    return load_sweep(
        {
            "name": strategy,
            "proxy": {"base": {"head_dim": 16}, "widths": list(widths), "depths": [1]},
            "seeds": list(seeds),
            "strategy": strategy,
            "budget": budget,
            "hyperparameters": {
                "lr": {"distribution": "log_uniform_values", "min": LR[0], "max": LR[1]},
                "residual_mult": {"distribution": "log_uniform_values", "min": RM[0], "max": RM[1]},
            },
            "strategy_options": options,
        }
    )


def in_bounds(results) -> bool:
    return bool(results.lr.between(*LR).all() and results.residual_mult.between(*RM).all())


@pytest.mark.parametrize("name", ["random", "tpe"])
def test_budget_per_proxy_and_bounds(name: str) -> None:
    sweep = make_sweep(name, budget=7, seeds=(0, 1), widths=(32, 64))
    strategy = make_strategy(sweep)
    results = drive(strategy, max_new=3)
    assert len(results) == 7 * 2 * 2 == strategy.total_estimate(results)
    assert results.trial_key.is_unique and in_bounds(results)
    for _, group in results.groupby("width"):
        configs = group.groupby(["lr", "residual_mult"]).seed.apply(sorted)
        assert len(configs) == 7  # budget configurations per proxy...
        assert all(s == [0, 1] for s in configs)  # ...each at every seed
    assert set(results.stage) == {name}
    # the other HPs stay at their defaults
    assert (results.loss_softmax_mult == 1.0).all() and (results.weight_decay == 0.0).all()


def test_random_is_log_uniform_and_seeded() -> None:
    a = RandomStrategy(make_sweep("random", budget=400))
    logs = [math.log2(c["lr"]) for c in a.configs()]
    # log-uniform on [-3, 2]: mean -0.5, sd 5/sqrt(12) ≈ 1.44
    assert statistics.fmean(logs) == pytest.approx(-0.5, abs=0.2)
    assert statistics.stdev(logs) == pytest.approx(5 / math.sqrt(12), abs=0.15)
    assert a.configs() == RandomStrategy(make_sweep("random", budget=400)).configs()
    assert a.configs() != RandomStrategy(make_sweep("random", budget=400, sampler_seed=1)).configs()


@pytest.mark.parametrize("name", ["random", "tpe"])
def test_deterministic_and_resumable(name: str) -> None:
    first = drive(make_strategy(make_sweep(name)), max_new=2)
    second = drive(make_strategy(make_sweep(name)), max_new=2)
    assert list(first.trial_key) == list(second.trial_key)
    # crash after 5 trials: a fresh strategy continues without repeating any
    rows = first.to_dict("records")[:5]
    resumed = drive_from(make_strategy(make_sweep(name)), rows)
    assert len(resumed) == 12 and resumed.trial_key.is_unique
    assert set(resumed.trial_key[:5]) == set(first.trial_key[:5])
    if name == "random":  # the draws do not depend on results
        assert set(resumed.trial_key) == set(first.trial_key)


def drive_from(strategy, rows, max_new=2):
    rows = list(rows)
    while new := strategy.propose(frame(rows), [], max_new):
        rows += [row(t, trial_loss(t)) for t in new]
    return frame(rows)


def test_tpe_pending_is_not_reproposed() -> None:
    strategy = TPEStrategy(make_sweep("tpe", budget=6))
    done = [row(t, trial_loss(t)) for t in strategy.propose(frame([]), [], 3)]
    pending = strategy.propose(frame(done), [], 2)
    nxt = strategy.propose(frame(done), pending, 10)
    assert len(nxt) == 1  # budget 6: 3 done + 2 pending + 1
    keys = {t.trial_key for t in pending} | {r["trial_key"] for r in done}
    assert nxt[0].trial_key not in keys
    # deterministic given (results, pending)
    assert strategy.propose(frame(done), pending, 10) == nxt


def test_tpe_finishes_every_seed_of_a_config() -> None:
    strategy = TPEStrategy(make_sweep("tpe", budget=3, seeds=(0, 1, 2)))
    got = []
    for _ in range(20):
        new = strategy.propose(frame([]), got, 1)  # one at a time, none finishing
        if not new:
            break
        got += new
    assert len(got) == 9
    configs = {(t.train.lr, t.model.residual_mult) for t in got}
    assert len(configs) == 3
    assert [t.seed for t in got] == [0, 1, 2] * 3  # a config's seeds before the next config


def test_tpe_beats_random_on_the_synthetic_objective() -> None:
    """Mean regret of the best of 30 trials over 6 sampler seeds (2-HP coupled quadratic)."""
    # With the other HPs at default, the lr and residual_mult terms vanish at
    # residual_mult = 2^c_rm and lr = 2^(c_lr - 0.2) (search_synthetic's coupling).
    best_lr = 2 ** (OPT["lr"] - 0.2)
    best = {"lr": best_lr, "residual_mult": 2 ** OPT["residual_mult"]}
    floor = synthetic_loss(best, 32, 0)
    for lr, rm in [(best_lr * 1.1, 0.5), (best_lr, 0.55), (best_lr / 1.1, 0.45)]:
        assert synthetic_loss({"lr": lr, "residual_mult": rm}, 32, 0) > floor

    def regret(name: str, seed: int) -> float:
        results = drive(make_strategy(make_sweep(name, budget=30, sampler_seed=seed)), max_new=2)
        return results.val_loss.min() - floor

    tpe = [regret("tpe", s) for s in range(6)]
    rnd = [regret("random", s) for s in range(6)]
    assert statistics.fmean(tpe) < statistics.fmean(rnd)
    assert max(tpe) < 0.01  # TPE always gets within 0.01 of the optimum
    # and it concentrates near the optimum in its second half
    late = drive(make_strategy(make_sweep("tpe", budget=30)), max_new=2).iloc[15:]
    assert abs(statistics.fmean(late.lr.map(math.log2)) - math.log2(best_lr)) < 0.5
