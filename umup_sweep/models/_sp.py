"""The standard-parametrization (SP) control: the same architecture in plain PyTorch.

Init is GPT-2 style: every weight N(0, 0.02), the two residual output projections
N(0, 0.02/√(2·depth)); attention logits × 1/√d_head; one LR for every tensor. Norms stay
non-parametric (as in the u-μP proxy) so a comparison isolates the parametrization. The u-μP
multipliers of the spec are ignored.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from umup_sweep.models._base import ProxyModel
from umup_sweep.models._common import (
    RopeCache,
    apply_rope,
    causal_logit_rms,
    check_spec,
    make_norm,
    merge_heads,
    repeat_kv,
    split_heads,
)
from umup_sweep.spec import ModelSpec

INIT_STD = 0.02  # GPT-2 (Radford et al. 2019)


class SPAttention(nn.Module):
    """Plain causal self-attention (fused qkv, 1/√d_head logits); grouped-query attention
    (kv heads repeated for their query heads, after RoPE) when `spec.n_kv_heads` is set."""

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        self.n_heads, self.n_kv_heads = int(spec.n_heads or 0), spec.kv_heads
        self.head_dim = spec.width // self.n_heads
        qkv_features = (self.n_heads + 2 * self.n_kv_heads) * self.head_dim
        self.qkv = nn.Linear(spec.width, qkv_features, bias=False)
        self.out = nn.Linear(spec.width, spec.width, bias=False)
        self.rope = RopeCache(self.head_dim, spec.rope_base) if spec.pos == "rope" else None
        self.record_logits = False
        self.logit_rms: float | None = None

    def forward(self, x: Tensor) -> Tensor:
        q, k, v = split_heads(self.qkv(x), self.n_heads, self.n_kv_heads)
        if self.rope is not None:
            cos, sin = self.rope(x.shape[1], x.device, x.dtype)
            q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        k, v = repeat_kv(k, self.n_heads), repeat_kv(v, self.n_heads)
        if self.record_logits:
            self.logit_rms = causal_logit_rms(q, k, self.head_dim**-0.5)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.out(merge_heads(y))  # type: ignore[no-any-return]


class SPFFN(nn.Module):
    """Plain SwiGLU or GELU feed-forward block."""

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        hidden = spec.ffn_hidden
        self.up = nn.Linear(spec.width, hidden, bias=False)
        self.gate = nn.Linear(spec.width, hidden, bias=False) if spec.ffn == "swiglu" else None
        self.down = nn.Linear(hidden, spec.width, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        h = self.up(x) * F.silu(self.gate(x)) if self.gate is not None else F.gelu(self.up(x))
        return self.down(h)  # type: ignore[no-any-return]


class SPBlock(nn.Module):
    """Pre-norm block: x + attn(norm(x)), then x + ffn(norm(x))."""

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        self.attn_norm = make_norm(spec)
        self.attn = SPAttention(spec)
        self.ffn_norm = make_norm(spec)
        self.ffn = SPFFN(spec)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.attn_norm(x))
        return x + self.ffn(self.ffn_norm(x))  # type: ignore[no-any-return]


class SPTransformer(ProxyModel):
    """Decoder-only SP transformer proxy, same layout and names as `UmupTransformer`.

    Example:
        >>> import torch
        >>> model = SPTransformer(ModelSpec(width=64, depth=2, parametrization="sp"))
        >>> ids = torch.randint(0, 256, (2, 16))
        >>> abs(model.compute_loss(model(ids), ids).item() - 5.545) < 0.2  # ≈ log(256) at init
        True
    """

    parametrization = "sp"

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        check_spec(spec)
        self.spec = spec
        self.embedding = nn.Embedding(spec.vocab_size, spec.width)
        self.blocks = nn.ModuleList(SPBlock(spec) for _ in range(spec.depth))
        self.final_norm = make_norm(spec)
        self.readout = nn.Linear(spec.width, spec.vocab_size, bias=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """GPT-2 init: N(0, 0.02); residual output projections N(0, 0.02/√(2·depth))."""
        if self.readout.weight.device.type == "meta":
            return
        for name, p in self.named_parameters():
            std = INIT_STD
            if name.endswith(("attn.out.weight", "ffn.down.weight")):
                std = INIT_STD / (2 * self.spec.depth) ** 0.5
            nn.init.normal_(p, std=std)

    def forward(self, input_ids: Tensor) -> Tensor:
        x = self.embedding(input_ids)
        for block in self.blocks:
            x = block(x)
        return self.readout(self.final_norm(x))  # type: ignore[no-any-return]

    def compute_loss(self, logits: Tensor, targets: Tensor) -> Tensor:
        """Mean cross-entropy (nats)."""
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
