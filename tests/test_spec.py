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


def test_n_kv_heads_defaults_to_multi_head_and_sets_grouped_query_heads() -> None:
    assert ModelSpec(width=256, head_dim=32).n_kv_heads is None
    assert ModelSpec(width=256, head_dim=32).kv_heads == 8
    assert ModelSpec(width=256, head_dim=32, n_kv_heads=2).kv_heads == 2
    assert ModelSpec(width=256, n_heads=4, n_kv_heads=1).kv_heads == 1
    assert ModelSpec(width=256, head_dim=32, n_kv_heads=8).kv_heads == 8


@pytest.mark.parametrize(
    ("kwargs", "numbers"),
    [
        ({"width": 256, "head_dim": 32, "n_kv_heads": 3}, ("3", "8")),
        ({"width": 256, "head_dim": 32, "n_kv_heads": 16}, ("16", "8")),
        ({"width": 256, "n_heads": 4, "n_kv_heads": 0}, ("0", "4")),
        ({"width": 256, "n_heads": 4, "n_kv_heads": -2}, ("-2", "4")),
    ],
)
def test_n_kv_heads_must_divide_n_heads(kwargs: dict, numbers: tuple[str, str]) -> None:
    kv, heads = numbers
    with pytest.raises(ValueError, match=rf"n_kv_heads {kv} .*n_heads {heads}\b"):
        ModelSpec(**kwargs)


def test_a_bad_n_kv_heads_is_a_one_line_config_error_like_a_bad_head_dim() -> None:
    from umup_sweep.config import load_sweep
    from umup_sweep.errors import ConfigError

    def error(base: dict, model: dict | None = None) -> str:
        sweep = {
            "name": "s",
            "proxy": {"base": base, "widths": [64], "depths": [1]},
            "hyperparameters": {"lr": [1.0]},
        } | ({"model": model} if model else {})
        with pytest.raises(ConfigError) as exc:
            load_sweep(sweep)
        return str(exc.value)

    assert error({"head_dim": 100}) == (
        "<inline>: proxy.base: width 64 is not a multiple of head_dim 100"
    )
    assert error({"head_dim": 16, "n_kv_heads": 3}) == (
        "<inline>: proxy.base: n_kv_heads 3 must be >= 1 and divide n_heads 4"
    )
    assert error({"head_dim": 16}, {"n_kv_heads": 3}) == (
        "<inline>: model.n_kv_heads: n_kv_heads 3 must be >= 1 and divide n_heads 4"
    )


# Computed with the code from before `n_kv_heads` existed: runs started then must resume
# under the same keys, so an unset n_kv_heads must not enter the hash.
PINNED_KEYS = [
    (
        TrialSpec(
            ModelSpec(width=128, depth=3, head_dim=32, ffn="gelu", residual_mult=2.0),
            TrainSpec(steps=50, lr=0.5),
            seed=3,
            data_fingerprint="abc123",
        ),
        "9f02fece85a2def6",
    ),
    (TrialSpec(ModelSpec(), TrainSpec()), "0257407d48ce016c"),
    (
        TrialSpec(ModelSpec(width=64, n_heads=4, parametrization="sp"), TrainSpec(), seed=1),
        "d98dd209a92c0c09",
    ),
]


@pytest.mark.parametrize(("spec", "key"), PINNED_KEYS, ids=lambda v: getattr(v, "seed", v))
def test_trial_keys_of_multi_head_specs_are_unchanged_by_n_kv_heads(
    spec: TrialSpec, key: str
) -> None:
    assert spec.trial_key == key
    old_record = spec.to_dict()
    del old_record["model"]["n_kv_heads"]  # a trial stored before the field existed
    assert TrialSpec.from_dict(old_record).trial_key == key


def test_n_kv_heads_enters_the_trial_key_when_set() -> None:
    mha = TrialSpec(ModelSpec(width=128, head_dim=16), TrainSpec())
    gqa = {kv: TrialSpec(ModelSpec(width=128, head_dim=16, n_kv_heads=kv), TrainSpec())
           for kv in (1, 2, 8)}  # fmt: skip
    keys = {mha.trial_key} | {s.trial_key for s in gqa.values()}
    assert len(keys) == 4  # explicit n_kv_heads = n_heads is keyed apart from None (documented)
    assert TrialSpec.from_dict(gqa[2].to_dict()).trial_key == gqa[2].trial_key
