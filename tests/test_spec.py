"""The shared value objects: derived fields, trial keys, HP plumbing, round trips."""

from __future__ import annotations

import pickle

import pytest

from umup_sweep.spec import HP_DEFAULTS, HP_NAMES, ModelSpec, TrainSpec, TrialResult, TrialSpec


def test_heads_derived_from_head_dim_and_vice_versa() -> None:
    assert ModelSpec(width=256, head_dim=32).n_heads == 8
    assert ModelSpec(width=256, n_heads=4).head_dim == 64


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"width": 100, "head_dim": 32}, "not a multiple of head_dim"),
        ({"width": 0}, "must be positive"),
        ({"residual_mult": 0.0}, "residual_mult must be > 0"),
    ],
)
def test_impossible_model_specs_are_rejected(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ModelSpec(**kwargs)


def test_trial_key_depends_on_result_inputs_not_labels_or_threads() -> None:
    base = TrialSpec(ModelSpec(), TrainSpec(), seed=0, labels={"stage": "1-lr"})
    same = TrialSpec(ModelSpec(), TrainSpec(threads=4), seed=0, labels={"stage": "grid"})
    assert base.trial_key == same.trial_key
    assert base.trial_key != TrialSpec(ModelSpec(), TrainSpec(), seed=1).trial_key
    assert base.trial_key != base.with_hps(lr=0.5).trial_key
    assert base.trial_key != TrialSpec(ModelSpec(), TrainSpec(), data_fingerprint="x").trial_key


def test_with_hps_routes_model_and_optimizer_hps() -> None:
    spec = TrialSpec(ModelSpec(), TrainSpec()).with_hps(
        lr=0.25, residual_mult=2.0, weight_decay=0.1
    )
    assert spec.train.lr == 0.25 and spec.train.weight_decay == 0.1
    assert spec.model.residual_mult == 2.0
    assert set(spec.hps) == set(HP_NAMES)
    assert {
        k: v for k, v in spec.hps.items() if k not in ("lr", "residual_mult", "weight_decay")
    } == {k: v for k, v in HP_DEFAULTS.items() if k not in ("lr", "residual_mult", "weight_decay")}
    with pytest.raises(ValueError, match="unknown hyperparameter"):
        spec.with_hps(learning_rate=1.0)


def test_trial_spec_and_result_round_trip_through_dict_and_pickle() -> None:
    spec = TrialSpec(
        ModelSpec(width=32, depth=1), TrainSpec(steps=3), seed=7, labels={"stage": "x"}
    )
    again = TrialSpec.from_dict(spec.to_dict())
    assert again == spec and again.labels == spec.labels and again.trial_key == spec.trial_key
    assert pickle.loads(pickle.dumps(spec)).trial_key == spec.trial_key
    result = TrialResult(spec.trial_key, "ok", 2.0, 2.1, curve=[(0, 3.0, None), (1, 2.0, 2.1)])
    assert TrialResult.from_dict(result.to_dict()) == result
