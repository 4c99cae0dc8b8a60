"""The precision axis in every strategy: each precision is searched as its own sweep (grid
cross product incl. precision, independent bests per precision, random's shared draws, TPE's
budget per proxy × precision), proposals interleave, and the fp32 trials keep their keys."""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Callable

import pandas as pd
from search_synthetic import COLUMNS, row, synthetic_loss

from umup_sweep.config import SweepSpec, load_sweep
from umup_sweep.search import GridStrategy, PerPrecisionStrategy, make_strategy, results_at
from umup_sweep.spec import TrialSpec

PROXY = {"base": {"head_dim": 16}, "widths": [32, 64], "depths": [1]}
LRS = [0.25, 0.5, 1.0, 2.0]
BOTH = ["fp32", "fp8_sim"]
FP8_LR_SHIFT = 1.0  # the synthetic fp8_sim optimum sits 1 log2 above fp32's


def sweep(strategy: str = "grid", precisions=BOTH, **extra) -> SweepSpec:
    spaces = {"lr": LRS}
    if strategy == "independent":
        spaces = {"lr": {"log2_range": [-3, 2]}, "residual_mult": {"log2_range": [-2, 2]}}
    elif strategy in ("random", "tpe"):
        spaces = {"lr": {"distribution": "log_uniform_values", "min": 2**-4, "max": 4}}
        extra.setdefault("budget", 6)
    return load_sweep(
        {
            "name": "p",
            "proxy": PROXY,
            "strategy": strategy,
            "precisions": precisions,
            "hyperparameters": spaces,
            "train": {"steps": 5, "batch_size": 2},
            **extra,
        }
    )


def objective(trial: TrialSpec) -> float:
    """The synthetic loss, with fp8_sim's lr optimum shifted up and its loss a bit higher."""
    hps = dict(trial.hps)
    if trial.train.precision == "fp8_sim":
        hps["lr"] = hps["lr"] / 2**FP8_LR_SHIFT
        return synthetic_loss(hps, trial.model.width, trial.seed) + 0.05
    return synthetic_loss(hps, trial.model.width, trial.seed)


def prow(trial: TrialSpec, loss: float) -> dict:
    return {**row(trial, loss), "precision": trial.train.precision}


def pframe(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=[*COLUMNS, "precision"])


def drive(strategy, fn: Callable[[TrialSpec], float] = objective, max_new: int = 4) -> pd.DataFrame:
    rows: list[dict] = []
    for _ in range(1000):
        new = strategy.propose(pframe(rows), [], max_new)
        if not new:
            return pframe(rows)
        assert len(new) <= max_new
        assert len({t.trial_key for t in new}) == len(new)
        rows += [prow(t, fn(t)) for t in new]
    raise AssertionError("strategy did not finish")


def test_grid_is_the_cross_product_including_precision() -> None:
    strategy = make_strategy(sweep(seeds=[0, 1]), "fp")
    assert isinstance(strategy, PerPrecisionStrategy)
    trials = strategy.propose(pd.DataFrame(), [], max_new=1000)
    got = Counter((t.train.precision, t.model.width, t.seed, t.train.lr) for t in trials)
    assert set(got) == set(itertools.product(BOTH, [32, 64], [0, 1], LRS))
    assert set(got.values()) == {1}
    assert len({t.trial_key for t in trials}) == len(trials) == strategy.total_estimate(pframe([]))
    assert all(t.labels["stage"] == "grid" for t in trials)


def test_fp32_trials_keep_the_keys_of_the_one_precision_sweep() -> None:
    """Adding fp8_sim to a finished fp32 sweep reuses every fp32 trial."""
    both = make_strategy(sweep(), "fp").propose(pd.DataFrame(), [], 1000)
    fp32 = make_strategy(sweep(precisions=["fp32"]), "fp")
    assert isinstance(fp32, GridStrategy)
    fp32_keys = {t.trial_key for t in fp32.propose(pd.DataFrame(), [], 1000)}
    assert {t.trial_key for t in both if t.train.precision == "fp32"} == fp32_keys
    assert not {t.trial_key for t in both if t.train.precision == "fp8_sim"} & fp32_keys


def test_one_precision_axis_decides_the_trials_precision() -> None:
    only = make_strategy(sweep(precisions=["fp8_sim"]), "fp")
    assert {t.train.precision for t in only.propose(pd.DataFrame(), [], 100)} == {"fp8_sim"}


def test_proposals_interleave_precisions_and_resume() -> None:
    strategy = make_strategy(sweep(), "fp")
    first = strategy.propose(pd.DataFrame(), [], max_new=4)
    assert [t.train.precision for t in first] == ["fp32", "fp8_sim"] * 2
    # Finished and pending trials (of either precision) are not proposed again.
    done = pframe([prow(t, objective(t)) for t in first[:3]])
    rest = strategy.propose(done, first[3:], max_new=100)
    assert len(rest) == 2 * 2 * len(LRS) - 4
    assert not {t.trial_key for t in rest} & {t.trial_key for t in first}
    # A frame without a precision column (matched by trial key) gives the same answer.
    legacy = done.drop(columns=["precision"])
    assert [t.trial_key for t in strategy.propose(legacy, first[3:], 100)] == [
        t.trial_key for t in rest
    ]


def test_results_at_filters_by_precision() -> None:
    trials = make_strategy(sweep(), "fp").propose(pd.DataFrame(), [], 4)
    frame = pframe([prow(t, 2.0) for t in trials])
    assert list(results_at(frame, "fp8_sim")["precision"]) == ["fp8_sim"] * 2
    assert len(results_at(frame, "bf16")) == 0


def test_independent_picks_its_bests_per_precision() -> None:
    strategy = make_strategy(sweep("independent", strategy_options={"confirm_seeds": 2}), "fp")
    results = drive(strategy)
    summary = strategy.summary(results)  # type: ignore[attr-defined]
    assert set(summary) == set(BOTH) and all(s["complete"] for s in summary.values())
    lr32 = math.log2(summary["fp32"]["stage1_lr"])
    lr8 = math.log2(summary["fp8_sim"]["stage1_lr"])
    # synthetic fp32 optimum at default residual_mult: log2 lr = -0.4 (search_synthetic);
    # the stage-1 lr is the measured grid point nearest it
    assert lr32 == 0.0
    assert lr8 - lr32 == FP8_LR_SHIFT
    # each precision's stage-2 ran at its own stage-1 lr
    for p, lr in (("fp32", lr32), ("fp8_sim", lr8)):
        stage2 = results[(results["precision"] == p) & (results["stage"] == "2-residual_mult")]
        assert len(stage2) and set(stage2["lr"]) == {2.0**lr}


def test_random_draws_the_same_configs_at_every_precision() -> None:
    strategy = make_strategy(sweep("random"), "fp")
    trials = strategy.propose(pd.DataFrame(), [], 1000)
    assert len(trials) == 6 * 2 * 2 == strategy.total_estimate(pframe([]))
    lrs = {p: sorted(t.train.lr for t in trials if t.train.precision == p) for p in BOTH}
    assert lrs["fp32"] == lrs["fp8_sim"] and len(set(lrs["fp32"])) == 6


def test_tpe_spends_its_budget_per_proxy_and_precision() -> None:
    strategy = make_strategy(sweep("tpe", seeds=[0, 1]), "fp")
    results = drive(strategy, max_new=3)
    configs = results.groupby(["precision", "width"])["lr"].nunique()
    assert configs.to_dict() == {(p, w): 6 for p in BOTH for w in (32, 64)}
    assert len(results) == 6 * 2 * 2 * 2 == strategy.total_estimate(results)
    # each config ran at every seed
    assert set(results.groupby(["precision", "width", "lr"])["seed"].nunique()) == {2}
    # Each precision's TPE has its own history: had fp8_sim's seen fp32's configurations as
    # started, it would only have re-run them.
    for width in (32, 64):
        at = results[results["width"] == width]
        lrs = {p: set(at[at["precision"] == p]["lr"]) for p in BOTH}
        assert lrs["fp32"] != lrs["fp8_sim"]
