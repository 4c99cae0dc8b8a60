"""Transfer plots: loss against each swept HP on a log2 axis, one curve per proxy size.

Top row: seed mean with a min–max band, grid argmin (dot) and fitted optimum (dashed line),
diverged trials as ✕ on the top edge (never dropped). Bottom row: the optimum per proxy against
width (or depth) with its error bar, the fitted drift line and the ±tolerance band around the
reference optimum — the picture of "does it transfer". One column per run × parametrization ×
precision, so `plot_runs([umup_run, sp_run])` gives the side-by-side u-μP vs SP figure, and a run
with fp32 and fp8_sim trials gets a column per precision on a shared loss axis, the fp32 optima
drawn as hollow markers in the fp8_sim drift panel and the precision verdict in its title.
Each title ends with the cost of carrying the narrowest proxy's optimum to the widest
(`carry 64→128: +0.008 ± 0.004 (noise 0.010)`) and, when an optimum lies on an edge of the
swept range, which proxies need it extended. `plot_runs` writes one figure per swept HP.

Pure: `transfer_figure` returns a `Figure` on its own Agg canvas (no pyplot, no global
backend); `plot_runs` in `_analyze.py` saves it.
"""

from __future__ import annotations

import math
from typing import Any

import matplotlib
import numpy as np
from matplotlib import transforms
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FixedLocator, FuncFormatter

from umup_sweep.analysis._proxy_axes import axis_words, short_count
from umup_sweep.analysis._report_hp import carry_short, edges_text
from umup_sweep.analysis._transfer import HPTransfer, ProxyOptimum

PARAM_LABEL = {"umup": "u-μP", "sp": "SP", "mup": "μP"}


def _pow2(v: float, _pos: object = None) -> str:
    """Tick label 2^k (k may be fractional)."""
    k = round(v, 2)
    k_str = str(int(k)) if float(k).is_integer() else f"{k:g}"
    return f"$2^{{{k_str}}}$"


def _axis_value(axis: str, value: int) -> str:
    """``614k tokens``, ``batch 16``, ``width 64``: one coordinate of a proxy, for legends."""
    if axis == "tokens":
        return f"{short_count(value)} tokens"
    return f"{axis} {value}"


def _proxy_label(p: ProxyOptimum, axes: list[str]) -> str:
    if "tokens" in axes or "batch" in axes:
        return ", ".join(_axis_value(a, p.coords[a]) for a in axes)
    if axes == ["depth"]:
        return f"depth {p.depth}"
    if axes == ["width"] or not axes:
        return f"width {p.width}" + ("" if axes else f" (depth {p.depth})")
    return f"{p.width}×{p.depth}"


def _ylim(res: HPTransfer) -> tuple[float, float]:
    """Zoom on the optimum region: from the lowest loss to a few times the near-optimum rise."""
    lows, near = [], []
    for p in res.per_proxy:
        means = [c.mean for c in p.curve if c.mean is not None]
        mins = [c.min for c in p.curve if c.min is not None]
        if not means or p.grid_optimum_log2 is None:
            continue
        lows.append(min(mins))
        near += [
            c.max
            for c in p.curve
            if c.max is not None and abs(c.log2 - p.grid_optimum_log2) <= 2.01
        ]
    if not lows:
        return 0.0, 1.0
    lo, hi = min(lows), max(near)
    span = max(hi - lo, 1e-3)
    return lo - 0.05 * span, hi + 0.6 * span


def _proxy_curve(ax: Axes, p: ProxyOptimum, i: int, colour: object, label: str, yhi: float) -> None:
    """One proxy's curve: seed mean with its min–max band, grid best (dot), fitted optimum
    (dashed), and markers on the top edge for diverged values, pruned values (their seed means
    would leave out the pruned seeds) and means above the view."""
    top_edge = transforms.blended_transform_factory(ax.transData, ax.transAxes)
    pts = [c for c in p.curve if c.mean is not None and not c.n_pruned]
    xs = np.array([c.log2 for c in pts])
    if len(pts):
        means = np.array([c.mean for c in pts], dtype=float)
        ax.plot(xs, means, "-", color=colour, lw=1.8, label=label)
        lows = np.array([c.min for c in pts], dtype=float)
        highs = np.array([c.max for c in pts], dtype=float)
        ax.fill_between(xs, lows, highs, color=colour, alpha=0.18, lw=0)
    if p.grid_optimum_log2 is not None and p.best_loss is not None:
        ax.plot(
            [p.grid_optimum_log2],
            [p.best_loss],
            "o",
            color=colour,
            ms=7,
            mec="black",
            mew=0.8,
            zorder=5,
        )
    if p.fit_optimum_log2 is not None and p.fit_method == "parabola":
        ax.axvline(p.fit_optimum_log2, color=colour, ls="--", lw=1.0, alpha=0.9)
    edge_y = 0.985 - 0.025 * i
    edge = {"color": colour, "transform": top_edge, "clip_on": False}
    _edge_marks(ax, [c.log2 for c in p.curve if c.n_diverged], edge_y, "x", ms=8, mew=2, **edge)
    pruned = [c.log2 for c in p.curve if c.n_pruned]
    _edge_marks(ax, pruned, edge_y, "v", mfc="none", ms=7, mew=1.5, **edge)
    offplot = [c.log2 for c in pts if c.mean is not None and c.mean > yhi]
    _edge_marks(ax, offplot, edge_y, "^", ms=5, alpha=0.7, zorder=2, **edge)


def _edge_marks(ax: Axes, xs: list[float], y: float, marker: str, **style: Any) -> None:
    """Markers at ``xs`` on the top edge (``y`` in axes units): diverged, pruned, off-view."""
    if xs:
        ax.plot(xs, [y] * len(xs), marker, **({"zorder": 6} | style))


def _reference_optimum(base: HPTransfer | None) -> float | None:
    """The reference precision's fitted optimum at its widest proxy (None: none to show)."""
    fitted = [p for p in base.per_proxy if p.fit_optimum_log2 is not None] if base else []
    if not fitted:
        return None
    return max(fitted, key=lambda p: p.key).fit_optimum_log2


def _curves_legend(
    ax: Axes, base: HPTransfer | None, base_opt: float | None, pruned: bool = False
) -> None:
    """The proxies' curves plus what the markers mean, outside the axes on the right (the
    pruned marker only when some value was pruned)."""
    handles, labels = ax.get_legend_handles_labels()
    handles += [
        Line2D([], [], marker="o", ls="", color="grey", mec="black"),
        Line2D([], [], ls="--", color="grey"),
        Line2D([], [], marker="x", ls="", color="grey", mew=2),
        Line2D([], [], marker="^", ls="", color="grey"),
    ]
    labels += ["grid best", "fitted optimum", "diverged", "mean above view"]
    if pruned:
        handles.append(Line2D([], [], marker="v", ls="", color="grey", mfc="none", mew=1.5))
        labels.append("pruned (stopped early)")
    if base_opt is not None:
        handles.append(Line2D([], [], ls=":", lw=2.0, color="tab:blue"))
        labels.append(f"{base.precision} optimum" if base is not None else "")
    ax.legend(
        handles, labels, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0
    )


def _curves_panel(
    ax: Axes,
    res: HPTransfer,
    title: str,
    ylim: tuple[float, float] | None = None,
    base: HPTransfer | None = None,
) -> None:
    """Loss against the HP, one curve per proxy (and the reference precision's optimum)."""
    cmap = matplotlib.colormaps["viridis"]
    n = len(res.per_proxy)
    ylo, yhi = ylim or _ylim(res)
    xs_all: list[float] = []
    for i, p in enumerate(res.per_proxy):
        colour = cmap(0.85 * i / max(n - 1, 1))
        _proxy_curve(ax, p, i, colour, _proxy_label(p, res.axes), yhi)
        xs_all += [c.log2 for c in p.curve]
    base_opt = _reference_optimum(base)
    if base_opt is not None:
        ax.axvline(base_opt, color="tab:blue", ls=":", lw=2.0, alpha=0.9)
    ax.set_ylim(ylo, yhi)
    ticks = sorted({round(x) for x in xs_all})
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_major_formatter(FuncFormatter(_pow2))
    ax.set_xlabel(f"{res.hp} (log2 axis)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    pruned = any(c.n_pruned for p in res.per_proxy for c in p.curve)
    _curves_legend(ax, base, base_opt, pruned=pruned)


def _optima(res: HPTransfer, axis: str, ref: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per proxy with an optimum: log2 doublings along ``axis``, fitted optimum, its se."""
    pts = [p for p in res.per_proxy if p.fit_optimum_log2 is not None]
    u = np.array([math.log2(p.coords[axis] / ref) for p in pts])
    y = np.array([p.fit_optimum_log2 for p in pts], dtype=float)
    err = np.array([p.fit_optimum_se if p.fit_optimum_se is not None else 0.0 for p in pts])
    return u, y, err


def _drift_panel(ax: Axes, res: HPTransfer, base: HPTransfer | None = None) -> None:
    axis = res.axes[0] if res.axes else "width"
    ref = res.reference[axis]
    pts = [p for p in res.per_proxy if p.fit_optimum_log2 is not None]
    u, y, err = _optima(res, axis, ref)
    label = "optimum per proxy" + (f" ({res.precision})" if base is not None else "")
    ax.errorbar(u, y, yerr=2 * err, fmt="o", color="black", capsize=3, label=label, zorder=4)
    if base is not None and axis in (base.axes or [axis]):
        bu, by, berr = _optima(base, axis, ref)
        ax.errorbar(
            bu + 0.04,
            by,
            yerr=2 * berr,
            fmt="o",
            mfc="white",
            color="tab:blue",
            capsize=2,
            label=f"optimum per proxy ({base.precision})",
            zorder=3,
        )
    if res.centre_log2 is not None and axis in res.drift:
        d = res.drift[axis]
        grid = np.linspace(min(u.min(initial=0), 0), max(u.max(initial=1), 1), 20)
        ax.plot(
            grid,
            res.centre_log2 + d.slope * grid,
            "-",
            color="tab:red",
            label=f"fit: {d.slope:+.2f} ± {d.se:.2f} per doubling",
        )
        ax.fill_between(
            grid,
            res.centre_log2 - res.tolerance * grid,
            res.centre_log2 + res.tolerance * grid,
            color="tab:green",
            alpha=0.15,
            label=f"±{res.tolerance:g} per doubling (transfers)",
        )
    ticks = sorted({(float(v), p.coords[axis]) for v, p in zip(u, pts, strict=True)})
    ax.set_xticks([t for t, _ in ticks])
    ax.set_xticklabels([short_count(v) if axis == "tokens" else str(v) for _, v in ticks])
    ax.yaxis.set_major_formatter(FuncFormatter(_pow2))
    ax.set_xlabel(f"{axis_words(axis)} (log2 axis)")
    ax.set_ylabel(f"best {res.hp}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)


def _title(res: HPTransfer, run: str, show_precision: bool = False) -> str:
    label = PARAM_LABEL.get(res.parametrization, res.parametrization)
    if show_precision or res.precision != "fp32":
        label += f" {res.precision}"
    head = f"{res.hp} — {label} ({run}): {res.verdict}"
    parts = [f"{d.slope:+.2f}±{d.se:.2f} log2/{a}×2" for a, d in res.drift.items()]
    lines = [head] + (["drift " + ", ".join(parts)] if parts else [])
    vs = res.vs_reference
    if vs:
        shift = vs.get("shift_log2")
        gap = vs.get("max_gap")
        detail = [] if shift is None else [f"shift {shift:+.2f}±{vs.get('shift_se') or 0:.2f} log2"]
        detail += [] if gap is None else [f"loss gap ≤ {gap:+.3f}"]
        lines.append(
            f"vs {vs['reference']}: {vs['verdict']}" + (f" ({', '.join(detail)})" if detail else "")
        )
    lines += [t for t in (carry_short(res), edges_text(res)) if t]
    return "\n".join(lines)


def _reference_of(panels: list[tuple[str, HPTransfer]], j: int) -> HPTransfer | None:
    """The reference-precision analysis of panel ``j``'s run and parametrization (None when
    panel ``j`` is itself the reference or the run has one precision)."""
    run, res = panels[j]
    ref = res.vs_reference.get("reference")
    if not ref:
        return None
    for other_run, other in panels:
        if other_run == run and other.parametrization == res.parametrization:
            if other.precision == ref and other is not res:
                return other
    return None


def _shared_ylims(panels: list[tuple[str, HPTransfer]]) -> list[tuple[float, float]]:
    """One loss range per (run, parametrization) across its precisions, so curves compare."""
    groups: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for run, res in panels:
        groups.setdefault((run, res.parametrization), []).append(_ylim(res))
    out = []
    for run, res in panels:
        lims = groups[(run, res.parametrization)]
        out.append((min(lo for lo, _ in lims), max(hi for _, hi in lims)))
    return out


def transfer_figure(panels: list[tuple[str, HPTransfer]], metric: str) -> Figure:
    """The figure for one HP: a column per (run name, analysis); curves on top, drift below.

    Analyses of one run and parametrization at several precisions share the loss axis; a low
    precision's drift panel also shows the reference precision's optima (hollow markers).

    Example:
        >>> import pandas as pd
        >>> from umup_sweep.analysis import analyze_trials
        >>> from umup_sweep.spec import HP_DEFAULTS
        >>> rows = [HP_DEFAULTS | {"lr": 2.0**x, "width": w, "depth": 2, "seed": 0, "status": "ok",
        ...                        "parametrization": "umup", "val_loss": 3 + 0.05 * (x + 1) ** 2}
        ...         for w in (64, 128) for x in range(-4, 3)]
        >>> res = analyze_trials(pd.DataFrame(rows), ["lr"])["lr"]["umup"]
        >>> fig = transfer_figure([("demo", res)], "val_loss")
        >>> fig.axes[0].get_title().splitlines()[0]
        'lr — u-μP (demo): transfers'
    """
    ncol = len(panels)
    fig = Figure(figsize=(8.2 * ncol, 7.6))
    FigureCanvasAgg(fig)  # its own canvas: no pyplot, no global backend
    axes = fig.subplots(2, ncol, squeeze=False, gridspec_kw={"height_ratios": [2.2, 1]})
    ylims = _shared_ylims(panels)
    several = len({res.precision for _, res in panels}) > 1
    for j, (run, res) in enumerate(panels):
        base = _reference_of(panels, j)
        _curves_panel(axes[0, j], res, _title(res, run, several), ylims[j], base)
        axes[0, j].set_ylabel(metric)
        _drift_panel(axes[1, j], res, base)
    fig.tight_layout()
    return fig
