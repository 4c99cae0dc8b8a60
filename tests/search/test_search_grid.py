"""Grid strategy: the cross product, trial construction, resume and pending."""

from __future__ import annotations

import itertools

import pandas as pd
import pytest
from search_synthetic import drive, frame, row, trial_loss

from umup_sweep.config import SweepSpec, load_sweep
from umup_sweep.search import GridStrategy, make_strategy

LRS = [0.25, 0.5, 1.0, 2.0]
RMS = [0.5, 1.0, 2.0]


@pytest.fixture
def sweep() -> SweepSpec:
    return load_sweep(
        {
            "name": "g",
            "proxy": {"base": {"head_dim": 16}, "widths": [32, 64], "depths": [1]},
            "seeds": [0, 1],
            "hyperparameters": {"lr": LRS, "residual_mult": RMS},
            "defaults": {"attn_softmax_mult": 2.0, "weight_decay": 0.1},
            "train": {"steps": 5, "batch_size": 2},
        }
    )


def test_cross_product(sweep: SweepSpec) -> None:
    strategy = make_strategy(sweep, "fp")
    assert isinstance(strategy, GridStrategy)
    trials = strategy.propose(pd.DataFrame(), [], max_new=1000)
    assert len(trials) == len(LRS) * len(RMS) * 2 * 2 == strategy.total_estimate(frame([]))
    assert len({t.trial_key for t in trials}) == len(trials)
    got = {(t.model.width, t.seed, t.train.lr, t.model.residual_mult) for t in trials}
    assert got == set(itertools.product([32, 64], [0, 1], LRS, RMS))
    for t in trials:
        assert t.labels == {"stage": "grid", "hp": "lr,residual_mult"}
        assert t.model.attn_softmax_mult == 2.0 and t.train.weight_decay == 0.1  # defaults
        assert t.train.steps == 5 and t.data_fingerprint == "fp"
        assert t.model.n_heads == t.model.width // 16
    # the data fingerprint is part of every key
    other = make_strategy(sweep, "other").propose(pd.DataFrame(), [], max_new=1000)
    assert not {t.trial_key for t in trials} & {t.trial_key for t in other}


def test_resume_proposes_only_the_rest(sweep: SweepSpec) -> None:
    strategy = GridStrategy(sweep, "fp")
    every = strategy.propose(frame([]), [], max_new=1000)
    done = [row(t, trial_loss(t)) for t in every[::2]]
    rest = strategy.propose(frame(done), [], max_new=1000)
    assert [t.trial_key for t in rest] == [t.trial_key for t in every[1::2]]
    pending = rest[:3]
    after = strategy.propose(frame(done), pending, max_new=1000)
    assert [t.trial_key for t in after] == [t.trial_key for t in rest[3:]]
    assert strategy.propose(frame(done), pending, max_new=2) == after[:2]
    # diverged and failed rows count as finished too: nothing is re-proposed
    everything = done + [row(t, trial_loss(t)) for t in rest]
    everything[0]["status"] = "failed"
    everything[1]["status"] = "diverged"
    assert strategy.propose(frame(everything), [], max_new=1000) == []


def test_drive_runs_every_point_once(sweep: SweepSpec) -> None:
    results = drive(GridStrategy(sweep), max_new=5)
    assert len(results) == 48 and results.trial_key.is_unique
