"""The independent search on a synthetic objective with a known optimum (no training)."""

from __future__ import annotations

import dataclasses
import math

import pytest
from search_synthetic import OPT, drive, frame, optimum_loss, row, synthetic_loss, trial_loss

from umup_sweep.config import HPSpace, SweepSpec, load_sweep
from umup_sweep.errors import ConfigError
from umup_sweep.search import IndependentStrategy, make_strategy

HPS = (
    "residual_mult",
    "residual_attn_ratio",
    "attn_softmax_mult",
    "ffn_act_mult",
    "loss_softmax_mult",
)


def make_sweep(widths=(32,), seeds=(0,), **options) -> SweepSpec:
    return load_sweep(
        {
            "name": "ind",
            "proxy": {"base": {"head_dim": 16}, "widths": list(widths), "depths": [1]},
            "seeds": list(seeds),
            "strategy": "independent",
            "hyperparameters": {"lr": {"log2_range": [-3, 2]}}
            | {h: {"log2_range": [-2, 2]} for h in HPS},
            "strategy_options": options,
        }
    )


def test_stage_one_is_the_lr_line_alone() -> None:
    strategy = make_strategy(make_sweep(widths=(32, 64), seeds=(0, 1)))
    assert isinstance(strategy, IndependentStrategy)
    first = strategy.propose(frame([]), [], max_new=1000)
    assert len(first) == 6 * 2 * 2
    assert {t.labels["stage"] for t in first} == {"1-lr"}
    assert all(
        t.hps | {"lr": 1.0} == t.hps | {n: 1.0 for n in t.hps if n != "weight_decay"} for t in first
    )  # every other HP at its default
    assert strategy.propose(frame([]), first, max_new=1000) == []  # wait for stage 1
    half = [row(t, trial_loss(t)) for t in first[:12]]
    assert strategy.propose(frame(half), first[12:], max_new=1000) == []
    done = [row(t, trial_loss(t)) for t in first]
    second = strategy.propose(frame(done), [], max_new=1000)
    assert {t.labels["stage"] for t in second} == {f"2-{h}" for h in HPS}
    # stage 2 runs at the stage-1 lr: the measured best of the lr line (optimum 2^-0.4, see
    # search_synthetic), a value that was run; the baseline is that stage-1 point itself
    lr1 = strategy.summary(frame(done))["stage1_lr"]
    assert {t.train.lr for t in second} == {lr1} and lr1 == 1.0
    assert len(second) == 5 * 4 * 2 * 2  # each HP's 4 non-default values, 2 widths, 2 seeds


def test_finds_the_known_optimum() -> None:
    strategy = IndependentStrategy(make_sweep(resweep_step=0.5))
    results = drive(strategy, max_new=4)
    summary = strategy.summary(results)
    assert summary["complete"] and not summary["reverted"]
    # noise-free: every measured gain is real. The two HPs whose default is their nearest
    # grid point to the optimum are not changed; the three that matter are
    assert set(summary["adopted"]) == {"residual_mult", "residual_attn_ratio", "loss_softmax_mult"}
    for h, value in summary["adopted"].items():
        assert value in (0.25, 0.5, 1.0, 2.0, 4.0)  # a grid value that was run
        assert math.log2(value) == pytest.approx(OPT[h], abs=0.5), h
    final = summary["final"]
    # the lr re-sweep moved lr from the stage-1 best (2^0) to the joint optimum (2^-0.5)
    assert math.log2(final["lr"]) == pytest.approx(OPT["lr"], abs=1e-9)
    naive = final | {"lr": summary["stage1_lr"]}  # combined bests at the stage-1 lr
    assert synthetic_loss(final, 32, 0) < synthetic_loss(naive, 32, 0)
    assert synthetic_loss(final, 32, 0) - optimum_loss(32) < 0.01
    assert summary["final_loss"] < min(summary["1-lr"]["losses"]) - 0.08
    assert summary["confirm"]["accepted"] and summary["confirm"]["gain"] > 0.08
    # stages ran in order, each only after the previous finished
    order = ["1-lr", "2-confirm", "2", "3", "confirm"]
    ranks = [next(i for i, s in enumerate(order) if st.startswith(s)) for st in results.stage]
    ranks = [2 if r == 1 else r for r in ranks]  # 2-confirm is part of stage 2
    assert ranks == sorted(ranks)
    # fresh seeds (one sweep seed, so 4 per confirmation): 2-confirm on seeds 1-4 (baseline +
    # 3 changes), confirm on 5-8 (2 configs)
    assert sorted(results[results.stage == "2-confirm"].seed) == sorted([1, 2, 3, 4] * 4)
    assert sorted(results[results.stage == "confirm"].seed) == sorted([5, 6, 7, 8] * 2)
    assert summary["confirm_seeds"] == [5, 6, 7, 8]


def test_resume_gives_the_same_search() -> None:
    sweep = make_sweep(widths=(32, 64))
    full = drive(IndependentStrategy(sweep), max_new=50)
    trickle = drive(IndependentStrategy(sweep), max_new=3)
    assert set(full.trial_key) == set(trickle.trial_key)
    # a crash mid-search: drop the last rows; a fresh strategy proposes exactly what is missing
    rows = full.to_dict("records")
    kept = rows[:20]
    fresh = IndependentStrategy(sweep)
    again = fresh.propose(frame(kept), [], max_new=1000)
    assert {t.trial_key for t in again} <= {r["trial_key"] for r in rows[20:]}
    assert again and not {t.trial_key for t in again} & {r["trial_key"] for r in kept}


def test_min_gain_blocks_small_gains() -> None:
    strategy = IndependentStrategy(make_sweep(min_gain=1.0))
    results = drive(strategy, max_new=8)
    summary = strategy.summary(results)
    assert summary["adopted"] == {} and "3-lr-resweep" not in summary
    assert not results.stage.str.startswith(("3", "2-confirm")).any()
    assert summary["final"]["lr"] == summary["stage1_lr"]
    assert all(summary["final"][h] == 1.0 for h in HPS) and summary["final_changes"] == {}
    assert "confirm" not in summary and not summary["reverted"]


def test_auto_noise_is_the_spread_of_paired_differences() -> None:
    noise = 0.02
    strategy = IndependentStrategy(make_sweep(seeds=(0, 1, 2)))
    results = drive(strategy, lambda t: trial_loss(t, noise=noise), max_new=16)
    summary = strategy.summary(results)
    # independent jitter per trial: a paired difference has sd σ·√2
    assert summary["noise"]["sd"] == pytest.approx(noise * math.sqrt(2), rel=0.25)
    assert summary["noise"]["dof"] >= 40
    assert summary["complete"] and summary["confirm_seeds"] == [5, 6]


def test_confirm_seeds_auto_leaves_the_noise_three_degrees_of_freedom() -> None:
    # one sweep seed, noise estimated: the confirmations alone estimate it, with
    # (configs - 1)(seeds - 1) dof; one screened HP and 4 seeds leave 3
    assert make_sweep().strategy_options["confirm_seeds"] == 4
    assert make_sweep(seeds=(0, 1)).strategy_options["confirm_seeds"] == 2
    assert make_sweep(noise_sd=0.01).strategy_options["confirm_seeds"] == 2
    assert make_sweep(confirm_seeds=3).strategy_options["confirm_seeds"] == 3
    with pytest.raises(ConfigError, match=r"strategy_options\.confirm_seeds: expected"):
        make_sweep(confirm_seeds="many")


def test_auto_noise_needs_two_seeds_somewhere() -> None:
    with pytest.raises(ConfigError, match=r"strategy_options\.noise_sd: expected a number"):
        make_sweep(confirm_seeds=1)
    assert make_sweep(confirm_seeds=1, noise_sd=0.01).strategy_options["noise_sd"] == 0.01
    assert make_sweep(seeds=(0, 1), confirm_seeds=1).strategy_options["noise_sd"] == "auto"


def test_select_width_uses_only_that_width() -> None:
    # the lr optimum sits 1.5 log2 higher at width 64: pooled and per-width choices differ
    def objective(t):
        shift = 1.5 if t.model.width == 64 else 0.0
        return synthetic_loss(t.hps | {"lr": t.hps["lr"] / 2**shift}, t.model.width, t.seed)

    picks = {}
    for sel in (None, 32, 64):
        sweep = make_sweep(widths=(32, 64), select_width=sel)
        sweep = dataclasses.replace(
            sweep, hyperparameters={**sweep.hyperparameters, "lr": HPSpace(LR_QUARTERS)}
        )
        strategy = IndependentStrategy(sweep)
        first = strategy.propose(frame([]), [], max_new=1000)
        done = frame([row(t, objective(t)) for t in first])
        picks[sel] = math.log2(strategy.summary(done)["stage1_lr"])
    assert picks[32] == pytest.approx(-0.5)  # grid point nearest the optimum (-0.4)
    assert picks[64] == pytest.approx(1.0)  # nearest 1.1
    assert picks[32] < picks[None] < picks[64]


def test_diverged_points_do_not_win() -> None:
    # lr grid up to 2^4: 2^3 and 2^4 diverge in the synthetic objective
    sweep = load_sweep(
        {
            "name": "div",
            "proxy": {"base": {"head_dim": 16}, "widths": [32], "depths": [1]},
            "strategy": "independent",
            "hyperparameters": {"lr": {"log2_range": [-2, 4]}, "residual_mult": [0.5, 1, 2]},
        }
    )
    strategy = IndependentStrategy(sweep)
    results = drive(strategy)
    summary = strategy.summary(results)
    assert (results.status == "diverged").sum() == 2
    assert summary["1-lr"]["losses"][-2:] == [math.inf, math.inf]
    assert summary["complete"] and math.isfinite(summary["final_loss"])


def test_antagonistic_changes_fall_back_to_the_best_single_one() -> None:
    """Each of two changes helps alone and hurts together: the final config is the best
    measured candidate, not the blind combination."""

    def objective(t):
        hps = t.hps
        rm, ls = hps["residual_mult"] == 0.5, hps["loss_softmax_mult"] == 2.0
        lr_term = 0.05 * (math.log2(hps["lr"])) ** 2
        return 2.5 + lr_term - 0.04 * rm - 0.05 * ls + 0.12 * (rm and ls)

    strategy = IndependentStrategy(_three_hp_sweep())
    results = drive(strategy, objective)
    summary = strategy.summary(results)
    assert summary["adopted"] == {"residual_mult": 0.5, "loss_softmax_mult": 2.0}
    assert summary["3-lr-resweep"]["best_loss"] == pytest.approx(2.53)  # combined: worse
    assert summary["final"]["loss_softmax_mult"] == 2.0  # the best single change...
    assert summary["final"]["residual_mult"] == 1.0  # ...alone
    assert summary["final_loss"] == pytest.approx(2.45)


def test_lines_extend_past_an_edge_that_holds_the_best() -> None:
    # optima outside the ranges: lr at 2^2.7 (range up to 2^1), residual_mult at 2^-3.2
    def objective(t):
        x_lr, x_rm = math.log2(t.hps["lr"]), math.log2(t.hps["residual_mult"])
        return 2.0 + 0.1 * (x_lr - 2.7) ** 2 + 0.05 * (x_rm + 3.2) ** 2

    strategy = IndependentStrategy(_three_hp_sweep(lr=[-3, 1]))
    summary = strategy.summary(drive(strategy, objective))
    # lr: +2, +3 added (max_extend 2), and it stops there although 2^3 is still the edge
    assert [math.log2(v) for v in summary["1-lr"]["values"]] == [-3, -2, -1, 0, 1, 2, 3]
    assert summary["stage1_lr"] == 8.0
    # residual_mult: -3 added, then -4, which shows -3 is the best: an interior optimum
    assert [math.log2(v) for v in summary["2-residual_mult"]["values"]] == list(range(-4, 3))
    assert summary["adopted"]["residual_mult"] == 2.0**-3
    # a line whose best is the default does not extend
    assert len(summary["2-loss_softmax_mult"]["values"]) == 5
    # bounded: with max_extend 0 nothing is added
    strategy = IndependentStrategy(_three_hp_sweep(lr=[-3, 1], max_extend=0))
    summary = strategy.summary(drive(strategy, objective))
    assert summary["stage1_lr"] == 2.0 and len(summary["1-lr"]["values"]) == 5


def test_a_change_that_loses_on_fresh_seeds_is_reverted() -> None:
    # residual_mult 0.5 helps on seeds 0-2 (the sweep seed and the 2-confirm seeds 1, 2) and
    # hurts on seeds 3-4 (the final confirmation): the final config must be the baseline
    def objective(t):
        rm = t.hps["residual_mult"] == 0.5
        sign = -1.0 if t.seed <= 2 else 1.0
        return 2.5 + 0.05 * math.log2(t.hps["lr"]) ** 2 + sign * 0.05 * rm

    strategy = IndependentStrategy(_three_hp_sweep(noise_sd=0.001))
    summary = strategy.summary(drive(strategy, objective))
    assert summary["adopted"] == {"residual_mult": 0.5}
    assert summary["final_candidate"]["residual_mult"] == 0.5
    assert summary["reverted"] and not summary["confirm"]["accepted"]
    assert summary["confirm"]["gain"] == pytest.approx(-0.05)
    assert summary["final"]["residual_mult"] == 1.0 and summary["final_changes"] == {}
    assert summary["final"]["lr"] == summary["stage1_lr"]


def test_a_change_that_does_not_hold_on_fresh_seeds_is_not_adopted() -> None:
    # residual_mult 0.5 helps on the sweep seed only: 2-confirm rejects it, no stage 3
    def objective(t):
        rm = t.hps["residual_mult"] == 0.5
        return 2.5 + 0.05 * math.log2(t.hps["lr"]) ** 2 - 0.05 * rm * (t.seed == 0)

    strategy = IndependentStrategy(_three_hp_sweep(noise_sd=0.001))
    results = drive(strategy, objective)
    summary = strategy.summary(results)
    assert summary["2-residual_mult"]["screened"]
    assert summary["2-residual_mult"]["confirm"]["gain"] == pytest.approx(0.0)
    assert summary["adopted"] == {} and not results.stage.str.startswith("3").any()


def _three_hp_sweep(lr=(-2, 2), **options) -> SweepSpec:
    return load_sweep(
        {
            "name": "three",
            "proxy": {"base": {"head_dim": 16}, "widths": [32], "depths": [1]},
            "strategy": "independent",
            "hyperparameters": {
                "lr": {"log2_range": list(lr)},
                "residual_mult": {"log2_range": [-2, 2]},
                "loss_softmax_mult": {"log2_range": [-2, 2]},
            },
            "strategy_options": options,
        }
    )


LR_QUARTERS = tuple(2.0 ** (k / 4) for k in range(-12, 9))
