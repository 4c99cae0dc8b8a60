"""Separate forward and backward scales: the primitive every unit-scaled op is built from.

Unit scaling gives each op a forward scale (so its output has RMS ≈ 1) and a backward scale
(so its input gradients have RMS ≈ 1); the two differ, so they cannot be a plain multiply.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from umup_sweep.core._apply import apply


class _Scale(torch.autograd.Function):
    """y = fwd · x in the forward pass, dx = bwd · dy in the backward pass.

    In the `setup_context` form with a generated vmap rule, so it also runs under
    `torch.vmap` (e.g. several trials fused into one).
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(x: Tensor, fwd: float, bwd: float) -> Tensor:
        # A view (not a copy) when the forward pass is the identity.
        return x.view_as(x) if fwd == 1.0 else x * fwd

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: Tensor) -> None:
        ctx.bwd = inputs[2]

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None, None]:
        return (grad if ctx.bwd == 1.0 else grad * ctx.bwd), None, None


def scale(x: Tensor, fwd: float = 1.0, bwd: float = 1.0) -> Tensor:
    """Multiply `x` by `fwd` in the forward pass and its gradient by `bwd` in the backward pass.

    Example:
        >>> x = torch.ones(2, requires_grad=True)
        >>> scale(x, fwd=3.0, bwd=0.5).sum().backward()
        >>> x.grad.tolist()
        [0.5, 0.5]
    """
    if fwd == 1.0 and bwd == 1.0:
        return x
    return apply(_Scale, x, fwd, bwd)  # type: ignore[no-any-return]


def scale_fwd(x: Tensor, s: float) -> Tensor:
    """Multiply by `s` in the forward pass only (the gradient passes unchanged).

    Example:
        >>> scale_fwd(torch.ones(2), 2.0).tolist()
        [2.0, 2.0]
    """
    return scale(x, fwd=s)


def scale_bwd(x: Tensor, s: float) -> Tensor:
    """Identity in the forward pass; multiply the gradient by `s` in the backward pass.

    Example:
        >>> x = torch.ones(2, requires_grad=True)
        >>> scale_bwd(x, 4.0).sum().backward()
        >>> x.grad.tolist()
        [4.0, 4.0]
    """
    return scale(x, bwd=s)
