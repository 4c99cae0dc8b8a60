"""Evidence for a hyperparameter change: paired gains, pooled noise, one-sided t-tests with
Holm's correction.

Pure functions on numbers, no pandas or torch. The independent search uses them to decide
which HP changes to adopt: a change is adopted only when its gain over the baseline, measured
on the same seeds and proxies (paired, so what a seed does to every config cancels out),
survives the number of comparisons made.

Example:
    >>> noise = pooled_noise([[[2.31, 2.35, 2.30], [2.25, 2.30, 2.26], [2.40, 2.43, 2.41]]])
    >>> round(noise.sd, 4), noise.dof
    (0.0125, 4.0)
    >>> p = one_sided_p(gain=0.05, se=0.01, dof=noise.dof)
    >>> p < 0.01
    True
    >>> holm([0.001, 0.2, 0.03], alpha=0.05)
    [True, False, False]
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = ["Noise", "holm", "one_sided_p", "paired_gain", "pooled_noise", "t_sf"]


@dataclass(frozen=True)
class Noise:
    """The sd of one paired difference (baseline − config, same seed and proxy), with the
    degrees of freedom it was estimated with (`inf` when the user gave it)."""

    sd: float
    dof: float


def pooled_noise(tables: Iterable[Sequence[Sequence[float]]]) -> Noise:
    """The sd of a paired difference, from (config × seed) tables of one proxy's losses.

    Each table's rows are configs and its columns the seeds they all ran at. A loss is taken
    as config effect + seed effect + noise (a seed shifts every config alike: same
    initialisation and data order), so the noise is what the two-way fit leaves, with
    (configs − 1)(seeds − 1) degrees of freedom per table; a paired difference has twice its
    variance. Rows with a non-finite loss are dropped; tables with fewer than two rows or two
    seeds carry no information. With none left the result has sd NaN and dof 0.
    """
    ss, dof = 0.0, 0
    for table in tables:
        rows = [list(r) for r in table if all(math.isfinite(x) for x in r)]
        if len(rows) < 2 or len(rows[0]) < 2:
            continue
        n_seeds = len(rows[0])
        row_means = [statistics.fmean(r) for r in rows]
        col_means = [statistics.fmean(r[j] for r in rows) for j in range(n_seeds)]
        grand = statistics.fmean(row_means)
        ss += sum(
            (x - rm - col_means[j] + grand) ** 2
            for r, rm in zip(rows, row_means, strict=True)
            for j, x in enumerate(r)
        )
        dof += (len(rows) - 1) * (n_seeds - 1)
    if dof == 0:
        return Noise(math.nan, 0.0)
    return Noise(math.sqrt(2.0 * ss / dof), float(dof))


def paired_gain(base: Sequence[float], other: Sequence[float]) -> tuple[float, int]:
    """Mean of `base[i] - other[i]` over pairs where both are finite, and the pair count.

    A config that diverged on any pair has gain -inf (never adopted).

    Example:
        >>> gain, n = paired_gain([2.0, 2.2], [1.9, 2.0])
        >>> round(gain, 6), n
        (0.15, 2)
        >>> paired_gain([2.0, 2.2], [float("inf"), 2.0])
        (-inf, 2)
    """
    if any(math.isinf(x) and x > 0 for x in other):
        return -math.inf, len(other)
    pairs = [(b, o) for b, o in zip(base, other, strict=True) if math.isfinite(b + o)]
    if not pairs:
        return math.nan, 0
    return statistics.fmean(b - o for b, o in pairs), len(pairs)


def one_sided_p(gain: float, se: float, dof: float) -> float:
    """P(a gain at least this large | no real gain): a one-sided t-test with `dof` degrees of
    freedom (normal when dof is inf). An unknown gain or noise gives 1.0; with zero noise any
    positive gain is certain (p 0.0).

    Example:
        >>> one_sided_p(0.0, 0.01, 10), one_sided_p(0.01, 0.0, 10), one_sided_p(0.01, math.nan, 0)
        (0.5, 0.0, 1.0)
    """
    if math.isnan(gain) or math.isnan(se) or not dof > 0:
        return 1.0
    if math.isinf(gain):
        return 0.0 if gain > 0 else 1.0
    if se <= 0:
        return 0.0 if gain > 0 else 1.0
    return t_sf(gain / se, dof)


def holm(p_values: Sequence[float], alpha: float) -> list[bool]:
    """Holm's step-down procedure: which hypotheses are rejected with family-wise error
    rate `alpha` (valid under any dependence between the tests)."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    rejected = [False] * len(p_values)
    m = len(p_values)
    for rank, i in enumerate(order):
        if p_values[i] > alpha / (m - rank):
            break
        rejected[i] = True
    return rejected


def t_sf(t: float, dof: float) -> float:
    """Survival function of Student's t distribution, P(T > t), for dof > 0 (normal for an
    infinite dof).

    Example:
        >>> round(t_sf(2.015, 5), 3)  # the one-sided 5% point of t with 5 dof
        0.05
        >>> round(t_sf(1.6449, math.inf), 4)
        0.05
    """
    if math.isinf(dof):
        return 0.5 * math.erfc(t / math.sqrt(2.0))
    x = dof / (dof + t * t)
    tail = 0.5 * _betainc(dof / 2.0, 0.5, x)
    return tail if t >= 0 else 1.0 - tail


def _betainc(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function I_x(a, b) (continued fraction, modified
    Lentz; Numerical Recipes §6.4)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _beta_fraction(a, b, x) / a
    return 1.0 - math.exp(log_front) * _beta_fraction(b, a, 1.0 - x) / b


def _beta_fraction(a: float, b: float, x: float) -> float:
    tiny, eps = 1e-300, 1e-15
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        for num in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + num / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < eps:
            break
    return h
