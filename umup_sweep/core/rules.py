"""Named u-μP scaling formulas: pure functions of shapes and multipliers, no tensors.

Every constant here comes from the u-μP paper (arXiv 2407.17465) and its reference library
`unit-scaling` 0.3.5; the docstring of each says which op it belongs to. Keeping them pure lets
the ops, the tests and the recommendation code (per-tensor LRs for a model never built) share
one definition.
"""

from __future__ import annotations

import math
from collections.abc import Callable

ResidualScalingFn = Callable[[int, int], float]


def logarithmic_interpolation(alpha: float, lower: float, upper: float) -> float:
    """Interpolate from `lower` (alpha=0) to `upper` (alpha=1) with constant ratio steps.

    Example:
        >>> round(logarithmic_interpolation(0.5, 1e-3, 1e-1), 6)
        0.01
    """
    return math.exp(alpha * math.log(upper) + (1 - alpha) * math.log(lower))


def _sigmoid_log(x: float) -> float:
    # sigmoid(log(x)) = x / (1 + x): the blend weight of the reference's empirical models.
    return 1 / (1 + 1 / x)


def linear_scales(
    fan_in: int, fan_out: int, batch: int, power: tuple[float, float, float] = (0.5, 0.5, 0.5)
) -> tuple[float, float, float]:
    """(output, grad input, grad weight) scales of a unit-scaled matmul `x @ W.T`.

    Unit-normal x and W give outputs of RMS √fan_in, input grads √fan_out, weight grads √batch
    (unit-scaling paper, Table 2). The readout uses power (1, ½, ½): its output is ×1/fan_in (μP).

    Example:
        >>> linear_scales(64, 16, 100)
        (0.125, 0.25, 0.1)
    """
    return fan_in ** -power[0], fan_out ** -power[1], batch ** -power[2]


def gelu_scales(mult: float) -> tuple[float, float]:
    """(output, grad input) scales of GELU(mult·x)/mult: the reference's empirical model.

    Example:
        >>> [round(s, 4) for s in gelu_scales(1.0)]
        [1.7668, 1.5157]
    """
    alpha = _sigmoid_log(4 * mult**2)
    out = logarithmic_interpolation(alpha, 2.0, (2 / (1 - 1 / math.pi)) ** 0.5)
    grad = logarithmic_interpolation(alpha, 2.0, 2**0.5)
    return out, grad


def silu_scales(mult: float) -> tuple[float, float]:
    """(output, grad input) scales of x·sigmoid(mult·x): the reference's empirical model.

    Example:
        >>> [round(s, 4) for s in silu_scales(1.0)]
        [1.7668, 1.6818]
    """
    out = logarithmic_interpolation(_sigmoid_log(4 * mult**2), 2.0, (2 / (1 - 1 / math.pi)) ** 0.5)
    grad = logarithmic_interpolation(_sigmoid_log(mult**2), 2.0, 2**0.5)
    return out, grad


def silu_glu_scale(mult: float) -> float:
    """Single (forward = backward) scale of the SwiGLU product x·silu(gate) (reference model).

    Example:
        >>> round(silu_glu_scale(1.0), 4)
        1.6818
    """
    return logarithmic_interpolation(_sigmoid_log(mult**2), 2.0, 2**0.5)


def softmax_scales(dim_size: int, mult: float) -> tuple[float, float]:
    """(output, grad input) scales of softmax(mult·x) over `dim_size` entries.

    Interpolates between the flat limit (output ×n) and the one-hot limit (×√n) by mult.

    Example:
        >>> [round(s, 3) for s in softmax_scales(16, 2.0)]
        [8.0, 4.757]
    """
    alpha = _sigmoid_log(mult**2 / 4)
    out = logarithmic_interpolation(alpha, dim_size, dim_size**0.5)
    grad = logarithmic_interpolation(alpha, dim_size / mult, (dim_size / mult) ** 0.5)
    return out, grad


def attention_scale(seq_len: int, d_head: int, mult: float, causal: bool) -> float:
    """Scale (forward = backward) that brings dot-product attention's output back to unit RMS.

    Logits are q·k·mult/d_head (μP); the output of attention averages ~seq_len values, so its
    RMS falls towards √(log(S)/S) (causal) or √(1/S) as mult → 0 and reaches 1 as the attention
    becomes one-hot (reference library's empirical model).

    Example:
        >>> round(attention_scale(128, 32, 1.0, causal=True), 3)
        5.071
    """
    alpha = _sigmoid_log(mult**2 / (4 * d_head))
    lower = ((math.log(seq_len) if causal else 1.0) / seq_len) ** 0.5
    return 1 / logarithmic_interpolation(alpha, lower, 1.0)


def cross_entropy_grad_scale(vocab_size: int) -> float:
    """Backward scale of the logits in unit-scaled cross-entropy: V/√(V-1).

    softmax − one-hot has RMS √(V-1)/V per row at init, so this makes the logit gradient unit.

    Example:
        >>> round(cross_entropy_grad_scale(257), 4)
        16.0625
    """
    return vocab_size / (vocab_size - 1) ** 0.5


def embedding_grad_scale(vocab_size: int, n_tokens: int) -> float:
    """Backward scale of the embedding table: √(V / tokens) (each row is hit ~tokens/V times).

    Example:
        >>> embedding_grad_scale(256, 1024)
        0.5
    """
    return (vocab_size / n_tokens) ** 0.5


def residual_coeffs(tau: float) -> tuple[float, float]:
    """(branch, skip) weights of a tau-weighted residual: (tau, 1)/√(1+tau²), unit variance.

    Example:
        >>> [round(c, 4) for c in residual_coeffs(1.0)]
        [0.7071, 0.7071]
    """
    denom = (1 + tau**2) ** 0.5
    return tau / denom, 1 / denom


def transformer_residual_scaling_rule(
    residual_mult: float = 1.0, residual_attn_ratio: float = 1.0
) -> ResidualScalingFn:
    """The u-μP residual rule (paper Appendix G): `tau(index, layers)` for each residual branch.

    Branches alternate attention (even index) and FFN (odd); `layers` counts branches (2 per
    transformer block). Every attention branch contributes equally, every FFN branch too, the
    branches together contribute `residual_mult`² times the embedding's variance, and attention
    contributes `residual_attn_ratio`² times what the FFN does.

    Example:
        >>> rule = transformer_residual_scaling_rule()
        >>> round(rule(0, 4), 4), round(rule(1, 4), 4)
        (0.7071, 0.5774)
    """
    alpha_mlp = residual_mult * (2 / (1 + residual_attn_ratio**2)) ** 0.5
    alpha_attn = residual_attn_ratio * alpha_mlp

    def tau(index: int, layers: int) -> float:
        n_attn = (index + 1) // 2
        n_mlp = index // 2
        alpha = alpha_attn if index % 2 == 0 else alpha_mlp
        return float(alpha / (layers / 2 + n_attn * alpha_attn**2 + n_mlp * alpha_mlp**2) ** 0.5)

    return tau


def residual_taus(
    depth: int, residual_mult: float = 1.0, residual_attn_ratio: float = 1.0
) -> list[tuple[float, float]]:
    """(attention tau, FFN tau) for each of `depth` transformer blocks.

    Example:
        >>> [tuple(round(t, 4) for t in pair) for pair in residual_taus(1)]
        [(1.0, 0.7071)]
    """
    rule = transformer_residual_scaling_rule(residual_mult, residual_attn_ratio)
    return [(rule(2 * i, 2 * depth), rule(2 * i + 1, 2 * depth)) for i in range(depth)]
