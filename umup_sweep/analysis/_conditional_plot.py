"""The figure of "does the lr optimum move with another HP?": per proxy, the loss against lr
with one curve per value of the other HP (e.g. weight decay), each curve's fitted optimum
marked, from a `_conditional` record (``transfer.json``'s ``conditional[key][by]``).

Example:
    >>> rec = {"hp": "lr", "by": "weight_decay", "verdict": "moves", "proxies": [
    ...     {"proxy": "64x2", "optima": [
    ...         {"value": v, "optimum_log2": c, "curve": [
    ...             {"log2": x, "mean": 2 + 0.05 * (x - c) ** 2, "std": 0.01}
    ...             for x in range(-3, 3)]}
    ...         for v, c in ((0.0, -0.3), (0.1, -1.3))]}]}
    >>> fig = conditional_figure(rec, "val_loss", "lr_wd")
    >>> [ax.get_title() for ax in fig.axes]
    ['64x2']
    >>> [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    ['weight_decay 0: optimum 2^-0.30', 'weight_decay 0.1: optimum 2^-1.30']
"""

from __future__ import annotations

from typing import Any

import matplotlib
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, FuncFormatter

from umup_sweep.analysis._plots import _pow2

__all__ = ["conditional_figure"]


def conditional_figure(record: dict[str, Any], metric: str, run: str) -> Figure:
    """One panel per proxy: ``metric`` against log2 of the record's HP, a curve (seed mean,
    ± seed sd band) per value of its ``by`` HP, and a dashed line at each fitted optimum."""
    proxies = record["proxies"]
    fig = Figure(figsize=(6.4 * len(proxies), 4.6), layout="constrained")
    FigureCanvasAgg(fig)
    cmap = matplotlib.colormaps["viridis"]
    hp, by = record["hp"], record["by"]
    for i, proxy in enumerate(proxies):
        ax = fig.add_subplot(1, len(proxies), i + 1)
        optima = proxy["optima"]
        ticks: set[float] = set()
        for j, o in enumerate(optima):
            colour = cmap(j / max(1, len(optima) - 1) * 0.9)
            pts = sorted(o.get("curve") or [], key=lambda c: c["log2"])
            xs = [c["log2"] for c in pts]
            ys = [c["mean"] for c in pts]
            sd = [c.get("std") or 0.0 for c in pts]
            ticks.update(xs)
            label = f"{by} {o['value']:g}: optimum 2^{o['optimum_log2']:.2f}"
            ax.plot(xs, ys, "o-", color=colour, label=label, markersize=4)
            low = [y - s for y, s in zip(ys, sd, strict=True)]
            high = [y + s for y, s in zip(ys, sd, strict=True)]
            ax.fill_between(xs, low, high, color=colour, alpha=0.15, linewidth=0)
            ax.axvline(o["optimum_log2"], color=colour, linestyle="--", linewidth=1)
        ax.xaxis.set_major_locator(FixedLocator(sorted(ticks)))
        ax.xaxis.set_major_formatter(FuncFormatter(_pow2))
        ax.set_xlabel(f"{hp} (log2 axis)")
        ax.set_ylabel(metric)
        ax.set_title(proxy["proxy"])
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"{hp} per {by} ({run}): the {hp} optimum {record['verdict']}")
    return fig
