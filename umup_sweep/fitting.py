"""The one optimum estimator shared by the searches and the transfer analysis (numpy only).

Loss against log2(HP) is only locally quadratic, so the optimum of a swept line is found the
same way everywhere: take the grid argmin of the seed means (among the grid points that may be
the optimum), fit a least-squares parabola in log2 HP to the trials within ``window`` grid points
of it, and use the parabola's vertex when it opens upward and lies inside that window; otherwise
the grid argmin itself. `log2_optimum` is that rule; `LinePoints` holds one line's trials.

The transfer analysis applies it per proxy to every seed's trial (``window=2``, its default);
`umup_sweep.search.fit_log2_minimum` applies it to one pooled loss per value (the
independent search reports it beside the measured best it adopts).

Example:
    >>> pts = LinePoints.from_curve([-2.0, -1.0, 0.0, 1.0, 2.0], [2.9, 2.2, 2.1, 2.4, 3.1])
    >>> opt = log2_optimum(pts)
    >>> opt.method, round(opt.log2, 3), float(pts.grid[opt.index])
    ('parabola', -0.131, 0.0)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["FIT_WINDOW", "LinePoints", "Log2Optimum", "Parabola", "fit_parabola", "log2_optimum"]

FIT_WINDOW = 2  # grid points either side of the argmin that the parabola is fitted to
_EDGE = 1e-9  # slack (log2) when asking whether a vertex lies inside the fitted window


@dataclass(frozen=True)
class Parabola:
    """A fitted ``y = β0 + β1·x + β2·x²`` and its optimum (NaN where it has none)."""

    coef: tuple[float, float, float]
    optimum: float
    optimum_se: float
    min_value: float
    n_points: int

    @property
    def convex(self) -> bool:
        """True when the parabola opens upward (it has a minimum)."""
        return self.coef[2] > 0

    def __call__(self, x: float | np.ndarray) -> float | np.ndarray:
        b0, b1, b2 = self.coef
        return b0 + b1 * x + b2 * x * x


def fit_parabola(x: np.ndarray, y: np.ndarray) -> Parabola | None:
    """Least-squares parabola through ``(x, y)`` with a delta-method standard error of its
    optimum ``-β1 / (2β2)``; None with fewer than 3 distinct x.

    Args:
        x: log2 HP values (repeats allowed: one per seed).
        y: losses.

    Example:
        >>> p = fit_parabola(np.array([-1.0, 0.0, 1.0]), np.array([2.0, 1.0, 2.0]))
        >>> round(p.optimum, 6), round(p.min_value, 6)
        (0.0, 1.0)
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    if len(np.unique(x)) < 3:
        return None
    shift = float(np.mean(x))  # centre for conditioning
    xs = x - shift
    design = np.stack([np.ones_like(xs), xs, xs * xs], axis=1)
    beta, *_ = np.linalg.lstsq(design, y, rcond=None)
    resid = y - design @ beta
    dof = len(y) - 3
    s2 = float(resid @ resid) / dof if dof > 0 else math.nan
    cov = s2 * np.linalg.pinv(design.T @ design)
    c0, c1, c2 = (float(v) for v in beta)
    # back to unshifted coefficients: y = c0 + c1 (x - s) + c2 (x - s)^2
    coef = (c0 - c1 * shift + c2 * shift * shift, c1 - 2 * c2 * shift, c2)
    if c2 > 0:
        opt_shifted = -c1 / (2 * c2)
        grad = np.array([0.0, -1 / (2 * c2), c1 / (2 * c2 * c2)])  # d(opt)/d(beta)
        var = float(grad @ cov @ grad)
        se = math.sqrt(var) if var >= 0 else math.nan
        optimum = opt_shifted + shift
        min_value = c0 - c1 * c1 / (4 * c2)
    else:
        optimum, se, min_value = math.nan, math.nan, math.nan
    return Parabola(coef, float(optimum), float(se), float(min_value), len(y))


@dataclass
class LinePoints:
    """The finished (ok) trials of one swept line as arrays.

    Attributes:
        x: log2 HP per trial.
        y: metric per trial.
        seed: seed per trial.
        grid: the sorted distinct x that have at least one trial.
        gidx: grid index of each trial.
        eligible: per grid point, whether it may be the optimum (the analysis requires at
            least half of its seeds to have finished without diverging).
    """

    x: np.ndarray
    y: np.ndarray
    seed: np.ndarray
    grid: np.ndarray
    gidx: np.ndarray
    eligible: np.ndarray

    @classmethod
    def from_curve(cls, log2: Sequence[float], losses: Sequence[float]) -> LinePoints:
        """One trial per grid value (e.g. a loss already pooled over seeds); values whose loss
        is not finite (failed, diverged) are left out.

        Example:
            >>> LinePoints.from_curve([1.0, 0.0, 2.0], [0.5, 0.7, float("inf")]).grid.tolist()
            [0.0, 1.0]
        """
        keep = sorted((float(x), float(y)) for x, y in zip(log2, losses, strict=True))
        keep = [(x, y) for x, y in keep if math.isfinite(y)]
        x = np.array([x for x, _ in keep], dtype=float)
        grid = np.unique(x)
        return cls(
            x=x,
            y=np.array([y for _, y in keep], dtype=float),
            seed=np.zeros(len(x), dtype=int),
            grid=grid,
            gidx=np.searchsorted(grid, x),
            eligible=np.ones(len(grid), dtype=bool),
        )

    def means(self, y: np.ndarray) -> np.ndarray:
        """Seed mean per grid point for metric values ``y`` (aligned with ``x``)."""
        counts = np.bincount(self.gidx, minlength=len(self.grid))
        return np.bincount(self.gidx, weights=y, minlength=len(self.grid)) / counts

    def window(self, y: np.ndarray, window: int) -> tuple[int, np.ndarray]:
        """Grid argmin of the seed means (eligible points only) and the mask of trials within
        ``window`` grid points of it: the region where the loss is locally quadratic."""
        means = np.where(self.eligible, self.means(y), np.inf)
        i = int(np.argmin(means))
        lo = self.grid[max(0, i - window)]
        hi = self.grid[min(len(self.grid) - 1, i + window)]
        return i, (self.x >= lo - 1e-12) & (self.x <= hi + 1e-12)

    def seed_scatter(self, mask: np.ndarray | None = None) -> tuple[float, int]:
        """Sum of squared deviations from each grid point's seed mean, and its degrees of
        freedom (0 without repeated seeds): the raw pieces of a pooled seed-noise estimate.
        With ``mask``, only those trials count (whole grid points, such as a fit window)."""
        gidx, y = (self.gidx, self.y) if mask is None else (self.gidx[mask], self.y[mask])
        counts = np.bincount(gidx, minlength=len(self.grid))
        means = np.bincount(gidx, weights=y, minlength=len(self.grid)) / np.maximum(counts, 1)
        ss = float(((y - means[gidx]) ** 2).sum())
        return ss, int((counts - 1).clip(min=0).sum())


@dataclass(frozen=True)
class Log2Optimum:
    """What `log2_optimum` found.

    Attributes:
        index: grid index of the argmin of the eligible seed means.
        log2: the optimum: the parabola's vertex, else ``grid[index]``.
        parabola: the accepted parabola (None when the grid argmin was used).
        mask: the trials inside the fit window.
        lo, hi: the smallest and largest x inside the window.
    """

    index: int
    log2: float
    parabola: Parabola | None
    mask: np.ndarray
    lo: float
    hi: float

    @property
    def method(self) -> str:
        """`parabola` (sub-grid vertex) or `grid` (the fallback)."""
        return "grid" if self.parabola is None else "parabola"


def log2_optimum(
    pts: LinePoints, y: np.ndarray | None = None, window: int = FIT_WINDOW
) -> Log2Optimum:
    """The optimum of one line: the parabola's vertex around the grid argmin, when the
    parabola opens upward and its vertex lies inside the fitted window; else the grid argmin.

    Args:
        pts: the line's trials (at least one eligible grid point).
        y: metric values to use instead of ``pts.y`` (aligned with ``pts.x``; a bootstrap).
        window: grid points either side of the argmin in the fit.

    Example:
        >>> pts = LinePoints.from_curve([0.0, 1.0, 2.0, 3.0], [1.0, 1.2, 1.9, 3.0])
        >>> opt = log2_optimum(pts, window=1)  # the argmin sits at the edge: no vertex
        >>> opt.method, opt.log2
        ('grid', 0.0)
    """
    y = pts.y if y is None else y
    i, mask = pts.window(y, window)
    wx, wy = pts.x[mask], y[mask]
    lo, hi = float(wx.min()), float(wx.max())
    fit = fit_parabola(wx, wy)
    if fit is not None and fit.convex and lo - _EDGE <= fit.optimum <= hi + _EDGE:
        return Log2Optimum(i, float(fit.optimum), fit, mask, lo, hi)
    return Log2Optimum(i, float(pts.grid[i]), None, mask, lo, hi)
