"""The train axes (`train: {steps: [...]}`, `tokens` with a batch-size list) and weight decay
coupled to lr: parsing, one-line errors, sweep identity, and the trials they make."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from umup_sweep.config import load_sweep, sweep_hash, sweep_to_dict
from umup_sweep.errors import ConfigError
from umup_sweep.search import make_strategy
from umup_sweep.search._precisions import results_for
from umup_sweep.spec import ModelSpec, TrainSpec, TrialSpec

REPO = Path(__file__).resolve().parents[2]
PROXY = {"base": {"head_dim": 16}, "widths": [32], "depths": [1]}
EMPTY = pd.DataFrame(columns=["trial_key"])


def _sweep(train: dict, **extra: object):
    return load_sweep(
        {"name": "ax", "proxy": PROXY, "hyperparameters": {"lr": [0.5, 1, 2]}, "train": train}
        | extra
    )


def _trials(sweep):
    return make_strategy(sweep, "fp").propose(EMPTY, [], 10_000)


def test_old_sweeps_keep_hash_and_trial_keys():
    """Values computed with the code before the train axes existed (commit 6421768): a sweep
    without them must resume its old runs."""
    proxy = {"base": {"head_dim": 16}, "widths": [32, 64], "depths": [1]}
    sweep = load_sweep(
        {
            "name": "pin",
            "proxy": proxy,
            "seeds": [0, 1],
            "hyperparameters": {"lr": [0.5, 1, 2], "weight_decay": [0, 0.1]},
            "train": {"steps": 300, "batch_size": 8},
        }
    )
    trials = _trials(sweep)
    assert sweep_hash(sweep) == "68713e4cb5bb71c3"
    assert len(trials) == 24
    assert [t.trial_key for t in trials[:2]] + [trials[-1].trial_key] == [
        "63c8cc95dc33447f",
        "1850201e94ef510d",
        "874d984bb4402cea",
    ]
    assert sweep.train_axes is None and "tokens" not in sweep_to_dict(sweep)["train"]


@pytest.mark.parametrize(
    "same",
    [{"steps": [300]}, {"tokens": 300 * 16 * 128}, {"tokens": "6.144e5", "batch_size": [16]}],
)
def test_one_point_is_the_scalar(same):
    """A one-element list, or a token budget at one batch size, is the plain `steps: 300`."""
    plain = _sweep({"steps": 300, "batch_size": 16})
    other = _sweep(same)
    assert other.train_axes is None
    assert sweep_hash(other) == sweep_hash(plain)
    assert [t.trial_key for t in _trials(other)] == [t.trial_key for t in _trials(plain)]


def test_the_same_proxy_at_two_horizons_is_two_trials():
    sweep = _sweep({"steps": [150, 300], "batch_size": 16}, seeds=[0, 1])
    trials = _trials(sweep)
    assert len(trials) == 3 * 2 * 2  # lrs × horizons × seeds (one proxy)
    assert len({t.trial_key for t in trials}) == len(trials)
    by_point: dict[tuple, set[int]] = {}
    for t in trials:
        by_point.setdefault((t.train.lr, t.seed), set()).add(t.train.steps)
    assert all(steps == {150, 300} for steps in by_point.values())
    a, b = (t for t in trials if (t.train.lr, t.seed) == (1.0, 0))
    assert a.model == b.model and a.trial_key != b.trial_key
    assert sweep.train.steps == 150  # the TrainSpec holds the first point
    assert list(sweep.parts()) == ["fp32 150x16", "fp32 300x16"]


def test_tokens_with_a_batch_list_hold_the_tokens_fixed():
    sweep = _sweep({"tokens": 8 * 128 * 80, "batch_size": [8, 16, 32, 64]})
    trials = _trials(sweep)
    points = {(t.train.steps, t.train.batch_size) for t in trials}
    assert points == {(80, 8), (40, 16), (20, 32), (10, 64)}
    assert {s * b * 128 for s, b in points} == {8 * 128 * 80}
    assert len(trials) == 3 * 4


def test_steps_and_batch_lists_cross():
    sweep = _sweep({"steps": [100, 200], "batch_size": [8, 16]})
    points = {(t.train.steps, t.train.batch_size) for t in _trials(sweep)}
    assert points == {(100, 8), (100, 16), (200, 8), (200, 16)}


@pytest.mark.parametrize(
    "train",
    [
        {"steps": [150, 300, 600]},
        {"tokens": 8 * 128 * 80, "batch_size": [8, 16]},
        {"tokens": [8 * 128 * 80, 8 * 128 * 160], "batch_size": 8},
        {"steps": [100, 200], "batch_size": [8, 16]},
    ],
)
def test_axes_round_trip_through_sweep_yaml(train):
    sweep = _sweep(train)
    assert load_sweep(sweep_to_dict(sweep)) == sweep
    assert sweep_hash(load_sweep(sweep_to_dict(sweep))) == sweep_hash(sweep)


BAD = [
    (
        {"batch_size": [8, 16]},
        "train.batch_size",
        "a list of batch sizes needs train.tokens",
    ),
    (
        {"tokens": 1000, "batch_size": [8, 16]},
        "train.tokens",
        "expected a multiple of batch_size 8",
    ),
    ({"tokens": 4096, "steps": 3}, "train.tokens", "give train.steps or train.tokens, not both"),
    ({"steps": [5, 300]}, "train.steps", "gives 5 steps at batch_size 16: expected >= 10"),
    ({"steps": [150, 150]}, "train.steps", "expected distinct values"),
    ({"steps": [150, "x"]}, "train.steps[1]", "expected an integer"),
    ({"tokens": "lots"}, "train.tokens", "expected an integer"),
    ({"tokns": 4096}, "train.tokns", "did you mean 'tokens'?"),
]


@pytest.mark.parametrize("train,key,text", BAD)
def test_bad_axes_are_one_line_errors(tmp_path, train, key, text):
    path = tmp_path / "bad.yaml"
    import yaml

    path.write_text(
        yaml.safe_dump({"proxy": PROXY, "hyperparameters": {"lr": [1, 2]}, "train": train})
    )
    with pytest.raises(ConfigError) as err:
        load_sweep(path)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: {key}: ")
    assert text in message


def test_tpe_refuses_train_axes():
    with pytest.raises(ConfigError, match="train.steps: a list of horizons or batch sizes"):
        _sweep({"steps": [150, 300]}, strategy="tpe", budget=4)


def test_results_are_split_by_what_each_trial_ran():
    """A part keeps the rows that fit it or no point at all (a failed trial, a fake), and
    loses only those that fit another point: a dropped row of its own would run again."""
    proxy = {"base": {"head_dim": 16, "seq_len": 8}, "widths": [32], "depths": [1]}
    sweep = load_sweep(
        {
            "name": "p",
            "proxy": proxy,
            "hyperparameters": {"lr": [1, 2]},
            "train": {"tokens": 8 * 2 * 40, "batch_size": [2, 4]},
        }
    )
    frame = pd.DataFrame(
        {
            "trial_key": ["b2", "b4", "div", "fail", "odd"],
            "status": ["ok", "ok", "diverged", "failed", "ok"],
            "steps": [40, 20, 30, 0, 3],
            "tokens": [640, 640, 480, 0, 384],
        }
    )
    points = [(t.steps, t.batch_size) for t in sweep.train_specs()]
    kept = [
        results_for(frame, part, points)["trial_key"].tolist() for part in sweep.parts().values()
    ]
    assert kept == [["b2", "div", "fail", "odd"], ["b4", "fail", "odd"]]


def test_coupled_weight_decay():
    sweep = load_sweep(
        {
            "name": "wd",
            "proxy": PROXY,
            "hyperparameters": {
                "lr": [0.5, 1],
                "weight_decay": {"values": [0, 0.1], "coupled": "lr"},
            },
        }
    )
    trials = _trials(sweep)
    assert sorted((t.train.lr, t.train.weight_decay) for t in trials) == [
        (0.5, 0.0),
        (0.5, 0.1),
        (1.0, 0.0),
        (1.0, 0.1),
    ]
    assert all(t.train.weight_decay_coupled for t in trials)
    assert load_sweep(sweep_to_dict(sweep)) == sweep
    plain = load_sweep(
        {
            "name": "wd",
            "proxy": PROXY,
            "hyperparameters": {"lr": [0.5, 1], "weight_decay": [0, 0.1]},
        }
    )
    assert sweep_hash(plain) != sweep_hash(sweep)
    coupled = {t.hps["weight_decay"]: t.trial_key for t in trials if t.train.lr == 1.0}
    independent = {t.hps["weight_decay"]: t.trial_key for t in _trials(plain) if t.train.lr == 1.0}
    assert coupled[0.1] != independent[0.1]


def test_coupled_weight_decay_decays_by_lr_times_value():
    """The optimizer a coupled trial gets: the decay per step (lr of the group × its weight
    decay, u-μP's independent form) is lr × the value, for every tensor."""
    from umup_sweep.models import build_model
    from umup_sweep.train import make_trial_optimizer

    model = build_model(ModelSpec(width=32, depth=1, head_dim=16))
    for coupled, expected in ((False, 0.1), (True, 0.1 * 0.5)):
        train = TrainSpec(lr=0.5, weight_decay=0.1, weight_decay_coupled=coupled)
        groups = make_trial_optimizer(model, train).param_groups
        decays = {round(g["lr"] * g["weight_decay"], 12) for g in groups if g["weight_decay"]}
        assert decays == {round(expected, 12)}
    key = TrialSpec(ModelSpec(), TrainSpec()).trial_key
    assert TrialSpec(ModelSpec(), TrainSpec(weight_decay_coupled=False)).trial_key == key


@pytest.mark.parametrize(
    "space,key,text",
    [
        (
            {"lr": {"values": [1, 2], "coupled": "lr"}},
            "hyperparameters.lr.coupled",
            "only weight_decay",
        ),
        (
            {"lr": [1, 2], "weight_decay": {"values": [0, 0.1], "coupled": "yes"}},
            "hyperparameters.weight_decay.coupled",
            "expected lr",
        ),
    ],
)
def test_bad_coupling_is_a_one_line_error(space, key, text):
    with pytest.raises(ConfigError) as err:
        load_sweep({"name": "x", "proxy": PROXY, "hyperparameters": space})
    assert err.value.key == key and text in str(err.value)


@pytest.mark.parametrize(
    "name,n_trials,points",
    [
        ("horizon", 48, {(150, 16), (300, 16), (600, 16), (1200, 16)}),
        ("batch", 56, {(600, 8), (300, 16), (150, 32), (75, 64)}),
        ("depth", 42, {(300, 16)}),
        ("lr_wd", 48, {(300, 16)}),
    ],
)
def test_shipped_axis_sweeps(name, n_trials, points):
    sweep = load_sweep(REPO / "sweeps" / f"{name}.yaml")
    trials = _trials(sweep)
    assert len(trials) == n_trials
    assert {(t.train.steps, t.train.batch_size) for t in trials} == points
