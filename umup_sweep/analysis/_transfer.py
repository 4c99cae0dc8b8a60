"""Does the optimum transfer? Per swept HP and parametrization: optimum per proxy, drift per
width (or depth) doubling fitted over all points at once, a verdict, and the regret of carrying
the narrowest proxy's optimum to the widest. Written to `runs/X/transfer.json`.

Verdict rule (tolerance ``tol`` in log2 per doubling, default 0.25): with the 95% interval
``CI = drift ± 2·se``, *transfers* when the CI lies within ``[−tol, +tol]``, *drifts* when it lies
entirely outside, else *inconclusive* (the error bar straddles the tolerance).

Runs with a precision axis are analysed per (parametrization, precision): fp32 results keep the
plain parametrization key (``results["lr"]["umup"]``), others are keyed ``"umup@fp8_sim"``; the
comparison across precisions is in `report.precision` (see `_precision.py`).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from umup_sweep.analysis._fit import BowlFit, fit_moving_bowl, fit_parabola
from umup_sweep.analysis._run import (
    DEFAULT_PRECISION,
    TRANSFER_FILE,
    RunData,
    load_run,
    precision_rank,
)
from umup_sweep.spec import HP_NAMES

if TYPE_CHECKING:
    from umup_sweep.analysis._precision import PrecisionReport

Z = 2.0  # half-width of the interval in standard errors (≈95%)
N_BOOT = 200  # parametric-bootstrap replicates for the drift's standard error
AXES = ("width", "depth")
_ROUND = 9  # significant digits used to decide two HP values are "the same grid point"


@dataclass
class CurvePoint:
    """One HP value at one proxy: the seed-mean metric and what happened to every seed."""

    value: float
    log2: float
    mean: float | None
    std: float | None
    min: float | None
    max: float | None
    n_ok: int
    n_diverged: int
    n_failed: int


@dataclass
class ProxyOptimum:
    """The optimum of one HP at one proxy (width, depth)."""

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
    regret: dict[str, Any] = field(default_factory=dict)
    bootstrap: dict[str, Any] = field(default_factory=dict)
    loss_flags: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    n_ok: int = 0
    n_diverged: int = 0
    n_failed: int = 0
    # for a low precision: its comparison with the reference precision (verdict, shift, gap)
    vs_reference: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """Its key in `TransferReport.results[hp]`: `umup`, or `umup@fp8_sim` below fp32."""
        return result_key(self.parametrization, self.precision)

    def optimum_log2_at(self, width: int, depth: int) -> float | None:
        """The fitted optimum (log2) extrapolated along the drift line to ``(width, depth)``."""
        if self.centre_log2 is None:
            return None
        coords = {"width": width, "depth": depth}
        return self.centre_log2 + sum(
            d.slope * math.log2(coords[a] / self.reference[a]) for a, d in self.drift.items()
        )


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


@dataclass
class TransferReport:
    """Everything `analyze_run` found; `to_dict()` is the `transfer.json` content.

    `results[hp][key]` holds one `HPTransfer` per parametrization and precision (key from
    `result_key`); `precision` compares each lower precision's optima with the reference's.
    """

    run: str
    run_dir: str
    metric: str
    tolerance: float
    counts: dict[str, int]
    results: dict[str, dict[str, HPTransfer]]
    precisions: list[str] = field(default_factory=lambda: [DEFAULT_PRECISION])
    precision: PrecisionReport | None = None

    def get(
        self, hp: str, parametrization: str, precision: str = DEFAULT_PRECISION
    ) -> HPTransfer | None:
        """The analysis of ``hp`` under one parametrization and precision (None: not swept)."""
        return self.results.get(hp, {}).get(result_key(parametrization, precision))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (NaN written as null)."""
        return _clean(asdict(self))

    def write(self, path: str | Path | None = None) -> Path:
        """Write `transfer.json` (into the run directory unless ``path`` is given)."""
        out = Path(path) if path is not None else Path(self.run_dir) / TRANSFER_FILE
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return out

    def rows(self) -> list[dict[str, Any]]:
        """One summary row per (HP, parametrization, precision): for tables in the CLI and
        report (`parametrization` is the result key, e.g. `umup@fp8_sim`, so rows differ)."""
        rows = []
        for hp, by_param in self.results.items():
            for param, res in by_param.items():
                drift = "; ".join(
                    f"{d.slope:+.2f} ± {d.se:.2f} /{a}×2" for a, d in res.drift.items()
                )
                rows.append(
                    {
                        "hp": hp,
                        "parametrization": param,
                        "precision": res.precision,
                        "proxies": ", ".join(f"{p.width}x{p.depth}" for p in res.per_proxy),
                        "optima_log2": ", ".join(_fmt(p.fit_optimum_log2) for p in res.per_proxy),
                        "drift": drift or "-",
                        "verdict": res.verdict,
                        "regret": _fmt(res.regret.get("fit", res.regret.get("grid")), 4),
                    }
                )
        return rows


def _fmt(v: float | None, digits: int = 2) -> str:
    return "-" if v is None or not math.isfinite(v) else f"{v:.{digits}f}"


def _clean(obj: Any) -> Any:
    """Replace NaN/inf with None and tuples with lists, recursively (for JSON)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    if isinstance(obj, np.generic):
        return _clean(obj.item())
    return obj


def _opt(v: float) -> float | None:
    return float(v) if v is not None and math.isfinite(v) else None


def _key(values: pd.Series) -> tuple[float, ...]:
    return tuple(float(f"{float(v):.{_ROUND}g}") for v in values)


def _pick_lines(df: pd.DataFrame, hp: str, metric: str) -> dict[tuple[int, int], pd.DataFrame]:
    """Per proxy, the trials that sweep ``hp`` with every other HP held fixed.

    A "line" is a group of trials sharing every other HP value and covering ≥ 3 distinct values
    of ``hp``. Prefer the line present at the most proxies (tie: the one holding the best loss at
    the largest proxy) so every proxy is compared on the same slice; a proxy without it uses its
    own best line.
    """
    others = [h for h in HP_NAMES if h != hp]
    lines: dict[tuple[int, int], dict[tuple[float, ...], pd.DataFrame]] = {}
    for (w, d), sub in df.groupby(["width", "depth"], sort=True):
        keys = sub[others].apply(_key, axis=1)
        groups = {
            k: g
            for k, g in sub.groupby(keys, sort=False)
            if g[hp].map(lambda v: float(f"{float(v):.{_ROUND}g}")).nunique() >= 3
        }
        if groups:
            lines[(int(w), int(d))] = groups
    if not lines:
        return {}

    def best_loss(g: pd.DataFrame) -> float:
        ok = g[g["status"] == "ok"]
        means = ok.groupby(hp)[metric].mean()
        return float(means.min()) if len(means) else math.inf

    count: dict[tuple[float, ...], int] = {}
    for groups in lines.values():
        for k in groups:
            count[k] = count.get(k, 0) + 1
    largest = max(lines)
    top = max(count.values())
    candidates = [k for k, c in count.items() if c == top]
    preferred = min(
        candidates,
        key=lambda k: best_loss(lines[largest][k]) if k in lines[largest] else math.inf,
    )
    chosen = {}
    for proxy, groups in lines.items():
        if preferred in groups:
            chosen[proxy] = groups[preferred]
        else:
            chosen[proxy] = min(groups.values(), key=best_loss)
    return chosen


def _curve(line: pd.DataFrame, hp: str, metric: str) -> list[CurvePoint]:
    """Seed statistics per HP value (ok trials only in the statistics; all counted)."""
    points = []
    rounded = line[hp].map(lambda v: float(f"{float(v):.{_ROUND}g}"))
    for value, g in line.groupby(rounded, sort=True):
        ok = g.loc[(g["status"] == "ok") & g[metric].notna(), metric].astype(float)
        n_ok = len(ok)
        points.append(
            CurvePoint(
                value=float(value),
                log2=math.log2(float(value)),
                mean=float(ok.mean()) if n_ok else None,
                std=float(ok.std(ddof=0)) if n_ok else None,
                min=float(ok.min()) if n_ok else None,
                max=float(ok.max()) if n_ok else None,
                n_ok=n_ok,
                n_diverged=int((g["status"] == "diverged").sum()),
                n_failed=int((g["status"] == "failed").sum()),
            )
        )
    return points


def _eligible(p: CurvePoint) -> bool:
    """A grid point can be the optimum only if at least half of its finished seeds are ok."""
    return p.n_ok > 0 and 2 * p.n_ok >= p.n_ok + p.n_diverged


@dataclass
class _Points:
    """The ok trials of one proxy's line as arrays, for the fits and the bootstrap."""

    x: np.ndarray  # log2 HP per ok trial
    y: np.ndarray  # metric per ok trial
    seed: np.ndarray
    grid: np.ndarray  # sorted distinct x with at least one ok trial
    gidx: np.ndarray  # grid index of each trial
    eligible: np.ndarray  # per grid point: may be the optimum (≥ half its seeds ok)

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


def _points(line: pd.DataFrame, hp: str, metric: str, curve: list[CurvePoint]) -> _Points:
    ok = line[(line["status"] == "ok") & line[metric].notna()]
    x = np.log2(ok[hp].to_numpy(float))
    x = np.array([float(f"{v:.{_ROUND}g}") for v in x])
    with_ok = [c for c in curve if c.n_ok > 0]
    grid = np.array([c.log2 for c in with_ok])
    # Nearest grid point: the curve's log2 comes from the rounded value, so it can differ from
    # x in the 9th digit (half-step grids like 2^-9.5); exact matching would misfile trials.
    gidx = (
        np.abs(x[:, None] - grid[None, :]).argmin(axis=1) if len(grid) else np.zeros(0, int)
    )
    return _Points(
        x=x,
        y=ok[metric].to_numpy(float),
        seed=ok["seed"].to_numpy(),
        grid=grid,
        gidx=gidx,
        eligible=np.array([_eligible(c) for c in with_ok], dtype=bool),
    )


def _proxy_optimum(
    width: int, depth: int, line: pd.DataFrame, hp: str, metric: str, window: int
) -> tuple[ProxyOptimum, _Points, np.ndarray]:
    """Grid argmin and sub-grid parabola of one proxy; also its points and the fit-window mask."""
    others = {h: float(line[h].iloc[0]) for h in HP_NAMES if h != hp}
    curve = _curve(line, hp, metric)
    counts = dict(
        n_ok=sum(p.n_ok for p in curve),
        n_diverged=sum(p.n_diverged for p in curve),
        n_failed=sum(p.n_failed for p in curve),
    )
    pts = _points(line, hp, metric, curve)
    if not pts.eligible.any():
        empty = ProxyOptimum(
            width, depth, others, curve, None, None, None, None, "none", None, None, False, **counts
        )
        return empty, pts, np.zeros(len(pts.x), dtype=bool)
    i, mask = pts.window(pts.y, window)
    best = next(c for c in curve if c.n_ok > 0 and c.log2 == pts.grid[i])
    tested = [p.log2 for p in curve if p.n_ok + p.n_diverged > 0]
    at_edge = best.log2 == min(tested) or (
        best.log2 == max(tested) and all(p.n_diverged == 0 for p in curve)
    )
    wx, wy, ws = pts.x[mask], pts.y[mask], pts.seed[mask]
    lo, hi = float(wx.min()), float(wx.max())
    fit = fit_parabola(wx, wy)
    method, fit_opt, fit_se = "grid", best.log2, None
    if fit is not None and fit.convex and lo - 1e-9 <= fit.optimum <= hi + 1e-9:
        method, fit_opt, fit_se = "parabola", fit.optimum, _opt(fit.optimum_se)
    seed_opts = []
    for s in np.unique(ws):
        f = fit_parabola(wx[ws == s], wy[ws == s])
        if f is not None and f.convex and lo <= f.optimum <= hi:
            seed_opts.append(f.optimum)
    spread = float(np.std(seed_opts)) if len(seed_opts) >= 2 else None
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
        seed_spread=spread,
        best_loss=best.mean,
        at_edge=bool(at_edge),
        **counts,
    )
    return result, pts, mask


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


def _loss_flags(per_proxy: list[ProxyOptimum], axes: list[str]) -> list[str]:
    """Bigger proxies should reach a lower loss: flag every step along an axis where they don't."""
    flags = []
    for axis in axes:
        other = "depth" if axis == "width" else "width"
        groups: dict[int, list[ProxyOptimum]] = {}
        for p in per_proxy:
            groups.setdefault(getattr(p, other), []).append(p)
        for fixed, ps in groups.items():
            ps = sorted((p for p in ps if p.best_loss is not None), key=lambda p: getattr(p, axis))
            for a, b in zip(ps, ps[1:], strict=False):
                if (
                    b.best_loss is not None
                    and a.best_loss is not None
                    and b.best_loss > a.best_loss
                ):
                    flags.append(
                        f"best loss got worse from {axis} {getattr(a, axis)} to {getattr(b, axis)}"
                        f" ({a.best_loss:.4f} → {b.best_loss:.4f}, {other} {fixed}): "
                        "bigger proxies should be better; train longer or check the model"
                    )
    return flags


def _regret(
    small: ProxyOptimum, big: ProxyOptimum, big_pts: _Points, big_mask: np.ndarray
) -> dict[str, Any]:
    """Loss at the big proxy when using the small proxy's optimum, minus the big proxy's best:
    on the grid (nearest grid point) and on the big proxy's fitted parabola when in range."""
    out: dict[str, Any] = {"from": f"{small.width}x{small.depth}", "to": f"{big.width}x{big.depth}"}
    if small.fit_optimum_log2 is None or big.best_loss is None:
        return out
    x_carry = small.fit_optimum_log2
    out["carried_log2"] = x_carry
    eligible = [p for p in big.curve if _eligible(p) and p.mean is not None]
    nearest = min(eligible, key=lambda p: abs(p.log2 - (small.grid_optimum_log2 or x_carry)))
    out["grid"] = float(nearest.mean - big.best_loss)  # type: ignore[operator]
    wx, wy = big_pts.x[big_mask], big_pts.y[big_mask]
    fit = fit_parabola(wx, wy)
    if fit is not None and fit.convex and wx.min() <= x_carry <= wx.max():
        out["fit"] = float(fit(x_carry) - fit.min_value)
    return out


@dataclass
class _Usable:
    """One proxy that takes part in the joint fit."""

    opt: ProxyOptimum
    pts: _Points
    mask: np.ndarray
    u: list[float]  # log2 doublings from the reference along each axis


def analyze_hp(
    df: pd.DataFrame,
    hp: str,
    metric: str,
    tolerance: float,
    window: int = 2,
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
    lines = _pick_lines(df, hp, metric)
    if not lines:
        return None
    param = str(df["parametrization"].iloc[0])
    precision = str(df["precision"].iloc[0]) if "precision" in df else DEFAULT_PRECISION
    axes = [a for a in AXES if len({proxy[AXES.index(a)] for proxy in lines}) > 1]
    reference = {"width": min(w for w, _ in lines), "depth": min(d for _, d in lines)}
    per_proxy: list[ProxyOptimum] = []
    usable: list[_Usable] = []
    notes: list[str] = []
    for (w, d), line in sorted(lines.items()):
        opt, pts, mask = _proxy_optimum(w, d, line, hp, metric, window)
        per_proxy.append(opt)
        if opt.at_edge:
            notes.append(
                f"{w}x{d}: the best {hp} is at the edge of the swept range; extend the grid"
            )
        if opt.fit_method == "none":
            notes.append(f"{w}x{d}: no usable trials (all diverged or failed)")
        else:
            u = [math.log2({"width": w, "depth": d}[a] / reference[a]) for a in axes]
            usable.append(_Usable(opt, pts, mask, u))
    totals = {k: sum(getattr(p, k) for p in per_proxy) for k in ("n_ok", "n_diverged", "n_failed")}
    result = HPTransfer(
        hp=hp,
        parametrization=param,
        axes=axes,
        reference=reference,
        per_proxy=per_proxy,
        drift={},
        verdict="inconclusive",
        reason="",
        tolerance=tolerance,
        precision=precision,
        notes=notes,
        **totals,
    )
    result.loss_flags = _loss_flags(per_proxy, axes)
    if not axes:
        result.reason = "only one proxy size: sweep ≥ 2 widths (or depths) to test transfer"
        return result
    if len(usable) < 2:
        result.reason = "fewer than two proxies have usable trials"
        return result
    fit = _fit_all(usable, [u.mask for u in usable])
    if fit is None:
        result.reason = "could not fit a bowl to the points near the optimum (flat or too few)"
        return result
    result.centre_log2, result.centre_se = fit.centre, _opt(fit.centre_se)
    result.curvature, result.n_fit_points = list(fit.curvature), fit.n_points
    boot_se, n_failed_boot = _bootstrap_se(usable, fit, window, n_boot)
    result.bootstrap = {"replicates": n_boot, "failed": n_failed_boot, "noise": _noise(usable, fit)}
    for k, (axis, slope, se_wald) in enumerate(zip(axes, fit.drift, fit.drift_se, strict=True)):
        se = max(se_wald, boot_se[k]) if n_boot else se_wald
        ci = (slope - Z * se, slope + Z * se)
        result.drift[axis] = Drift(
            axis,
            slope,
            se,
            ci,
            verdict_for(slope, se, tolerance),
            se_wald=se_wald,
            se_bootstrap=_opt(boot_se[k]),
        )
    result.verdict, result.reason = _combine(result.drift, tolerance)
    if not fit.converged:
        notes.append("the joint fit did not fully converge; treat the drift with care")
    small = min(usable, key=lambda t: (t.opt.width, t.opt.depth))
    big = max(usable, key=lambda t: (t.opt.width, t.opt.depth))
    if small is not big:
        result.regret = _regret(small.opt, big.opt, big.pts, big.mask)
    return result


def _fit_all(
    usable: list[_Usable],
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


def _noise(usable: list[_Usable], fit: BowlFit) -> float:
    """Per-trial noise: pooled seed-to-seed std at each grid point when there are repeats,
    else the joint fit's residual std (which also holds any lack of fit)."""
    ss, dof = 0.0, 0
    for item in usable:
        pts = item.pts
        means = pts.means(pts.y)
        counts = np.bincount(pts.gidx, minlength=len(pts.grid))
        ss += float(((pts.y - means[pts.gidx]) ** 2).sum())
        dof += int((counts - 1).clip(min=0).sum())
    if dof > 0:
        return math.sqrt(ss / dof)
    return math.sqrt(fit.rss / fit.dof) if fit.dof > 0 else math.nan


def _bootstrap_se(
    usable: list[_Usable], fit: BowlFit, window: int, n_boot: int, seed: int = 0
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
    sigma = _noise(usable, fit)
    if not math.isfinite(sigma) or sigma == 0:
        return [0.0] * k, 0
    rng = np.random.default_rng(seed)
    truth = [item.pts.means(item.pts.y)[item.pts.gidx] for item in usable]
    start = (fit.centre, fit.drift)
    drifts, failed = [], 0
    for _ in range(n_boot):
        ys = [t + sigma * rng.standard_normal(len(t)) for t in truth]
        masks = [item.pts.window(y, window)[1] for item, y in zip(usable, ys, strict=True)]
        f = _fit_all(usable, masks, ys, start=start)
        if f is None:
            failed += 1
        else:
            drifts.append(f.drift)
    if len(drifts) < 0.8 * n_boot:
        return [math.inf] * k, failed
    arr = np.array(drifts)
    lo, hi = np.percentile(arr, [15.87, 84.13], axis=0)
    return [float(v) for v in (hi - lo) / 2], failed


def _combine(drift: dict[str, Drift], tol: float) -> tuple[str, str]:
    """One verdict over all axes, with the reason in words."""
    parts = [
        f"drift {d.slope:+.2f} ± {d.se:.2f} log2 per {a} doubling "
        f"(95% CI [{d.ci[0]:+.2f}, {d.ci[1]:+.2f}])"
        for a, d in drift.items()
    ]
    verdicts = {d.verdict for d in drift.values()}
    if "drifts" in verdicts:
        verdict, why = "drifts", f"the interval lies outside ±{tol:g}"
    elif verdicts == {"transfers"}:
        verdict, why = "transfers", f"the interval lies within ±{tol:g}"
    else:
        verdict, why = "inconclusive", f"the interval straddles ±{tol:g}: add seeds or widths"
    return verdict, "; ".join(parts) + f": {why}"


def analyze_trials(
    trials: pd.DataFrame,
    swept: tuple[str, ...] | list[str],
    metric: str = "val_loss",
    tolerance: float = 0.25,
    window: int = 2,
) -> dict[str, dict[str, HPTransfer]]:
    """Analyse a trials table: ``{hp: {key: HPTransfer}}`` for each swept HP, one analysis per
    parametrization and precision (key `umup`, `sp`, `umup@fp8_sim`, ...: see `result_key`)."""
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


def analyze_run(
    run_dir: str | Path | RunData,
    tolerance: float | None = None,
    window: int = 2,
    write: bool = True,
    precision_tolerance: float | None = None,
    precision_loss_threshold: float | None = None,
) -> TransferReport:
    """Analyse a run directory and (by default) write its `transfer.json`.

    Args:
        run_dir: `runs/<name>/` with `trials.csv` (or an already loaded `RunData`).
        tolerance: |drift| (log2 per doubling) that still transfers; default from the sweep's
            `analysis.tolerance`, else 0.25.
        window: grid points either side of each proxy's argmin used in the fits.
        write: write `transfer.json` into the run directory.
        precision_tolerance: |shift| (log2) of a low precision's optimum from fp32's that still
            holds; default the sweep's `analysis.precision_tolerance`, else 0.5.
        precision_loss_threshold: loss gap at the optimum beyond which a low precision
            degrades; default the sweep's `analysis.precision_loss_threshold`, else 0.05.

    Example:
        >>> report = analyze_run("runs/lr_width")  # doctest: +SKIP
        >>> report.results["lr"]["umup"].verdict  # doctest: +SKIP
        'transfers'
    """
    run = run_dir if isinstance(run_dir, RunData) else load_run(run_dir)
    tol = float(tolerance if tolerance is not None else run.tolerance)
    status = run.trials["status"].value_counts()
    counts = {"total": len(run.trials)} | {
        s: int(status.get(s, 0)) for s in ("ok", "diverged", "failed")
    }
    from umup_sweep.analysis._precision import compare_precisions  # imports this module

    results = analyze_trials(run.trials, run.swept, run.metric, tol, window)
    precision = compare_precisions(
        run.trials,
        results,
        run.metric,
        float(precision_tolerance or run.precision_tolerance),
        float(precision_loss_threshold or run.precision_loss_threshold),
        window,
    )
    report = TransferReport(
        run=run.name,
        run_dir=str(run.path),
        metric=run.metric,
        tolerance=tol,
        counts=counts,
        results=results,
        precisions=precision.precisions,
        precision=precision,
    )
    if write:
        report.write()
    return report
