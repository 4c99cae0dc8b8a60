"""Does the optimum transfer? Per swept HP and parametrization: optimum per proxy, drift per
width (or depth) doubling fitted over all points at once, a verdict, and the regret of carrying
the narrowest proxy's optimum to the widest. Written to `runs/X/transfer.json`.

Verdict rule (tolerance ``tol`` in log2 per doubling, default 0.25): with the 95% interval
``CI = drift ± 2·se``, *transfers* when the CI lies within ``[−tol, +tol]``, *drifts* when it lies
entirely outside, else *inconclusive* (the error bar straddles the tolerance).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from umup_sweep.analysis._fit import BowlFit, fit_moving_bowl, fit_parabola
from umup_sweep.analysis._run import TRANSFER_FILE, RunData, load_run
from umup_sweep.spec import HP_NAMES

Z = 2.0  # half-width of the interval in standard errors (≈95%)
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
    se: float
    ci: tuple[float, float]
    verdict: str


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
    centre_log2: float | None = None
    centre_se: float | None = None
    curvature: float | None = None
    n_fit_points: int = 0
    regret: dict[str, Any] = field(default_factory=dict)
    loss_flags: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    n_ok: int = 0
    n_diverged: int = 0
    n_failed: int = 0

    def optimum_log2_at(self, width: int, depth: int) -> float | None:
        """The fitted optimum (log2) extrapolated along the drift line to ``(width, depth)``."""
        if self.centre_log2 is None:
            return None
        coords = {"width": width, "depth": depth}
        return self.centre_log2 + sum(
            d.slope * math.log2(coords[a] / self.reference[a]) for a, d in self.drift.items()
        )


@dataclass
class TransferReport:
    """Everything `analyze_run` found; `to_dict()` is the `transfer.json` content."""

    run: str
    run_dir: str
    metric: str
    tolerance: float
    counts: dict[str, int]
    results: dict[str, dict[str, HPTransfer]]

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
        """One summary row per (HP, parametrization): for tables in the CLI and report."""
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


def _proxy_optimum(
    width: int, depth: int, line: pd.DataFrame, hp: str, metric: str, window: int
) -> tuple[ProxyOptimum, pd.DataFrame]:
    """Grid argmin and sub-grid parabola of one proxy; also the ok points used for fitting."""
    others = {h: float(line[h].iloc[0]) for h in HP_NAMES if h != hp}
    curve = _curve(line, hp, metric)
    counts = dict(
        n_ok=sum(p.n_ok for p in curve),
        n_diverged=sum(p.n_diverged for p in curve),
        n_failed=sum(p.n_failed for p in curve),
    )
    ok = line[(line["status"] == "ok") & line[metric].notna()].copy()
    ok["x"] = np.log2(ok[hp].astype(float))
    eligible = [p for p in curve if _eligible(p)]
    if not eligible:
        empty = ProxyOptimum(width, depth, others, curve, None, None, None, None, "none", None,
                             None, False, **counts)
        return empty, ok.iloc[0:0]
    best = min(eligible, key=lambda p: p.mean if p.mean is not None else math.inf)
    tested = [p.log2 for p in curve if p.n_ok + p.n_diverged > 0]
    at_edge = best.log2 == min(tested) or (
        best.log2 == max(tested) and all(p.n_diverged == 0 for p in curve)
    )
    with_ok = [p.log2 for p in curve if p.n_ok > 0]
    i = with_ok.index(best.log2)
    lo, hi = with_ok[max(0, i - window)], with_ok[min(len(with_ok) - 1, i + window)]
    pts = ok[(ok["x"] >= lo - 1e-12) & (ok["x"] <= hi + 1e-12)]
    fit = fit_parabola(pts["x"].to_numpy(), pts[metric].to_numpy(float))
    method, fit_opt, fit_se = "grid", best.log2, None
    if fit is not None and fit.convex and lo - 1e-9 <= fit.optimum <= hi + 1e-9:
        method, fit_opt, fit_se = "parabola", fit.optimum, _opt(fit.optimum_se)
    seed_opts = []
    for _, g in pts.groupby("seed"):
        f = fit_parabola(g["x"].to_numpy(), g[metric].to_numpy(float))
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
    return result, pts


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
                if b.best_loss is not None and a.best_loss is not None and b.best_loss > a.best_loss:
                    flags.append(
                        f"best loss got worse from {axis} {getattr(a, axis)} to {getattr(b, axis)}"
                        f" ({a.best_loss:.4f} → {b.best_loss:.4f}, {other} {fixed}): "
                        "bigger proxies should be better; train longer or check the model"
                    )
    return flags


def _regret(small: ProxyOptimum, big: ProxyOptimum, big_pts: pd.DataFrame, metric: str,
            window: int) -> dict[str, Any]:
    """Loss at the big proxy when using the small proxy's optimum, minus the big proxy's best."""
    out: dict[str, Any] = {"from": f"{small.width}x{small.depth}", "to": f"{big.width}x{big.depth}"}
    if small.fit_optimum_log2 is None or big.best_loss is None:
        return out
    x_carry = small.fit_optimum_log2
    out["carried_log2"] = x_carry
    eligible = [p for p in big.curve if _eligible(p) and p.mean is not None]
    nearest = min(eligible, key=lambda p: abs(p.log2 - (small.grid_optimum_log2 or x_carry)))
    out["grid"] = float(nearest.mean - big.best_loss)  # type: ignore[operator]
    fit = fit_parabola(big_pts["x"].to_numpy(), big_pts[metric].to_numpy(float))
    if fit is not None and fit.convex and big_pts["x"].min() <= x_carry <= big_pts["x"].max():
        out["fit"] = float(fit(x_carry) - fit.min_value)
    return out


def analyze_hp(
    df: pd.DataFrame, hp: str, metric: str, tolerance: float, window: int = 2
) -> HPTransfer | None:
    """Transfer analysis of one HP within one parametrization's trials (None: HP not swept here).

    Args:
        df: trials of one parametrization (every status).
        hp: the HP to analyse.
        metric: metric column to minimise.
        tolerance: |drift| in log2 per doubling that still counts as transferring.
        window: grid points either side of each proxy's argmin used in the fits (quadratic
            only holds near the optimum).
    """
    lines = _pick_lines(df, hp, metric)
    if not lines:
        return None
    param = str(df["parametrization"].iloc[0])
    axes = [a for a in AXES if len({proxy[AXES.index(a)] for proxy in lines}) > 1]
    reference = {"width": min(w for w, _ in lines), "depth": min(d for _, d in lines)}
    per_proxy, fit_pts = [], []
    notes: list[str] = []
    for (w, d), line in sorted(lines.items()):
        opt, pts = _proxy_optimum(w, d, line, hp, metric, window)
        per_proxy.append(opt)
        fit_pts.append(pts)
        if opt.at_edge:
            notes.append(
                f"{w}x{d}: the best {hp} is at the edge of the swept range; extend the grid"
            )
        if opt.fit_method == "none":
            notes.append(f"{w}x{d}: no usable trials (all diverged or failed)")
    totals = {k: sum(getattr(p, k) for p in per_proxy) for k in ("n_ok", "n_diverged", "n_failed")}
    result = HPTransfer(
        hp=hp, parametrization=param, axes=axes, reference=reference, per_proxy=per_proxy,
        drift={}, verdict="inconclusive", reason="", tolerance=tolerance, notes=notes, **totals,
    )
    result.loss_flags = _loss_flags(per_proxy, axes)
    usable = [(p, pts) for p, pts in zip(per_proxy, fit_pts, strict=True) if len(pts)]
    if not axes:
        result.reason = "only one proxy size: sweep ≥ 2 widths (or depths) to test transfer"
        return result
    if len(usable) < 2:
        result.reason = "fewer than two proxies have usable trials"
        return result
    fit = _fit_all(usable, axes, reference, metric)
    if fit is None:
        result.reason = "could not fit a bowl to the points near the optimum (flat or too few)"
        return result
    result.centre_log2, result.centre_se = fit.centre, _opt(fit.centre_se)
    result.curvature, result.n_fit_points = fit.curvature, fit.n_points
    for axis, slope, se in zip(axes, fit.drift, fit.drift_se, strict=True):
        ci = (slope - Z * se, slope + Z * se)
        result.drift[axis] = Drift(axis, slope, se, ci, verdict_for(slope, se, tolerance))
    result.verdict, result.reason = _combine(result.drift, tolerance)
    if not fit.converged:
        notes.append("the joint fit did not fully converge; treat the drift with care")
    small = min(usable, key=lambda t: (t[0].width, t[0].depth))
    big = max(usable, key=lambda t: (t[0].width, t[0].depth))
    if small[0] is not big[0]:
        result.regret = _regret(small[0], big[0], big[1], metric, window)
    return result


def _fit_all(
    usable: list[tuple[ProxyOptimum, pd.DataFrame]], axes: list[str], reference: dict[str, int],
    metric: str,
) -> BowlFit | None:
    """The moving-bowl fit over every usable proxy's near-optimum points."""
    xs, ys, idx, us, init = [], [], [], [], []
    for i, (p, pts) in enumerate(usable):
        xs.append(pts["x"].to_numpy(float))
        ys.append(pts[metric].to_numpy(float))
        idx.append(np.full(len(pts), i))
        u = [math.log2(getattr(p, a) / reference[a]) for a in axes]
        us.append(np.tile(u, (len(pts), 1)))
        init.append(p.fit_optimum_log2 if p.fit_optimum_log2 is not None else math.nan)
    return fit_moving_bowl(
        np.concatenate(xs), np.concatenate(ys), np.concatenate(idx), np.concatenate(us),
        init_centres=np.array(init, dtype=float),
    )


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
    """Analyse a trials table: ``{hp: {parametrization: HPTransfer}}`` for each swept HP."""
    results: dict[str, dict[str, HPTransfer]] = {}
    for hp in swept:
        for param, df in trials.groupby("parametrization", sort=True):
            res = analyze_hp(df, hp, metric, tolerance, window)
            if res is not None:
                results.setdefault(hp, {})[str(param)] = res
    return results


def analyze_run(
    run_dir: str | Path | RunData,
    tolerance: float | None = None,
    window: int = 2,
    write: bool = True,
) -> TransferReport:
    """Analyse a run directory and (by default) write its `transfer.json`.

    Args:
        run_dir: `runs/<name>/` with `trials.csv` (or an already loaded `RunData`).
        tolerance: |drift| (log2 per doubling) that still transfers; default from the sweep's
            `analysis.tolerance`, else 0.25.
        window: grid points either side of each proxy's argmin used in the fits.
        write: write `transfer.json` into the run directory.

    Example:
        >>> report = analyze_run("runs/lr_width")  # doctest: +SKIP
        >>> report.results["lr"]["umup"].verdict
        'transfers'
    """
    run = run_dir if isinstance(run_dir, RunData) else load_run(run_dir)
    tol = float(tolerance if tolerance is not None else run.tolerance)
    status = run.trials["status"].value_counts()
    counts = {"total": len(run.trials)} | {
        s: int(status.get(s, 0)) for s in ("ok", "diverged", "failed")
    }
    report = TransferReport(
        run=run.name,
        run_dir=str(run.path),
        metric=run.metric,
        tolerance=tol,
        counts=counts,
        results=analyze_trials(run.trials, run.swept, run.metric, tol, window),
    )
    if write:
        report.write()
    return report
