"""Parameter tags survive copies; the optimizer applies u-μP LR rules and independent decay."""

from __future__ import annotations

import copy
import pickle

import pytest
import torch

from umup_sweep import core
from umup_sweep.core import AdamW, Linear, ScaledParameter, scale, scaled_param_groups


def test_scale_primitives_separate_forward_and_backward() -> None:
    x = torch.ones(3, requires_grad=True)
    y = scale(x, fwd=3.0, bwd=0.25)
    y.backward(torch.full((3,), 2.0))
    assert y.tolist() == [3.0, 3.0, 3.0]
    assert x.grad.tolist() == [0.5, 0.5, 0.5]
    x.grad = None
    core.scale_fwd(x, 5.0).sum().backward()
    assert x.grad.tolist() == [1.0, 1.0, 1.0]
    x.grad = None
    out = core.scale_bwd(x, 5.0)
    out.sum().backward()
    assert out.tolist() == [1.0, 1.0, 1.0] and x.grad.tolist() == [5.0, 5.0, 5.0]


@pytest.mark.parametrize("copier", [copy.deepcopy, lambda p: pickle.loads(pickle.dumps(p))])
def test_tags_survive_deepcopy_and_pickle(copier) -> None:
    p = ScaledParameter(torch.randn(4, 3), role="embedding", depth_scale=5)
    q = copier(p)
    assert isinstance(q, ScaledParameter) and isinstance(q, torch.nn.Parameter)
    assert (q.role, q.depth_scale) == ("embedding", 5)
    assert torch.equal(q.data, p.data) and q.data_ptr() != p.data_ptr()


def test_module_deepcopy_keeps_tags() -> None:
    stack = core.DepthStack([Linear(8, 8), Linear(8, 8), Linear(8, 8)])
    clone = copy.deepcopy(stack)
    assert [p.depth_scale for p in clone.parameters()] == [3, 3, 3]


def test_bad_role_and_double_depth_are_refused() -> None:
    with pytest.raises(ValueError, match="role must be one of"):
        ScaledParameter(torch.zeros(2), role="gain")  # type: ignore[arg-type]
    stack = core.DepthStack([Linear(4, 4)])
    with pytest.raises(ValueError, match="already has depth 1"):
        core.tag_depth(stack, 2)


def test_untagged_parameter_raises_unless_allowed() -> None:
    model = torch.nn.Sequential(Linear(8, 8), torch.nn.Linear(8, 8, bias=False))
    with pytest.raises(ValueError, match=r"parameter 1\.weight has no u-μP role"):
        AdamW(model, lr=1.0)
    groups = scaled_param_groups(model, lr=1.0, allow_unscaled=True)
    lrs = sorted(g["lr"] for g in groups)
    assert lrs == [pytest.approx(8**-0.5), 1.0]


@pytest.mark.parametrize(
    "role,fan_in,depth,expected",
    [
        ("weight", 4096, None, 4096**-0.5),
        ("weight", 16384, 32, 16384**-0.5 * 32**-0.5),
        ("embedding", 4096, None, 4096**-0.5),
        ("readout", 4096, None, 1.0),
        ("norm", 4096, 8, 8**-0.5),
        ("bias", 4096, None, 1.0),
    ],
)
def test_lr_scale_rules(role, fan_in, depth, expected) -> None:
    assert core.lr_scale_adam(role, fan_in, depth) == pytest.approx(expected)
    assert core.lr_scale_sgd(role, fan_in, depth) == pytest.approx(expected)


@pytest.mark.parametrize("lr", [0.05, 2.0])
def test_weight_decay_per_step_is_independent_of_lr(lr: float) -> None:
    """With zero gradients one AdamW step only decays: p ← p·(1 − wd), whatever the lr."""
    lin = Linear(16, 16)
    before = lin.weight.detach().clone()
    opt = AdamW(lin, lr=lr, weight_decay=0.01)
    lin.weight.grad = torch.zeros_like(lin.weight)
    opt.step()
    torch.testing.assert_close(lin.weight.detach(), before * (1 - 0.01))


def test_equal_lrs_share_a_group() -> None:
    model = torch.nn.Sequential(Linear(8, 8), Linear(8, 8), Linear(16, 8))
    groups = scaled_param_groups(model, lr=1.0)
    assert sorted(len(g["params"]) for g in groups) == [1, 2]
    assert {g["lr_scale"] for g in groups} == {8**-0.5, 16**-0.5}


def test_restore_tags_after_meta_to_empty() -> None:
    with torch.device("meta"):
        stack = core.DepthStack([Linear(4, 4), core.LinearReadout(4, 2)])
    tags = core.param_tags(stack)
    stack.to_empty(device="cpu")
    assert not core.has_role(stack[0].weight)  # torch replaced it with a plain Parameter
    core.restore_tags(stack, tags)
    assert core.param_tags(stack) == {"0.weight": ("weight", 2), "1.weight": ("readout", 2)}
    assert stack[0].weight.device.type == "cpu"
