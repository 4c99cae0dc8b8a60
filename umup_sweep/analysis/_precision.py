"""Does the optimum hold in low precision? Per swept HP, parametrization and proxy: the shift of
the optimum (log2) of each lower precision (bf16, fp8_sim) from the reference (fp32), the loss
gap at the two optima, and the gap when the reference's optimum HP is used at low precision.
Written to the `precision` section of `transfer.json`.

Both optima are the transfer analysis's per-proxy optimum (`umup_sweep.fitting.log2_optimum`:
parabola in log2 HP around the grid argmin, on the same slice of the other HPs; the per-proxy
numbers are `_shift.py`'s). Their standard
errors come from a parametric bootstrap of that procedure on both curves at once (each ok trial
redrawn as its grid point's seed mean plus the line's seed noise), so a noisy argmin cannot pass
for a confident shift. The shift is pooled over proxies by inverse variance, inflated by the
Birge ratio when the proxies disagree more than their errors allow.

Verdict (``tol`` in log2, default 0.5; ``threshold`` in loss units, default 0.05 nats), with
95% intervals ``± 2·se``: *degrades* when the gap at the optimum exceeds the threshold at some
proxy (its whole interval above it; or every low-precision trial there diverged), *shifts* when
the pooled shift's interval lies outside ``[−tol, +tol]``, *holds* when it lies inside and every
proxy's gap interval stays below the threshold, else *inconclusive*.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from umup_sweep.analysis._points import N_BOOT, Z, finite_or_none
from umup_sweep.analysis._run import (
    DEFAULT_PRECISION_LOSS_THRESHOLD,
    DEFAULT_PRECISION_TOLERANCE,
    precision_rank,
)
from umup_sweep.analysis._shift import Line, compare_lines, pool_shifts, proxy_line
from umup_sweep.analysis._transfer import HPTransfer, ProxyOptimum, result_key
from umup_sweep.fitting import FIT_WINDOW


@dataclass
class PrecisionProxy:
    """One proxy (width × depth): a low precision's optimum and loss against the reference's.

    `gap` = loss at this precision's optimum − loss at the reference's optimum (positive: worse);
    `gap_at_reference_optimum` = this precision's loss at the reference's optimum HP − the
    reference's loss there; `regret` = what keeping the reference's HP costs at this precision.
    """

    width: int
    depth: int
    fixed: dict[str, float]
    reference_optimum_log2: float | None
    optimum_log2: float | None
    shift_log2: float | None
    shift_se: float | None
    reference_loss: float | None
    loss: float | None
    gap: float | None
    gap_se: float | None
    loss_at_reference_optimum: float | None
    gap_at_reference_optimum: float | None
    gap_at_reference_optimum_se: float | None
    regret: float | None
    verdict: str
    n_ok: int = 0
    n_diverged: int = 0
    n_failed: int = 0


@dataclass
class PrecisionComparison:
    """One HP under one parametrization: a low precision against the reference precision."""

    hp: str
    parametrization: str
    precision: str
    reference: str
    per_proxy: list[PrecisionProxy]
    shift_log2: float | None
    shift_se: float | None
    shift_ci: tuple[float, float] | None
    max_gap: float | None  # worst proxy's gap at the optimum
    max_gap_at_reference_optimum: float | None
    verdict: str
    reason: str
    tolerance: float
    loss_threshold: float
    notes: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """The few numbers a reader wants (attached to the low precision's `HPTransfer`)."""
        return {
            "reference": self.reference,
            "verdict": self.verdict,
            "shift_log2": self.shift_log2,
            "shift_se": self.shift_se,
            "max_gap": self.max_gap,
            "max_gap_at_reference_optimum": self.max_gap_at_reference_optimum,
        }

    def sentence(self) -> str:
        """One line for recommendations and reports, e.g. `lr: the optimum holds in fp8_sim ...`."""
        what = {
            "holds": "the optimum holds in",
            "shifts": "the optimum shifts in",
            "degrades": "the loss degrades in",
            "inconclusive": "undecided whether the optimum holds in",
        }.get(self.verdict, self.verdict)
        return f"{self.hp}: {what} {self.precision} vs {self.reference} ({self.reason})"


@dataclass
class PrecisionReport:
    """The `precision` section of `transfer.json`.

    `comparisons[hp][parametrization][precision]` compares a low precision with `reference`.
    """

    reference: str | None
    precisions: list[str]
    tolerance: float
    loss_threshold: float
    comparisons: dict[str, dict[str, dict[str, PrecisionComparison]]] = field(default_factory=dict)

    def get(self, hp: str, parametrization: str, precision: str) -> PrecisionComparison | None:
        """The comparison of one low precision (None when not compared)."""
        return self.comparisons.get(hp, {}).get(parametrization, {}).get(precision)

    def all(self) -> list[PrecisionComparison]:
        """Every comparison, in HP, parametrization, precision order."""
        return [
            c for by_p in self.comparisons.values() for by_q in by_p.values() for c in by_q.values()
        ]

    def rows(self) -> list[dict[str, Any]]:
        """One summary row per comparison: for tables in the CLI and report."""
        rows = []
        for c in self.all():
            gaps = [p.gap for p in c.per_proxy if p.gap is not None]
            ref_gaps = [
                p.gap_at_reference_optimum
                for p in c.per_proxy
                if p.gap_at_reference_optimum is not None
            ]
            rows.append(
                {
                    "hp": c.hp,
                    "parametrization": c.parametrization,
                    "precision": c.precision,
                    "reference": c.reference,
                    "proxies": ", ".join(f"{p.width}x{p.depth}" for p in c.per_proxy),
                    "shift": "-"
                    if c.shift_log2 is None
                    else f"{c.shift_log2:+.2f} ± {_f(c.shift_se)}",
                    "gap": _range(gaps),
                    "gap_at_reference_optimum": _range(ref_gaps),
                    "verdict": c.verdict,
                }
            )
        return rows


def _f(v: float | None, digits: int = 2) -> str:
    return "-" if v is None or not math.isfinite(v) else f"{v:.{digits}f}"


def _range(values: list[float], digits: int = 3) -> str:
    """`+0.002` or `+0.001 … +0.004` (min … max over proxies)."""
    if not values:
        return "-"
    lo, hi = min(values), max(values)
    if f"{lo:+.{digits}f}" == f"{hi:+.{digits}f}":
        return f"{lo:+.{digits}f}"
    return f"{lo:+.{digits}f} … {hi:+.{digits}f}"


def precision_verdict(
    shift: float | None,
    shift_se: float | None,
    gaps: Sequence[tuple[float | None, float | None]],
    tolerance: float = DEFAULT_PRECISION_TOLERANCE,
    loss_threshold: float = DEFAULT_PRECISION_LOSS_THRESHOLD,
) -> str:
    """`degrades` if some gap ± 2se lies above the threshold; `shifts` if shift ± 2se lies
    outside ±tolerance; `holds` if it lies inside and every gap + 2se stays below the
    threshold; else `inconclusive`.

    Args:
        shift: optimum shift in log2 (low precision − reference), with its standard error.
        gaps: (loss gap at the optimum, its se) per proxy.

    Example:
        >>> precision_verdict(0.05, 0.05, [(0.002, 0.001)])
        'holds'
        >>> precision_verdict(1.0, 0.1, [(0.01, 0.001)])
        'shifts'
        >>> precision_verdict(0.0, 0.05, [(0.2, 0.01)])
        'degrades'
    """

    def finite(*vs: float | None) -> bool:
        return all(v is not None and math.isfinite(v) for v in vs)

    known = [(g, s) for g, s in gaps if finite(g, s)]
    if any(g - Z * s > loss_threshold for g, s in known):  # type: ignore[operator]
        return "degrades"
    if not finite(shift, shift_se):
        return "inconclusive"
    lo, hi = shift - Z * shift_se, shift + Z * shift_se  # type: ignore[operator]
    if lo > tolerance or hi < -tolerance:
        return "shifts"
    gaps_small = bool(known) and len(known) == len(gaps)
    gaps_small = gaps_small and all(g + Z * s <= loss_threshold for g, s in known)  # type: ignore[operator]
    if -tolerance <= lo and hi <= tolerance and gaps_small:
        return "holds"
    return "inconclusive"


# --- one HP ---------------------------------------------------------------------------------


def _proxy_lines(
    ref_df: pd.DataFrame,
    low_df: pd.DataFrame,
    ref_opt: ProxyOptimum,
    low_fixed: dict[tuple[int, ...], dict[str, float]],
    hp: str,
    metric: str,
    notes: list[str],
) -> tuple[Line | None, Line | None, dict[str, float]]:
    """Both precisions' lines at one proxy, on the reference's slice of the other HPs (the low
    precision's own slice, with a note, when it did not sweep the reference's)."""
    w, d = ref_opt.width, ref_opt.depth
    if ref_opt.tokens is not None:  # train axes: both frames at this proxy's tokens and batch
        ref_df, low_df = (
            f[(f["train_tokens"] == ref_opt.tokens) & (f["batch_size"] == ref_opt.batch)]
            for f in (ref_df, low_df)
        )
    ref_line = proxy_line(ref_df, w, d, hp, ref_opt.fixed, metric)
    fixed = ref_opt.fixed
    low_line = proxy_line(low_df, w, d, hp, fixed, metric)
    if low_line is None and ref_opt.key in low_fixed:
        fixed = low_fixed[ref_opt.key]
        low_line = proxy_line(low_df, w, d, hp, fixed, metric)
        if low_line is not None:
            precision = str(low_df["precision"].iloc[0])
            notes.append(
                f"{w}x{d}: {precision} did not sweep {hp} at the reference's other HPs; "
                f"compared on its own slice {fixed}"
            )
    return ref_line, low_line, fixed


def _proxy_comparison(
    width: int,
    depth: int,
    fixed: dict[str, float],
    ref_line: Line,
    low_line: Line,
    tolerance: float,
    loss_threshold: float,
    window: int,
    n_boot: int,
    rng: np.random.Generator,
) -> PrecisionProxy:
    """One proxy's numbers and verdict (`degrades` when no low-precision trial finished)."""
    counts = {
        "n_ok": low_line.n_ok,
        "n_diverged": low_line.n_diverged,
        "n_failed": low_line.n_failed,
    }
    if not low_line.usable:
        return PrecisionProxy(
            width, depth, dict(fixed), None, None, None, None, None, None, None, None, None,
            None, None, None, "degrades", **counts,
        )  # fmt: skip
    num = compare_lines(ref_line, low_line, window, n_boot, rng)
    verdict = precision_verdict(
        num["shift_log2"], num["shift_se"], [(num["gap"], num["gap_se"])], tolerance, loss_threshold
    )
    return PrecisionProxy(
        width=width,
        depth=depth,
        fixed=dict(fixed),
        verdict=verdict,
        **{k: finite_or_none(v) for k, v in num.items()},  # type: ignore[arg-type]
        **counts,
    )


def compare_hp(
    ref_df: pd.DataFrame,
    low_df: pd.DataFrame,
    ref_res: HPTransfer,
    low_res: HPTransfer | None,
    metric: str,
    tolerance: float = DEFAULT_PRECISION_TOLERANCE,
    loss_threshold: float = DEFAULT_PRECISION_LOSS_THRESHOLD,
    window: int = FIT_WINDOW,
    n_boot: int = N_BOOT,
    seed: int = 0,
) -> PrecisionComparison:
    """Compare one HP's optima at a low precision with the reference precision's, per proxy.

    Args:
        ref_df, low_df: the trials of one parametrization at the reference / low precision.
        ref_res, low_res: their transfer analyses (the slice of the other HPs is the
            reference's per proxy; the low precision's own slice when it lacks that one).
        metric: metric column (lower is better).
        tolerance: |shift| in log2 that still holds.
        loss_threshold: gap at the optimum (metric units) beyond which it degrades.
        window: grid points either side of the argmin in the parabola fits.
        n_boot: bootstrap replicates for the standard errors (0: none, so never `holds`).
        seed: seed of the bootstrap's random numbers.
    """
    hp = ref_res.hp
    precision = str(low_df["precision"].iloc[0]) if len(low_df) else "?"
    rng = np.random.default_rng(seed)
    notes: list[str] = []
    per_proxy: list[PrecisionProxy] = []
    low_fixed = {p.key: p.fixed for p in (low_res.per_proxy if low_res else [])}
    for ref_opt in ref_res.per_proxy:
        w, d = ref_opt.width, ref_opt.depth
        ref_line, low_line, fixed = _proxy_lines(
            ref_df, low_df, ref_opt, low_fixed, hp, metric, notes
        )
        if ref_line is None or not ref_line.usable:
            continue
        if low_line is None:
            notes.append(f"{w}x{d}: {precision} has no {hp} line (≥ 3 values) here")
            continue
        if not low_line.usable:
            notes.append(f"{w}x{d}: every {precision} trial diverged or failed")
        per_proxy.append(
            _proxy_comparison(
                w, d, fixed, ref_line, low_line, tolerance, loss_threshold, window, n_boot, rng
            )
        )
    result = PrecisionComparison(
        hp=hp,
        parametrization=ref_res.parametrization,
        precision=precision,
        reference=ref_res.precision,
        per_proxy=per_proxy,
        shift_log2=None,
        shift_se=None,
        shift_ci=None,
        max_gap=None,
        max_gap_at_reference_optimum=None,
        verdict="inconclusive",
        reason="",
        tolerance=tolerance,
        loss_threshold=loss_threshold,
        notes=notes,
    )
    _judge(result)
    return result


def _judge(c: PrecisionComparison) -> None:
    """Pool the proxies into the comparison's shift, worst gaps, verdict and reason."""
    tol, thr, ref, low = c.tolerance, c.loss_threshold, c.reference, c.precision
    if not c.per_proxy:
        c.reason = f"no proxy has {c.hp} swept at both {ref} and {low}"
        return
    dead = [p for p in c.per_proxy if p.optimum_log2 is None]
    live = [p for p in c.per_proxy if p.optimum_log2 is not None]
    shifts = [
        (p.shift_log2, p.shift_se)
        for p in live
        if p.shift_log2 is not None and p.shift_se is not None and math.isfinite(p.shift_se)
    ]
    gaps = [(p.gap, p.gap_se) for p in live]
    if shifts and len(shifts) == len(live):
        c.shift_log2, c.shift_se = pool_shifts(shifts)  # type: ignore[arg-type]
        c.shift_ci = (c.shift_log2 - Z * c.shift_se, c.shift_log2 + Z * c.shift_se)
    known_gaps = [g for g, _ in gaps if g is not None]
    c.max_gap = max(known_gaps) if known_gaps else None
    ref_gaps = [p.gap_at_reference_optimum for p in live if p.gap_at_reference_optimum is not None]
    c.max_gap_at_reference_optimum = max(ref_gaps) if ref_gaps else None
    c.verdict = "degrades" if dead else precision_verdict(c.shift_log2, c.shift_se, gaps, tol, thr)
    parts = []
    if c.shift_log2 is not None and c.shift_ci is not None:
        parts.append(
            f"optimum shift {c.shift_log2:+.2f} ± {c.shift_se:.2f} log2 "
            f"(95% CI [{c.shift_ci[0]:+.2f}, {c.shift_ci[1]:+.2f}]) over {len(live)} "
            f"prox{'y' if len(live) == 1 else 'ies'}"
        )
    if known_gaps:
        parts.append(f"loss gap at the optimum {_range(known_gaps)} (threshold {thr:g})")
    if ref_gaps:
        parts.append(f"at {ref}'s optimum {_range(ref_gaps)}")
    if c.verdict == "degrades":
        where = [f"{p.width}x{p.depth}" for p in c.per_proxy if p.verdict == "degrades"]
        why = f"the loss gap exceeds {thr:g} at {', '.join(where)}"
        if dead:
            why = f"every {low} trial diverged or failed at " + ", ".join(
                f"{p.width}x{p.depth}" for p in dead
            )
    elif c.verdict == "shifts":
        why = f"the shift interval lies outside ±{tol:g}"
    elif c.verdict == "holds":
        why = f"the shift interval lies within ±{tol:g} and the loss gap stays below {thr:g}"
    elif c.shift_log2 is None:
        why = "no standard error for the shift (single seed without repeats?): add seeds"
    else:
        why = f"the intervals straddle ±{tol:g} or the {thr:g} threshold: add seeds"
    c.reason = "; ".join(parts) + (": " if parts else "") + why


# --- a run ----------------------------------------------------------------------------------


def compare_precisions(
    trials: pd.DataFrame,
    results: dict[str, dict[str, HPTransfer]],
    metric: str = "val_loss",
    tolerance: float = DEFAULT_PRECISION_TOLERANCE,
    loss_threshold: float = DEFAULT_PRECISION_LOSS_THRESHOLD,
    window: int = FIT_WINDOW,
    n_boot: int = N_BOOT,
) -> PrecisionReport:
    """Compare every lower precision with the reference (fp32, else the highest present).

    Also attaches each comparison's summary to the low precision's `HPTransfer.vs_reference`.

    Args:
        trials: the run's trials (a `precision` column; absent means all fp32).
        results: `analyze_trials` output for the same trials.
        metric, tolerance, loss_threshold, window, n_boot: see `compare_hp`.

    Example (fp8_sim trials identical to fp32's):
        >>> import pandas as pd
        >>> from umup_sweep.analysis import analyze_trials
        >>> from umup_sweep.spec import HP_DEFAULTS
        >>> rows = [HP_DEFAULTS | {"lr": 2.0**x, "width": w, "depth": 2, "seed": s,
        ...                        "status": "ok", "parametrization": "umup", "precision": p,
        ...                        "val_loss": 3 + 0.05 * (x + 1) ** 2 + 0.001 * (-1) ** (s + x)}
        ...         for p in ("fp32", "fp8_sim") for w in (64, 128) for s in (0, 1)
        ...         for x in range(-4, 3)]
        >>> trials = pd.DataFrame(rows)
        >>> report = compare_precisions(trials, analyze_trials(trials, ["lr"]), n_boot=50)
        >>> report.get("lr", "umup", "fp8_sim").verdict
        'holds'
    """
    if "precision" not in trials.columns:
        trials = trials.assign(precision="fp32")
    precisions = sorted({str(p) for p in trials["precision"]}, key=precision_rank)
    report = PrecisionReport(
        reference=precisions[0] if precisions else None,
        precisions=precisions,
        tolerance=tolerance,
        loss_threshold=loss_threshold,
    )
    if len(precisions) < 2:
        return report
    ref = precisions[0]
    for hp, by_key in results.items():
        for param in sorted({r.parametrization for r in by_key.values()}):
            ref_res = by_key.get(result_key(param, ref))
            if ref_res is None:
                continue
            sub = trials[trials["parametrization"] == param]
            ref_df = sub[sub["precision"] == ref]
            for low in precisions[1:]:
                low_df = sub[sub["precision"] == low]
                if low_df.empty:
                    continue
                low_res = by_key.get(result_key(param, low))
                comp = compare_hp(
                    ref_df,
                    low_df,
                    ref_res,
                    low_res,
                    metric,
                    tolerance,
                    loss_threshold,
                    window,
                    n_boot,
                )
                report.comparisons.setdefault(hp, {}).setdefault(param, {})[low] = comp
                if low_res is not None:
                    low_res.vs_reference = comp.summary()
    return report
