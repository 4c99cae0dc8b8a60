"""One proxy, two precisions: each precision's trials along the swept HP (`proxy_line`), the
shift of the optimum and the loss gaps between them with parametric-bootstrap standard errors
(`compare_lines`), and the inverse-variance pooling of the shifts over proxies (`pool_shifts`).

Both optima are the transfer analysis's per-proxy optimum (`umup_sweep.fitting.log2_optimum`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from umup_sweep.analysis._points import curve_points, half_range, line_points
from umup_sweep.fitting import FIT_WINDOW, LinePoints, fit_parabola, log2_optimum
from umup_sweep.spec import HP_NAMES

SE_FLOOR = 0.01  # log2: floor on a proxy's shift se in the pooled mean (noise-free inputs)


@dataclass
class Line:
    """One precision's trials along the swept HP at one proxy, ready for the estimates."""

    pts: LinePoints
    sigma: float  # seed noise per trial (nan when it cannot be told)
    n_ok: int
    n_diverged: int
    n_failed: int

    @property
    def usable(self) -> bool:
        return bool(len(self.pts.grid)) and bool(self.pts.eligible.any())


@dataclass
class Estimate:
    """Optimum (log2), loss there, and the loss at any log2 HP, from one set of metric values."""

    optimum: float
    loss: float
    loss_at: Callable[[float], float]


def estimate(pts: LinePoints, y: np.ndarray, window: int) -> Estimate:
    """The transfer analysis's per-proxy optimum (`log2_optimum`: parabola around the grid
    argmin, grid argmin as fallback), plus the loss curve: the parabola inside its window, the
    seed means linearly interpolated outside it."""
    opt = log2_optimum(pts, y, window)
    means = pts.means(y)
    el = pts.eligible

    def interp(x: float) -> float:
        return float(np.interp(x, pts.grid[el], means[el]))

    par = opt.parabola
    if par is not None:
        lo, hi = opt.lo - 1e-9, opt.hi + 1e-9

        def at(x: float) -> float:
            return float(par(x)) if lo <= x <= hi else interp(x)

        return Estimate(float(par.optimum), float(par.min_value), at)
    return Estimate(float(pts.grid[opt.index]), float(means[opt.index]), interp)


def _line_noise(pts: LinePoints, window: int) -> float:
    """Pooled seed-to-seed std over the line's grid points, else the parabola's residual std."""
    ss, dof = pts.seed_scatter()
    if dof > 0:
        return math.sqrt(ss / dof)
    _, mask = pts.window(pts.y, window)
    fit = fit_parabola(pts.x[mask], pts.y[mask])
    n = int(mask.sum())
    if fit is None or n <= 3:
        return math.nan
    resid = pts.y[mask] - np.asarray(fit(pts.x[mask]))
    return math.sqrt(float((resid**2).sum()) / (n - 3))


def _select(
    df: pd.DataFrame, width: int, depth: int, hp: str, fixed: dict[str, float]
) -> pd.DataFrame:
    """Trials at one proxy with every HP except ``hp`` at its ``fixed`` value."""
    keep = (df["width"] == width) & (df["depth"] == depth)
    for h in HP_NAMES:
        if h != hp and h in fixed:
            keep &= np.isclose(df[h].to_numpy(float), fixed[h], rtol=1e-7, atol=0.0)
    return df[keep]


def _line(df: pd.DataFrame, hp: str, metric: str) -> Line | None:
    """The line's points and noise (None: fewer than 3 distinct HP values)."""
    if df[hp].round(12).nunique() < 3:
        return None
    curve = curve_points(df, hp, metric)
    pts = line_points(df, hp, metric, curve)
    return Line(
        pts=pts,
        sigma=_line_noise(pts, FIT_WINDOW) if len(pts.grid) else math.nan,
        n_ok=sum(c.n_ok for c in curve),
        n_diverged=sum(c.n_diverged for c in curve),
        n_failed=sum(c.n_failed for c in curve),
    )


def proxy_line(
    df: pd.DataFrame, width: int, depth: int, hp: str, fixed: dict[str, float], metric: str
) -> Line | None:
    """One precision's line at one proxy on the slice ``fixed`` of the other HPs (None: fewer
    than 3 distinct values of ``hp`` there)."""
    return _line(_select(df, width, depth, hp, fixed), hp, metric)


def compare_lines(
    ref: Line,
    low: Line,
    window: int,
    n_boot: int,
    rng: np.random.Generator,
) -> dict[str, float | None]:
    """Shift, gaps and their bootstrap standard errors at one proxy."""
    e_ref = estimate(ref.pts, ref.pts.y, window)
    e_low = estimate(low.pts, low.pts.y, window)

    def numbers(a: Estimate, b: Estimate) -> tuple[float, float, float, float]:
        at_ref = b.loss_at(a.optimum)
        return b.optimum - a.optimum, b.loss - a.loss, at_ref - a.loss, at_ref

    shift, gap, gap_ref, at_ref = numbers(e_ref, e_low)
    ses: list[float | None] = [None, None, None]
    sigmas = (ref.sigma, low.sigma)
    if n_boot > 0 and all(math.isfinite(s) for s in sigmas):
        truths = [line.pts.means(line.pts.y)[line.pts.gidx] for line in (ref, low)]
        draws: list[tuple[float, float, float]] = []
        for _ in range(n_boot):
            ys = [t + s * rng.standard_normal(len(t)) for t, s in zip(truths, sigmas, strict=True)]
            try:
                est = [
                    estimate(line.pts, y, window) for line, y in zip((ref, low), ys, strict=True)
                ]
            except (ValueError, np.linalg.LinAlgError):
                continue
            d = numbers(est[0], est[1])[:3]
            if all(math.isfinite(v) for v in d):
                draws.append(d)
        if len(draws) >= 0.8 * n_boot:
            ses = [float(v) for v in half_range(np.array(draws))]
        else:
            ses = [math.inf] * 3
    return {
        "reference_optimum_log2": e_ref.optimum,
        "optimum_log2": e_low.optimum,
        "shift_log2": shift,
        "shift_se": ses[0],
        "reference_loss": e_ref.loss,
        "loss": e_low.loss,
        "gap": gap,
        "gap_se": ses[1],
        "loss_at_reference_optimum": at_ref,
        "gap_at_reference_optimum": gap_ref,
        "gap_at_reference_optimum_se": ses[2],
        "regret": at_ref - e_low.loss,
    }


def pool_shifts(shifts: list[tuple[float, float]]) -> tuple[float, float]:
    """Inverse-variance mean of per-proxy shifts and its se, inflated by the Birge ratio
    (√(χ²/(k−1)) when > 1) so proxies that disagree widen the error bar.

    Example (two proxies 4 standard errors apart: the error bar widens to cover both):
        >>> mean, se = pool_shifts([(0.1, 0.05), (0.3, 0.05)])
        >>> round(mean, 3), round(se, 3)
        (0.2, 0.1)
    """
    s = np.array([v for v, _ in shifts])
    w = 1.0 / np.maximum(np.array([e for _, e in shifts]), SE_FLOOR) ** 2
    mean = float((w * s).sum() / w.sum())
    se = math.sqrt(1.0 / float(w.sum()))
    if len(s) > 1:
        chi2 = float((w * (s - mean) ** 2).sum())
        se *= max(1.0, math.sqrt(chi2 / (len(s) - 1)))
    return mean, se
