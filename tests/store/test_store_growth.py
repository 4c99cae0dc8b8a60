"""Growing a stored sweep: which changes keep the stored trials (the rule, key by key), which
are refused and why, and what a grown or shrunk run directory holds."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import optuna
import pandas as pd
import pytest
import yaml
from sweep_fakes import FakeTrial, tiny_sweep

from umup_sweep.config import HPSpace, load_sweep, sweep_to_dict
from umup_sweep.errors import StoreError
from umup_sweep.search import GridStrategy
from umup_sweep.store import Growth, RunStore, classify_change
from umup_sweep.store._growth import refusal
from umup_sweep.store._sweep import write_sweep


def _dict(**changes):
    return sweep_to_dict(dataclasses.replace(tiny_sweep(Path("runs")), **changes))


@pytest.mark.parametrize(
    "old, new, grown, shrunk, changed",
    [
        # list axes that gained values grow the sweep (a scalar is a list of one)
        ({"seeds": [0]}, {"seeds": [0, 2]}, {"seeds": "seeds +[2]"}, {}, []),
        ({"train": {"steps": 150}}, {"train": {"steps": [150, 300]}},
         {"train.steps": "train.steps +[300]"}, {}, []),
        ({"train": {"batch_size": [8]}}, {"train": {"batch_size": [8, 16]}},
         {"train.batch_size": "train.batch_size +[16]"}, {}, []),
        # ranges that widen, budgets that rise
        ({"hyperparameters": {"lr": {"min": 0.25, "max": 2.0}}},
         {"hyperparameters": {"lr": {"min": 0.125, "max": 2.0}}},
         {"hyperparameters.lr.min": "hyperparameters.lr.min 0.25 -> 0.125"}, {}, []),
        ({"budget": 4}, {"budget": 8}, {"budget": "budget 4 -> 8"}, {}, []),
        # and the reverse shrinks; a list that gained and lost does both
        ({"proxy": {"widths": [32, 64]}}, {"proxy": {"widths": [64, 128]}},
         {"proxy.widths": "proxy.widths +[128]"}, {"proxy.widths": "proxy.widths -[32]"}, []),
        ({"budget": 8}, {"budget": 4}, {}, {"budget": "budget 8 -> 4"}, []),
        # a reordered list changes nothing; unhashed keys are not compared
        ({"seeds": [0, 1], "execution": {"executor": "ray"}},
         {"seeds": [1, 0], "execution": {"executor": "serial"}}, {}, {}, []),
        # everything else alters existing trials
        ({"train": {"steps": 150}}, {"train": {"steps": 300}}, {}, {}, ["train.steps"]),
        ({"data": {"files": ["a.txt"]}}, {"data": {"files": ["a.txt", "b.txt"]}}, {}, {},
         ["data.files"]),
        ({"hyperparameters": {"lr": {"values": [1.0]}}},
         {"hyperparameters": {"lr": {"values": [1.0]}, "residual_mult": {"values": [1.0]}}},
         {}, {}, ["hyperparameters.residual_mult.values"]),
        ({"budget": None}, {"budget": 4}, {}, {}, ["budget"]),
    ],
)  # fmt: skip
def test_the_growth_rule_key_by_key(old, new, grown, shrunk, changed):
    change = classify_change(old, new)
    assert (change.grown, change.shrunk, change.changed) == (grown, shrunk, changed)


def test_real_sweeps_a_precision_put_first_is_growth_not_a_changed_train_precision():
    old = _dict(precisions=("fp32",))
    train = dataclasses.replace(tiny_sweep(Path("runs")).train, precision="bf16")
    new = _dict(precisions=("bf16", "fp32"), train=train)
    assert new["train"]["precision"] == "bf16"
    change = classify_change(old, new)
    assert change.grown == {"precisions": "precisions +['bf16']"} and not change.changed


def _resolved(strategy, seeds, hps):
    proxy = {"base": {"head_dim": 16}, "widths": [32], "depths": [1]}
    data = {"name": "x", "proxy": proxy, "strategy": strategy, "seeds": seeds}
    return sweep_to_dict(load_sweep({**data, "hyperparameters": hps}))


def test_options_resolved_from_the_seeds_follow_them_for_adaptive_strategies(tmp_path):
    hps = {"lr": [0.5, 1, 2], "residual_mult": [0.5, 1, 2]}
    change = classify_change(
        _resolved("independent", [0], hps), _resolved("independent", [0, 1], hps)
    )
    # confirm_seeds: auto is 4 fresh seeds with one sweep seed, 2 with two
    assert change.grown == {"seeds": "seeds +[1]"} and change.changed == []
    assert change.retuned == {
        "strategy_options.confirm_seeds": "strategy_options.confirm_seeds 4 -> 2"
    }
    assert refusal(change, "independent", tmp_path) is None
    lr = {"lr": {"log2_range": [-4, 4]}}
    change = classify_change(_resolved("bracket", [0, 1], lr), _resolved("bracket", [0, 1, 2], lr))
    assert change.grown == {  # max_trials: auto is 8 values x the seeds, a budget that rose
        "seeds": "seeds +[2]",
        "strategy_options.max_trials": "strategy_options.max_trials 16 -> 24",
    }
    assert refusal(change, "bracket", tmp_path) is None
    # a grid or random sweep's options define its trials: a changed one is refused
    seed = classify_change({"strategy_options": {"sampler_seed": 0}},
                           {"strategy_options": {"sampler_seed": 1}})  # fmt: skip
    assert seed.retuned and refusal(seed, "tpe", tmp_path) is None
    assert "(changed keys: strategy_options.sampler_seed)" in (
        refusal(seed, "random", tmp_path) or ""
    )


def test_what_each_strategy_accepts(tmp_path):
    grow_seed = classify_change({"seeds": [0]}, {"seeds": [0, 1]})
    drop_seed = classify_change({"seeds": [0, 1]}, {"seeds": [0]})
    for strategy in ("grid", "random", "independent", "tpe", "bracket"):
        assert refusal(grow_seed, strategy, tmp_path) is None
    assert refusal(drop_seed, "grid", tmp_path) is None
    assert refusal(drop_seed, "random", tmp_path) is None
    assert refusal(drop_seed, "tpe", tmp_path) == (
        f"{tmp_path} holds trials this sweep would drop (seeds -[1]); a tpe sweep may only "
        "grow (it may drop: nothing); use --force to start over (the old run is moved aside) "
        "or give a new name"
    )
    wider = classify_change(
        {"hyperparameters": {"lr": {"max": 2.0}}}, {"hyperparameters": {"lr": {"max": 4.0}}}
    )
    assert refusal(wider, "tpe", tmp_path) is None
    why = refusal(wider, "random", tmp_path)
    assert why is not None and "changing hyperparameters.lr.max would redraw all of them" in why
    fewer = classify_change({"budget": 8}, {"budget": 4})
    assert "budget 8 -> 4" in (refusal(fewer, "random", tmp_path) or "")


def _commit_grid(sweep, log):
    fake = FakeTrial(log)
    with RunStore.open(sweep) as store:
        for spec in GridStrategy(sweep).trials():
            if not store.has(spec.trial_key):
                store.commit(spec, fake(spec))


def _n_study_trials(run_dir, name="tiny"):
    storage = f"sqlite:///{run_dir / 'study.db'}"
    return len(optuna.load_study(study_name=name, storage=storage).trials)


def test_grid_shrinks_keeps_the_dropped_trials_and_grows_back_for_free(tmp_path):
    run_dir = tmp_path / "tiny"
    _commit_grid(tiny_sweep(tmp_path, lrs=(0.5, 1.0), seeds=(0, 1)), tmp_path / "log")
    assert _n_study_trials(run_dir) == 4

    smaller = tiny_sweep(tmp_path, lrs=(0.5, 1.0), seeds=(0,))
    with RunStore.open(smaller) as store:
        assert store.growth() == Growth((), ("seeds -[1]",), reused=2, new=0, outside=2)
        assert store.results()["seed"].tolist() == [0, 0]
        assert sorted(store.all_results()["seed"]) == [0, 0, 1, 1]
    assert _n_study_trials(run_dir) == 4  # nothing deleted
    assert pd.read_csv(run_dir / "trials.csv")["seed"].tolist() == [0, 0]
    assert yaml.safe_load((run_dir / "sweep.yaml").read_text())["seeds"] == [0]
    assert RunStore.load(run_dir).results()["seed"].tolist() == [0, 0]

    # Dropping an lr value works the same way; putting both back reuses every trial.
    _commit_grid(tiny_sweep(tmp_path, lrs=(0.5,), seeds=(0,)), tmp_path / "log")
    assert RunStore.load(run_dir).results()["lr"].tolist() == [0.5]
    _commit_grid(tiny_sweep(tmp_path, lrs=(0.5, 1.0), seeds=(0, 1)), tmp_path / "log")
    grown = RunStore.load(run_dir).growth()
    assert grown is not None and grown.shrunk == ()
    assert grown.grown == ("hyperparameters.lr.values +[1.0]", "seeds +[1]")
    assert (grown.reused, grown.new, grown.outside) == (4, 0, 0)
    assert len((tmp_path / "log").read_text().splitlines()) == 4  # each trial ran once
    assert _n_study_trials(run_dir) == 4


def _hash(run_dir, name="tiny"):
    storage = f"sqlite:///{run_dir / 'study.db'}"
    return optuna.load_study(study_name=name, storage=storage).user_attrs["sweep_hash"]


def test_refused_changes_leave_the_run_as_it_was(tmp_path):
    sweep = tiny_sweep(tmp_path, lrs=(0.5, 1.0), seeds=(0, 1))
    _commit_grid(sweep, tmp_path / "log")
    run_dir = tmp_path / "tiny"
    before = (run_dir / "sweep.yaml").read_text(), _hash(run_dir)
    # a seed more is growth, but new steps alter every stored trial: only that key is named
    steps = dataclasses.replace(sweep, seeds=(0, 1, 2), train=dataclasses.replace(
        sweep.train, steps=11))  # fmt: skip
    with pytest.raises(StoreError) as err:
        RunStore.open(steps)
    assert str(err.value) == (
        f"{run_dir} holds a different sweep (changed keys: train.steps); use --force to start "
        "over (the old run is moved aside) or give a new name"
    )
    assert ((run_dir / "sweep.yaml").read_text(), _hash(run_dir)) == before
    assert RunStore.load(run_dir).growth() is None and _n_study_trials(run_dir) == 4


def test_an_adaptive_sweep_may_grow_but_not_shrink(tmp_path):
    space = {"lr": HPSpace(low=0.25, high=4.0)}
    tpe = dataclasses.replace(
        tiny_sweep(tmp_path, seeds=(0, 1)), strategy="tpe", budget=2, hyperparameters=space
    )
    RunStore.open(tpe).close()
    with pytest.raises(StoreError) as err:
        RunStore.open(dataclasses.replace(tpe, seeds=(0,)))
    assert str(err.value) == (
        f"{tmp_path / 'tiny'} holds trials this sweep would drop (seeds -[1]); a tpe sweep may "
        "only grow (it may drop: nothing); use --force to start over (the old run is moved "
        "aside) or give a new name"
    )
    with RunStore.open(dataclasses.replace(tpe, seeds=(0, 1, 2), budget=3)) as store:
        assert store.growth() == Growth(("budget 2 -> 3", "seeds +[2]"), (), reused=0, new=0)


def test_a_crash_between_writing_the_grown_sweep_and_its_hash_resumes(tmp_path):
    sweep = tiny_sweep(tmp_path, lrs=(0.5, 1.0))
    _commit_grid(sweep, tmp_path / "log")
    grown = tiny_sweep(tmp_path, lrs=(0.5, 1.0), seeds=(0, 1))
    run_dir = tmp_path / "tiny"
    write_sweep(run_dir, grown)  # what a crash right after writing sweep.yaml leaves
    assert len(RunStore.load(run_dir).results()) == 2  # readers see the stored trials
    with RunStore.open(grown) as store:
        assert store.growth() == Growth(("seeds +[1]",), (), reused=2, new=0)
    with RunStore.open(grown) as store:  # and a plain resume keeps the record
        assert store.growth() == Growth(("seeds +[1]",), (), reused=2, new=0)
