"""Where the source proxy and the target sit on the train axes (training tokens, batch size),
and what `recommend` says about the axes it carried along and those it assumed.

A sweep with train axes (``train: {steps: [...]}``, or a token budget with a list of batch
sizes) measures the drift of each HP's optimum per doubling of the training tokens (−β of
``HP* ∝ D^−β``) and/or of the batch size. `recommend` then places the target on those axes
from its training plan: its tokens, and its batch counted in tokens per step (sequences ×
the target's seq_len) divided by the proxies' seq_len, so a target with longer sequences
sits where the proxies' tokens per step would be equal. An axis the target's plan does not
give cannot be carried along: the value stays at the source proxy's and a warning says so.

Example:
    >>> from umup_sweep.config import TrainingPlan
    >>> target_train_coords(TrainingPlan(tokens=10**12, batch_size=1024), 4096, 128,
    ...                     {"tokens", "batch"})
    ({'tokens': 1000000000000, 'batch': 32768}, [])
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from umup_sweep.analysis._proxy_axes import axis_words, short_count

if TYPE_CHECKING:
    from umup_sweep.analysis._transfer import HPTransfer

TRAIN_AXES = ("tokens", "batch")


def target_train_coords(
    plan: Any, target_seq_len: int, proxy_seq_len: int, measured: set[str]
) -> tuple[dict[str, int], list[str]]:
    """The target's coordinates on the measured train axes, and a warning per measured axis
    whose target value the plan does not give (the carry stays at the source proxy there).

    Args:
        plan: the target's training plan (``tokens``, ``batch_size`` in sequences), or None.
        target_seq_len: the target's sequence length.
        proxy_seq_len: the proxies' sequence length (the batch axis's unit).
        measured: the train axes the sweep fitted a drift along.
    """
    coords: dict[str, int] = {}
    warnings: list[str] = []
    tokens = getattr(plan, "tokens", None)
    batch = getattr(plan, "batch_size", None)
    if "tokens" in measured:
        if tokens is None:
            warnings.append(
                "training tokens: the sweep measured the drift along the training horizon but "
                "the target's plan gives no tokens: the value is the source proxy's, not carried "
                "to the target's horizon; give the target a `tokens:` plan"
            )
        else:
            coords["tokens"] = int(tokens)
    if "batch" in measured:
        if batch is None:
            warnings.append(
                "batch size: the sweep measured the drift along the batch size but the target's "
                "plan gives none: the value is the source proxy's; give the target a "
                "`batch_size:` plan"
            )
        else:
            coords["batch"] = max(1, round(int(batch) * target_seq_len / proxy_seq_len))
    return coords, warnings


def axes_record(
    res: HPTransfer | None, src: dict[str, Any], target: dict[str, int]
) -> dict[str, Any]:
    """Which axes ``res`` measured (slope ± se per doubling, β for tokens, the measured span
    and how far the target lies beyond it) and which it did not (assumed: no drift)."""
    measured: dict[str, Any] = {}
    drift = res.drift if res is not None else {}
    proxies = res.per_proxy if res is not None else []
    for axis, d in drift.items():
        values = sorted({p.coords[axis] for p in proxies if axis in p.coords})
        entry: dict[str, Any] = {
            "slope": d.slope,
            "se": d.se,
            "span_doublings": math.log2(values[-1] / values[0]) if len(values) > 1 else 0.0,
            "values": values,
        }
        if axis == "tokens":
            entry["beta"], entry["beta_se"] = -d.slope, d.se
        if axis in target and axis in src and src[axis]:
            entry["target"] = target[axis]
            entry["doublings_to_target"] = math.log2(target[axis] / src[axis])
        measured[axis] = entry
    assumed = [a for a in ("width", "depth", *TRAIN_AXES) if a not in measured]
    return {"measured": measured, "assumed": assumed}


def extrapolation_warnings(hp: str, record: dict[str, Any], limit: float) -> list[str]:
    """A warning per train axis along which the target lies more than ``limit`` times the
    measured span beyond the source proxy: the power law is assumed to hold that far."""
    out = []
    for axis in TRAIN_AXES:
        entry = record["measured"].get(axis)
        if entry is None or "doublings_to_target" not in entry:
            continue
        n, span = abs(entry["doublings_to_target"]), entry["span_doublings"]
        if span > 0 and n > limit * span:
            lo, hi = entry["values"][0], entry["values"][-1]
            fmt = short_count if axis == "tokens" else str
            law = (
                f"β = {entry['beta']:.2f} ± {entry['beta_se']:.2f}"
                if axis == "tokens"
                else f"drift {entry['slope']:+.2f} ± {entry['se']:.2f} per doubling"
            )
            out.append(
                f"{hp}: carried {n:.1f} doublings along {axis_words(axis)} on a {law} measured "
                f"over {span:.1f} doublings ({fmt(lo)}–{fmt(hi)}); the power law is assumed to "
                "hold that far: add a longer horizon (or a larger batch) to check that it does"
            )
    return out


def axes_sentence(record: dict[str, Any]) -> str:
    """``measured: width (+0.01 ± 0.05), tokens (β = 0.31 ± 0.08); assumed: depth, batch``."""
    parts = []
    for axis, e in record["measured"].items():
        if axis == "tokens":
            parts.append(f"tokens (β = {e['beta']:.2f} ± {e['beta_se']:.2f})")
        else:
            parts.append(f"{axis} ({e['slope']:+.2f} ± {e['se']:.2f} per doubling)")
    measured = ", ".join(parts) or "none"
    assumed = ", ".join(record["assumed"]) or "none"
    return f"measured: {measured}; assumed (no drift): {assumed}"
