"""The joint fit behind the drift: one moving bowl over every usable proxy's near-optimum
trials (`fit_all`), the per-trial noise (`seed_noise`), and the parametric bootstrap of the
whole procedure that gives the drift its standard error (`bootstrap_se`), and the verdict
rule on a drift and its standard error (`verdict_for`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from umup_sweep.analysis._fit import BowlFit, fit_moving_bowl
from umup_sweep.analysis._points import Z, half_range
from umup_sweep.fitting import LinePoints

if TYPE_CHECKING:
    from umup_sweep.analysis._transfer import ProxyOptimum


@dataclass
class FitProxy:
    """One proxy that takes part in the joint fit."""

    opt: ProxyOptimum
    pts: LinePoints
    mask: np.ndarray
    u: list[float]  # log2 doublings from the reference along each axis


def fit_all(
    usable: list[FitProxy],
    masks: list[np.ndarray],
    ys: list[np.ndarray] | None = None,
    start: tuple[float, tuple[float, ...]] | None = None,
) -> BowlFit | None:
    """The moving-bowl fit over every usable proxy's near-optimum (masked) points."""
    xs, yv, idx, us, init = [], [], [], [], []
    for i, item in enumerate(usable):
        m = masks[i]
        y = item.pts.y if ys is None else ys[i]
        xs.append(item.pts.x[m])
        yv.append(y[m])
        idx.append(np.full(int(m.sum()), i))
        us.append(np.tile(item.u, (int(m.sum()), 1)))
        opt = item.opt.fit_optimum_log2
        init.append(opt if opt is not None else math.nan)
    return fit_moving_bowl(
        np.concatenate(xs),
        np.concatenate(yv),
        np.concatenate(idx),
        np.concatenate(us),
        init_centres=np.array(init, dtype=float),
        start=start,
    )


def seed_noise(usable: list[FitProxy], fit: BowlFit) -> float:
    """Per-trial noise: pooled seed-to-seed std at each grid point when there are repeats,
    else the joint fit's residual std (which also holds any lack of fit)."""
    ss, dof = 0.0, 0
    for item in usable:
        item_ss, item_dof = item.pts.seed_scatter()
        ss += item_ss
        dof += item_dof
    if dof > 0:
        return math.sqrt(ss / dof)
    return math.sqrt(fit.rss / fit.dof) if fit.dof > 0 else math.nan


def bootstrap_se(
    usable: list[FitProxy], fit: BowlFit, window: int, n_boot: int, seed: int = 0
) -> tuple[list[float], int]:
    """Standard error of the drift from a parametric bootstrap of the whole procedure.

    Each replicate redraws every ok trial as its grid point's observed seed mean plus noise,
    then redoes the window selection and the joint fit. Unlike the fit's own standard error
    this sees that each window was centred on a noisy argmin, so pure noise cannot pass for
    a confident drift. Returns (se per axis as half the 16–84% range, failed replicates).
    """
    k = len(fit.drift)
    if n_boot <= 0:
        return [math.nan] * k, 0
    sigma = seed_noise(usable, fit)
    if not math.isfinite(sigma) or sigma == 0:
        return [0.0] * k, 0
    rng = np.random.default_rng(seed)
    truth = [item.pts.means(item.pts.y)[item.pts.gidx] for item in usable]
    start = (fit.centre, fit.drift)
    drifts, failed = [], 0
    for _ in range(n_boot):
        ys = [t + sigma * rng.standard_normal(len(t)) for t in truth]
        masks = [item.pts.window(y, window)[1] for item, y in zip(usable, ys, strict=True)]
        f = fit_all(usable, masks, ys, start=start)
        if f is None:
            failed += 1
        else:
            drifts.append(f.drift)
    if len(drifts) < 0.8 * n_boot:
        return [math.inf] * k, failed
    return [float(v) for v in half_range(np.array(drifts))], failed


def verdict_for(slope: float, se: float, tol: float) -> str:
    """`transfers` if slope ± 2se ⊂ [−tol, tol]; `drifts` if it lies entirely outside; else
    `inconclusive`.

    Example:
        >>> verdict_for(0.02, 0.05, 0.25), verdict_for(-1.0, 0.1, 0.25), verdict_for(0.2, 0.1, 0.25)
        ('transfers', 'drifts', 'inconclusive')
    """
    if not (math.isfinite(slope) and math.isfinite(se)):
        return "inconclusive"
    lo, hi = slope - Z * se, slope + Z * se
    if -tol <= lo and hi <= tol:
        return "transfers"
    if lo > tol or hi < -tol:
        return "drifts"
    return "inconclusive"
