"""Unit-scaled functional ops: each returns unit-RMS outputs and input gradients at init.

Same maths as the u-μP reference library (`unit-scaling` 0.3.5, `unit_scaling.functional`),
written for speed: scales are folded into the smallest tensor an op touches (the weight of a
linear, the `v` of attention, one operand of a product) so no op adds a full-size pass over
activations where the reference adds two. Scaling formulas live in `rules.py`.

Every weight matmul goes through `linear` (the readout included), so the low-precision hook
of `_precision_hook` (`use_matmul_cast`) acts in one place; attention's own matmuls and
`matmul` stay in full precision.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from umup_sweep.core import rules
from umup_sweep.core._apply import apply
from umup_sweep.core._precision_hook import matmul_cast
from umup_sweep.core._scale import scale, scale_bwd, scale_fwd
from umup_sweep.core.constraints import apply_constraint


class _ScaledLinear(torch.autograd.Function):
    """y = s_out·(x Wᵀ + b); dx = s_gin·(dy W); dW = s_gw·(dyᵀ x); db = s_gw·Σdy.

    One fused op: every scale is the `alpha` of a GEMM (`torch.addmm`), so unit scaling adds
    no pass over any tensor. Under autocast the operands are cast here, and the backward pass
    runs in the same dtype. With a matmul cast installed (`use_matmul_cast`, e.g. by a
    simulated-FP8 precision policy) the inputs are rounded with `round_forward` and the incoming
    gradient with `round_backward`: the plain cast unit scaling makes possible.
    """

    generate_vmap_rule = True  # runs under `torch.vmap` (e.g. several trials fused into one)

    @staticmethod
    def forward(
        x: Tensor,
        weight: Tensor,
        bias: Tensor | None,
        s_out: float,
        s_gin: float,
        s_gw: float,
    ) -> tuple[Tensor, Tensor, Tensor]:
        # Returns (output, x, weight) as the matmul saw them (cast and rounded): the backward
        # pass needs those, and in the setup_context form only outputs reach the context.
        cast = matmul_cast()
        if cast is not None:
            x, weight = cast.round_forward(x), cast.round_forward(weight)
        device = x.device.type
        if torch.is_autocast_enabled(device):
            dtype = torch.get_autocast_dtype(device)
            x, weight = x.to(dtype), weight.to(dtype)
            bias = None if bias is None else bias.to(dtype)
        x2 = x.reshape(-1, x.shape[-1])
        if bias is None:
            out = torch.addmm(_zero(x2), x2, weight.t(), beta=0, alpha=s_out)
        else:
            out = torch.addmm(bias, x2, weight.t(), beta=s_out, alpha=s_out)
        # Views, never the inputs themselves (an autograd Function must not return them).
        return out.view(*x.shape[:-1], weight.shape[0]), x.view_as(x), weight.view_as(weight)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: tuple[Tensor, ...]) -> None:
        x, weight, bias, _, s_gin, s_gw = inputs
        _, x_used, w_used = output
        ctx.mark_non_differentiable(x_used, w_used)
        # Leave the gradients of those two extra outputs None: materialised, they would be
        # zero tensors of x's and the weight's shape, filled on every backward pass.
        ctx.set_materialize_grads(False)
        ctx.cast = matmul_cast()
        ctx.dtypes = (x.dtype, weight.dtype)
        ctx.save_for_backward(x_used, w_used)
        ctx.scales = (s_gin, s_gw)
        ctx.has_bias = bias is not None

    @staticmethod
    def backward(ctx: Any, grad: Tensor, *_unused: Any) -> tuple[Tensor | None, ...]:
        x, weight = ctx.saved_tensors
        if grad is None:  # the output was not used (grads are not materialised)
            return None, None, None, None, None, None
        if ctx.cast is not None:
            grad = ctx.cast.round_backward(grad)
        s_gin, s_gw = ctx.scales
        x_dtype, w_dtype = ctx.dtypes
        g2 = grad.to(x.dtype).reshape(-1, grad.shape[-1])
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_x = torch.addmm(_zero(g2), g2, weight, beta=0, alpha=s_gin)
            grad_x = grad_x.view(x.shape).to(x_dtype)
        if ctx.needs_input_grad[1]:
            x2 = x.reshape(-1, x.shape[-1])
            grad_w = torch.addmm(_zero(g2), g2.t(), x2, beta=0, alpha=s_gw).to(w_dtype)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_b = (g2.sum(0) * s_gw).to(w_dtype)
        return grad_x, grad_w, grad_b, None, None, None


def scaled_linear(
    x: Tensor, weight: Tensor, bias: Tensor | None, s_out: float, s_gin: float, s_gw: float
) -> Tensor:
    """The fused unit-scaled linear with explicit scales: s_out·(x Wᵀ + b) forward, s_gin and
    s_gw on the input and weight gradients (what `linear` and `LinearReadout` call).

    Example:
        >>> scaled_linear(torch.ones(1, 2), torch.ones(3, 2), None, 0.5, 1.0, 1.0).tolist()
        [[1.0, 1.0, 1.0]]
    """
    return apply(_ScaledLinear, x, weight, bias, s_out, s_gin, s_gw)[0]  # type: ignore[no-any-return]


_ZEROS: dict[tuple[torch.dtype, torch.device], Tensor] = {}


def _zero(like: Tensor) -> Tensor:
    # addmm's `input` when beta=0: ignored (NaN/inf in it do not propagate), broadcast free;
    # one per dtype and device, never written, so not allocated on every call.
    if torch.compiler.is_compiling():  # traced tensors must not be cached
        return torch.zeros((), dtype=like.dtype, device=like.device)
    key = (like.dtype, like.device)
    zero = _ZEROS.get(key)
    if zero is None:
        zero = _ZEROS[key] = torch.zeros((), dtype=like.dtype, device=like.device)
    return zero


def linear(
    input: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    constraint: str | None = "to_output_scale",
    scale_power: tuple[float, float, float] = (0.5, 0.5, 0.5),
    mult: float = 1.0,
    fwd_mult: float = 1.0,
    bwd_mult: float = 1.0,
) -> Tensor:
    """Unit-scaled `F.linear` for N(0,1) weights: output × fan_in^-½, grads × fan_out^-½, batch^-½.

    Args:
        input: (..., fan_in) activations.
        weight: (fan_out, fan_in) weight, initialised N(0, 1).
        bias: optional (fan_out,) bias.
        constraint: ties the output and input-gradient scales (`to_output_scale`, the
            default, keeps the forward pass exact); None leaves them free.
        scale_power: powers of (fan_in, fan_out, batch) for (output, grad input, grad weight).
        mult: an extra true multiplier (forward and backward) folded into the weight, so a
            neighbouring scalar product costs nothing.
        fwd_mult: an extra forward-only output multiplier (e.g. a residual branch weight).
        bwd_mult: an extra backward-only input-gradient multiplier (e.g. the residual split).
            Both are folded into weight-sized tensors: fusion hooks for the model.

    Example:
        >>> x, w = torch.randn(512, 256), torch.randn(128, 256)
        >>> round(linear(x, w).std().item(), 1)
        1.0
    """
    fan_out, fan_in = weight.shape
    batch = input.numel() // fan_in
    s_out, s_gin, s_gw = rules.linear_scales(fan_in, fan_out, batch, scale_power)
    s_out, s_gin = apply_constraint(constraint, s_out, s_gin)
    return scaled_linear(
        input, weight, bias, s_out * mult * fwd_mult, s_gin * mult * bwd_mult, s_gw * mult
    )


def linear_readout(
    input: Tensor, weight: Tensor, bias: Tensor | None = None, constraint: str | None = None
) -> Tensor:
    """Unit-scaled readout (LM head): output × 1/fan_in (μP), backward scales unconstrained.

    At init its output has RMS fan_in^-½ (not 1): the μP readout rule.

    Example:
        >>> x, w = torch.randn(512, 256), torch.randn(64, 256)
        >>> round(linear_readout(x, w).std().item() * 256**0.5, 1)
        1.0
    """
    return linear(input, weight, bias, constraint=constraint, scale_power=(1.0, 0.5, 0.5))


def matmul(left: Tensor, right: Tensor, constraint: str | None = "to_output_scale") -> Tensor:
    """Unit-scaled `torch.matmul` of two unit-normal tensors.

    Example:
        >>> round(matmul(torch.randn(256, 512), torch.randn(512, 256)).std().item(), 1)
        1.0
    """
    left_size, inner, right_size = left.shape[-2], left.shape[-1], right.shape[-1]
    s_out, s_left, s_right = apply_constraint(
        constraint, inner**-0.5, right_size**-0.5, left_size**-0.5
    )
    return scale_fwd(torch.matmul(scale_bwd(left, s_left), scale_bwd(right, s_right)), s_out)


def embedding(input: Tensor, weight: Tensor) -> Tensor:
    """Unit-scaled lookup: N(0,1) rows out; the table's gradient × √(vocab / tokens).

    Example:
        >>> embedding(torch.tensor([[0, 2]]), torch.randn(4, 8)).shape
        torch.Size([1, 2, 8])
    """
    s = rules.embedding_grad_scale(weight.shape[0], input.numel())
    return F.embedding(input, scale_bwd(weight, s))


def _scaled_elementwise(
    fn: Any,
    input: Tensor,
    out_scale: float,
    grad_scale: float,
    constraint: str | None,
    post: float = 1.0,
) -> Tensor:
    """s_out·post·fn(x) with dx scaled by s_grad (`post` is a true multiply, e.g. 1/mult).

    One multiply when the constraint ties the two scales (a true multiply has the same
    forward and backward scale).
    """
    out_scale, grad_scale = apply_constraint(constraint, out_scale, grad_scale)
    if out_scale == grad_scale:
        return fn(input) * (out_scale * post)
    return scale(fn(scale_bwd(input, grad_scale)), fwd=out_scale * post, bwd=post)


def gelu(input: Tensor, mult: float = 1.0, constraint: str | None = "to_output_scale") -> Tensor:
    """Unit-scaled GELU(mult·x)/mult.

    Example:
        >>> round(gelu(torch.randn(10**6)).std().item(), 1)
        1.0
    """
    out_scale, grad_scale = rules.gelu_scales(mult)
    if mult == 1.0:
        return _scaled_elementwise(F.gelu, input, out_scale, grad_scale, constraint)
    return _scaled_elementwise(
        lambda x: F.gelu(x * mult), input, out_scale, grad_scale, constraint, post=1 / mult
    )


def silu(input: Tensor, mult: float = 1.0, constraint: str | None = "to_output_scale") -> Tensor:
    """Unit-scaled SiLU with a gate multiplier: x·sigmoid(mult·x).

    Example:
        >>> round(silu(torch.randn(10**6)).std().item(), 1)
        1.0
    """
    out_scale, grad_scale = rules.silu_scales(mult)
    if mult == 1.0:
        return _scaled_elementwise(F.silu, input, out_scale, grad_scale, constraint)
    # x·sigmoid(mult·x) = silu(mult·x)/mult
    return _scaled_elementwise(
        lambda x: F.silu(x * mult), input, out_scale, grad_scale, constraint, post=1 / mult
    )


def silu_glu(input: Tensor, gate: Tensor, mult: float = 1.0) -> Tensor:
    """Unit-scaled SwiGLU product input·gate·sigmoid(mult·gate) (one scale, both passes).

    The scale multiplies `input` only: the product is linear in it, so forward and both
    gradients pick it up exactly as in the reference's scale_bwd/scale_fwd formulation.

    Example:
        >>> round(silu_glu(torch.randn(10**6), torch.randn(10**6)).std().item(), 1)
        1.0
    """
    s = rules.silu_glu_scale(mult)
    if mult == 1.0:
        return (input * s) * F.silu(gate)
    return (input * (s / mult)) * F.silu(gate * mult)


def softmax(
    input: Tensor, dim: int, mult: float = 1.0, constraint: str | None = "to_output_scale"
) -> Tensor:
    """Unit-scaled softmax(mult·x) along `dim` (output ~×n, so it is no longer a distribution).

    Example:
        >>> round(softmax(torch.randn(10**4, 64), dim=-1).pow(2).mean().sqrt().item(), 1)
        1.0
    """
    out_scale, grad_scale = rules.softmax_scales(input.shape[dim], mult)
    return _scaled_elementwise(
        lambda x: F.softmax(x * mult, dim=dim), input, out_scale, grad_scale, constraint
    )


def scaled_dot_product_attention(
    query: Tensor, key: Tensor, value: Tensor, is_causal: bool = False, mult: float = 1.0
) -> Tensor:
    """Unit-scaled attention on (..., seq, d_head) tensors: logits q·k·mult/d_head (μP).

    The output rescale is applied to `value` only: attention is linear in v, so s·attn(q,k,v)
    = attn(q,k,s·v) and the q, k, v gradients all pick up the same s, as in the reference.
    Uses `F.scaled_dot_product_attention` (flash/memory-efficient kernels where available).

    Example:
        >>> q, k, v = (torch.randn(4, 4, 128, 32) for _ in range(3))
        >>> 0.8 < scaled_dot_product_attention(q, k, v, is_causal=True).std().item() < 1.25
        True
    """
    seq_len, d_head = value.shape[-2], value.shape[-1]
    s = rules.attention_scale(seq_len, d_head, mult, is_causal)
    return F.scaled_dot_product_attention(
        query, key, value * s, is_causal=is_causal, scale=mult / d_head
    )


def rms_norm(input: Tensor, eps: float = 1e-5) -> Tensor:
    """Non-parametric RMSNorm over the last dim: x / √(mean(x²) + eps). Unit by construction.

    Example:
        >>> [round(v, 4) for v in rms_norm(torch.full((4,), 3.0)).tolist()]
        [1.0, 1.0, 1.0, 1.0]
    """
    return F.rms_norm(input, (input.shape[-1],), eps=eps)


def layer_norm(input: Tensor, eps: float = 1e-5) -> Tensor:
    """Non-parametric LayerNorm over the last dim. Unit by construction.

    Example:
        >>> [round(v, 4) for v in layer_norm(torch.tensor([1.0, -1.0])).tolist()]
        [1.0, -1.0]
    """
    return F.layer_norm(input, (input.shape[-1],), eps=eps)


class _ResidualAdd(torch.autograd.Function):
    """y = a·branch + b·skip in the forward pass; both gradients pass through unscaled."""

    generate_vmap_rule = True

    @staticmethod
    def forward(branch: Tensor, skip: Tensor, a: float, b: float) -> Tensor:
        return torch.add(branch * a, skip, alpha=b)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: Tensor) -> None:
        return None

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, Tensor, None, None]:
        return grad, grad, None, None


def residual_split(input: Tensor, tau: float = 1.0) -> tuple[Tensor, Tensor]:
    """Split `input` into (branch input, skip) before a tau-weighted residual branch.

    Identity forward; the backward weights the two gradients (tau, 1)/√(1+tau²) so the
    stream's gradient stays unit. Pair with `residual_add` using the same tau.

    Example:
        >>> r, s = residual_split(torch.ones(2), tau=1.0)
        >>> r.tolist(), s.tolist()
        ([1.0, 1.0], [1.0, 1.0])
    """
    a, b = rules.residual_coeffs(tau)
    return scale_bwd(input, a), scale_bwd(input, b)


def residual_add(residual: Tensor, skip: Tensor, tau: float = 1.0) -> Tensor:
    """Join a residual branch's output and the skip: (tau·residual + skip)/√(1+tau²) forward.

    Example:
        >>> residual_add(torch.ones(1), torch.zeros(1), tau=1.0).tolist()
        [0.7071067690849304]
    """
    a, b = rules.residual_coeffs(tau)
    return apply(_ResidualAdd, residual, skip, a, b)  # type: ignore[no-any-return]


def cross_entropy(
    input: Tensor,
    target: Tensor,
    mult: float = 1.0,
    reduction: str = "mean",
    ignore_index: int = -100,
) -> Tensor:
    """Unit-scaled cross-entropy of softmax(mult·logits); the value is the true mean CE (nats).

    Backward: the logit gradient is (softmax − one-hot)·V/√(V−1), not divided by the batch
    (reference semantics); `mult` scales the forward logits only.

    Args:
        input: (N, V) logits (or (V,)).
        target: (N,) class indices.
        mult: the loss softmax multiplier (u-μP `loss_softmax_mult`).
        reduction: "mean" or "sum".

    Example:
        >>> round(cross_entropy(torch.zeros(3, 4), torch.tensor([0, 1, 2])).item(), 4)
        1.3863
    """
    if input.dim() == 1:
        batch, vocab = 1, input.shape[0]
    elif input.dim() == 2:
        batch, vocab = input.shape
    else:
        raise ValueError(f"cross_entropy expects (N, V) or (V,) logits, got {tuple(input.shape)}")
    logits = scale(input, fwd=mult, bwd=rules.cross_entropy_grad_scale(vocab))
    loss = F.cross_entropy(logits, target, reduction="sum", ignore_index=ignore_index)
    if reduction == "mean":
        return scale_fwd(loss, 1 / batch)
    if reduction != "sum":
        raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
    return loss
