"""The u-μP proxy: a pre-norm causal decoder built from the unit-scaled core.

Embedding → `depth` blocks of (norm → attention, norm → FFN), each branch joined to the
stream with its u-μP residual tau → final norm → μP readout. Laid out like the reference
library's `TransformerDecoder` (same fused qkv layout, same residual split/add order), with
RoPE, a GELU option and the five u-μP multipliers wired to their ops.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from umup_sweep.core import (
    DepthStack,
    Embedding,
    Linear,
    LinearReadout,
    param_tags,
    restore_tags,
    rules,
    scale_bwd,
)
from umup_sweep.core import functional as U
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


class UmupAttention(nn.Module):
    """Causal self-attention: unit-scaled qkv/out projections, logits × mult/d_head.

    With `spec.n_kv_heads` set it is grouped-query attention: the fused qkv projection gives
    n_heads query heads and n_kv_heads key/value heads (a unit-scaled linear with fan-in =
    width like any other), RoPE rotates the keys, then each kv head is repeated for its group
    of query heads; the attention op and its scale are those of multi-head attention.
    `branch_in` / `branch_out` are the residual split's backward weight and the residual add's
    forward weight of this branch (see `UmupBlock`); both are folded into the projections.
    The attention output's unit-scaling factor is folded into the out projection (attention is
    linear in v, so this equals the reference's scale_bwd(q, k, v) + scale_fwd(out)).

    Example:
        >>> import torch
        >>> attn = UmupAttention(ModelSpec(width=64, head_dim=32))
        >>> attn(torch.randn(2, 8, 64)).shape
        torch.Size([2, 8, 64])
    """

    def __init__(self, spec: ModelSpec, branch_in: float = 1.0, branch_out: float = 1.0) -> None:
        super().__init__()
        self.n_heads, self.n_kv_heads = int(spec.n_heads or 0), spec.kv_heads
        self.head_dim = spec.width // self.n_heads
        self.mult = spec.attn_softmax_mult
        self.branch_in, self.branch_out = branch_in, branch_out
        self.qkv = Linear(spec.width, (self.n_heads + 2 * self.n_kv_heads) * self.head_dim)
        self.out = Linear(spec.width, spec.width)
        self.rope = RopeCache(self.head_dim, spec.rope_base) if spec.pos == "rope" else None
        self.record_logits = False  # set by `activation_rms`
        self.logit_rms: float | None = None

    def forward(self, x: Tensor) -> Tensor:
        qkv = U.linear(x, self.qkv.weight, bwd_mult=self.branch_in)
        q, k, v = split_heads(qkv, self.n_heads, self.n_kv_heads)
        if self.rope is not None:
            cos, sin = self.rope(x.shape[1], x.device, x.dtype)
            q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        k, v = repeat_kv(k, self.n_heads), repeat_kv(v, self.n_heads)
        if self.record_logits:
            self.logit_rms = causal_logit_rms(q, k, self.mult / self.head_dim)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=self.mult / self.head_dim)
        s = rules.attention_scale(x.shape[1], self.head_dim, self.mult, causal=True)
        return U.linear(merge_heads(y), self.out.weight, mult=s, fwd_mult=self.branch_out)


class UmupFFN(nn.Module):
    """SwiGLU (up · silu(gate) → down) or GELU (up → gelu → down), unit-scaled.

    The linears are unconstrained like the reference's MLP. The activation's unit-scaling
    factor and `ffn_act_mult` are folded into the neighbouring linears as true multipliers:
    SwiGLU's s·up·silu(m·gate)/m puts s/m on `up` and m on `gate`; GELU's s·gelu(m·up)/m puts
    m on `up` and s/m on `down` (identical maths to `functional.silu_glu` / `functional.gelu`).

    Example:
        >>> import torch
        >>> UmupFFN(ModelSpec(width=64))(torch.randn(2, 8, 64)).shape
        torch.Size([2, 8, 64])
    """

    def __init__(self, spec: ModelSpec, branch_in: float = 1.0, branch_out: float = 1.0) -> None:
        super().__init__()
        self.kind = spec.ffn
        self.mult = spec.ffn_act_mult
        self.branch_in, self.branch_out = branch_in, branch_out
        hidden = spec.ffn_hidden
        self.up = Linear(spec.width, hidden, constraint=None)
        self.gate = Linear(spec.width, hidden, constraint=None) if spec.ffn == "swiglu" else None
        self.down = Linear(hidden, spec.width, constraint=None)
        m = self.mult
        if self.gate is not None:
            self._up_mult, self._gate_mult, self._down_mult = rules.silu_glu_scale(m) / m, m, 1.0
        else:
            self._up_mult, self._gate_mult, self._down_mult = m, 1.0, rules.gelu_scales(m)[0] / m

    def forward(self, x: Tensor) -> Tensor:
        up = U.linear(x, self.up.weight, None, None, mult=self._up_mult, bwd_mult=self.branch_in)
        if self.gate is not None:
            gate = U.linear(
                x, self.gate.weight, None, None, mult=self._gate_mult, bwd_mult=self.branch_in
            )
            h = up * F.silu(gate)
        else:
            h = F.gelu(up)
        return U.linear(
            h, self.down.weight, None, None, mult=self._down_mult, fwd_mult=self.branch_out
        )


class UmupBlock(nn.Module):
    """Pre-norm block with u-μP residuals: x ← (tau·f(norm(x)) + x)/√(1+tau²), twice.

    Forward and backward equal the reference's residual_split → norm → branch →
    residual_add: the branch weight tau/√(1+tau²) is folded into the branch's projections
    (forward-only on its output, backward-only on its input gradient), the skip weight into a
    single `torch.add(..., alpha=)`, whose backward scales the skip gradient the same way.

    Example:
        >>> import torch
        >>> UmupBlock(ModelSpec(width=64), 0.7, 0.6)(torch.randn(1, 4, 64)).shape
        torch.Size([1, 4, 64])
    """

    def __init__(self, spec: ModelSpec, tau_attn: float, tau_ffn: float) -> None:
        super().__init__()
        self.tau_attn, self.tau_ffn = tau_attn, tau_ffn
        a_attn, self.skip_attn = rules.residual_coeffs(tau_attn)
        a_ffn, self.skip_ffn = rules.residual_coeffs(tau_ffn)
        self.attn_norm = make_norm(spec)
        self.attn = UmupAttention(spec, branch_in=a_attn, branch_out=a_attn)
        self.ffn_norm = make_norm(spec)
        self.ffn = UmupFFN(spec, branch_in=a_ffn, branch_out=a_ffn)

    def forward(self, x: Tensor) -> Tensor:
        x = torch.add(self.attn(self.attn_norm(x)), x, alpha=self.skip_attn)
        return torch.add(self.ffn(self.ffn_norm(x)), x, alpha=self.skip_ffn)

    def extra_repr(self) -> str:
        return f"tau_attn={self.tau_attn:.4g}, tau_ffn={self.tau_ffn:.4g}"


class UmupTransformer(ProxyModel):
    """Decoder-only u-μP transformer proxy built from a `ModelSpec`.

    `forward(input_ids)` returns the logits of the model's distribution (the readout output
    × `loss_softmax_mult`, a forward-only scale as in u-μP's cross-entropy), so
    `F.cross_entropy(logits, targets)` is the true loss; `compute_loss` gives the same value
    with the unit-scaled backward pass and is what training must call. Forward and gradients
    equal the reference library's TransformerDecoder + cross_entropy (tested).

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
        # The unit-scaled cross-entropy (functional.cross_entropy) scales the logits by
        # loss_softmax_mult forward-only and their gradient by V/√(V-1) backward-only; both are
        # folded into the readout, so `compute_loss` is a plain (sum-gradient) cross-entropy.
        self.readout = LinearReadout(
            spec.width,
            spec.vocab_size,
            fwd_mult=spec.loss_softmax_mult,
            grad_mult=rules.cross_entropy_grad_scale(spec.vocab_size),
        )

    def forward(self, input_ids: Tensor) -> Tensor:
        x = self.embedding(input_ids)
        for block in self.blocks:
            x = block(x)
        return self.readout(self.final_norm(x))  # type: ignore[no-any-return]

    def compute_loss(self, logits: Tensor, targets: Tensor) -> Tensor:
        """Mean cross-entropy (nats) of `forward`'s logits, with the unit-scaled backward pass.

        Its gradient is that of the summed loss (reference semantics), not of the mean.
        """
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
        return scale_bwd(loss, float(targets.numel()))

    def _apply(self, fn: Any, recurse: bool = True) -> UmupTransformer:
        # Moving off the meta device (`to_empty`) replaces parameters with plain ones; keep
        # their u-μP tags.
        tags = param_tags(self)
        super()._apply(fn, recurse)
        restore_tags(self, tags)
        return self
