"""Thin `nn.Module` wrappers over the unit-scaled functional ops.

Each layer owns its parameters, initialises them N(0, 1) (u-μP: the scale lives in the op)
and tags them with their u-μP role; `DepthStack` tags everything inside a residual stack
with its depth. Mirrors `unit_scaling`'s module layer, with non-parametric norms and no
biases by default.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor, nn

from umup_sweep.core import functional as U
from umup_sweep.core import rules
from umup_sweep.core.constraints import apply_constraint
from umup_sweep.core.parameter import Role, ScaledParameter, tag_depth


def _normal(shape: tuple[int, ...], role: Role) -> ScaledParameter:
    data = torch.empty(shape)
    if data.device.type != "meta":
        nn.init.normal_(data)
    return ScaledParameter(data, role=role)


class Linear(nn.Module):
    """Unit-scaled linear layer (no bias): N(0,1) weight, output × fan_in^-½.

    Args:
        in_features, out_features: sizes.
        constraint: see `functional.linear` (`to_output_scale` or None).
        mult, fwd_mult, bwd_mult: extra multipliers folded into the op's scales (free): true,
            forward-only (output) and backward-only (input gradient); see `functional.linear`.

    Example:
        >>> Linear(8, 4)(torch.randn(2, 8)).shape
        torch.Size([2, 4])
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        constraint: str | None = "to_output_scale",
        mult: float = 1.0,
        fwd_mult: float = 1.0,
        bwd_mult: float = 1.0,
    ) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.constraint = constraint
        self.mult, self.fwd_mult, self.bwd_mult = mult, fwd_mult, bwd_mult
        self.weight = _normal((out_features, in_features), "weight")

    def forward(self, input: Tensor) -> Tensor:
        return U.linear(
            input,
            self.weight,
            None,
            self.constraint,
            mult=self.mult,
            fwd_mult=self.fwd_mult,
            bwd_mult=self.bwd_mult,
        )

    def extra_repr(self) -> str:
        extra = [
            f"{k}={v:.4g}"
            for k, v in (
                ("mult", self.mult),
                ("fwd_mult", self.fwd_mult),
                ("bwd_mult", self.bwd_mult),
            )
            if v != 1.0
        ]
        return ", ".join(
            [f"{self.in_features}, {self.out_features}", f"constraint={self.constraint}"] + extra
        )


class LinearReadout(Linear):
    """Unit-scaled readout (LM head): output × 1/fan_in (μP), weight role `readout`.

    Example:
        >>> LinearReadout(8, 4).weight.role
        'readout'
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        constraint: str | None = None,
        fwd_mult: float = 1.0,
        grad_mult: float = 1.0,
    ) -> None:
        super().__init__(in_features, out_features, constraint, fwd_mult=fwd_mult)
        # grad_mult: a backward-only scale on the output's gradient (so on both the input and
        # the weight gradient), e.g. the unit-scaled cross-entropy's V/√(V-1) folded in here.
        self.grad_mult = grad_mult
        self.weight = _normal((out_features, in_features), "readout")

    def forward(self, input: Tensor) -> Tensor:
        fan_out, fan_in = self.weight.shape
        batch = input.numel() // fan_in
        s_out, s_gin, s_gw = rules.linear_scales(fan_in, fan_out, batch, (1.0, 0.5, 0.5))
        s_out, s_gin = apply_constraint(self.constraint, s_out, s_gin)
        return U.scaled_linear(
            input,
            self.weight,
            None,
            s_out * self.fwd_mult,
            s_gin * self.grad_mult,
            s_gw * self.grad_mult,
        )


class Embedding(nn.Module):
    """Unit-scaled embedding table, N(0,1) rows, role `embedding`.

    Example:
        >>> Embedding(10, 4)(torch.tensor([[1, 2]])).shape
        torch.Size([1, 2, 4])
    """

    def __init__(self, num_embeddings: int, embedding_dim: int) -> None:
        super().__init__()
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        self.weight = _normal((num_embeddings, embedding_dim), "embedding")

    def forward(self, input: Tensor) -> Tensor:
        return U.embedding(input, self.weight)

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}"


class RMSNorm(nn.Module):
    """Non-parametric RMSNorm over the last dim.

    Example:
        >>> RMSNorm()(torch.full((1, 4), 2.0)).round().tolist()
        [[1.0, 1.0, 1.0, 1.0]]
    """

    def __init__(self, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, input: Tensor) -> Tensor:
        return U.rms_norm(input, self.eps)


class LayerNorm(nn.Module):
    """Non-parametric LayerNorm over the last dim.

    Example:
        >>> LayerNorm()(torch.tensor([[3.0, 1.0]])).round().tolist()
        [[1.0, -1.0]]
    """

    def __init__(self, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, input: Tensor) -> Tensor:
        return U.layer_norm(input, self.eps)


class GELU(nn.Module):
    """Unit-scaled GELU(mult·x)/mult.

    Example:
        >>> GELU(mult=2.0)(torch.zeros(3)).tolist()
        [0.0, 0.0, 0.0]
    """

    def __init__(self, mult: float = 1.0, constraint: str | None = "to_output_scale") -> None:
        super().__init__()
        self.mult, self.constraint = mult, constraint

    def forward(self, input: Tensor) -> Tensor:
        return U.gelu(input, self.mult, self.constraint)


class SiLU(nn.Module):
    """Unit-scaled x·sigmoid(mult·x).

    Example:
        >>> SiLU()(torch.zeros(2)).tolist()
        [0.0, 0.0]
    """

    def __init__(self, mult: float = 1.0, constraint: str | None = "to_output_scale") -> None:
        super().__init__()
        self.mult, self.constraint = mult, constraint

    def forward(self, input: Tensor) -> Tensor:
        return U.silu(input, self.mult, self.constraint)


class Softmax(nn.Module):
    """Unit-scaled softmax(mult·x) along `dim`.

    Example:
        >>> Softmax(dim=-1)(torch.zeros(1, 4)).shape
        torch.Size([1, 4])
    """

    def __init__(self, dim: int, mult: float = 1.0) -> None:
        super().__init__()
        self.dim, self.mult = dim, mult

    def forward(self, input: Tensor) -> Tensor:
        return U.softmax(input, self.dim, self.mult)


class CrossEntropyLoss(nn.Module):
    """Unit-scaled cross-entropy with the u-μP loss softmax multiplier.

    Example:
        >>> round(CrossEntropyLoss()(torch.zeros(2, 4), torch.tensor([0, 1])).item(), 4)
        1.3863
    """

    def __init__(self, mult: float = 1.0) -> None:
        super().__init__()
        self.mult = mult

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return U.cross_entropy(input, target, self.mult)


class DepthStack(nn.ModuleList):
    """A `ModuleList` of residual blocks that tags every parameter inside with the stack depth.

    The depth is the number of blocks (the reference library's `DepthSequential` rule); the
    optimizer multiplies these parameters' LRs by depth^-½.

    Example:
        >>> stack = DepthStack([Linear(4, 4), Linear(4, 4)])
        >>> stack[0].weight.depth_scale
        2
    """

    def __init__(self, modules: Iterable[nn.Module]) -> None:
        super().__init__(modules)
        tag_depth(self, len(self))
