"""The FP8 cast: values land on the format's grid (nearest, ties to even), saturate, and the
gradient goes through the E5M2 cast. The oracle is the grid itself, enumerated from all 256
bit patterns of each torch float8 dtype."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from umup_sweep.precision import (
    E4M3,
    E5M2,
    Fp8Quantize,
    fp8_cast,
    fp8_matmul,
    fp8_max,
    fp8_quantize,
    quantize_bwd,
    quantize_fwd,
)

FORMATS = [pytest.param(E4M3, id="e4m3"), pytest.param(E5M2, id="e5m2")]
MANTISSA_BITS = {E4M3: 3, E5M2: 2}


def grid(fmt: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Every finite value of `fmt` (sorted, -0 dropped) and whether its bit pattern is even."""
    bits = torch.arange(256, dtype=torch.uint8)
    values = bits.view(fmt).to(torch.float64)
    keep = torch.isfinite(values) & ~((values == 0) & (bits >= 128))
    values, bits = values[keep], bits[keep]
    order = values.argsort()
    return values[order], (bits[order] % 2 == 0)


def nearest_on_grid(x: torch.Tensor, fmt: torch.dtype) -> torch.Tensor:
    """Brute-force round-to-nearest-even onto the grid (in-range x only)."""
    values, even = grid(fmt)
    xd = x.to(torch.float64)
    hi = torch.searchsorted(values, xd).clamp(1, len(values) - 1)
    lo = hi - 1
    d_lo, d_hi = (xd - values[lo]).abs(), (values[hi] - xd).abs()
    pick_hi = (d_hi < d_lo) | ((d_hi == d_lo) & even[hi])
    return torch.where(pick_hi, values[hi], values[lo]).to(x.dtype)


def in_range_samples(fmt: torch.dtype, n: int = 4000) -> torch.Tensor:
    """Values of both signs spread over the whole range, subnormals included, log-uniform."""
    gen = torch.Generator().manual_seed(0)
    tiny = torch.finfo(fmt).smallest_normal * 2.0 ** -(MANTISSA_BITS[fmt] + 1)
    log_mag = torch.empty(n, dtype=torch.float64).uniform_(
        torch.log2(torch.tensor(tiny)).item(),
        torch.log2(torch.tensor(fp8_max(fmt))).item(),
        generator=gen,
    )
    sign = torch.randint(0, 2, (n,), generator=gen) * 2 - 1
    return (sign * torch.exp2(log_mag)).to(torch.float32)


@pytest.mark.parametrize("fmt", FORMATS)
def test_cast_rounds_to_the_nearest_grid_value_and_matches_torch(fmt: torch.dtype) -> None:
    x = in_range_samples(fmt)
    out = fp8_cast(x, fmt)
    assert out.dtype == torch.float32
    assert torch.equal(out, nearest_on_grid(x, fmt))
    assert torch.equal(out, x.to(fmt).to(torch.float32))  # torch's own conversion
    values, _ = grid(fmt)
    assert torch.isin(out.to(torch.float64), values).all()
    # Error at most half a unit in the last place: relative for normals, absolute below.
    half_ulp = 2.0 ** -(MANTISSA_BITS[fmt] + 1)
    normal = x.abs() >= torch.finfo(fmt).smallest_normal
    assert ((out - x).abs() <= half_ulp * x.abs())[normal].all()
    sub_step = torch.finfo(fmt).smallest_normal * 2.0 ** -MANTISSA_BITS[fmt]
    assert ((out - x).abs() <= sub_step / 2)[~normal].all()
    assert (~normal).sum() > 100 and (out != x).float().mean() > 0.9  # it really rounded


@pytest.mark.parametrize("fmt", FORMATS)
def test_midpoints_round_to_the_even_neighbour(fmt: torch.dtype) -> None:
    values, even = grid(fmt)
    mids = ((values[:-1] + values[1:]) / 2).to(torch.float32)  # exact in fp32
    expected = torch.where(even[1:], values[1:], values[:-1]).to(torch.float32)
    assert torch.equal(fp8_cast(mids, fmt), expected)


@pytest.mark.parametrize("fmt", FORMATS)
def test_grid_values_are_unchanged_and_the_cast_is_idempotent(fmt: torch.dtype) -> None:
    values, _ = grid(fmt)
    on_grid = values.to(torch.float32)
    assert torch.equal(fp8_cast(on_grid, fmt), on_grid)
    x = torch.randn(10_000) * 7
    once = fp8_cast(x, fmt)
    assert torch.equal(fp8_cast(once, fmt), once)


@pytest.mark.parametrize("fmt", FORMATS)
def test_out_of_range_values_saturate_and_nan_stays_nan(fmt: torch.dtype) -> None:
    top = fp8_max(fmt)
    x = torch.tensor([top * 1.01, top * 3, 1e30, float("inf"), -top * 5, -float("inf")])
    assert fp8_cast(x, fmt).tolist() == [top, top, top, top, -top, -top]
    assert torch.isnan(fp8_cast(torch.tensor([float("nan")]), fmt)).all()


def test_saturation_differs_from_torchs_e5m2_overflow_to_inf() -> None:
    x = torch.tensor([1e6])
    assert torch.isinf(x.to(E5M2).float()).all()  # why the clamp is there
    assert fp8_cast(x, "e5m2").item() == 57344.0
    assert (fp8_max("e4m3"), fp8_max("e5m2")) == (448.0, 57344.0)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float64])
def test_cast_keeps_the_input_dtype(dtype: torch.dtype) -> None:
    x = (torch.randn(1000) * 3).to(dtype)
    out = fp8_cast(x, "e4m3")
    assert out.dtype == dtype
    assert torch.equal(out.float(), nearest_on_grid(x.float(), E4M3))


def test_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="'e4m3' or 'e5m2'"):
        fp8_cast(torch.ones(1), "e3m4")
    with pytest.raises(ValueError, match="float8_e4m3fn or float8_e5m2"):
        fp8_cast(torch.ones(1), torch.float16)


def test_gradient_goes_through_the_e5m2_cast() -> None:
    x = (torch.randn(512) * 2).requires_grad_()
    seen: list[torch.Tensor] = []
    x.register_hook(seen.append)
    y = fp8_quantize(x)  # E4M3 forward, E5M2 backward
    assert torch.equal(y, fp8_cast(x.detach(), E4M3))
    upstream = torch.randn(512) * 1e-3
    y.backward(upstream)
    assert torch.equal(seen[0], fp8_cast(upstream, E5M2))
    assert not torch.equal(seen[0], upstream)
    assert torch.equal(x.grad, seen[0])


def test_forward_only_and_backward_only_casts() -> None:
    x = torch.randn(256, requires_grad=True)
    upstream = torch.randn(256)
    quantize_fwd(x).backward(upstream)
    assert torch.equal(x.grad, upstream)  # straight through
    x.grad = None
    y = quantize_bwd(x)
    assert torch.equal(y, x.detach())
    y.backward(upstream)
    assert torch.equal(x.grad, fp8_cast(upstream, E5M2))
    assert Fp8Quantize.apply(x, None, None) is not x  # a view, never the input itself


def test_fp8_matmul_rounds_operands_forward_and_output_gradient_backward() -> None:
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(8, 16, generator=gen).requires_grad_()
    w = torch.randn(4, 16, generator=gen).requires_grad_()
    dy = torch.randn(8, 4, generator=gen)
    y = fp8_matmul(F.linear, x, w)
    xq, wq, dyq = fp8_cast(x.detach()), fp8_cast(w.detach()), fp8_cast(dy, E5M2)
    assert torch.allclose(y, xq @ wq.T, rtol=1e-6, atol=1e-6)
    y.backward(dy)
    assert torch.allclose(x.grad, dyq @ wq, rtol=1e-6, atol=1e-6)
    assert torch.allclose(w.grad, dyq.T @ xq, rtol=1e-6, atol=1e-6)
    assert not torch.allclose(w.grad, dy.T @ x.detach(), rtol=1e-3, atol=1e-3)
