"""`ProxyModel`: what every proxy exposes (one small base, one implementation per module)."""

from __future__ import annotations

from typing import ClassVar, Literal

from torch import Tensor, nn

from umup_sweep.spec import ModelSpec


class ProxyModel(nn.Module):
    """A decoder-only LM proxy: `forward(input_ids[B,T]) -> logits[B,T,V]` plus its loss.

    Subclasses set `parametrization` and implement `forward` and `compute_loss`; the
    sub-modules `embedding`, `blocks[i].attn` and `readout` are what `activation_rms` probes.
    """

    parametrization: ClassVar[Literal["umup", "sp"]]
    spec: ModelSpec
    blocks: nn.ModuleList

    def compute_loss(self, logits: Tensor, targets: Tensor) -> Tensor:
        """Mean cross-entropy in nats of `logits` [B,T,V] against `targets` [B,T]."""
        raise NotImplementedError
