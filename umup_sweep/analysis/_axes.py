"""Warnings for the axes where the proxies and the target differ but the sweep measured no
transfer: sequence length, vocabulary, training tokens and batch size.

u-μP makes the optimum hold across width and depth; nothing in it promises the same along
these axes, and the literature finds the optimal learning rate moving with training length
(lower for longer runs) and batch size (higher for larger batches). The sweep cannot say by
how much, but it can say what a miss would cost: each proxy's fitted curvature ``b`` (loss per
log2² away from the optimum) gives the loss of being off by a factor 2, ``b · 1²``, measured
at the source proxy. Each warning names the axis, both values, the ratio, and that cost.

Example:
    >>> from umup_sweep.spec import ModelSpec
    >>> proxy = ModelSpec(width=64, seq_len=128, vocab_size=256)
    >>> target = ModelSpec(width=4096, head_dim=128, seq_len=4096, vocab_size=256)
    >>> [w.split(":")[0] for w in untested_axis_warnings(
    ...     proxy, {"steps": 300, "batch_size": 16}, target, None, set(), 0.02)]
    ['sequence length', 'training plan']
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from umup_sweep.spec import ModelSpec


def _cost(curvature: float | None) -> str:
    """What an lr off by a factor 2 costs at the source proxy, in words."""
    if curvature is None or not math.isfinite(curvature):
        return "the sweep has no curvature to price a miss"
    return f"an lr off by a factor 2 costs ≈ {curvature:.3f} nats at the source proxy"


def _ratio(proxy: float, target: float) -> str:
    r = target / proxy
    return f"×{r:.3g}" if r >= 1 else f"×1/{1 / r:.3g}"


def untested_axis_warnings(
    proxy: ModelSpec,
    train: Mapping[str, Any],
    target: ModelSpec,
    plan: Any,
    measured: set[str],
    curvature: float | None,
) -> list[str]:
    """One warning per axis where ``proxy`` and ``target`` differ and ``measured`` (the axes
    the sweep fitted a drift along) does not contain it.

    Args:
        proxy: the sweep's base proxy.
        train: the sweep's ``train`` section (``steps``, ``batch_size``; defaults 300 / 16).
        target: the target model.
        plan: the target's training plan (``tokens``, ``batch_size`` in sequences), or None.
        measured: axes with a measured transfer (e.g. ``{"width"}``; ``tokens`` and ``batch``
            (or ``batch_size``) for a sweep with train axes: those warnings are then left
            out, `recommend` carries the HP along them instead).
        curvature: the lr curvature at the source proxy (loss per log2²), for the cost.
    """
    cost = _cost(curvature)
    out = []
    if target.seq_len != proxy.seq_len and "seq_len" not in measured:
        out.append(
            f"sequence length: proxies {proxy.seq_len}, target {target.seq_len} "
            f"({_ratio(proxy.seq_len, target.seq_len)}); transfer across sequence length was "
            f"not measured; {cost}"
        )
    if target.vocab_size != proxy.vocab_size and "vocab_size" not in measured:
        out.append(
            f"vocabulary: proxies {proxy.vocab_size}, target {target.vocab_size}; the embedding "
            f"and readout see a different token distribution and transfer was not measured; {cost}"
        )
    steps, batch = int(train.get("steps", 300)), int(train.get("batch_size", 16))
    proxy_tokens = steps * batch * proxy.seq_len
    tokens = getattr(plan, "tokens", None)
    plan_batch = getattr(plan, "batch_size", None)
    if tokens is None and plan_batch is None and not {"tokens", "batch", "batch_size"} & measured:
        out.append(
            f"training plan: the target's tokens and batch size are not given (proxies train "
            f"{proxy_tokens:,} tokens at batch {batch}); the optimal lr moves with both and "
            f"neither transfer was measured; {cost}"
        )
        return out
    if tokens is not None and tokens != proxy_tokens and "tokens" not in measured:
        out.append(
            f"training tokens: proxies {proxy_tokens:,}, target {int(tokens):,} "
            f"({_ratio(proxy_tokens, tokens)}); the optimal lr usually falls as training "
            f"lengthens and this transfer was not measured; {cost}"
        )
    if plan_batch is not None and plan_batch != batch and not {"batch", "batch_size"} & measured:
        out.append(
            f"batch size: proxies {batch} sequences ({batch * proxy.seq_len:,} tokens), target "
            f"{int(plan_batch)} ({int(plan_batch) * target.seq_len:,} tokens); the optimal lr "
            f"usually rises with the batch and this transfer was not measured; {cost}"
        )
    return out
