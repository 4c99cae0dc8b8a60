"""The axes a proxy sits on: width, depth, and — for a sweep with train axes — the training
tokens and the batch size.

A proxy of the transfer analysis is a (width, depth) pair, or (width, depth, tokens, batch)
when the trials frame has the planned training columns (`analysis._run.TRAIN_COLUMNS`, added
for runs with `train: {steps: [...]}` or a token budget with a list of batch sizes). The joint
fit moves the optimum by ``drift_a`` log2 per doubling along every axis that varies; along
tokens that drift is −β of a power law ``HP* ∝ D^−β`` (Bjorck et al., arXiv 2409.19913). The
batch axis is counted in tokens per step (sequences × seq_len), so a target with another
sequence length is placed on it by its tokens per step.

Example:
    >>> proxy_label(64, 2), proxy_label(64, 2, 614400, 16)
    ('64x2', '64x2 t=614k b=16')
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:
    from umup_sweep.analysis._transfer import ProxyOptimum

AXES = ("width", "depth", "tokens", "batch")
# The trials-frame column of each axis.
AXIS_COLUMNS = {"width": "width", "depth": "depth", "tokens": "train_tokens", "batch": "batch_size"}
# Axes along which a bigger proxy should reach a lower loss (not batch: at fixed tokens a
# bigger batch means fewer steps).
LOSS_FALLS_ALONG = ("width", "depth", "tokens")
# What to add along each axis to narrow an inconclusive drift.
MORE_ALONG = {"width": "widths", "depth": "depths", "tokens": "horizons", "batch": "batch sizes"}
ProxyKey = tuple[int, ...]


def proxy_columns(df: pd.DataFrame) -> list[str]:
    """The columns that name a proxy: width and depth, plus the planned tokens and batch size
    when the frame has them.

    Example:
        >>> proxy_columns(pd.DataFrame(columns=["width", "depth", "lr"]))
        ['width', 'depth']
    """
    cols = ["width", "depth"]
    if {"train_tokens", "batch_size"} <= set(df.columns):
        cols += ["train_tokens", "batch_size"]
    return cols


def key_coords(key: ProxyKey) -> dict[str, int]:
    """``{axis: value}`` of a proxy key (width, depth[, tokens, batch]).

    Example:
        >>> key_coords((64, 2, 614400, 16))
        {'width': 64, 'depth': 2, 'tokens': 614400, 'batch': 16}
    """
    return {a: int(v) for a, v in zip(AXES, key, strict=False)}


def varying_axes(keys: list[ProxyKey]) -> list[str]:
    """The axes along which the proxies differ, in `AXES` order."""
    coords = [key_coords(k) for k in keys]
    return [a for a in AXES if len({c.get(a) for c in coords}) > 1]


def short_count(n: float) -> str:
    """A token count in a few characters: 614400 → ``614k``, 1.2e12 → ``1.2T``.

    Example:
        >>> short_count(614400), short_count(2457600), short_count(1e12), short_count(900)
        ('614k', '2.46M', '1T', '900')
    """
    for div, unit in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= div:
            return f"{n / div:.3g}{unit}"
    return f"{n:g}"


def proxy_label(width: int, depth: int, tokens: int | None = None, batch: int | None = None) -> str:
    """``64x2``, or ``64x2 t=614k b=16`` for a proxy on the train axes."""
    label = f"{width}x{depth}"
    if tokens is not None:
        label += f" t={short_count(tokens)}"
    if batch is not None:
        label += f" b={batch}"
    return label


def doublings(
    coords: Mapping[str, float], reference: Mapping[str, float], axes: list[str]
) -> list[float]:
    """log2(coordinate / reference) along each of ``axes``."""
    return [math.log2(coords[a] / reference[a]) for a in axes]


def axis_words(axis: str) -> str:
    """How an axis is named in sentences: ``training tokens``, ``batch size``, ``width``."""
    return {"tokens": "training tokens", "batch": "batch size"}.get(axis, axis)


def loss_flags(per_proxy: list[ProxyOptimum], axes: list[str]) -> list[str]:
    """Bigger proxies (and longer training) should reach a lower loss: flag every step along
    an axis where they don't."""
    flags = []
    for axis in (a for a in axes if a in LOSS_FALLS_ALONG):
        groups: dict[tuple[tuple[str, int], ...], list[ProxyOptimum]] = {}
        for p in per_proxy:
            rest = tuple((k, v) for k, v in p.coords.items() if k != axis)
            groups.setdefault(rest, []).append(p)
        for fixed, ps in groups.items():
            ps = sorted((p for p in ps if p.best_loss is not None), key=lambda p: p.coords[axis])
            where = ", ".join(f"{k} {v}" for k, v in fixed)
            for a, b in zip(ps, ps[1:], strict=False):
                if (
                    b.best_loss is not None
                    and a.best_loss is not None
                    and b.best_loss > a.best_loss
                ):
                    flags.append(
                        f"best loss got worse from {axis} {a.coords[axis]} to {b.coords[axis]}"
                        f" ({a.best_loss:.4f} → {b.best_loss:.4f}, {where}): "
                        + (
                            "longer training should be better; check the schedule"
                            if axis == "tokens"
                            else "bigger proxies should be better; train longer or check the model"
                        )
                    )
    return flags
