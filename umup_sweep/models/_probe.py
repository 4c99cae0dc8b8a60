"""Activation RMS per layer: the measurement behind a coord check (RMS vs width at init)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn


def _rms(t: Tensor) -> float:
    return float(t.detach().float().pow(2).mean().sqrt())


@torch.no_grad()
def activation_rms(model: nn.Module, input_ids: Tensor) -> dict[str, float]:
    """RMS of the embedding output, each block's output, each layer's attention logits
    (causal entries only) and the output logits, for one forward pass.

    Keys: `embedding`, `block_<i>`, `attn_logits_<i>`, `logits`. Works for both
    parametrizations (they share module names).

    Example:
        >>> from umup_sweep.models import build_model
        >>> from umup_sweep.spec import ModelSpec
        >>> stats = activation_rms(build_model(ModelSpec(width=64, depth=2)),
        ...                        torch.randint(0, 256, (2, 32)))
        >>> sorted(stats)
        ['attn_logits_0', 'attn_logits_1', 'block_0', 'block_1', 'embedding', 'logits']
    """
    out: dict[str, float] = {}
    handles: list[Any] = []

    def hook(name: str) -> Any:
        def fn(module: nn.Module, args: Any, output: Tensor) -> None:
            out[name] = _rms(output)

        return fn

    blocks = list(model.blocks)  # type: ignore[arg-type]
    handles.append(model.embedding.register_forward_hook(hook("embedding")))  # type: ignore[union-attr]
    for i, block in enumerate(blocks):
        handles.append(block.register_forward_hook(hook(f"block_{i}")))
        block.attn.record_logits = True
    try:
        out["logits"] = _rms(model(input_ids))
    finally:
        for h in handles:
            h.remove()
        for block in blocks:
            block.attn.record_logits = False
    for i, block in enumerate(blocks):
        out[f"attn_logits_{i}"] = float(block.attn.logit_rms)
    return dict(sorted(out.items()))
