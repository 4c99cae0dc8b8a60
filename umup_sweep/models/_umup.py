"""The u-μP proxy: a pre-norm causal decoder built from the unit-scaled core.

Embedding → `depth` blocks of (norm → attention, norm → FFN), each branch joined to the
stream with its u-μP residual tau → final norm → μP readout. Laid out like the reference
library's `TransformerDecoder` (same fused qkv layout, same residual split/add order), with
RoPE, a GELU option and the five u-μP multipliers wired to their ops.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from umup_sweep.core import (
    DepthStack,
    Embedding,
    Linear,
    LinearReadout,
    param_tags,
    restore_tags,
    rules,
)
from umup_sweep.core import functional as U
from umup_sweep.models._common import (
    RopeCache,
    apply_rope,
    causal_logit_rms,
    check_spec,
    make_norm,
    merge_heads,
    split_heads,
)
from umup_sweep.spec import ModelSpec


class UmupAttention(nn.Module):
    """Causal multi-head self-attention: unit-scaled qkv/out projections, logits × mult/d_head.

    Example:
        >>> import torch
        >>> attn = UmupAttention(ModelSpec(width=64, head_dim=32))
        >>> attn(torch.randn(2, 8, 64)).shape
        torch.Size([2, 8, 64])
    """

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        self.n_heads = int(spec.n_heads or spec.width // spec.head_dim)
        self.head_dim = spec.width // self.n_heads
        self.mult = spec.attn_softmax_mult
        self.qkv = Linear(spec.width, 3 * spec.width)
        self.out = Linear(spec.width, spec.width)
        self.rope = RopeCache(self.head_dim) if spec.pos == "rope" else None
        self.record_logits = False  # set by `activation_rms`
        self.logit_rms: float | None = None

    def forward(self, x: Tensor) -> Tensor:
        q, k, v = split_heads(self.qkv(x), self.n_heads)
        if self.rope is not None:
            cos, sin = self.rope(x.shape[1], x.device, x.dtype)
            q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        if self.record_logits:
            self.logit_rms = causal_logit_rms(q, k, self.mult / self.head_dim)
        y = U.scaled_dot_product_attention(q, k, v, is_causal=True, mult=self.mult)
        return self.out(merge_heads(y))  # type: ignore[no-any-return]


class UmupFFN(nn.Module):
    """SwiGLU (up · silu(gate) → down) or GELU (up → gelu → down) with unconstrained linears.

    The linears are unconstrained (separate forward/backward scales) like the reference's
    MLP: their forward and backward scales mirror each other across the block.

    Example:
        >>> import torch
        >>> UmupFFN(ModelSpec(width=64))(torch.randn(2, 8, 64)).shape
        torch.Size([2, 8, 64])
    """

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        self.kind = spec.ffn
        self.mult = spec.ffn_act_mult
        hidden = spec.ffn_hidden
        self.up = Linear(spec.width, hidden, constraint=None)
        self.gate = Linear(spec.width, hidden, constraint=None) if spec.ffn == "swiglu" else None
        self.down = Linear(hidden, spec.width, constraint=None)

    def forward(self, x: Tensor) -> Tensor:
        if self.gate is not None:
            h = U.silu_glu(self.up(x), self.gate(x), mult=self.mult)
        else:
            h = U.gelu(self.up(x), mult=self.mult)
        return self.down(h)  # type: ignore[no-any-return]


class UmupBlock(nn.Module):
    """Pre-norm block: x ← residual(attn(norm(x)), tau_attn); x ← residual(ffn(norm(x)), tau_ffn).

    Example:
        >>> import torch
        >>> UmupBlock(ModelSpec(width=64), 0.7, 0.6)(torch.randn(1, 4, 64)).shape
        torch.Size([1, 4, 64])
    """

    def __init__(self, spec: ModelSpec, tau_attn: float, tau_ffn: float) -> None:
        super().__init__()
        self.tau_attn, self.tau_ffn = tau_attn, tau_ffn
        self.attn_norm = make_norm(spec)
        self.attn = UmupAttention(spec)
        self.ffn_norm = make_norm(spec)
        self.ffn = UmupFFN(spec)

    def forward(self, x: Tensor) -> Tensor:
        r, skip = U.residual_split(x, self.tau_attn)
        x = U.residual_add(self.attn(self.attn_norm(r)), skip, self.tau_attn)
        r, skip = U.residual_split(x, self.tau_ffn)
        return U.residual_add(self.ffn(self.ffn_norm(r)), skip, self.tau_ffn)

    def extra_repr(self) -> str:
        return f"tau_attn={self.tau_attn:.4g}, tau_ffn={self.tau_ffn:.4g}"


class UmupTransformer(nn.Module):
    """Decoder-only u-μP transformer proxy built from a `ModelSpec`.

    `forward(input_ids)` returns the logits of the model's distribution (the readout output
    × `loss_softmax_mult`, a forward-only scale as in u-μP's cross-entropy), so
    `F.cross_entropy(logits, targets)` is the true loss; `compute_loss` gives the same value
    with the unit-scaled backward pass and is what training must call.

    Example:
        >>> import torch
        >>> model = UmupTransformer(ModelSpec(width=64, depth=2, vocab_size=256))
        >>> ids = torch.randint(0, 256, (2, 16))
        >>> logits = model(ids)
        >>> logits.shape, abs(model.compute_loss(logits, ids).item() - 5.545) < 0.2
        (torch.Size([2, 16, 256]), True)
    """

    parametrization = "umup"

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        check_spec(spec)
        self.spec = spec
        self.embedding = Embedding(spec.vocab_size, spec.width)
        taus = rules.residual_taus(spec.depth, spec.residual_mult, spec.residual_attn_ratio)
        self.blocks = DepthStack(UmupBlock(spec, ta, tf) for ta, tf in taus)
        self.final_norm = make_norm(spec)
        self.readout = LinearReadout(spec.width, spec.vocab_size)
        self.loss_mult = spec.loss_softmax_mult

    def forward(self, input_ids: Tensor) -> Tensor:
        x = self.embedding(input_ids)
        for block in self.blocks:
            x = block(x)
        return U.scale_fwd(self.readout(self.final_norm(x)), self.loss_mult)

    def compute_loss(self, logits: Tensor, targets: Tensor) -> Tensor:
        """Mean cross-entropy (nats) of `forward`'s logits, with the unit-scaled backward pass."""
        return U.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))

    def _apply(self, fn: Any, recurse: bool = True) -> UmupTransformer:
        # Moving off the meta device (`to_empty`) replaces parameters with plain ones; keep
        # their u-μP tags.
        tags = param_tags(self)
        super()._apply(fn, recurse)
        restore_tags(self, tags)
        return self
