"""The ModelSpec fields a target needs: `rope_theta` reaches the rotary tables of both
models, `ffn_hidden_size` sets the FFN exactly, and neither changes a trial key while unset."""

from __future__ import annotations

import math

import pytest
import torch

from umup_sweep.models import build_model
from umup_sweep.models._common import ROPE_BASE, RopeCache, rope_tables
from umup_sweep.spec import ModelSpec, TrainSpec, TrialSpec


def _rope_caches(model: torch.nn.Module) -> list[RopeCache]:
    return [m for m in model.modules() if isinstance(m, RopeCache)]


@pytest.mark.parametrize("parametrization", ["umup", "sp"])
def test_both_models_use_the_specs_rope_base(parametrization: str) -> None:
    spec = ModelSpec(width=64, head_dim=16, rope_theta=500000.0, parametrization=parametrization)
    caches = _rope_caches(build_model(spec))
    assert len(caches) == spec.depth and all(c.base == 500000.0 for c in caches)
    cos, sin = caches[0](3, torch.device("cpu"), torch.float64)
    # position 2, frequency pair 1 of 8: angle 2 · 500000^(-2/16)
    assert math.isclose(float(sin[2, 1]), math.sin(2 * 500000.0 ** (-2 / 16)), rel_tol=1e-12)
    assert math.isclose(float(cos[2, 1 + 8]), math.cos(2 * 500000.0 ** (-2 / 16)), rel_tol=1e-12)
    default = _rope_caches(build_model(ModelSpec(width=64, head_dim=16)))[0]
    assert default.base == ROPE_BASE == 10000.0


def test_the_base_changes_the_model_output() -> None:
    tokens = torch.randint(0, 256, (1, 16))
    outs = []
    for theta in (None, 100.0):
        torch.manual_seed(0)
        model = build_model(ModelSpec(width=64, head_dim=16, rope_theta=theta))
        outs.append(model(tokens))
    assert not torch.allclose(outs[0], outs[1])


def test_rope_tables_take_the_base() -> None:
    cos, sin = rope_tables(5, 4, torch.device("cpu"), torch.float64, base=1e6)
    assert math.isclose(float(sin[4, 1]), math.sin(4 * 1e6**-0.5), rel_tol=1e-12)
    assert float(sin[4, 0]) == math.sin(4.0)


def test_exact_ffn_hidden_size_in_both_models() -> None:
    for parametrization in ("umup", "sp"):
        spec = ModelSpec(
            width=64, head_dim=16, ffn_hidden_size=172, parametrization=parametrization
        )
        model = build_model(spec)
        shapes = {tuple(p.shape) for n, p in model.named_parameters() if "down" in n}
        assert shapes == {(64, 172)}


def test_unset_fields_keep_trial_keys_and_set_ones_change_them() -> None:
    base = TrialSpec(ModelSpec(), TrainSpec())
    assert base.trial_key == "0257407d48ce016c"  # pinned in tests/test_spec.py too
    assert TrialSpec(ModelSpec(rope_theta=10000.0), TrainSpec()).trial_key == base.trial_key
    keys = {
        TrialSpec(ModelSpec(rope_theta=5e5), TrainSpec()).trial_key,
        TrialSpec(ModelSpec(ffn_hidden_size=256), TrainSpec()).trial_key,
        base.trial_key,
    }
    assert len(keys) == 3
    spec = TrialSpec(ModelSpec(rope_theta=5e5, ffn_hidden_size=200), TrainSpec())
    assert TrialSpec.from_dict(spec.to_dict()).trial_key == spec.trial_key


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"ffn_hidden_size": 0}, "ffn_hidden_size must be >= 1"), ({"rope_theta": 0.0}, "> 0")],
)
def test_bad_values(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ModelSpec(**kwargs)  # type: ignore[arg-type]
