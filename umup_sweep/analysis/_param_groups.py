"""The target's effective learning rate and weight decay per parameter group, as
`recommended.yaml` lists them (the project's optimizer applied to the target's real shapes on
the meta device, tensors that differ only by layer index merged)."""

from __future__ import annotations

import re
from typing import Any

from umup_sweep.spec import ModelSpec

__all__ = ["group_name", "param_groups"]


def group_name(name: str) -> str:
    """Collapse layer indices: `blocks.3.attn.qkv.weight` → `blocks.*.attn.qkv.weight`.

    Example:
        >>> group_name("blocks.3.attn.qkv.weight")
        'blocks.*.attn.qkv.weight'
    """
    return re.sub(r"\.\d+(?=\.|$)", ".*", name)


def param_groups(spec: ModelSpec, lr: float, weight_decay: float) -> list[dict[str, Any]]:
    """Effective learning rate and weight decay per parameter group of the target model.

    The per-tensor values are `lr_table`'s (the project's optimizer on the target built on the
    meta device); tensors that differ only by layer index and share lr and weight decay are
    one group, listed in the optimizer's group order.

    Example:
        >>> groups = param_groups(ModelSpec(width=64, depth=2, head_dim=16), 0.5, 0.0)
        >>> groups[0]["params"], groups[0]["lr"], groups[0]["tensors"]
        ('embedding.weight', 0.0625, 1)
    """
    from umup_sweep.models import lr_table

    rows = lr_table(spec, lr=lr, weight_decay=weight_decay)
    merged: dict[tuple[str, float, float], dict[str, Any]] = {}
    first: dict[tuple[float, float], int] = {}  # optimizer group order: first appearance
    for row in rows:
        pattern, g_lr, g_wd = group_name(row["name"]), row["lr"], row["weight_decay"]
        first.setdefault((g_lr, g_wd), len(first))
        entry = merged.setdefault(
            (pattern, g_lr, g_wd),
            {
                "params": pattern,
                "role": row["role"],
                "shape": list(row["shape"]),
                "depth_scale": row["depth"],
                "tensors": 0,
                "lr": g_lr,
                "weight_decay": g_wd,
                "decay_per_step": g_lr * g_wd,
            },
        )
        entry["tensors"] += 1
    return sorted(merged.values(), key=lambda e: first[(e["lr"], e["weight_decay"])])
