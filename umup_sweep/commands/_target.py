"""What the commands print about a target model and the proxies derived from it, and the
proxy family `coord-check --target` checks."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from umup_sweep.errors import ConfigError, UserError

if TYPE_CHECKING:
    from umup_sweep.config import ProxyFamily, TargetSpec


def target_lines(target: TargetSpec, family: ProxyFamily | None = None) -> list[str]:
    """One line for the target's shapes, one for its plan (when given), one for how the
    proxies were derived (when they were), one per note.

    Example:
        >>> from umup_sweep.config import load_target
        >>> t = load_target({"width": 512, "depth": 4, "n_heads": 8, "n_kv_heads": 2,
        ...                  "ffn_hidden": 1376, "vocab_size": 1000, "seq_len": 256})
        >>> target_lines(t)
        ['target: target (<inline>, umup-sweep): width 512, depth 4, 8 heads / 2 kv heads \
(head_dim 64), ffn swiglu 1376, vocab 1000, seq_len 256, rope_theta 10000, norm rms']
    """
    m, plan = target.model, target.plan
    rope = f", rope_theta {m.rope_base:g}" if m.pos == "rope" else ", no positions"
    lines = [
        f"target: {target.name} ({target.source}, {target.fmt}): width {m.width}, depth "
        f"{m.depth}, {m.n_heads} heads / {m.kv_heads} kv heads (head_dim {m.head_dim}), ffn "
        f"{m.ffn} {m.ffn_hidden}, vocab {m.vocab_size}, seq_len {m.seq_len}{rope}, norm {m.norm}"
    ]
    parts = []
    if plan.tokens is not None:
        parts.append(f"tokens {plan.tokens:.3g}")
    if plan.batch_size is not None:
        parts.append(f"batch {plan.batch_size} sequences")
    if plan.weight_decay is not None:
        parts.append(f"weight_decay {plan.weight_decay:g}")
    if parts:
        lines.append("plan: " + ", ".join(parts))
    if family is not None and family.description:
        lines.append(f"proxies: {family.description}")
    lines += [f"note: {note}" for note in target.notes]
    return lines


def coord_family(
    proxy: Path, target_file: Path | None, widths: list[int] | None
) -> tuple[ProxyFamily, TargetSpec | None]:
    """The family `coord-check` measures: PROXY, derived from `target_file` when given (PROXY
    must then say ``from_target: true``), with `widths` checked against its heads."""
    from umup_sweep.config import family_with_widths, load_proxy_family, load_target, read_yaml

    target = None
    if target_file is not None:
        target = load_target(target_file)
        raw = read_yaml(proxy)
        if not (isinstance(raw, Mapping) and raw.get("from_target") is True):
            raise UserError(
                f"--target: {proxy} is not derived from a target (it needs from_target: true)"
            )
    family = load_proxy_family(proxy, target=target)
    if not widths:
        return family, target
    if family.fixed_heads or family.kv_group:
        try:
            return family_with_widths(family, widths, "--widths"), target
        except ConfigError as exc:
            raise UserError(f"--widths: {exc.expected}") from None
    for w in widths:
        if w % family.base.head_dim:
            raise UserError(f"--widths: {w} is not a multiple of head_dim {family.base.head_dim}")
    return family, target
