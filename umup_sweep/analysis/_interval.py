"""The value `recommend` carries to the target and its ≈95% interval.

The proxy value sits at the source proxy (the widest one, always inside the width regime).
It moves along the fitted drift line to the target: ``log2 v_t = log2 v_s + Σ_a s_a·n_a`` with
``n_a = log2(target_a / source_a)`` doublings along each axis ``a`` (width, depth; training
tokens and batch size for a sweep with train axes, where ``s_tokens = −β``) and ``s_a``
the drift per doubling. Its standard error adds the two sources of doubt in quadrature,

    se_t² = se_s² + Σ_a (n_a · se(s_a))²,

``se_s`` the source proxy's own optimum error (its parabola fit's, else the spread of its
per-seed optima) and ``se(s_a)`` the drift's (the larger of the joint fit's Wald and the
parametric-bootstrap errors). So the interval widens linearly with the number of doublings:
a drift known to ±0.05 per doubling adds ±0.25 log2 over five doublings. The interval is
``v_t · 2^(±Z·se_t)`` (Z = 2, as every interval in the analysis).

An interval wider than a factor `MAX_FACTOR` gets a warning naming the cheapest way to narrow
it: a wider proxy when the drift term dominates (it shortens the carry and pins the slope),
more seeds at the source proxy when its own optimum does.

Example:
    >>> ci = carry_interval(
    ...     "lr", 1.0, 0.1, {"width": (0.0, 0.05)}, {"width": 128, "depth": 2},
    ...     {"width": 4096, "depth": 2})
    >>> round(ci.log2_se, 4), ci.doublings, round(ci.factor, 2)
    (0.2693, {'width': 5.0}, 2.11)
    >>> ci.sentence()
    'lr 1 [0.688, 1.45] (≈95%: ±0.10 log2 at width 128 ⊕ ±0.05 log2 per width doubling × 5.0)'
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from umup_sweep.analysis._points import Z
from umup_sweep.analysis._proxy_axes import AXES

MAX_FACTOR = 4.0  # an interval wider than this (hi / lo) is a warning: the carry is a guess


@dataclass
class CarryInterval:
    """One HP's value at the target with its interval, and where the doubt comes from."""

    hp: str
    value: float
    lo: float
    hi: float
    log2_se: float
    source_value: float
    source_se: float | None
    doublings: dict[str, float]
    drift: dict[str, tuple[float, float]]  # axis -> (slope, se), log2 per doubling
    source: dict[str, int] = field(default_factory=dict)

    @property
    def factor(self) -> float:
        """hi / lo: how many-fold the interval spans (inf when it is unbounded)."""
        return self.hi / self.lo if self.lo > 0 else math.inf

    def terms(self) -> dict[str, float]:
        """Each source's contribution to the log2 standard error (source proxy, each axis)."""
        out = {"source": self.source_se or 0.0}
        for axis, n in self.doublings.items():
            out[axis] = abs(n) * self.drift.get(axis, (0.0, 0.0))[1]
        return out

    def sentence(self) -> str:
        """``lr 0.79 [0.55, 1.13] (≈95%: …)``, the way the CLI prints it."""
        parts = [f"±{self.source_se or 0:.2f} log2 at width {self.source.get('width', '?')}"]
        for axis, n in self.doublings.items():
            se = self.drift.get(axis, (0.0, 0.0))[1]
            parts.append(f"±{se:.2f} log2 per {axis} doubling × {n:.1f}")
        return (
            f"{self.hp} {self.value:.3g} [{self.lo:.3g}, {self.hi:.3g}] (≈95%: "
            + " ⊕ ".join(parts)
            + ")"
        )

    def advice(self) -> str | None:
        """The cheapest way to narrow an interval wider than `MAX_FACTOR`, else None."""
        if self.factor <= MAX_FACTOR:
            return None
        terms = self.terms()
        worst = max(terms, key=lambda k: terms[k])
        width = self.source.get("width", 0)
        if worst == "source":
            how = f"add seeds (or points near the optimum) at width {width}"
        elif worst == "width":
            how = f"add width {2 * width} (a wider proxy shortens the carry and pins the drift)"
        elif worst == "tokens":
            how = "add a longer horizon (train.steps or train.tokens ×2) to pin β"
        elif worst == "batch":
            how = "add a larger batch size to the batch-size list to pin its drift"
        else:
            how = f"add depth {2 * self.source.get('depth', 1)} to pin the depth drift"
        return (
            f"{self.hp}: the interval [{self.lo:.3g}, {self.hi:.3g}] spans a factor "
            f"{self.factor:.1f} (> {MAX_FACTOR:g}), mostly from the {worst} term: {how}"
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for `recommended.yaml`."""
        return {
            "value": self.value,
            "ci95": [self.lo, self.hi],
            "factor": self.factor,
            "log2_se": self.log2_se,
            "source_value": self.source_value,
            "source_se_log2": self.source_se,
            "doublings": self.doublings,
            "drift": {a: {"slope": s, "se": se} for a, (s, se) in self.drift.items()},
            "se_terms_log2": self.terms(),
        }


def carry_interval(
    hp: str,
    source_value: float,
    source_se: float | None,
    drift: dict[str, tuple[float, float]],
    source: dict[str, int],
    target: dict[str, int],
    follow_slope: bool = True,
) -> CarryInterval:
    """Move ``source_value`` (at proxy ``source``) along ``drift`` to ``target`` with its
    interval (see the module docstring).

    Args:
        hp: the HP's name (for the sentences).
        source_value: the value at the source proxy (> 0).
        source_se: its log2 standard error (None: unknown, counted as 0 and said so by the
            caller).
        drift: per axis ``(slope, se)`` in log2 per doubling; axes not in it did not vary in
            the sweep and add nothing (the caller warns about an untested axis).
        source, target: ``{"width": .., "depth": ..}``.
        follow_slope: move the value along the slope (False: keep the proxy value, e.g. when
            the drift is not distinguishable from zero; its error still counts).
    """
    doublings = {a: math.log2(target[a] / source[a]) for a in drift if a in target}
    doublings = {a: n for a, n in doublings.items() if n != 0}
    shift = sum(drift[a][0] * n for a, n in doublings.items()) if follow_slope else 0.0
    var = (source_se or 0.0) ** 2 + sum((n * drift[a][1]) ** 2 for a, n in doublings.items())
    se = math.sqrt(var) if math.isfinite(var) else math.inf
    value = source_value * 2.0**shift
    half = Z * se
    lo = value * 2.0**-half if math.isfinite(half) else 0.0
    hi = value * 2.0**half if math.isfinite(half) else math.inf
    return CarryInterval(
        hp=hp,
        value=value,
        lo=lo,
        hi=hi,
        log2_se=se,
        source_value=source_value,
        source_se=source_se,
        doublings=doublings,
        drift={a: drift[a] for a in doublings},
        source={k: int(v) for k, v in source.items() if k in AXES},
    )
