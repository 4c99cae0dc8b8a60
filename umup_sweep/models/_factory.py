"""`ModelSpec` → proxy model, its optimizer, its size, and its per-tensor LR table."""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import nn

from umup_sweep.core import SGD, AdamW, fan_in, has_role
from umup_sweep.models._base import ProxyModel
from umup_sweep.models._sp import SPTransformer
from umup_sweep.models._umup import UmupTransformer
from umup_sweep.spec import ModelSpec


def build_model(spec: ModelSpec) -> ProxyModel:
    """Build the proxy a spec describes: `forward(input_ids[B,T]) -> logits[B,T,V]`.

    Works under `with torch.device("meta"):` (no memory, no init) for shape/LR queries.

    Example:
        >>> model = build_model(ModelSpec(width=64, depth=1))
        >>> model(torch.zeros(1, 8, dtype=torch.long)).shape
        torch.Size([1, 8, 256])
    """
    if spec.parametrization == "umup":
        return UmupTransformer(spec)
    if spec.parametrization == "sp":
        return SPTransformer(spec)
    raise ValueError(f"parametrization must be 'umup' or 'sp', got {spec.parametrization!r}")


def make_optimizer(
    model: nn.Module,
    lr: float,
    weight_decay: float = 0.0,
    optimizer: Literal["adamw", "sgd"] = "adamw",
    betas: tuple[float, float] = (0.9, 0.95),
    eps: float = 1e-8,
) -> torch.optim.Optimizer:
    """The optimizer the model's parametrization prescribes.

    u-μP: per-tensor LRs (hidden weights lr·fan_in^-½, embedding lr·width^-½, readout lr,
    × depth^-½ inside the residual stack) and lr-independent weight decay. SP: one lr for
    every tensor, torch's (lr-coupled) weight decay. For "sgd", momentum = betas[0].

    Example:
        >>> model = build_model(ModelSpec(width=64, depth=2))
        >>> sorted({g["lr"] for g in make_optimizer(model, lr=1.0).param_groups})
        [0.04419417382415922, 0.08838834764831845, 0.125, 1.0]
    """
    if optimizer not in ("adamw", "sgd"):
        raise ValueError(f"optimizer must be 'adamw' or 'sgd', got {optimizer!r}")
    if getattr(model, "parametrization", "umup") == "sp":
        if optimizer == "sgd":
            return torch.optim.SGD(
                model.parameters(), lr=lr, momentum=betas[0], weight_decay=weight_decay
            )
        return torch.optim.AdamW(
            model.parameters(), lr=lr, betas=betas, eps=eps, weight_decay=weight_decay
        )
    if optimizer == "sgd":
        return SGD(model, lr=lr, momentum=betas[0], weight_decay=weight_decay)
    return AdamW(model, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)


def count_params(model: nn.Module) -> int:
    """Number of trainable scalars (works on the meta device).

    Example:
        >>> count_params(build_model(ModelSpec(width=64, depth=1, ffn_ratio=4)))
        98304
    """
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def lr_table(
    spec: ModelSpec,
    lr: float = 1.0,
    weight_decay: float = 0.0,
    optimizer: Literal["adamw", "sgd"] = "adamw",
) -> list[dict[str, Any]]:
    """Per-parameter effective LR and weight decay for a spec, without allocating it.

    Builds the model on the meta device (so a 4096-wide, 32-deep target costs nothing) and
    reads each tensor's group from `make_optimizer`'s param groups: exactly what training
    would use. Each row: name, role, shape, fan_in, depth, lr_scale, lr, weight_decay (what
    torch's optimizer is given; with u-μP the decay per step equals the `weight_decay`
    argument).

    Example:
        >>> rows = lr_table(ModelSpec(width=4096, depth=32, head_dim=128), lr=0.5)
        >>> [(r["name"], r["lr"]) for r in rows][:2]
        [('embedding.weight', 0.0078125), ('blocks.0.attn.qkv.weight', 0.0013810679320049757)]
    """
    with torch.device("meta"):
        model = build_model(spec)
    opt = make_optimizer(model, lr=lr, weight_decay=weight_decay, optimizer=optimizer)
    group_of = {id(p): group for group in opt.param_groups for p in group["params"]}
    rows = []
    for name, p in model.named_parameters():
        group = group_of[id(p)]
        tagged = spec.parametrization != "sp" and has_role(p)
        rows.append(
            {
                "name": name,
                "role": p.role if tagged else None,  # type: ignore[attr-defined]
                "shape": tuple(p.shape),
                "fan_in": fan_in(p.shape),
                "depth": p.depth_scale if tagged else None,  # type: ignore[attr-defined]
                "lr_scale": float(group.get("lr_scale", 1.0)),
                "lr": float(group["lr"]),
                "weight_decay": float(group.get("weight_decay", 0.0)),
            }
        )
    return rows
