"""Pieces shared by the u-μP and SP proxies: rotary embeddings, norms, head reshapes.

Both parametrizations use these exact functions, so a u-μP vs SP comparison differs only
in the parametrization (scales, init, LR rules), never in the architecture.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from umup_sweep.core import LayerNorm, RMSNorm
from umup_sweep.spec import DEFAULT_ROPE_THETA, ModelSpec

ROPE_BASE = DEFAULT_ROPE_THETA  # the base when a spec's rope_theta is None


def rope_tables(
    seq_len: int,
    head_dim: int,
    device: torch.device,
    dtype: torch.dtype,
    base: float = ROPE_BASE,
):
    """(cos, sin) tables of shape (seq_len, head_dim) for rotate-half RoPE (Su et al. 2021):
    pair i turns by position × base^(-2i/head_dim).

    Example:
        >>> cos, sin = rope_tables(4, 8, torch.device("cpu"), torch.float32)
        >>> cos.shape, float(cos[0, 0]), float(sin[0, 0])
        (torch.Size([4, 8]), 1.0, 0.0)
        >>> import math
        >>> _, sin = rope_tables(2, 4, torch.device("cpu"), torch.float64, base=100.0)
        >>> float(sin[1, 1]) == math.sin(100.0**-0.5)  # position 1, pair 1: 100^(-2/4)
        True
    """
    inv_freq = base ** (-torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)
    angles = torch.outer(torch.arange(seq_len, dtype=torch.float64), inv_freq)
    angles = torch.cat([angles, angles], dim=-1)
    return angles.cos().to(device, dtype), angles.sin().to(device, dtype)


def apply_rope(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate (..., T, head_dim) queries/keys by position (norm-preserving, so scale-neutral).

    Example:
        >>> x = torch.randn(1, 1, 4, 8)
        >>> cos, sin = rope_tables(4, 8, x.device, x.dtype)
        >>> torch.allclose(apply_rope(x, cos, sin).norm(dim=-1), x.norm(dim=-1))
        True
    """
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    rotated = torch.cat([-x2, x1], dim=-1)
    return x * cos + rotated * sin


class RopeCache(nn.Module):
    """Lazily built RoPE tables (not buffers: a meta-device build must not hold stale tables)
    with base `base` (a spec's `rope_base`).

    Example:
        >>> cos, sin = RopeCache(8)(4, torch.device("cpu"), torch.float32)
        >>> cos.shape
        torch.Size([4, 8])
    """

    def __init__(self, head_dim: int, base: float = ROPE_BASE) -> None:
        super().__init__()
        self.head_dim = head_dim
        self.base = base
        self._tables: dict[tuple[int, str, torch.dtype], tuple[Tensor, Tensor]] = {}

    def forward(self, seq_len: int, device: torch.device, dtype: torch.dtype):
        key = (seq_len, str(device), dtype)
        if key not in self._tables:
            self._tables[key] = rope_tables(seq_len, self.head_dim, device, dtype, self.base)
        return self._tables[key]


def make_norm(spec: ModelSpec) -> nn.Module:
    """The non-parametric norm the spec asks for (same module in u-μP and SP).

    Example:
        >>> make_norm(ModelSpec(norm="layer")).__class__.__name__
        'LayerNorm'
    """
    if spec.norm == "rms":
        return RMSNorm()
    if spec.norm == "layer":
        return LayerNorm()
    raise ValueError(f"norm must be 'rms' or 'layer', got {spec.norm!r}")


def check_spec(spec: ModelSpec) -> None:
    """Reject architecture values the factory does not build (the YAML loader checks first).

    Example:
        >>> check_spec(ModelSpec())
    """
    if spec.ffn not in ("swiglu", "gelu"):
        raise ValueError(f"ffn must be 'swiglu' or 'gelu', got {spec.ffn!r}")
    if spec.pos not in ("rope", "none"):
        raise ValueError(f"pos must be 'rope' or 'none', got {spec.pos!r}")
    if spec.norm not in ("rms", "layer"):
        raise ValueError(f"norm must be 'rms' or 'layer', got {spec.norm!r}")
    if spec.pos == "rope" and spec.head_dim % 2:
        raise ValueError(f"rope needs an even head_dim, got {spec.head_dim}")


def split_heads(
    qkv: Tensor, n_heads: int, n_kv_heads: int | None = None
) -> tuple[Tensor, Tensor, Tensor]:
    """Fused projections (B, T, (H + 2·H_kv)·d_head) → q (B, H, T, d_head) and k, v
    (B, H_kv, T, d_head): the features are laid out [q heads | k heads | v heads], each head's
    d_head contiguous ("b t (z h d)" when H_kv = H, the default).

    Example:
        >>> q, k, v = split_heads(torch.randn(2, 5, 3 * 8), n_heads=2)
        >>> q.shape, k.shape
        (torch.Size([2, 2, 5, 4]), torch.Size([2, 2, 5, 4]))
        >>> q, k, v = split_heads(torch.randn(2, 5, 8 + 2 * 2), n_heads=4, n_kv_heads=1)
        >>> q.shape, k.shape
        (torch.Size([2, 4, 5, 2]), torch.Size([2, 1, 5, 2]))
    """
    n_kv = n_kv_heads or n_heads
    b, t, features = qkv.shape
    d_head = features // (n_heads + 2 * n_kv)
    q, k, v = qkv.split([n_heads * d_head, n_kv * d_head, n_kv * d_head], dim=-1)
    return (
        q.view(b, t, n_heads, d_head).transpose(1, 2),
        k.view(b, t, n_kv, d_head).transpose(1, 2),
        v.view(b, t, n_kv, d_head).transpose(1, 2),
    )


def repeat_kv(x: Tensor, n_heads: int) -> Tensor:
    """(B, H_kv, T, d_head) keys or values → (B, n_heads, T, d_head), each kv head repeated for
    its group of n_heads // H_kv consecutive query heads (grouped-query attention); unchanged
    when H_kv = n_heads.

    Example:
        >>> k = torch.arange(2.0).view(1, 2, 1, 1)
        >>> repeat_kv(k, 4).flatten().tolist()
        [0.0, 0.0, 1.0, 1.0]
    """
    groups = n_heads // x.shape[1]
    return x if groups == 1 else x.repeat_interleave(groups, dim=1)


def merge_heads(x: Tensor) -> Tensor:
    """(B, H, T, d_head) → (B, T, H·d_head).

    Example:
        >>> merge_heads(torch.randn(2, 3, 5, 4)).shape
        torch.Size([2, 5, 12])
    """
    b, h, t, d = x.shape
    return x.transpose(1, 2).reshape(b, t, h * d)


def causal_logit_rms(q: Tensor, k: Tensor, scale: float) -> float:
    """RMS of the causal (unmasked) attention logits q·kᵀ·scale, for coord checks.

    Example:
        >>> causal_logit_rms(torch.ones(1, 1, 3, 2), torch.ones(1, 1, 3, 2), 0.5)
        1.0
    """
    t = q.shape[-2]
    logits = (q @ k.transpose(-1, -2)) * scale
    mask = torch.ones(t, t, dtype=torch.bool, device=q.device).tril()
    return float(logits[..., mask].float().pow(2).mean().sqrt())
