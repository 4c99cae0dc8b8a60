"""The core's ops cost no more than the plain ones: no extra tensors filled, no per-call
signature binding.

The unit-scaled linear's autograd Function returns the operands it used (for the backward
pass) beside the output. Were their gradients materialised, every backward pass would fill
two zero tensors of the input's and the weight's shape: 3% of a width-256 step, measured
with `benchmarks/bench_step.py`. And `Function.apply` binds its arguments with
`inspect.signature` on every call (~60 µs, more than a small proxy's matmul); the core's
`apply` skips that outside functorch transforms.
"""

from __future__ import annotations

import inspect

import pytest
import torch
from torch.profiler import ProfilerActivity, profile

from umup_sweep.core import functional as U
from umup_sweep.core._apply import apply
from umup_sweep.core._scale import _Scale


def _big_fills(fn) -> list[tuple[str, list]]:
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        fn()
    out = []
    for event in prof.events():
        if event.name in {"aten::fill_", "aten::zero_", "aten::zeros"}:
            shapes = [s for s in event.input_shapes if s]
            if any(torch.Size(s).numel() >= 64 for s in shapes):
                out.append((event.name, shapes))
    return out


def test_scaled_linear_backward_fills_no_zero_tensors() -> None:
    x = torch.randn(4, 8, 32, requires_grad=True)
    w = torch.randn(16, 32, requires_grad=True)
    y = U.linear(x, w)
    grad = torch.randn_like(y)
    assert _big_fills(lambda: y.backward(grad)) == []
    # and the gradients are still the plain linear's, scaled
    x2, w2 = x.detach().requires_grad_(), w.detach().requires_grad_()
    torch.nn.functional.linear(x2, w2).backward(grad)
    ratio_x = (x.grad / x2.grad).flatten()
    ratio_w = (w.grad / w2.grad).flatten()
    assert torch.allclose(ratio_x, ratio_x[0].expand_as(ratio_x), rtol=1e-4)
    assert torch.allclose(ratio_w, ratio_w[0].expand_as(ratio_w), rtol=1e-4)


def test_the_probe_sees_materialised_zero_grads() -> None:
    """The check above can fail: a Function that materialises its extra outputs' gradients
    (the default) shows the fills."""

    class Materialising(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):  # type: ignore[no-untyped-def, override]
            extra = x.view_as(x)
            ctx.mark_non_differentiable(extra)
            return x * 2, extra

        @staticmethod
        def backward(ctx, grad, grad_extra):  # type: ignore[no-untyped-def, override]
            return grad * 2

    x = torch.randn(8, 32, requires_grad=True)
    out, _ = Materialising.apply(x)
    fills = _big_fills(lambda: out.sum().backward())
    assert fills, "the profiler probe found no zero fill where one happens"


def _no_signature(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError("inspect.signature called")

    monkeypatch.setattr(inspect, "signature", refuse)


def test_core_ops_bind_no_signature_and_match_function_apply(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    x = torch.randn(3, 8, 16)
    w = torch.randn(4, 16)
    x_ref, w_ref = x.clone().requires_grad_(), w.clone().requires_grad_()
    out_ref = U._ScaledLinear.apply(x_ref, w_ref, None, 0.5, 0.25, 2.0)[0]
    out_ref.sum().backward()
    xs, ws = x.clone().requires_grad_(), w.clone().requires_grad_()
    _no_signature(monkeypatch)
    out = U.scaled_linear(xs, ws, None, 0.5, 0.25, 2.0)
    skip = U.residual_add(out, out.detach(), tau=0.5)
    scaled = apply(_Scale, skip, 1.0, 3.0)
    scaled.sum().backward()
    # same values; the gradient is scaled by 3 (`_Scale`) and passes the residual add as is
    assert torch.equal(out, out_ref)
    assert torch.allclose(xs.grad, 3.0 * x_ref.grad)
    assert torch.allclose(ws.grad, 3.0 * w_ref.grad)
    with pytest.raises(AssertionError, match="inspect.signature called"):
        U._ScaledLinear.apply(xs, ws, None, 0.5, 0.25, 2.0)  # the plain path does bind


def test_core_apply_under_vmap_takes_the_full_path() -> None:
    x = torch.randn(3, 5)
    out = torch.vmap(lambda row: apply(_Scale, row, 2.0, 1.0))(x)
    assert torch.equal(out, 2.0 * x)
