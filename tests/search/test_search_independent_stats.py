"""The independent search's error rates, measured over many simulated searches (no training).

Each search runs against a synthetic objective with known effects plus Gaussian noise of
known sd σ per trial, drawn afresh for every simulated search. The bounds are the ones the
search promises: a no-effect HP ends up changed in at most 5% of searches; two HPs whose
best value gains 3σ are both adopted in at least 90%; a final config that is worse than the
baseline is never returned.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Callable, Mapping

from search_synthetic import drive
from test_search_independent import HPS, make_sweep

from umup_sweep.config import SweepSpec
from umup_sweep.search import IndependentStrategy
from umup_sweep.spec import TrialSpec

SIGMA = 0.01  # per-trial noise, nats (what 300-step proxies show between seeds)
N_SEARCHES = 200


def sweep(widths=(32,), seeds=(0, 1), **options) -> SweepSpec:
    """The search over lr and the five other HPs (lr 2^-3..2^2, the rest 2^-2..2^2)."""
    return make_sweep(widths, seeds, **options)


def true_loss(hps: Mapping[str, float], effects: Mapping[str, tuple[float, float]]) -> float:
    """2 + a bowl in log2 lr (optimum 2^-0.5) − each HP's effect: `gain` at log2 value `at`,
    half of it one log2 step away, nothing further."""
    loss = 2.0 + 0.08 * (math.log2(hps["lr"]) + 0.5) ** 2
    for hp, (at, gain) in effects.items():
        loss -= gain * max(0.0, 1.0 - abs(math.log2(hps[hp]) - at))
    return loss


def noisy(
    effects: Mapping[str, tuple[float, float]],
    search: int,
    truth: Callable[[Mapping[str, float]], float] | None = None,
) -> Callable[[TrialSpec], float]:
    """The objective of simulated search number `search`: its own noise draw per trial."""

    def objective(t: TrialSpec) -> float:
        blob = repr((sorted(t.hps.items()), t.model.width, t.seed, search)).encode()
        rng = random.Random(int(hashlib.sha256(blob).hexdigest()[:12], 16))
        base = truth(t.hps) if truth else true_loss(t.hps, effects)
        return base + rng.gauss(0.0, SIGMA)

    return objective


def run_many(spec: SweepSpec, effects, truth=None) -> list[dict]:
    """`N_SEARCHES` searches of `spec`, each on its own noise draw.

    One strategy serves them all: a strategy is stateless between calls (what it proposes
    and summarises comes from the results it is given); what it keeps is a memo of the
    trial specs and keys it builds, which are the same in every search of one sweep.
    """
    out = []
    strategy = IndependentStrategy(spec)
    for search in range(N_SEARCHES):
        results = drive(strategy, noisy(effects, search, truth), max_new=1000)
        summary = strategy.summary(results)
        assert summary["complete"]
        out.append({**summary, "n_trials": len(results)})
    return out


def test_no_effect_hps_are_changed_in_at_most_5_percent_of_searches() -> None:
    # only lr matters; five HPs do nothing. Two seeds, noise estimated from them.
    summaries = run_many(sweep(), effects={})
    changed = sum(bool(s["final_changes"]) for s in summaries)
    adopted = sum(bool(s["adopted"]) for s in summaries)
    assert changed / N_SEARCHES <= 0.05, (changed, adopted)
    # the estimate of the noise is right on average: a paired difference has sd σ·√2
    mean_sd = sum(s["noise"]["sd"] for s in summaries) / N_SEARCHES
    assert abs(mean_sd / (SIGMA * math.sqrt(2)) - 1) < 0.1


def test_no_effect_hps_with_one_seed_and_a_given_noise() -> None:
    summaries = run_many(sweep(seeds=(0,), noise_sd=SIGMA * math.sqrt(2)), effects={})
    changed = sum(bool(s["final_changes"]) for s in summaries)
    assert changed / N_SEARCHES <= 0.05, changed


def test_two_real_effects_of_3_sigma_are_both_adopted_in_90_percent() -> None:
    effects = {"residual_mult": (-1.0, 3 * SIGMA), "loss_softmax_mult": (1.0, 3 * SIGMA)}
    summaries = run_many(sweep(widths=(32, 64)), effects)
    both = sum(
        s["final_changes"].get("residual_mult") == 0.5
        and s["final_changes"].get("loss_softmax_mult") == 2.0
        for s in summaries
    )
    assert both / N_SEARCHES >= 0.90, both
    # and the three that do nothing stay at their defaults
    null = sum(any(h in s["final_changes"] for h in HPS[1:4]) for s in summaries)
    assert null / N_SEARCHES <= 0.05, null


def test_one_seed_with_estimated_noise_keeps_both_bounds() -> None:
    # one sweep seed and noise_sd auto: the noise comes from the confirmation runs alone, so
    # confirm_seeds defaults to 4 there (2 would leave one screened HP one degree of freedom)
    effects = {"residual_mult": (-1.0, 3 * SIGMA), "loss_softmax_mult": (1.0, 3 * SIGMA)}
    spec = sweep(widths=(32, 64), seeds=(0,))
    assert spec.strategy_options["confirm_seeds"] == 4
    summaries = run_many(spec, effects)
    both = sum(
        s["final_changes"].get("residual_mult") == 0.5
        and s["final_changes"].get("loss_softmax_mult") == 2.0
        for s in summaries
    )
    assert both / N_SEARCHES >= 0.90, both
    null = run_many(sweep(seeds=(0,)), effects={})
    changed = sum(bool(s["final_changes"]) for s in null)
    assert changed / N_SEARCHES <= 0.05, changed


def test_a_final_config_worse_than_the_baseline_is_never_returned() -> None:
    # each change gains 3σ alone; together they lose 6σ against the baseline
    def truth(hps: Mapping[str, float]) -> float:
        rm, ls = hps["residual_mult"] == 0.5, hps["loss_softmax_mult"] == 2.0
        loss = 2.0 + 0.08 * (math.log2(hps["lr"]) + 0.5) ** 2
        return loss - 3 * SIGMA * (rm + ls) + 12 * SIGMA * (rm and ls)

    summaries = run_many(sweep(), {}, truth)
    for s in summaries:
        baseline = {**s["final"], **{h: 1.0 for h in HPS}, "lr": s["stage1_lr"]}
        assert truth(s["final"]) <= truth(baseline) + 1e-12
        if s["final_changes"]:
            assert s["confirm"]["accepted"] and s["confirm"]["p"] <= 0.05
    assert not any(
        s["final"]["residual_mult"] == 0.5 and s["final"]["loss_softmax_mult"] == 2.0
        for s in summaries
    )
