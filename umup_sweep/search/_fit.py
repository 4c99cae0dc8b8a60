"""Sub-grid optimum of a loss curve sampled on a log2 grid.

The grid argmin moves in whole grid steps; a parabola in log2 HP space (where u-μP loss curves
are close to quadratic near the optimum, u-μP paper Fig. 1) places the optimum between grid
points. There is one estimator, the transfer analysis's own (`umup_sweep.fitting.log2_optimum`),
so a search and the analysis name the same optimum for the same curve and window. Here it sees
one pooled loss per value and, by default, only the argmin and its two neighbours
(``window=1``); ``window=2`` is the analysis's per-proxy choice.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from umup_sweep.fitting import LinePoints, log2_optimum

__all__ = ["SEARCH_WINDOW", "fit_log2_minimum", "parabola_vertex"]

# Grid points either side of the argmin in the search's fit. One pooled loss per value and
# coarse grids (often five values): the three points around the argmin, which is where a
# quadratic holds best; the analysis (per-seed trials, finer grids) uses two either side.
SEARCH_WINDOW = 1


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


def fit_log2_minimum(
    values: Sequence[float], losses: Sequence[float], window: int = SEARCH_WINDOW
) -> float:
    """Best HP value from a loss curve: `umup_sweep.fitting.log2_optimum` in log2 space.

    NaN losses (failed trials) are ignored and inf (diverged) values are left out of the fit,
    as the analysis leaves out a grid point where every seed diverged. The grid argmin is
    returned when the parabola has no minimum inside the fitted window (the argmin sits at the
    edge of the finished values, or the points are not convex), when every value diverged, and
    when the argmin is not positive (weight_decay 0 has no log2); otherwise the vertex, which
    lies inside the window and so inside the grid.

    Args:
        values: HP grid values (any order).
        losses: loss per value (same order).
        window: grid points either side of the argmin in the fit.

    Example:
        >>> round(fit_log2_minimum([0.25, 0.5, 1.0, 2.0], [3.0, 2.25, 2.25, 3.0]), 4)
        0.7071
    """
    pts = sorted((v, y) for v, y in zip(values, losses, strict=True) if not math.isnan(y))
    if not pts:
        raise ValueError("no finished points to fit")
    best, best_loss = min(pts, key=lambda p: p[1])
    if not math.isfinite(best_loss) or best <= 0:
        return best
    positive = [(v, y) for v, y in pts if v > 0]
    line = LinePoints.from_curve([math.log2(v) for v, _ in positive], [y for _, y in positive])
    return 2.0 ** log2_optimum(line, window=window).log2
