"""How `recommend` moves a proxy's HP value to the target: the drift line it follows, and the
move itself.

The line is the transfer analysis's drift, except where its width regime (`_regime.py`) says
the optimum only transfers from some width X on above the smallest: then the narrower widths
are left out (with a warning naming them) and the width drift is the one fitted over the
widths ≥ X alone. The value comes from the widest proxy either way, which is always inside
the regime.

Example:
    >>> line = DriftLine("drifts", "drift -1.00 ± 0.01", {"width": (-1.0, (-1.02, -0.98))})
    >>> ev, warnings = {}, []
    >>> ci = carry_to_target("lr", 0.5, 0.05, line, {"width": 128, "depth": 2},
    ...                      {"width": 512, "depth": 2}, "umup", ev, warnings)
    >>> ci.value, ev["shift_log2"], round(ci.log2_se, 4)
    (0.125, -2.0, 0.0539)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from umup_sweep.analysis._interval import CarryInterval, carry_interval
from umup_sweep.analysis._points import Z
from umup_sweep.analysis._proxy_axes import MORE_ALONG, proxy_label

if TYPE_CHECKING:
    from umup_sweep.analysis._transfer import HPTransfer


@dataclass
class DriftLine:
    """The drift `recommend` extrapolates along: a verdict, its reason, and per axis the slope
    (log2 per doubling) with its 95% interval."""

    verdict: str
    reason: str
    drift: dict[str, tuple[float, tuple[float, float]]]


def _combined(verdicts: set[str]) -> str:
    if "drifts" in verdicts:
        return "drifts"
    return "transfers" if verdicts == {"transfers"} else "inconclusive"


def drift_line(hp: str, res: HPTransfer, ev: dict[str, Any], warnings: list[str]) -> DriftLine:
    """The analysis's drift line, or its width regime's when that leaves narrow widths out
    (recorded as ``ev["regime"]``, with a warning naming the widths left out)."""
    line = DriftLine(
        res.verdict,
        res.reason,
        {a: (d.slope, (d.ci[0], d.ci[1])) for a, d in res.drift.items()},
    )
    reg = res.regime
    if not reg:
        return line
    used = bool(reg["too_narrow"]) and reg["drift"] is not None
    ev["regime"] = {k: reg[k] for k in ("from_width", "too_narrow", "drift", "sentence")}
    ev["regime"]["used"] = used
    if not used:
        return line
    d = reg["drift"]
    line.drift["width"] = (d["slope"], (d["ci"][0], d["ci"][1]))
    others = {v.verdict for a, v in res.drift.items() if a != "width"}
    line.verdict = _combined({d["verdict"]} | others)
    line.reason = reg["sentence"]
    narrow = ", ".join(str(w) for w in reg["too_narrow"])
    plural = "s" if len(reg["too_narrow"]) > 1 else ""
    warnings.append(
        f"{hp}: {reg['sentence']}; using widths ≥ {reg['from_width']} only (left out: "
        f"width{plural} {narrow}); add a wider proxy to confirm"
    )
    return line


def carry_to_target(
    hp: str,
    value: float,
    source_se: float | None,
    line: DriftLine,
    src: dict[str, Any],
    target: dict[str, int],
    param: str,
    ev: dict[str, Any],
    warnings: list[str],
) -> CarryInterval:
    """The proxy value moved along the drift line to the target, with its interval
    (`_interval.carry_interval`); notes the move in `ev` and warns when the move is a
    drift, an inconclusive one, or SP's, and when the interval is wider than a factor 4."""
    drift = {a: (s, (ci[1] - ci[0]) / (2 * Z)) for a, (s, ci) in line.drift.items()}
    ci = carry_interval(hp, value, source_se, drift, src, target)
    shift = math.log2(ci.value / value)
    ev |= {"extrapolated": shift != 0.0, "shift_log2": shift, "interval": ci.to_dict()}
    at = proxy_label(src["width"], src["depth"], src.get("tokens"), src.get("batch"))
    move = (
        f"{shift:+.2f} log2 from {value:.4g} at {at} to {ci.value:.4g} [{ci.lo:.3g}, {ci.hi:.3g}]"
    )
    if param == "sp":
        warnings.append(
            f"SP: the optimal LR does NOT transfer across width. {hp}: verdict "
            f"'{line.verdict}' — moved along the fitted drift by {move}; confirm on a "
            "mid-size proxy"
        )
    elif line.verdict == "drifts":
        warnings.append(
            f"{hp}: verdict 'drifts' — moved along the fitted drift by {move}; confirm on a "
            "mid-size proxy"
        )
    elif line.verdict != "transfers" and ci.doublings:
        warnings.append(
            f"{hp}: verdict '{line.verdict}' ({line.reason}); moved along the fitted drift by "
            f"{move}: the interval carries the doubt; add seeds or "
            f"{' or '.join(MORE_ALONG.get(a, a) for a in ci.doublings)} to decide"
        )
    advice = ci.advice()
    if advice:
        warnings.append(advice)
    return ci
