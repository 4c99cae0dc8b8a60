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
    >>> along_line("lr", 0.5, line, {"width": 128, "depth": 2}, {"width": 512, "depth": 2},
    ...            "umup", ev, warnings)
    0.125
    >>> ev
    {'extrapolated': True, 'shift_log2': -2.0}
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

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


def along_line(
    hp: str,
    value: float,
    line: DriftLine,
    src: dict[str, Any],
    target: dict[str, int],
    param: str,
    ev: dict[str, Any],
    warnings: list[str],
) -> float:
    """The proxy value moved along the drift line to the target (or carried as is when it
    transfers, or when the drift is indistinguishable from zero); notes it in `ev`."""
    shift = sum(s * math.log2(target[a] / src[a]) for a, (s, _) in line.drift.items())
    if line.verdict == "transfers" and param != "sp":
        ev["extrapolated"] = False
        return value
    nonzero = any(ci[0] > 0 or ci[1] < 0 for _, ci in line.drift.values())
    if param != "sp" and not nonzero:
        # Inconclusive and not distinguishable from zero: a noisy slope times many doublings
        # would be a guess, so carry the value and say so.
        ev["extrapolated"] = False
        warnings.append(
            f"{hp}: verdict '{line.verdict}' ({line.reason}); the drift is not distinguishable "
            f"from zero, so {value:.4g} is carried as is (along the fit it would be "
            f"{value * 2.0**shift:.4g}); add seeds or widths to decide"
        )
        return value
    new = value * 2.0**shift
    ev |= {"extrapolated": True, "shift_log2": shift}
    loud = "SP: the optimal LR does NOT transfer across width. " if param == "sp" else ""
    warnings.append(
        f"{loud}{hp}: verdict '{line.verdict}' — extrapolated along the fitted drift by "
        f"{shift:+.2f} log2 from {value:.4g} at {src['width']}x{src['depth']} to {new:.4g}; "
        "confirm on a mid-size proxy"
    )
    return new
