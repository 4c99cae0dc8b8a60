"""Sub-grid optimum of a loss curve sampled on a log2 grid.

The grid argmin moves in whole grid steps; a parabola through the argmin and its two neighbours
(in log2 HP space, where u-μP loss curves are close to quadratic near the optimum — u-μP paper,
Fig. 1 and DESIGN.md's measurements) places the optimum between grid points.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["fit_log2_minimum", "parabola_vertex"]


def parabola_vertex(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    """x of the vertex of the parabola through three points, or None if not convex.

    Example:
        >>> parabola_vertex([0.0, 1.0, 2.0], [1.0, 0.0, 1.0])
        1.0
    """
    (x0, x1, x2), (y0, y1, y2) = xs, ys
    denom = (x0 - x1) * (x0 - x2) * (x1 - x2)
    if denom == 0:
        return None
    a = (x2 * (y1 - y0) + x1 * (y0 - y2) + x0 * (y2 - y1)) / denom
    b = (x2 * x2 * (y0 - y1) + x1 * x1 * (y2 - y0) + x0 * x0 * (y1 - y2)) / denom
    if not a > 0:
        return None
    return -b / (2 * a)


def fit_log2_minimum(values: Sequence[float], losses: Sequence[float]) -> float:
    """Best HP value from a loss curve: sub-grid parabola fit in log2 space.

    NaN losses (failed trials) are ignored; inf (diverged) counts as worse than anything. When
    the argmin sits at the edge of the grid, next to a diverged point, or the three points are
    not convex, the grid argmin itself is returned; otherwise the parabola's vertex, clipped to
    the argmin's neighbours (so always inside the grid). Non-positive values (weight_decay 0)
    get the grid argmin.

    Args:
        values: HP grid values (any order).
        losses: loss per value (same order).

    Example:
        >>> round(fit_log2_minimum([0.25, 0.5, 1.0, 2.0], [3.0, 2.25, 2.25, 3.0]), 4)
        0.7071
    """
    pts = sorted((v, y) for v, y in zip(values, losses, strict=True) if not math.isnan(y))
    if not pts:
        raise ValueError("no finished points to fit")
    i = min(range(len(pts)), key=lambda j: pts[j][1])
    best = pts[i][0]
    if not math.isfinite(pts[i][1]) or i == 0 or i == len(pts) - 1:
        return best
    trio = pts[i - 1 : i + 2]
    if any(v <= 0 for v, _ in trio) or any(not math.isfinite(y) for _, y in trio):
        return best
    xs = [math.log2(v) for v, _ in trio]
    vertex = parabola_vertex(xs, [y for _, y in trio])
    if vertex is None:
        return best
    return 2.0 ** min(max(vertex, xs[0]), xs[2])
