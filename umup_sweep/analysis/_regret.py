"""What carrying the smallest proxy's optimum to the largest proxy costs, with an interval.

The *cost* is in metric units at the largest proxy, at the carried value ``x`` (the smallest
proxy's optimum, `umup_sweep.fitting.log2_optimum`): the largest proxy's fitted parabola at
``x`` minus its minimum when ``x`` lies inside that fit's window and the parabola opens upward
(``cost_method: "parabola"``); otherwise its seed-mean curve interpolated piecewise-linearly at
``x`` minus its lowest seed mean (``"interpolation"``; beyond the swept range the end value is
used, so the cost is then a lower bound). Clamped at 0.

Interval: a bootstrap over seeds. Each replicate draws, at both proxies independently, as many
seeds as each has, with replacement (a seed brings every trial it finished), then redoes the
whole procedure: the small proxy's optimum with the same estimator, and the cost at the large
proxy. Resampling n seeds out of n shrinks the spread by √((n − 1)/n), so the replicates'
deviations from their median are widened by √(n/(n − 1)) (n: the smaller seed count of the
two; clamped at 0 again). ``cost_se`` is half the 16–84% range of the replicates and
``cost_ci`` their 2.5–97.5% range (≈95%, as the drift's ±2 se). In simulation (a known
drift, Gaussian seed noise) that interval covers the true cost in ≈93% of datasets with 4
seeds per proxy but only ≈77% with 2: few seeds give a rough interval. A proxy with a single
seed gives none (resampling it would pretend its curve has no noise).

Judgement, against ``seed_sd`` (the seed-to-seed standard deviation of one trial's loss at the
largest proxy, pooled over its fit-window grid points that have ≥ 2 ok seeds): *negligible*
when the interval's upper end is ≤ ``seed_sd`` (carrying costs less than rerunning with another
seed would change), *costly* when its lower end is > ``seed_sd``, *unclear* otherwise;
*no interval* without one. The original point estimates stay: ``grid`` (the loss at the big
proxy's grid point nearest the small proxy's grid optimum, minus its best) and ``fit`` (the
parabola's cost, when defined).

Example (noise-free bowls at log2 lr = −1 and 0, two seeds: carrying −1 costs 0.05·1²):
    >>> import pandas as pd
    >>> from umup_sweep.spec import HP_DEFAULTS
    >>> from umup_sweep.analysis._transfer import analyze_trials
    >>> rows = [HP_DEFAULTS | {"lr": 2.0**x, "width": w, "depth": 2, "seed": s, "status": "ok",
    ...         "parametrization": "umup", "val_loss": 3 + 0.05 * (x + 1 - (w == 128)) ** 2}
    ...         for w in (64, 128) for s in (0, 1) for x in range(-4, 3)]
    >>> r = analyze_trials(pd.DataFrame(rows), ["lr"])["lr"]["umup"].regret
    >>> round(r["cost"], 6), r["cost_method"], r["cost_ci"] == [r["cost"], r["cost"]]
    (0.05, 'parabola', True)
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from umup_sweep.analysis._drift import FitProxy
from umup_sweep.analysis._points import half_range
from umup_sweep.fitting import LinePoints, fit_parabola, log2_optimum

CI_PERCENTILES = (2.5, 97.5)


def carry_cost(
    small: FitProxy, big: FitProxy, metric: str, window: int, n_boot: int, seed: int = 0
) -> dict[str, Any]:
    """The regret of carrying ``small``'s optimum to ``big`` (the module docstring has the
    rule): the point estimates, the bootstrap interval, the judgement and a sentence."""
    out: dict[str, Any] = {
        "from": small.opt.name,
        "to": big.opt.name,
    }
    x_carry = small.opt.fit_optimum_log2
    if x_carry is None or big.opt.best_loss is None:
        return out
    out["carried_log2"] = x_carry
    out |= _point_regret(small, big, x_carry)
    cost, method = _cost_at(big.pts, big.pts.y, x_carry, window)
    out |= {"cost": cost, "cost_method": method}
    reps = _bootstrap(small.pts, big.pts, window, n_boot, seed)
    seed_sd = pooled_seed_sd(big.pts, big.mask)
    out |= {"cost_se": None, "cost_ci": None, "replicates": len(reps), "seed_sd": seed_sd}
    if len(reps) >= 2:
        lo, hi = np.percentile(reps, CI_PERCENTILES)
        out |= {"cost_se": float(half_range(reps)), "cost_ci": [float(lo), float(hi)]}
    out["judgement"] = judge(out["cost_ci"], seed_sd)
    one_seed = min(len(np.unique(small.pts.seed)), len(np.unique(big.pts.seed))) < 2
    out["sentence"] = regret_sentence(out, metric, "one seed" if one_seed else "no bootstrap")
    return out


def _point_regret(small: FitProxy, big: FitProxy, x_carry: float) -> dict[str, float]:
    """The plain estimates: nearest grid point (``grid``) and the big proxy's parabola (``fit``,
    only when it opens upward and the carried value lies inside its window)."""
    out: dict[str, float] = {}
    eligible = [p for p in big.opt.curve if p.eligible and p.mean is not None]
    target = small.opt.grid_optimum_log2 or x_carry
    nearest = min(eligible, key=lambda p: abs(p.log2 - target))
    out["grid"] = float(nearest.mean - big.opt.best_loss)  # type: ignore[operator]
    wx, wy = big.pts.x[big.mask], big.pts.y[big.mask]
    fit = fit_parabola(wx, wy)
    if fit is not None and fit.convex and wx.min() <= x_carry <= wx.max():
        out["fit"] = float(fit(x_carry) - fit.min_value)
    return out


def _cost_at(pts: LinePoints, y: np.ndarray, x: float, window: int) -> tuple[float, str]:
    """Cost of using log2 value ``x`` on this line (metric values ``y``), and how it was found."""
    mask = pts.window(y, window)[1]  # log2_optimum's window, without its vertex check
    wx, wy = pts.x[mask], y[mask]
    fit = fit_parabola(wx, wy)
    if fit is not None and fit.convex and wx.min() <= x <= wx.max():
        return max(0.0, float(fit(x) - fit.min_value)), "parabola"
    means = pts.means(y)
    lowest = float(means[pts.eligible].min())
    return max(0.0, float(np.interp(x, pts.grid, means)) - lowest), "interpolation"


def resample_seeds(pts: LinePoints, seeds: np.ndarray) -> LinePoints | None:
    """The line as if run with ``seeds`` (repeats allowed, each relabelled as its own seed);
    None when no grid point that may be the optimum is left.

    Example:
        >>> pts = LinePoints(np.array([0.0, 1.0, 0.0]), np.array([1.0, 2.0, 3.0]),
        ...                  np.array([0, 0, 1]), np.array([0.0, 1.0]), np.array([0, 1, 0]),
        ...                  np.array([True, True]))
        >>> r = resample_seeds(pts, np.array([1, 1]))
        >>> r.grid.tolist(), r.y.tolist(), r.seed.tolist()
        ([0.0], [3.0, 3.0], [0, 1])
    """
    parts = [np.flatnonzero(pts.seed == s) for s in seeds]
    idx = np.concatenate(parts)
    present = np.unique(pts.gidx[idx])
    if not pts.eligible[present].any():
        return None
    remap = np.full(len(pts.grid), -1)
    remap[present] = np.arange(len(present))
    return LinePoints(
        x=pts.x[idx],
        y=pts.y[idx],
        seed=np.repeat(np.arange(len(parts)), [len(p) for p in parts]),
        grid=pts.grid[present],
        gidx=remap[pts.gidx[idx]],
        eligible=pts.eligible[present],
    )


def _bootstrap(
    small: LinePoints, big: LinePoints, window: int, n_boot: int, seed: int
) -> np.ndarray:
    """Costs recomputed on seed-resampled copies of both lines (empty: no interval)."""
    s_seeds, b_seeds = np.unique(small.seed), np.unique(big.seed)
    if n_boot <= 0 or min(len(s_seeds), len(b_seeds)) < 2:
        return np.zeros(0)
    rng = np.random.default_rng(seed)
    costs = []
    for _ in range(n_boot):
        s = resample_seeds(small, rng.choice(s_seeds, len(s_seeds)))
        b = resample_seeds(big, rng.choice(b_seeds, len(b_seeds)))
        if s is None or b is None:
            continue
        x = log2_optimum(s, window=window).log2
        costs.append(_cost_at(b, b.y, x, window)[0])
    if len(costs) < 2:
        return np.zeros(0)
    reps = np.array(costs)
    # resampling n seeds from n shrinks the variance by (n - 1) / n: undo it (n: the fewer)
    n = min(len(s_seeds), len(b_seeds))
    centre = float(np.median(reps))
    return np.clip(centre + (reps - centre) * math.sqrt(n / (n - 1)), 0.0, None)


def pooled_seed_sd(pts: LinePoints, mask: np.ndarray) -> float | None:
    """Seed-to-seed sd of one trial's loss (ddof 1), pooled over the grid points of ``mask``
    with ≥ 2 trials; None without any.

    Example:
        >>> pts = LinePoints(np.array([0.0, 0.0, 1.0, 1.0, 2.0]), np.array([1, 3, 5, 7, 9.0]),
        ...                  np.array([0, 1, 0, 1, 0]), np.array([0.0, 1.0, 2.0]),
        ...                  np.array([0, 0, 1, 1, 2]), np.ones(3, dtype=bool))
        >>> round(pooled_seed_sd(pts, np.ones(5, dtype=bool)), 6)  # sqrt((2 + 2) / 2)
        1.414214
    """
    ss, dof = pts.seed_scatter(mask)
    return math.sqrt(ss / dof) if dof else None


def judge(ci: list[float] | None, seed_sd: float | None) -> str:
    """`negligible` / `costly` / `unclear` / `no interval` (see the module docstring).

    Example:
        >>> judge([0.0, 0.004], 0.01), judge([0.02, 0.05], 0.01), judge([0.0, 0.02], 0.01)
        ('negligible', 'costly', 'unclear')
        >>> judge(None, 0.01), judge([0.0, 0.004], None)
        ('no interval', 'unclear')
    """
    if ci is None:
        return "no interval"
    if seed_sd is None:
        return "unclear"
    if ci[1] <= seed_sd:
        return "negligible"
    if ci[0] > seed_sd:
        return "costly"
    return "unclear"


def _decimals(seed_sd: float | None) -> int:
    """Decimals to print loss differences with: 3, or enough to show the seed noise's first
    significant digit (at most 6)."""
    if seed_sd is None or not seed_sd > 0:
        return 3
    return int(min(6, max(3, -math.floor(math.log10(seed_sd)))))


def regret_sentence(r: dict[str, Any], metric: str, why: str = "one seed") -> str:
    """One line for the report (``why``: what to say when there is no interval).

    Example:
        >>> regret_sentence({"from": "64x2", "to": "128x2", "cost": 0.008, "cost_se": 0.004,
        ...                  "seed_sd": 0.01, "judgement": "negligible"}, "val_loss")
        'carrying the optimum from 64x2 to 128x2 costs 0.008 ± 0.004 val_loss (seed noise 0.010): negligible'
    """  # noqa: E501
    k = _decimals(r.get("seed_sd"))
    head = f"carrying the optimum from {r['from']} to {r['to']} costs {r['cost']:.{k}f}"
    if r.get("cost_se") is None:
        return f"{head} {metric} ({why}: no interval)"
    noise = "unknown" if r.get("seed_sd") is None else f"{r['seed_sd']:.{k}f}"
    return f"{head} ± {r['cost_se']:.{k}f} {metric} (seed noise {noise}): {r['judgement']}"
