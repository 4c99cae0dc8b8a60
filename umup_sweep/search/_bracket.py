"""Adaptive brackets: per proxy, run the swept HP only where its optimum is, until the fitted
optimum is as precise as asked.

Each proxy (width × depth) searches on its own, all of them at once: start at the HP's
default (or ``start``) and one ``step`` (log2) either side; extend on the side where the
loss still falls until the minimum is bracketed; add points until the analysis's fit window
holds two either side of the best. It stops as soon as the fitted optimum's standard error,
computed exactly as the transfer analysis computes it (`umup_sweep.fitting.log2_optimum` on
every seed's trial), is at most ``target_se`` over at least ``min_points`` values; with that
window full (only more seeds would shrink the error further); at a bound of the HP's range
(the optimum is on its edge: the analysis flags it); or at ``max_trials``.
`_bracket_line.BracketRule` has the rule, and why it halves no gaps to chase the target.

Every value runs at every sweep seed, and a proxy's next values are decided only once all
seeds of all its values so far have finished, from the stored results alone: the search
resumes after a crash exactly where the store says it stands. Proxies do not wait for each
other, and the most expensive (widest, deepest) proxy's trials are proposed first, since its
chain of rounds is the longest.

Several swept HPs get one bracket each per proxy, every other HP at its default (the u-μP
paper's one-at-a-time lines, all at once); the lines share the trial where every HP is at
its default, and the transfer analysis reads each HP's line as it reads a grid's.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import pandas as pd

from umup_sweep.errors import ConfigError
from umup_sweep.search._base import BaseStrategy
from umup_sweep.search._bracket_line import BracketRule, BracketStep, Measured
from umup_sweep.search._trials import ResultIndex, make_trial
from umup_sweep.spec import HP_DEFAULTS, ModelSpec, TrialSpec

if TYPE_CHECKING:
    from umup_sweep.config import OptionContext, SweepSpec

__all__ = ["BracketStrategy"]

DEFAULT_POINTS = 8  # values per proxy when max_trials is not given: start 3, room for 5 more


@dataclass
class _Line:
    """One HP's search at one proxy, replayed from the results: its values so far (log2,
    phase), the decision on them (None while some are unfinished) and its unfinished trials."""

    hp: str
    model: ModelSpec
    values: list[tuple[float, str]]
    step: BracketStep | None
    todo: list[TrialSpec]

    @property
    def stopped(self) -> bool:
        return self.step is not None and self.step.stopped


class BracketStrategy(BaseStrategy):
    """Adaptive bracket per proxy around the optimum of each swept HP; see the module docstring.

    Example:
        >>> from umup_sweep.config import load_sweep
        >>> proxy = {"base": {"head_dim": 16}, "widths": [32, 64], "depths": [1]}
        >>> sweep = load_sweep({"name": "b", "proxy": proxy, "strategy": "bracket",
        ...     "seeds": [0, 1], "hyperparameters": {"lr": {"log2_range": [-6, 4]}}})
        >>> sweep.strategy_options["max_trials"]  # per proxy and HP: 8 values × 2 seeds
        16
        >>> first = BracketStrategy(sweep).propose(pd.DataFrame(), [], 100)
        >>> sorted({(t.model.width, t.train.lr) for t in first})  # u-μP's lr 1 and 2^±1
        [(32, 0.5), (32, 1.0), (32, 2.0), (64, 0.5), (64, 1.0), (64, 2.0)]
        >>> [t.model.width for t in first][:3], {t.labels["stage"] for t in first}
        ([64, 64, 64], {'bracket'})
    """

    OPTIONS: ClassVar[Mapping[str, Any]] = {
        "start": None,  # first value, or {hp: value} (None: the sweep's default, lr 1 in u-μP)
        "step": 1.0,  # log2 spacing of the bracket
        "target_se": 0.07,  # stop once the fitted optimum's standard error (log2) is this small
        "min_points": 4,  # values in the fit window before its standard error counts
        "max_trials": None,  # per proxy and HP (None: 8 values × the sweep's seeds)
    }

    @classmethod
    def parse_options(cls, options: dict[str, Any], ctx: OptionContext) -> dict[str, Any]:
        """Check the swept HPs (ranges of positive values) and each option; resolve
        `max_trials`.

        Example:
            >>> from umup_sweep.config import HPSpace, OptionContext
            >>> ctx = OptionContext(hyperparameters={"lr": HPSpace(values=(0.25, 1.0, 4.0))},
            ...                     seeds=(0, 1))
            >>> BracketStrategy.parse_options(dict(BracketStrategy.OPTIONS), ctx)["max_trials"]
            16
        """
        ranges = {
            hp: cls._range(hp, space.values, ctx) for hp, space in ctx.hyperparameters.items()
        }
        opts = dict(options)
        opts["start"] = cls._parse_start(opts["start"], ranges, ctx)
        for name in ("step", "target_se"):
            value = ctx.number(opts[name], name)
            if not value > 0:
                raise ctx.fail(name, "expected a number > 0 (log2)", value)
            opts[name] = float(value)
        points = ctx.number(opts["min_points"], "min_points", integer=True)
        if points < 3:
            raise ctx.fail("min_points", "expected an integer >= 3 (a parabola needs 3)", points)
        opts["min_points"] = points
        n_seeds = len(ctx.seeds)
        most = opts["max_trials"]
        most = ctx.number(
            DEFAULT_POINTS * n_seeds if most is None else most, "max_trials", integer=True
        )
        if most < 3 * n_seeds:
            expected = f"expected an integer >= {3 * n_seeds} (3 values × {n_seeds} seeds)"
            raise ctx.fail("max_trials", expected, most)
        opts["max_trials"] = most
        return opts

    @staticmethod
    def _range(hp: str, values: Sequence[float], ctx: OptionContext) -> tuple[float, float]:
        """An HP's bounds (its smallest and largest value), checked: log2 needs values > 0."""
        if not values or min(values) <= 0 or min(values) == max(values):
            raise ConfigError(
                ctx.source,
                f"hyperparameters.{hp}",
                "strategy bracket needs a range of values > 0 to step through in log2"
                f" (e.g. log2_range: [-6, 4]), got {list(values)}",
            )
        return float(min(values)), float(max(values))

    @staticmethod
    def _parse_start(
        start: Any, ranges: Mapping[str, tuple[float, float]], ctx: OptionContext
    ) -> float | dict[str, float] | None:
        """None, a value (one swept HP) or ``{hp: value}``, each inside its HP's range."""
        if start is None:
            return None
        if not isinstance(start, Mapping):
            if len(ranges) != 1:
                expected = f"expected a mapping {{hp: value}} of the swept HPs {list(ranges)}"
                raise ctx.fail("start", expected, start)
            (hp,) = ranges
            return _in_range(start, hp, ranges[hp], "start", ctx)
        out = {}
        for hp, value in start.items():
            if hp not in ranges:
                raise ctx.fail(f"start.{hp}", f"expected one of the swept HPs {list(ranges)}", hp)
            out[str(hp)] = _in_range(value, hp, ranges[hp], f"start.{hp}", ctx)
        return out

    def __init__(self, sweep: SweepSpec, data_fingerprint: str = "") -> None:
        super().__init__(sweep, data_fingerprint)
        self.options = {**self.OPTIONS, **sweep.strategy_options}
        self.hps = list(sweep.hyperparameters)
        start = self.options["start"]
        if start is not None and not isinstance(start, Mapping):
            start = {self.hps[0]: start}
        n_seeds = len(sweep.seeds)
        most = self.options["max_trials"] or DEFAULT_POINTS * n_seeds
        self.rules: dict[str, BracketRule] = {}
        for hp in self.hps:
            values = sweep.hyperparameters[hp].values
            first = (start or {}).get(hp, sweep.defaults.get(hp, HP_DEFAULTS[hp]))
            self.rules[hp] = BracketRule(
                start=math.log2(first),
                step=float(self.options["step"]),
                low=math.log2(min(values)),
                high=math.log2(max(values)),
                target_se=float(self.options["target_se"]),
                min_points=int(self.options["min_points"]),
                max_points=max(3, int(most) // n_seeds),
            )
        # the most expensive proxy first: its chain of rounds is the longest
        self.models = sorted(
            sweep.family.specs(), key=lambda m: (-(m.width**2) * m.depth, -m.width)
        )
        self._memo: dict[tuple[Any, ...], TrialSpec] = {}

    # -- public --------------------------------------------------------------------------

    def propose(
        self, results: pd.DataFrame, pending: Sequence[TrialSpec], max_new: int
    ) -> list[TrialSpec]:
        index = ResultIndex(results, self.sweep.metric)
        seen = {t.trial_key for t in pending}
        out: list[TrialSpec] = []
        for model in self.models:
            for hp in self.hps:
                for trial in self._replay(index, hp, model).todo:
                    if len(out) >= max_new:
                        return out
                    if trial.trial_key not in seen:
                        seen.add(trial.trial_key)
                        out.append(trial)
        return out

    def summary(self, results: pd.DataFrame) -> dict[str, Any]:
        """Per HP and proxy (``lines``): the values run (log2, and the phase that asked for
        each), the status (``running``, ``converged``, ``edge_low``/``edge_high``,
        ``window_full``, ``max_trials`` or ``no_usable``), the fitted optimum (log2 and value),
        its standard error and method, the values in the fit window and the trials run;
        ``complete`` once every line has stopped."""
        index = ResultIndex(results, self.sweep.metric)
        models = sorted(self.models, key=lambda m: (m.width, m.depth))
        lines = [self._replay(index, hp, m) for hp in self.hps for m in models]
        return {
            "target_se": float(self.options["target_se"]),
            "lines": [self._record(line) for line in lines],
            "complete": all(line.stopped for line in lines),
        }

    def total_estimate(self, results: pd.DataFrame) -> int:
        index = ResultIndex(results, self.sweep.metric)
        n_seeds = len(self.sweep.seeds)
        total = 0
        for model in self.models:
            for hp, rule in self.rules.items():
                line = self._replay(index, hp, model)
                run = len(line.values) * n_seeds
                guess = max(run + n_seeds, (rule.min_points + 1) * n_seeds)
                total += run if line.stopped else min(rule.max_points * n_seeds, guess)
        return max(total, len(results))

    # -- one line ------------------------------------------------------------------------

    def _replay(self, index: ResultIndex, hp: str, model: ModelSpec) -> _Line:
        """Re-take the line's decisions from the results, up to its first unfinished round."""
        rule = self.rules[hp]
        values: list[tuple[float, str]] = []
        new = [(x, "bracket") for x in rule.initial()]
        while True:
            values += new
            trials = [t for x, phase in new for t in self._trials(hp, model, x, phase)]
            todo = [t for t in trials if t.trial_key not in index]
            if todo:
                return _Line(hp, model, values, None, todo)
            step = rule.decide([self._measured(index, hp, model, x) for x, _ in values])
            if step.stopped:
                return _Line(hp, model, values, step, [])
            new = [(x, step.phase) for x in step.next]

    def _measured(self, index: ResultIndex, hp: str, model: ModelSpec, x: float) -> Measured:
        trials = self._trials(hp, model, x, "")
        return Measured(x, tuple((t.seed, index.loss(t.trial_key)) for t in trials))

    def _trials(self, hp: str, model: ModelSpec, x: float, phase: str) -> list[TrialSpec]:
        """The trials of ``hp = 2**x`` at the proxy, one per seed, labelled with the phase
        that first asked for them; memoised, as the search is replayed at every call and
        building a spec and its key is what that costs."""
        out = []
        for seed in self.sweep.seeds:
            memo = (hp, model.width, model.depth, x, seed)
            trial = self._memo.get(memo)
            if trial is None:
                trial = make_trial(
                    self.sweep,
                    model,
                    {hp: 2.0**x},
                    seed,
                    self.data_fingerprint,
                    stage=phase,
                    hp=hp,
                )
                self._memo[memo] = trial
            out.append(trial)
        return out

    def _record(self, line: _Line) -> dict[str, Any]:
        step = line.step
        record: dict[str, Any] = {
            "hp": line.hp,
            "width": line.model.width,
            "depth": line.model.depth,
            "status": "running" if step is None else step.status,
            "log2_values": [x for x, _ in line.values],
            "phases": [phase for _, phase in line.values],
            "trials": len(line.values) * len(self.sweep.seeds),
        }
        if step is not None:
            finite = math.isfinite(step.optimum_log2)
            record.update(
                optimum_log2=step.optimum_log2,
                optimum=2.0**step.optimum_log2 if finite else None,
                se=step.se,
                method=step.method,
                n_window=step.n_window,
            )
        return record


def _in_range(
    value: Any, hp: str, bounds: tuple[float, float], key: str, ctx: OptionContext
) -> float:
    """`value` as a number inside `hp`'s range, else the error for option `key`."""
    value = ctx.number(value, key)
    low, high = bounds
    if not low <= value <= high:
        raise ctx.fail(key, f"expected a value of {hp} in its range [{low:g}, {high:g}]", value)
    return float(value)
