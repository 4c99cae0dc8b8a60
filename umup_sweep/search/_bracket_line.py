"""One proxy's adaptive bracket: from the points measured so far, the next values to run.

`BracketRule.decide` is a pure function of the measured points (log2 value → every seed's
result), so the `bracket` strategy can replay a proxy's whole search from the stored trials.
Two phases, each round decided only when every seed of every point so far has finished:

1. **bracket**: while the best point (lowest seed mean among the points the analysis may
   pick, `Measured.eligible`) is the outermost usable point on a side, run one ``step``
   beyond it on that side, clamped to the bounds. A point most of whose seeds diverged is
   a wall: a best point next to one is bracketed on that side. A best point on a bound is
   an edge optimum and ends the search (``edge_low``/``edge_high``), unless the fitted
   vertex lies inside: then the gap next to the bound is halved first (``refine``).
2. **fill**: the analysis fits its parabola to the points within `FIT_WINDOW` (2) of the
   best on each side; until both sides hold two, add one point on the side holding fewer
   (ties: the side of the fitted vertex), one ``step`` beyond its outermost point, or
   halfway to a wall or a bound in the way (never closer than ``step / 4``).

After each round the fit is `umup_sweep.fitting.log2_optimum` on every seed's trial, exactly
what the transfer analysis computes for the proxy; the search stops (``converged``) as soon as
the fit is a parabola over at least ``min_points`` values with a standard error of at most
``target_se`` (log2). Otherwise it stops with the window full (``window_full``: two values
either side of the best, and the standard error still above the target), or when the next
point would exceed ``max_points`` (``max_trials``).

Gaps are not halved to chase the target. The analysis's window counts values, not log2, so
a value between two others narrows the window, and a vertex fitted over a narrower span is
less certain: in 200 simulated searches (σ = 0.02 nats, curvature 0.05), halving gaps until
the se reached 0.05 gave a root-mean-square error of 0.126 log2 in 11.9 trials, stopping
with the window full gave 0.058 in 9.6. Past a full window, only more seeds help.

Example (a bowl at log2 = −0.4, two seeds offset by 0.01, starting at 0):
    >>> rule = BracketRule(start=0.0, step=1.0, low=-6.0, high=4.0, target_se=0.1)
    >>> rule.initial()
    (-1.0, 0.0, 1.0)
    >>> def measure(xs):
    ...     return [Measured(x, tuple((s, 2 + 0.05 * (x + 0.4) ** 2 + 0.01 * s) for s in (0, 1)))
    ...             for x in xs]
    >>> step = rule.decide(measure([-1.0, 0.0, 1.0]))  # bracketed; the window needs a 4th
    >>> step.status, step.phase, step.next
    ('running', 'fill', (-2.0,))
    >>> done = rule.decide(measure([-2.0, -1.0, 0.0, 1.0]))
    >>> done.status, round(done.optimum_log2, 3), done.n_window
    ('converged', -0.4, 4)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from umup_sweep.fitting import FIT_WINDOW, LinePoints, Log2Optimum, log2_optimum

__all__ = ["BracketRule", "BracketStep", "Measured", "analysis_log2"]

_EPS = 1e-9  # log2 slack when comparing positions


def analysis_log2(x: float) -> float:
    """The log2 the transfer analysis reads back for the HP value ``2**x``: the value's
    log2 to 9 significant digits (`umup_sweep.analysis` rounds it so)."""
    value = float(f"{2.0**x:.9g}")
    return float(f"{math.log2(value):.9g}")


def snap(x: float) -> float:
    """A log2 position rounded to 1e-10, so the same point built two ways is one point."""
    return round(x, 10) + 0.0


@dataclass(frozen=True)
class Measured:
    """Every finished seed of one value: ``(seed, loss)`` with loss inf when the trial
    diverged and NaN when it failed."""

    x: float
    results: tuple[tuple[int, float], ...]

    @property
    def ok(self) -> list[tuple[int, float]]:
        return [(s, y) for s, y in self.results if math.isfinite(y)]

    @property
    def n_diverged(self) -> int:
        return sum(1 for _, y in self.results if math.isinf(y))

    @property
    def eligible(self) -> bool:
        """May be the optimum (the analysis's rule): at least half of the seeds that
        finished without failing are ok."""
        n_ok = len(self.ok)
        return n_ok > 0 and 2 * n_ok >= n_ok + self.n_diverged

    @property
    def wall(self) -> bool:
        """Not eligible because seeds diverged: bounds the optimum like a high loss."""
        return not self.eligible and self.n_diverged > 0

    @property
    def mean(self) -> float:
        ok = [y for _, y in self.ok]
        return sum(ok) / len(ok) if ok else math.nan


@dataclass(frozen=True)
class BracketStep:
    """What `BracketRule.decide` found: the values to run next (empty once stopped), the
    phase they belong to, the status, and the fit of the points so far."""

    next: tuple[float, ...]
    phase: str  # bracket | fill | refine (off a bound) | "" (stopped)
    status: str  # running | converged | edge_low | edge_high | window_full | max_trials | no_usable
    optimum_log2: float = math.nan
    se: float = math.nan
    method: str = "none"  # parabola | grid | none, as the analysis reports it
    n_window: int = 0

    @property
    def stopped(self) -> bool:
        return self.status != "running"


@dataclass(frozen=True)
class BracketRule:
    """The search of one proxy (every position in log2 of the HP).

    Attributes:
        start: the first value; ``step`` either side of it are run with it.
        step: spacing of the bracket and of the fill.
        low, high: the bounds no value may pass.
        target_se: stop once the fitted optimum's standard error is at most this.
        min_points: values in the fit window before its standard error counts.
        max_points: values at most (the strategy's ``max_trials`` over the seeds).
    """

    start: float
    step: float
    low: float
    high: float
    target_se: float
    min_points: int = 4
    max_points: int = 1_000_000

    @property
    def min_gap(self) -> float:
        """The closest two values may be: a quarter step (two halvings)."""
        return self.step / 4

    def initial(self) -> tuple[float, ...]:
        """``start`` and a step either side, shifted inside the bounds when one is in the way
        (the bounds and the start clamped into them when the range is under two steps).

        Example:
            >>> BracketRule(start=0.0, step=1.0, low=-3.0, high=1.0, target_se=0.1).initial()
            (-1.0, 0.0, 1.0)
            >>> BracketRule(start=0.0, step=1.0, low=-0.5, high=4.0, target_se=0.1).initial()
            (-0.5, 0.5, 1.5)
        """
        if self.high - self.low < 2 * self.step:
            values = {self.low, min(max(self.start, self.low), self.high), self.high}
        else:
            c = min(max(self.start, self.low + self.step), self.high - self.step)
            values = {c - self.step, c, c + self.step}
        return tuple(sorted(snap(v) for v in values))

    def decide(self, points: Sequence[Measured]) -> BracketStep:
        """The next values to run, given every seed's result at every value run so far."""
        pts = sorted(points, key=lambda p: p.x)
        if not any(p.eligible for p in pts):
            return self._stop("no_usable", None)
        fit = self._fit(pts)
        best = self._grid(pts)[fit.index]  # the analysis's argmin of the eligible means
        extend = self._extensions(pts, best)
        if isinstance(extend, str):  # the best is on a bound
            inside = self._off_the_bound(pts, fit)
            if inside is not None:
                return self._propose((inside,), "refine", pts, fit)
            return self._stop(extend, fit)
        if extend:
            return self._propose(extend, "bracket", pts, fit)
        if fit.opt.parabola is not None and fit.n_window >= self.min_points:
            if fit.se <= self.target_se:
                return self._stop("converged", fit)
        fill = self._fill(pts, fit)
        if fill is not None:
            return self._propose((fill,), "fill", pts, fit)
        return self._stop("window_full", fit)

    # -- the phases ------------------------------------------------------------------------

    def _extensions(self, pts: list[Measured], best: float) -> tuple[float, ...] | str:
        """Bracket phase: the values beyond the best on each side with nothing usable past
        it, or the edge status when the best sits on a bound."""
        out = []
        for side in (-1, 1):
            usable = [p for p in pts if (p.eligible or p.wall) and side * (p.x - best) > _EPS]
            if usable:
                continue
            bound = self.low if side < 0 else self.high
            if abs(best - bound) <= _EPS:
                return "edge_low" if side < 0 else "edge_high"
            beyond = [p.x for p in pts if side * (p.x - best) >= -_EPS]  # failed ones too
            outer = max(beyond) if side > 0 else min(beyond)
            nxt = outer + side * self.step
            nxt = max(nxt, self.low) if side < 0 else min(nxt, self.high)
            if abs(nxt - outer) <= _EPS:  # only failed points out to the bound
                return "edge_low" if side < 0 else "edge_high"
            out.append(snap(nxt))
        return tuple(out)

    def _off_the_bound(self, pts: list[Measured], fit: _Fit) -> float | None:
        """With the best on a bound but the fitted vertex inside, the value halfway to the
        best's inner neighbour: the optimum may lie between them, where the analysis would
        no longer call it an edge. None when the fit says the optimum is at or past the
        bound, or the gap is at the finest spacing."""
        grid, i = self._grid(pts), fit.index
        best = grid[i]
        if fit.opt.parabola is None or abs(fit.opt.log2 - analysis_log2(best)) <= _EPS:
            return None
        j = i + 1 if fit.opt.log2 > analysis_log2(best) else i - 1
        if not 0 <= j < len(grid):
            return None
        inner = grid[j]
        mid = snap((best + inner) / 2)
        if abs(mid - best) < self.min_gap - _EPS or mid in {p.x for p in pts}:
            return None
        return mid

    def _fill(self, pts: list[Measured], fit: _Fit) -> float | None:
        """Fill phase: one value on the side of the window holding fewer than `FIT_WINDOW`
        finite values (ties: toward the optimum), or None when both are full or cannot grow."""
        grid = self._grid(pts)
        i = fit.index
        counts = {-1: min(i, FIT_WINDOW), 1: min(len(grid) - 1 - i, FIT_WINDOW)}
        lean = self._lean(pts, grid, fit)
        options = []
        for side in (-1, 1):
            if counts[side] >= FIT_WINDOW:
                continue
            outer = grid[i + side * counts[side]]
            nxt = self._outward(pts, outer, side)
            if nxt is not None:
                options.append((counts[side], side != lean, nxt))
        return min(options)[2] if options else None

    def _outward(self, pts: list[Measured], outer: float, side: int) -> float | None:
        """One step beyond ``outer``; halfway to a run value in the way when a step would
        reach it; the bound itself when it is nearer than a step. None when that is closer
        to ``outer`` than the finest spacing."""
        blockers = [side * (p.x - outer) for p in pts if side * (p.x - outer) > _EPS]
        bound_gap = side * ((self.low if side < 0 else self.high) - outer)
        if blockers:
            gap = min(blockers)
            if gap - self.step >= self.min_gap - _EPS:
                move = self.step
            else:
                move = gap / 2
        else:
            gap = bound_gap
            move = min(self.step, gap)
        if move < self.min_gap - _EPS:
            return None
        return snap(outer + side * move)

    def _lean(self, pts: list[Measured], grid: list[float], fit: _Fit) -> int:
        """The side the optimum leans to: the fitted vertex's, else the side of the lower
        neighbouring mean, else the low side."""
        i, best = fit.index, grid[fit.index]
        if fit.opt.parabola is not None and abs(fit.opt.log2 - analysis_log2(best)) > _EPS:
            return 1 if fit.opt.log2 > analysis_log2(best) else -1
        means = {p.x: p.mean for p in pts}
        left = means[grid[i - 1]] if i > 0 else math.inf
        right = means[grid[i + 1]] if i + 1 < len(grid) else math.inf
        return 1 if right < left else -1

    # -- the fit -------------------------------------------------------------------------

    @staticmethod
    def _grid(pts: list[Measured]) -> list[float]:
        """The values with an ok seed, ascending: the analysis's grid for this line."""
        return [p.x for p in pts if p.ok]

    @staticmethod
    def line_points(pts: Sequence[Measured]) -> LinePoints:
        """Every ok seed's trial as the analysis builds them (`analysis._points.line_points`)."""
        with_ok = [p for p in sorted(pts, key=lambda p: p.x) if p.ok]
        x = [analysis_log2(p.x) for p in with_ok for _ in p.ok]
        gidx = [k for k, p in enumerate(with_ok) for _ in p.ok]
        return LinePoints(
            x=np.array(x, dtype=float),
            y=np.array([y for p in with_ok for _, y in p.ok], dtype=float),
            seed=np.array([s for p in with_ok for s, _ in p.ok], dtype=int),
            grid=np.array([analysis_log2(p.x) for p in with_ok], dtype=float),
            gidx=np.array(gidx, dtype=int),
            eligible=np.array([p.eligible for p in with_ok], dtype=bool),
        )

    def _fit(self, pts: list[Measured]) -> _Fit:
        line = self.line_points(pts)
        return _Fit(line, log2_optimum(line, window=FIT_WINDOW))

    def _propose(
        self, values: tuple[float, ...], phase: str, pts: list[Measured], fit: _Fit
    ) -> BracketStep:
        if len(pts) + len(values) > self.max_points:
            return self._stop("max_trials", fit)
        return BracketStep(values, phase, "running", *fit.summary())

    @staticmethod
    def _stop(status: str, fit: _Fit | None) -> BracketStep:
        if fit is None:
            return BracketStep((), "", status)
        return BracketStep((), "", status, *fit.summary())


@dataclass(frozen=True)
class _Fit:
    """The analysis's fit of one proxy's points: the trials and the optimum found."""

    line: LinePoints
    opt: Log2Optimum

    @property
    def index(self) -> int:
        """Position of the best value among the values with an ok seed."""
        return int(self.opt.index)

    @property
    def n_window(self) -> int:
        """Distinct values inside the fit window."""
        return len(np.unique(self.line.x[self.opt.mask]))

    @property
    def se(self) -> float:
        """The fitted optimum's standard error (NaN without an accepted parabola)."""
        return self.opt.parabola.optimum_se if self.opt.parabola is not None else math.nan

    def summary(self) -> tuple[float, float, str, int]:
        return self.opt.log2, self.se, self.opt.method, self.n_window
