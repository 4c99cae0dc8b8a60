"""The precision policy on real layers: the active-policy context, which ops get the FP8
casts (the unit-scaled core's own linear included), what their gradients are, that nothing
else about a model changes, and bf16."""

from __future__ import annotations

import contextlib
import copy
import io

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import umup_sweep.precision as P
from umup_sweep.core import functional as U
from umup_sweep.core import matmul_cast
from umup_sweep.errors import UserError
from umup_sweep.models import build_model
from umup_sweep.precision import (
    E5M2,
    PrecisionAwareLinear,
    PrecisionPolicy,
    autocast_context,
    current_policy,
    fp8_active,
    fp8_cast,
    linear_modules,
    make_precision_aware,
    precision_aware,
    use_precision,
)
from umup_sweep.spec import ModelSpec


def test_unknown_precision_is_a_one_line_user_error() -> None:
    expected = r"^precision must be one of fp32, bf16, fp8_sim, got 'fp16'$"
    with pytest.raises(UserError, match=expected):
        PrecisionPolicy("fp16")
    with pytest.raises(UserError, match=expected):
        with use_precision("fp16"):
            pass
    with pytest.raises(UserError, match="got 'int8'"):
        autocast_context("int8")


def test_policy_casts_only_under_fp8_sim() -> None:
    x = torch.tensor([0.3, 3.3, 1000.0])
    for name in ("fp32", "bf16"):
        policy = PrecisionPolicy(name)
        assert not policy.fp8
        assert policy.cast_input(x) is x and policy.cast_weight(x) is x
        assert policy.cast_output_grad(x) is x
    fp8 = PrecisionPolicy("fp8_sim")
    assert fp8.cast_input(x).tolist() == [0.3125, 3.25, 448.0]
    assert fp8.cast_weight(x).tolist() == [0.3125, 3.25, 448.0]
    assert PrecisionPolicy("bf16").autocast_dtype is torch.bfloat16
    assert PrecisionPolicy("fp8_sim").autocast_dtype is None


def test_the_active_policy_is_scoped_nested_and_restored_after_errors() -> None:
    assert current_policy().name == "fp32" and not fp8_active()
    with use_precision("fp8_sim") as outer:
        assert outer.fp8 and fp8_active()
        with use_precision(PrecisionPolicy("bf16")):
            assert current_policy().name == "bf16" and not fp8_active()
        assert fp8_active()
        with pytest.raises(RuntimeError), use_precision("fp32"):
            raise RuntimeError("boom")
        assert fp8_active()
    assert current_policy().name == "fp32"


def test_precision_aware_op_casts_only_inside_fp8_sim() -> None:
    mm = precision_aware(torch.matmul)
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(8, 16, generator=gen).requires_grad_()
    b = torch.randn(16, 4, generator=gen)
    dy = torch.randn(8, 4, generator=gen) * 1e-2
    assert torch.equal(mm(a, b), a @ b)
    with use_precision("bf16"):  # no FP8 casts (autocast only)
        assert mm(a, b).dtype == torch.bfloat16
    with use_precision("fp8_sim"):
        y = mm(a, b)
    assert torch.allclose(y, fp8_cast(a.detach()) @ fp8_cast(b), atol=1e-6)
    y.backward(dy)  # outside the block: the casts were recorded in the graph
    assert torch.allclose(a.grad, fp8_cast(dy, E5M2) @ fp8_cast(b).T, atol=1e-6)


def test_core_linear_rounds_its_inputs_to_e4m3_and_its_output_gradient_to_e5m2() -> None:
    # 1.1 is on neither grid: E4M3 (3 mantissa bits) rounds it to 1.125, E5M2 (2 bits) to 1.0.
    # A 1x1 linear has every unit scale 1, so the values below are exact.
    x = torch.tensor([[1.1]], requires_grad=True)
    w = torch.tensor([[1.1]], requires_grad=True)
    with use_precision("fp8_sim"):
        y = U.linear(x, w)
    y.backward(torch.tensor([[1.1]]))
    assert y.item() == 1.125 * 1.125
    assert x.grad is not None and w.grad is not None
    assert x.grad.item() == 1.0 * 1.125  # the E5M2 gradient times the E4M3 weight
    assert w.grad.item() == 1.0 * 1.125  # the E5M2 gradient times the E4M3 input
    with use_precision("fp8_sim"):  # saturating, as the cast does
        assert U.linear(torch.tensor([[1000.0]]), torch.tensor([[1.0]])).item() == 448.0


def test_core_linear_casts_nothing_outside_fp8_sim() -> None:
    x0, w0, dy = torch.tensor([[1.1]]), torch.tensor([[1.1]]), torch.tensor([[1.1]])
    expected_y, expected_grad = (x0 * w0).item(), (dy * w0).item()  # unrounded fp32
    for context in (contextlib.nullcontext(), use_precision("fp32")):
        with context:
            assert matmul_cast() is None
            x, w = x0.clone().requires_grad_(), w0.clone().requires_grad_()
            y = U.linear(x, w)
        y.backward(dy)
        assert y.item() == expected_y != 1.125 * 1.125
        assert x.grad is not None and x.grad.item() == expected_grad


def test_use_precision_installs_the_core_cast_only_under_fp8_sim() -> None:
    assert matmul_cast() is None
    with use_precision("fp8_sim") as fp8:
        assert matmul_cast() is fp8
        with use_precision("bf16"):
            assert matmul_cast() is None  # an inner non-FP8 block suspends the cast
        assert matmul_cast() is fp8
        with pytest.raises(RuntimeError), use_precision("fp8_sim"):
            raise RuntimeError("boom")
        assert matmul_cast() is fp8
    assert matmul_cast() is None


def test_unit_scaled_linear_under_fp8_sim_matches_the_hand_computed_fp8_op() -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(16, 64, generator=gen, requires_grad=True)
    w = torch.randn(32, 64, generator=gen, requires_grad=True)
    dy = torch.randn(16, 32, generator=gen)
    with use_precision("fp8_sim"):
        y = U.linear(x, w, mult=0.5, fwd_mult=0.7)
    y.backward(dy)
    # Oracle: the same op, outside any precision block, on pre-rounded operands and gradient.
    # The cast sees the unit-scaled operands; the op's scales run in full precision.
    xr = fp8_cast(x.detach()).requires_grad_()
    wr = fp8_cast(w.detach()).requires_grad_()
    yr = U.linear(xr, wr, mult=0.5, fwd_mult=0.7)
    yr.backward(fp8_cast(dy, E5M2))
    assert x.grad is not None and w.grad is not None
    assert xr.grad is not None and wr.grad is not None
    assert torch.equal(y, yr)
    assert torch.equal(x.grad, xr.grad)
    assert torch.equal(w.grad, wr.grad)
    assert not torch.allclose(
        y, U.linear(x.detach(), w.detach(), mult=0.5, fwd_mult=0.7), atol=1e-3
    )


def test_nn_linear_made_precision_aware_matches_the_hand_computed_fp8_op() -> None:
    torch.manual_seed(0)
    layer = make_precision_aware(nn.Sequential(nn.Linear(8, 4, bias=False)))[0]
    x = torch.randn(3, 8, requires_grad=True)
    dy = torch.randn(3, 4) * 1e-3
    with use_precision("fp8_sim"):
        y = layer(x)
    y.backward(dy)
    wq, dyq = fp8_cast(layer.weight.detach()), fp8_cast(dy, E5M2)
    assert torch.allclose(y, F.linear(fp8_cast(x.detach()), wq), atol=1e-6)
    assert torch.allclose(x.grad, dyq @ wq, atol=1e-7)
    assert torch.allclose(layer.weight.grad, dyq.T @ fp8_cast(x.detach()), atol=1e-7)


def test_make_precision_aware_changes_nothing_else_about_the_model() -> None:
    spec = ModelSpec(width=64, depth=2, seq_len=16, parametrization="sp")
    model = build_model(spec)
    ids = torch.randint(0, 256, (2, 16), generator=torch.Generator().manual_seed(0))
    plain = model(ids).detach()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    names = [name for name, _ in model.named_parameters()]

    make_precision_aware(model)
    make_precision_aware(model)  # idempotent
    assert all(type(m) is PrecisionAwareLinear for _, m in linear_modules(model))
    assert [name for name, _ in model.named_parameters()] == names
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in state.items())
    assert torch.equal(model(ids).detach(), plain)  # fp32: bit-identical
    with use_precision("fp8_sim"):
        fp8 = model(ids).detach()
    assert not torch.allclose(fp8, plain, atol=1e-4)

    twin = copy.deepcopy(model)  # a copy computes with its own weights
    with torch.no_grad():
        twin.readout.weight.mul_(2)
    assert not torch.equal(twin(ids), model(ids))
    buffer = io.BytesIO()
    torch.save(model, buffer)
    buffer.seek(0)
    restored = torch.load(buffer, weights_only=False)
    assert torch.equal(restored(ids).detach(), plain)


@pytest.mark.parametrize("parametrization", ["umup", "sp"])
def test_every_projection_of_both_proxies_is_cast(
    parametrization: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = make_precision_aware(
        build_model(ModelSpec(width=64, depth=2, seq_len=16, parametrization=parametrization))
    )
    calls: list[torch.dtype] = []
    original = P.fp8_cast

    def counting_cast(x: torch.Tensor, fmt: torch.dtype) -> torch.Tensor:
        calls.append(fmt)
        return original(x, fmt)

    monkeypatch.setattr(P, "fp8_cast", counting_cast)
    ids = torch.randint(0, 256, (2, 16))
    with use_precision("fp8_sim"):
        loss = model.compute_loss(model(ids), ids)
    loss.backward()
    # qkv, out, up, gate, down per block plus the readout: 11 matmuls. Forward: input and
    # weight of each (E4M3); backward: one output gradient each (E5M2).
    assert calls.count(torch.float8_e4m3fn) == 2 * 11
    assert calls.count(torch.float8_e5m2) == 11
    calls.clear()
    model.compute_loss(model(ids), ids).backward()
    assert calls == []  # outside the block: full precision


def _bf16_step(parametrization: str) -> tuple[float, float]:
    torch.manual_seed(0)
    model = make_precision_aware(
        build_model(ModelSpec(width=64, depth=1, seq_len=16, parametrization=parametrization))
    )
    ids = torch.randint(0, 256, (4, 16))
    with torch.no_grad():
        ref = float(model.compute_loss(model(ids), ids))
    with use_precision("bf16", "cpu"):
        logits = model(ids)
        loss = model.compute_loss(logits, ids)
    assert logits.dtype == torch.bfloat16
    loss.backward()
    assert all(p.grad is not None and p.grad.dtype == torch.float32 for p in model.parameters())
    return float(loss.detach()), ref


def test_sp_proxy_trains_a_step_under_bf16_autocast() -> None:
    loss, ref = _bf16_step("sp")
    assert loss == pytest.approx(ref, rel=0.02) and loss != ref


def test_umup_proxy_trains_a_step_under_bf16_autocast() -> None:
    loss, ref = _bf16_step("umup")
    assert loss == pytest.approx(ref, rel=0.02) and loss != ref
