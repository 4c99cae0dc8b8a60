"""Does the optimum transfer? Per swept HP and parametrization: optimum per proxy, drift per
doubling along every axis that varies — width, depth and, for a sweep with train axes,
training tokens and batch size (`_proxy_axes.py`) — fitted over all points at once, a
verdict, the regret of carrying the narrowest proxy's optimum to the widest (the smallest
proxy's to the largest) with its bootstrap interval (`_regret.py`), the
optima on an edge of the swept range (`_edges.py`) and the width from which on it transfers
(`_regime.py`). Pure: the run-level report and its `transfer.json` are `_analyze.py`'s.

Verdict rule (tolerance ``tol`` in log2 per doubling, default 0.25): with the 95% interval
``CI = drift ± 2·se``, *transfers* when the CI lies within ``[−tol, +tol]``, *drifts* when it lies
entirely outside, else *inconclusive* (the error bar straddles the tolerance). A usable proxy
whose best grid point is on an edge of its swept range makes it *inconclusive* whatever the
drift (which is still fitted and stored): its reason starts with the range to add.

Runs with a precision axis are analysed per (parametrization, precision): fp32 results keep the
plain parametrization key (``results["lr"]["umup"]``), others are keyed ``"umup@fp8_sim"``; the
comparison across precisions is `_precision.py`'s.

Example (a noise-free bowl at log2 lr = −1 at both widths):
    >>> import pandas as pd
    >>> from umup_sweep.spec import HP_DEFAULTS
    >>> rows = [HP_DEFAULTS | {"lr": 2.0**x, "width": w, "depth": 2, "seed": 0, "status": "ok",
    ...                        "parametrization": "umup", "val_loss": 3 + 0.05 * (x + 1) ** 2}
    ...         for w in (64, 128) for x in range(-4, 3)]
    >>> res = analyze_trials(pd.DataFrame(rows), ["lr"])["lr"]["umup"]
    >>> res.verdict, [round(p.fit_optimum_log2, 6) for p in res.per_proxy]
    ('transfers', [-1.0, -1.0])
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from umup_sweep.analysis._drift import FitProxy, bootstrap_se, fit_all, seed_noise, verdict_for
from umup_sweep.analysis._edges import edge_reason, edge_records
from umup_sweep.analysis._points import (
    N_BOOT,
    CurvePoint,
    Z,
    curve_points,
    finite_or_none,
    line_points,
    positive_rows,
    rounded,
)
from umup_sweep.analysis._proxy_axes import (
    AXES,
    MORE_ALONG,
    ProxyKey,
    key_coords,
    loss_flags,
    proxy_columns,
    proxy_label,
    varying_axes,
)
from umup_sweep.analysis._regime import width_regime
from umup_sweep.analysis._regret import carry_cost
from umup_sweep.analysis._run import DEFAULT_PRECISION, precision_rank
from umup_sweep.config import AnalysisSpec
from umup_sweep.fitting import FIT_WINDOW, LinePoints, fit_parabola, log2_optimum
from umup_sweep.spec import HP_NAMES

__all__ = [
    "AXES",
    "HPTransfer",
    "ProxyOptimum",
    "analyze_hp",
    "analyze_trials",
    "proxy_optimum",
    "result_key",
]

# What happened to the trials, per proxy and summed over proxies (`CurvePoint`'s counts).
_COUNTS = ("n_ok", "n_diverged", "n_failed", "n_pruned")


@dataclass
class ProxyOptimum:
    """The optimum of one HP at one proxy (width, depth; with train axes also the planned
    training tokens and the batch size in sequences)."""

    width: int
    depth: int
    fixed: dict[str, float]
    curve: list[CurvePoint]
    grid_optimum: float | None
    grid_optimum_log2: float | None
    fit_optimum_log2: float | None
    fit_optimum_se: float | None
    fit_method: str  # "parabola" | "grid" (fallback) | "none"
    seed_spread: float | None  # std of per-seed fitted optima (log2)
    best_loss: float | None
    at_edge: bool
    n_ok: int
    n_diverged: int
    n_failed: int
    n_pruned: int = 0  # stopped early as dominated (never the optimum)
    tokens: int | None = None  # planned tokens (steps × batch × seq_len), train axes only
    batch: int | None = None  # sequences per step, train axes only

    @property
    def key(self) -> ProxyKey:
        """(width, depth), or (width, depth, tokens, batch) on the train axes: sorts small
        to large."""
        if self.tokens is None or self.batch is None:
            return (self.width, self.depth)
        return (self.width, self.depth, self.tokens, self.batch)

    @property
    def coords(self) -> dict[str, int]:
        """``{axis: value}`` for every axis this proxy is placed on."""
        return key_coords(self.key)

    @property
    def name(self) -> str:
        """``64x2``, or ``64x2 t=614k b=16`` on the train axes."""
        return proxy_label(self.width, self.depth, self.tokens, self.batch)


@dataclass
class Drift:
    """Drift of the optimum along one axis, log2 per doubling, with its 2-se interval."""

    axis: str
    slope: float
    se: float  # the larger of the two below: what the verdict uses
    ci: tuple[float, float]
    verdict: str
    se_wald: float | None = None  # from the joint fit's Jacobian
    se_bootstrap: float | None = None  # from the parametric bootstrap of the whole procedure


@dataclass
class HPTransfer:
    """Transfer analysis of one HP under one parametrization."""

    hp: str
    parametrization: str
    axes: list[str]
    reference: dict[str, int]
    per_proxy: list[ProxyOptimum]
    drift: dict[str, Drift]
    verdict: str
    reason: str
    tolerance: float
    precision: str = DEFAULT_PRECISION
    centre_log2: float | None = None
    centre_se: float | None = None
    curvature: list[float] | None = None  # per proxy, loss per log2² from the optimum
    n_fit_points: int = 0
    regret: dict[str, Any] = field(default_factory=dict)  # see `_regret.carry_cost`
    edges: list[dict[str, Any]] = field(default_factory=list)  # see `_edges.edge_records`
    regime: dict[str, Any] = field(default_factory=dict)  # see `_regime.width_regime`
    bootstrap: dict[str, Any] = field(default_factory=dict)
    loss_flags: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    n_ok: int = 0
    n_diverged: int = 0
    n_failed: int = 0
    n_pruned: int = 0
    # for a low precision: its comparison with the reference precision (verdict, shift, gap)
    vs_reference: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """Its key in `TransferReport.results[hp]`: `umup`, or `umup@fp8_sim` below fp32."""
        return result_key(self.parametrization, self.precision)

    def optimum_log2_at(self, width: int, depth: int, **coords: int) -> float | None:
        """The fitted optimum (log2) extrapolated along the drift line to ``(width, depth)``
        and the other axes' ``coords`` (``tokens=``, ``batch=``; an axis not given stays at
        the fit's reference)."""
        if self.centre_log2 is None:
            return None
        at = {**self.reference, **coords, "width": width, "depth": depth}
        return self.centre_log2 + sum(
            d.slope * math.log2(at[a] / self.reference[a]) for a, d in self.drift.items()
        )

    @property
    def beta(self) -> tuple[float, float] | None:
        """(β, se) of ``HP* ∝ D^−β`` along the training tokens: minus the tokens drift."""
        d = self.drift.get("tokens")
        return None if d is None else (-d.slope, d.se)


def result_key(parametrization: str, precision: str = DEFAULT_PRECISION) -> str:
    """Key of one analysis in `TransferReport.results[hp]`: the parametrization, with
    ``@precision`` appended unless fp32 (so runs without a precision axis read as before).

    Example:
        >>> result_key("umup"), result_key("umup", "fp8_sim")
        ('umup', 'umup@fp8_sim')
    """
    if precision == DEFAULT_PRECISION:
        return parametrization
    return f"{parametrization}@{precision}"


def _key(values: pd.Series) -> tuple[float, ...]:
    return tuple(rounded(v) for v in values)


def _pick_lines(df: pd.DataFrame, hp: str, metric: str) -> dict[ProxyKey, pd.DataFrame]:
    """Per proxy, the trials that sweep ``hp`` with every other HP held fixed.

    A "line" is a group of trials sharing every other HP value and covering ≥ 3 distinct values
    of ``hp``. Prefer the line present at the most proxies, so every proxy is compared on the
    same slice; then the one with the most distinct values of ``hp`` (summed over the proxies),
    so a short re-sweep around a best value (an independent search's stage-3 lr line) never
    displaces the full sweep of it (stage 1); then the one holding the best loss at the largest
    proxy. A proxy without the chosen line uses its own best line.
    """
    others = [h for h in HP_NAMES if h != hp]
    lines: dict[ProxyKey, dict[tuple[float, ...], pd.DataFrame]] = {}
    for proxy, sub in df.groupby(proxy_columns(df), sort=True):
        keys = sub[others].apply(_key, axis=1)
        groups = {
            k: g for k, g in sub.groupby(keys, sort=False) if g[hp].map(rounded).nunique() >= 3
        }
        if groups:
            lines[tuple(int(v) for v in proxy)] = groups
    if not lines:
        return {}

    def best_loss(g: pd.DataFrame) -> float:
        ok = g[g["status"] == "ok"]
        means = ok.groupby(hp)[metric].mean()
        return float(means.min()) if len(means) else math.inf

    count: dict[tuple[float, ...], int] = {}
    n_values: dict[tuple[float, ...], int] = {}
    for groups in lines.values():
        for k, g in groups.items():
            count[k] = count.get(k, 0) + 1
            n_values[k] = n_values.get(k, 0) + int(g[hp].map(rounded).nunique())
    largest = max(lines)
    preferred = min(
        count,
        key=lambda k: (
            -count[k],
            -n_values[k],
            best_loss(lines[largest][k]) if k in lines[largest] else math.inf,
        ),
    )
    chosen = {}
    for proxy, groups in lines.items():
        if preferred in groups:
            chosen[proxy] = groups[preferred]
        else:
            chosen[proxy] = min(groups.values(), key=best_loss)
    return chosen


def _seed_spread(pts: LinePoints, mask: np.ndarray, lo: float, hi: float) -> float | None:
    """Std of the per-seed fitted optima inside the window (None with fewer than two)."""
    wx, wy, ws = pts.x[mask], pts.y[mask], pts.seed[mask]
    seed_opts = []
    for s in np.unique(ws):
        f = fit_parabola(wx[ws == s], wy[ws == s])
        if f is not None and f.convex and lo <= f.optimum <= hi:
            seed_opts.append(f.optimum)
    return float(np.std(seed_opts)) if len(seed_opts) >= 2 else None


def _proxy_optimum(
    width: int,
    depth: int,
    line: pd.DataFrame,
    hp: str,
    metric: str,
    window: int,
    train: tuple[int, ...] = (),
) -> tuple[ProxyOptimum, LinePoints, np.ndarray]:
    """Grid argmin and sub-grid parabola of one proxy (``train``: its tokens and batch on the
    train axes); also its points and the fit-window mask."""
    others = {h: float(line[h].iloc[0]) for h in HP_NAMES if h != hp}
    curve = curve_points(line, hp, metric)
    counts: dict[str, Any] = {k: sum(getattr(c, k) for c in curve) for k in _COUNTS}
    if train:
        counts |= {"tokens": train[0], "batch": train[1]}
    pts = line_points(line, hp, metric, curve)
    if not pts.eligible.any():
        empty = ProxyOptimum(
            width, depth, others, curve, None, None, None, None, "none", None, None, False, **counts
        )
        return empty, pts, np.zeros(len(pts.x), dtype=bool)
    opt = log2_optimum(pts, window=window)
    best = next(c for c in curve if c.n_ok > 0 and c.log2 == pts.grid[opt.index])
    tested = [p.log2 for p in curve if p.tested]
    at_edge = best.log2 == min(tested) or (
        best.log2 == max(tested) and all(p.n_diverged == 0 for p in curve)
    )
    method, fit_opt, fit_se = "grid", best.log2, None
    if opt.parabola is not None:
        method, fit_opt, fit_se = "parabola", opt.log2, finite_or_none(opt.parabola.optimum_se)
    result = ProxyOptimum(
        width=width,
        depth=depth,
        fixed=others,
        curve=curve,
        grid_optimum=best.value,
        grid_optimum_log2=best.log2,
        fit_optimum_log2=fit_opt,
        fit_optimum_se=fit_se,
        fit_method=method,
        seed_spread=_seed_spread(pts, opt.mask, opt.lo, opt.hi),
        best_loss=best.mean,
        at_edge=bool(at_edge),
        **counts,
    )
    return result, pts, opt.mask


def proxy_optimum(
    proxy: ProxyKey, line: pd.DataFrame, hp: str, metric: str, window: int
) -> tuple[ProxyOptimum, LinePoints, np.ndarray]:
    """One proxy's optimum of ``hp`` on ``line`` (its trials of one slice of the other HPs),
    its points and fit-window mask: the estimator every analysis shares."""
    return _proxy_optimum(proxy[0], proxy[1], line, hp, metric, window, tuple(proxy[2:]))


def _proxies(
    lines: dict[ProxyKey, pd.DataFrame],
    hp: str,
    metric: str,
    window: int,
    axes: list[str],
    reference: dict[str, int],
) -> tuple[list[ProxyOptimum], list[FitProxy], list[str]]:
    """Every proxy's optimum, the proxies usable in the joint fit, and notes on the others."""
    per_proxy: list[ProxyOptimum] = []
    usable: list[FitProxy] = []
    notes: list[str] = []
    for proxy, line in sorted(lines.items()):
        opt, pts, mask = proxy_optimum(proxy, line, hp, metric, window)
        per_proxy.append(opt)
        if opt.at_edge:
            notes.append(
                f"{opt.name}: the best {hp} is at the edge of the swept range; extend the grid"
            )
        if opt.fit_method == "none":
            notes.append(f"{opt.name}: no usable trials (all diverged or failed)")
        else:
            u = [math.log2(opt.coords[a] / reference[a]) for a in axes]
            usable.append(FitProxy(opt, pts, mask, u))
    return per_proxy, usable, notes


def analyze_hp(
    df: pd.DataFrame,
    hp: str,
    metric: str,
    tolerance: float,
    window: int = FIT_WINDOW,
    n_boot: int = N_BOOT,
) -> HPTransfer | None:
    """Transfer analysis of one HP within one parametrization's trials (None: HP not swept here).

    Args:
        df: trials of one parametrization and one precision (every status).
        hp: the HP to analyse.
        metric: metric column to minimise.
        tolerance: |drift| in log2 per doubling that still counts as transferring.
        window: grid points either side of each proxy's argmin used in the fits (quadratic
            only holds near the optimum).
        n_boot: parametric-bootstrap replicates for the drift's standard error (0: Wald only).
    """
    df, dropped = positive_rows(df, hp)
    lines = _pick_lines(df, hp, metric)
    if not lines:
        return None
    axes = varying_axes(list(lines))
    coords = [key_coords(k) for k in lines]
    reference = {a: min(c[a] for c in coords) for a in AXES if a in coords[0]}
    per_proxy, usable, notes = _proxies(lines, hp, metric, window, axes, reference)
    notes += dropped
    totals = {k: sum(getattr(p, k) for p in per_proxy) for k in _COUNTS}
    result = HPTransfer(
        hp=hp,
        parametrization=str(df["parametrization"].iloc[0]),
        axes=axes,
        reference=reference,
        per_proxy=per_proxy,
        drift={},
        verdict="inconclusive",
        reason="",
        tolerance=tolerance,
        precision=str(df["precision"].iloc[0]) if "precision" in df else DEFAULT_PRECISION,
        notes=notes,
        **totals,
    )
    result.loss_flags = loss_flags(per_proxy, axes)
    if not axes:
        result.reason = (
            "only one proxy size: sweep ≥ 2 widths (or depths, horizons, batch sizes) to test "
            "transfer"
        )
    elif len(usable) < 2:
        result.reason = "fewer than two proxies have usable trials"
    else:
        _fit_drift(result, usable, metric, window, n_boot)
    result.edges = edge_records(u.opt for u in usable)
    if result.edges:
        result.verdict = "inconclusive"
        result.reason = f"{edge_reason(hp, result.edges)}; {result.reason}"
    if axes and len(usable) >= 2:
        result.regime = width_regime(result, usable, window, n_boot)
    return result


def _fit_drift(
    result: HPTransfer, usable: list[FitProxy], metric: str, window: int, n_boot: int
) -> None:
    """The joint fit over the usable proxies: drift per axis, its bootstrap error, the
    verdict, and the regret of carrying the smallest proxy's optimum to the largest."""
    fit = fit_all(usable, [u.mask for u in usable])
    if fit is None:
        result.reason = "could not fit a bowl to the points near the optimum (flat or too few)"
        return
    result.centre_log2, result.centre_se = fit.centre, finite_or_none(fit.centre_se)
    result.curvature, result.n_fit_points = list(fit.curvature), fit.n_points
    boot_se, n_failed_boot = bootstrap_se(usable, fit, window, n_boot)
    result.bootstrap = {
        "replicates": n_boot,
        "failed": n_failed_boot,
        "noise": seed_noise(usable, fit),
    }
    for k, (axis, slope, se_wald) in enumerate(
        zip(result.axes, fit.drift, fit.drift_se, strict=True)
    ):
        se = max(se_wald, boot_se[k]) if n_boot else se_wald
        ci = (slope - Z * se, slope + Z * se)
        result.drift[axis] = Drift(
            axis,
            slope,
            se,
            ci,
            verdict_for(slope, se, result.tolerance),
            se_wald=se_wald,
            se_bootstrap=finite_or_none(boot_se[k]),
        )
    result.verdict, result.reason = _combine(result.drift, result.tolerance)
    if not fit.converged:
        result.notes.append("the joint fit did not fully converge; treat the drift with care")
    small = min(usable, key=lambda t: t.opt.key)
    big = max(usable, key=lambda t: t.opt.key)
    if small is not big:
        result.regret = carry_cost(small, big, metric, window, n_boot)


def _combine(drift: dict[str, Drift], tol: float) -> tuple[str, str]:
    """One verdict over all axes, with the reason in words."""
    parts = [
        f"drift {d.slope:+.2f} ± {d.se:.2f} log2 per {a} doubling "
        f"(95% CI [{d.ci[0]:+.2f}, {d.ci[1]:+.2f}]"
        + (f"; β = {-d.slope:.2f} ± {d.se:.2f} in HP* ∝ D^-β)" if a == "tokens" else ")")
        for a, d in drift.items()
    ]
    verdicts = {d.verdict for d in drift.values()}
    if "drifts" in verdicts:
        verdict, why = "drifts", f"the interval lies outside ±{tol:g}"
    elif verdicts == {"transfers"}:
        verdict, why = "transfers", f"the interval lies within ±{tol:g}"
    else:
        more = " or ".join(MORE_ALONG.get(a, a) for a in drift) or "widths"
        verdict, why = "inconclusive", f"the interval straddles ±{tol:g}: add seeds or {more}"
    return verdict, "; ".join(parts) + f": {why}"


def analyze_trials(
    trials: pd.DataFrame,
    swept: tuple[str, ...] | list[str],
    metric: str = "val_loss",
    tolerance: float = AnalysisSpec().tolerance,
    window: int = FIT_WINDOW,
) -> dict[str, dict[str, HPTransfer]]:
    """Analyse a trials table: ``{hp: {key: HPTransfer}}`` for each swept HP, one analysis per
    parametrization and precision (key `umup`, `sp`, `umup@fp8_sim`, ...: see `result_key`).
    The module docstring has an example."""
    if "precision" not in trials.columns:  # a frame from before the precision axis
        trials = trials.assign(precision=DEFAULT_PRECISION)
    elif trials["precision"].isna().any():
        trials = trials.assign(precision=trials["precision"].fillna(DEFAULT_PRECISION))
    groups = sorted(
        trials.groupby(["parametrization", "precision"], sort=False),
        key=lambda kv: (str(kv[0][0]), precision_rank(str(kv[0][1]))),
    )
    results: dict[str, dict[str, HPTransfer]] = {}
    for hp in swept:
        for _, df in groups:
            res = analyze_hp(df, hp, metric, tolerance, window)
            if res is not None:
                results.setdefault(hp, {})[res.key] = res
    return results
