"""u-μP per-tensor learning rates and lr-independent weight decay, for AdamW and SGD.

The rules (u-μP paper Table 2 / reference library `unit_scaling.optim`, Adam column):
hidden weights lr·fan_in^-½, embedding lr·d_model^-½ (the reference treats the table's
row size as its fan-in), bias/norm/readout lr; every parameter inside the residual stack
× depth^-½ (depth = number of blocks). Weight decay is independent: each tensor's decay
per step is `weight_decay` × the schedule factor, whatever its (peak) LR.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Literal

import torch
from torch import Tensor, nn

from umup_sweep.core.parameter import Role, has_role

OptimizerName = Literal["adamw", "sgd"]


def fan_in(shape: Sequence[int]) -> int:
    """Fan-in as the LR rules use it: the last dim of a 2-D tensor (d_model for an embedding).

    Example:
        >>> fan_in((256, 64)), fan_in((64,))
        (64, 64)
    """
    if len(shape) == 1:
        return int(shape[0])
    if len(shape) == 2:
        return int(shape[1])
    if len(shape) == 3:
        return int(shape[1] * shape[2])
    raise ValueError(f"cannot get the fan-in of a {len(shape)}-d parameter {tuple(shape)}")


def lr_scale_for_depth(depth: int | None) -> float:
    """depth^-½ for parameters inside a residual stack of `depth` blocks, 1 outside.

    Example:
        >>> lr_scale_for_depth(4), lr_scale_for_depth(None)
        (0.5, 1.0)
    """
    return 1.0 if depth is None else depth**-0.5


def lr_scale_adam(role: Role, fan_in: int, depth: int | None = None) -> float:
    """Adam/AdamW LR multiplier of one tensor (multiply the global lr by it).

    Args:
        role: the parameter's u-μP role.
        fan_in: its fan-in (for an embedding: d_model).
        depth: residual-stack depth it lives in, or None.

    Example:
        >>> lr_scale_adam("weight", fan_in=4096, depth=16)
        0.00390625
        >>> lr_scale_adam("readout", fan_in=4096)
        1.0
    """
    scale = lr_scale_for_depth(depth)
    if role in ("weight", "embedding"):
        return scale * fan_in**-0.5
    if role in ("bias", "norm", "readout"):
        return scale
    raise ValueError(f"unknown role {role!r}")


def lr_scale_sgd(role: Role, fan_in: int, depth: int | None = None) -> float:
    """SGD LR multiplier: the Adam rule, because our readout's backward is unconstrained.

    With unconstrained readout gradients every gradient is unit-scaled, so SGD updates are
    unit-scaled like Adam's (reference `lr_scale_func_sgd(readout_constraint=None)`).

    Example:
        >>> lr_scale_sgd("weight", fan_in=64)
        0.125
    """
    return lr_scale_adam(role, fan_in, depth)


def param_lr_scale(param: Tensor, optimizer: OptimizerName = "adamw") -> float:
    """LR multiplier of a tagged parameter under the named optimizer's rule.

    Example:
        >>> from umup_sweep.core.parameter import ScaledParameter
        >>> param_lr_scale(ScaledParameter(torch.zeros(8, 64), "weight", depth_scale=4))
        0.0625
    """
    rule = lr_scale_sgd if optimizer == "sgd" else lr_scale_adam
    return rule(param.role, fan_in(param.shape), param.depth_scale)  # type: ignore[attr-defined]


def independent_weight_decay(weight_decay: float, lr: float) -> float:
    """The `weight_decay` to give torch's AdamW so the decay per step is `weight_decay`.

    torch decays by lr·wd per step, so wd/lr makes the decay independent of the peak LR
    (it still follows the LR schedule, as in the reference library).

    Example:
        >>> independent_weight_decay(0.1, 0.5)
        0.2
    """
    return 0.0 if weight_decay == 0 or lr == 0 else weight_decay / lr


def scaled_param_groups(
    params: nn.Module | Iterable[Tensor],
    lr: float,
    weight_decay: float = 0.0,
    optimizer: OptimizerName = "adamw",
    independent_weight_decay_: bool = True,
    allow_unscaled: bool = False,
) -> list[dict[str, Any]]:
    """Optimizer param groups with u-μP per-tensor LRs; tensors with equal LRs share a group.

    Args:
        params: a module (its parameters, named in errors) or an iterable of parameters.
        lr: the global learning rate η.
        weight_decay: decay per step (independent of lr) or torch's coupled value.
        optimizer: which LR rule ("adamw" or "sgd").
        independent_weight_decay_: divide weight decay by each tensor's LR (reference default).
        allow_unscaled: give untagged parameters the plain lr instead of raising.

    Each group carries `lr`, `weight_decay` and `lr_scale` (the multiplier of η).

    Example:
        >>> from umup_sweep.core.layers import Linear
        >>> [g["lr"] for g in scaled_param_groups(Linear(64, 8), lr=1.0)]
        [0.125]
    """
    named = (
        list(params.named_parameters())
        if isinstance(params, nn.Module)
        else [(f"#{i} {tuple(p.shape)}", p) for i, p in enumerate(params)]
    )
    groups: dict[tuple[float, float], dict[str, Any]] = {}
    for name, p in named:
        if not p.requires_grad:
            continue
        if has_role(p):
            s = param_lr_scale(p, optimizer)
        elif allow_unscaled:
            s = 1.0
        else:
            raise ValueError(
                f"parameter {name} has no u-μP role (use umup_sweep.core layers, "
                "or pass allow_unscaled=True to give it the plain lr)"
            )
        p_lr = lr * s
        wd = (
            independent_weight_decay(weight_decay, p_lr)
            if independent_weight_decay_
            else weight_decay
        )
        group = groups.setdefault(
            (p_lr, wd), {"params": [], "lr": p_lr, "weight_decay": wd, "lr_scale": s}
        )
        group["params"].append(p)
    return list(groups.values())


class AdamW(torch.optim.AdamW):
    """torch AdamW with u-μP per-tensor LRs and lr-independent weight decay.

    Example:
        >>> from umup_sweep.core.layers import Linear
        >>> opt = AdamW(Linear(16, 4).parameters(), lr=1.0)
        >>> opt.param_groups[0]["lr"]
        0.25
    """

    def __init__(
        self,
        params: nn.Module | Iterable[Tensor],
        lr: float = 1.0,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        independent_weight_decay: bool = True,
        allow_unscaled: bool = False,
        **kwargs: Any,
    ) -> None:
        groups = scaled_param_groups(
            params, lr, weight_decay, "adamw", independent_weight_decay, allow_unscaled
        )
        super().__init__(groups, lr=lr, betas=betas, eps=eps, **kwargs)


class SGD(torch.optim.SGD):
    """torch SGD with u-μP per-tensor LRs and lr-independent weight decay.

    Example:
        >>> from umup_sweep.core.layers import Linear
        >>> SGD(Linear(16, 4).parameters(), lr=1.0).param_groups[0]["lr"]
        0.25
    """

    def __init__(
        self,
        params: nn.Module | Iterable[Tensor],
        lr: float = 1.0,
        weight_decay: float = 0.0,
        independent_weight_decay: bool = True,
        allow_unscaled: bool = False,
        **kwargs: Any,
    ) -> None:
        groups = scaled_param_groups(
            params, lr, weight_decay, "sgd", independent_weight_decay, allow_unscaled
        )
        super().__init__(groups, lr=lr, **kwargs)
