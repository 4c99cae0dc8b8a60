"""Independent search (u-μP paper §4.2), adopting an HP change only on statistical evidence.

Stages, each decided from the stored results (so the search resumes from any point and
recomputes nothing):

1. ``1-lr``: sweep lr with every other HP at its default. The stage-1 lr is the measured
   best (a value that was run). When the best lies on an edge of the range, the line extends
   one step beyond that edge, at most ``max_extend`` times per side.
2. ``2-<hp>``: at the stage-1 lr, sweep each other HP on its own, all in parallel; the
   baseline (every HP at its default) is the stage-1 point. A line whose best beats the
   baseline on an edge of its range extends the same way.
   ``2-confirm``: each HP whose best value beat the baseline (by more than ``min_gain``) is
   run again, with the baseline, on ``confirm_seeds`` fresh seeds. The change is adopted
   when its paired gain there (same seeds, same proxies) is significant by a one-sided
   t-test, Holm-corrected over the HPs tested, at family-wise level ``alpha``. Fresh seeds
   remove the winner's curse of picking the best of many noisy values; Holm's correction
   accounts for testing several HPs.
3. ``3-lr-resweep``: the adopted values together with lr re-swept around the stage-1 lr,
   because the HPs interact with lr (``3-combined`` is its centre; edges extend as above).
4. ``confirm``: the final candidate (the combination at its best measured lr, or a single
   adopted change when that measured better) and the baseline on another set of fresh seeds.
   The candidate is returned only if it beats the baseline there, significantly at
   ``alpha``; otherwise the summary says so (``reverted``) and the baseline is returned: HPs
   at their defaults, lr from stage 1.

Noise: ``noise_sd`` is the sd of one paired difference (baseline minus config, at one seed
and proxy). ``auto`` pools the within-config spread of the paired differences of every config
run at two or more seeds (the sweep's seeds, and the fresh seeds of ``2-confirm``); a number
is taken as known. Losses are means over the proxies (only ``select_width``'s when given) and
seeds; a value with any diverged trial counts as diverged.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import pandas as pd

from umup_sweep.search._base import BaseStrategy
from umup_sweep.search._evidence import holm
from umup_sweep.search._lines import HPs, LineSearch
from umup_sweep.search._trials import ResultIndex, unstarted
from umup_sweep.spec import TrialSpec

if TYPE_CHECKING:
    from umup_sweep.config import OptionContext, SweepSpec

__all__ = ["IndependentStrategy"]


@dataclass
class _Plan:
    trials: list[TrialSpec]  # every trial of the current stage (finished or not)
    summary: dict[str, Any] = field(default_factory=dict)
    complete: bool = False


class IndependentStrategy(LineSearch, BaseStrategy):
    """One HP at a time, lr first; see the module docstring for the stages.

    Example:
        >>> from umup_sweep.config import load_sweep
        >>> proxy = {"base": {"head_dim": 16}, "widths": [32], "depths": [1]}
        >>> sweep = load_sweep({"name": "i", "proxy": proxy, "strategy": "independent",
        ...     "seeds": [0, 1],
        ...     "hyperparameters": {"lr": [0.5, 1, 2], "residual_mult": [0.5, 1, 2]}})
        >>> lr_line = IndependentStrategy(sweep).propose(pd.DataFrame(), [], 100)
        >>> [(t.labels["stage"], t.train.lr, t.seed) for t in lr_line][:3]
        [('1-lr', 0.5, 0), ('1-lr', 0.5, 1), ('1-lr', 1.0, 0)]
    """

    OPTIONS: ClassVar[Mapping[str, Any]] = {
        "stage2": None,  # HPs swept one at a time in stage 2 (None: every swept HP but lr)
        "alpha": 0.05,  # family-wise error rate of adopting a change, and of the final check
        "noise_sd": "auto",  # sd of a paired loss difference (one seed and proxy), or auto
        "min_gain": 0.0,  # a change must also gain more than this (loss units) to be adopted
        "resweep_step": 1.0,  # log2 spacing of the stage-3 lr re-sweep
        "resweep_points": 3,  # points of the stage-3 lr re-sweep (odd, centred on the best lr)
        "max_extend": 2,  # steps a line may add beyond each edge of its range
        "confirm_seeds": "auto",  # fresh seeds per confirmation (auto: 2, or 4 with one seed)
        "select_width": None,  # choose stage bests at this width only (None: pooled)
    }

    @staticmethod
    def default_stage2(swept: Iterable[str]) -> list[str]:
        """The HPs of stage 2 unless the sweep says: every swept HP but lr."""
        return [n for n in swept if n != "lr"]

    @classmethod
    def parse_options(cls, options: dict[str, Any], ctx: OptionContext) -> dict[str, Any]:
        """Check each option (see `OPTIONS`) and resolve `stage2`.

        Example:
            >>> from umup_sweep.config import HPSpace, OptionContext
            >>> ctx = OptionContext(hyperparameters={"lr": HPSpace(), "residual_mult": HPSpace()})
            >>> IndependentStrategy.parse_options(dict(IndependentStrategy.OPTIONS), ctx)["stage2"]
            ['residual_mult']
        """
        opts = dict(options)
        opts["stage2"] = cls._parse_stage2(opts["stage2"], ctx)
        alpha = ctx.number(opts["alpha"], "alpha")
        if not 0 < alpha < 1:
            raise ctx.fail("alpha", "expected a number between 0 and 1", alpha)
        opts["alpha"] = float(alpha)
        opts["min_gain"] = _at_least(opts["min_gain"], "min_gain", 0, ctx)
        opts["resweep_step"] = _positive(opts["resweep_step"], "resweep_step", ctx)
        pts = ctx.number(opts["resweep_points"], "resweep_points", integer=True)
        if pts < 1 or pts % 2 == 0:
            raise ctx.fail("resweep_points", "expected an odd integer >= 1", pts)
        opts["resweep_points"] = pts
        opts["max_extend"] = int(_at_least(opts["max_extend"], "max_extend", 0, ctx, True))
        opts["confirm_seeds"] = cls._parse_confirm(opts["confirm_seeds"], opts["noise_sd"], ctx)
        opts["noise_sd"] = cls._parse_noise(opts["noise_sd"], opts["confirm_seeds"], ctx)
        width = opts["select_width"]
        if width is not None:
            width = ctx.number(width, "select_width", integer=True)
            if width not in ctx.widths:
                expected = f"expected one of the widths {list(ctx.widths)} or null"
                raise ctx.fail("select_width", expected, width)
        opts["select_width"] = width
        return opts

    @classmethod
    def _parse_stage2(cls, stage2: Any, ctx: OptionContext) -> list[str]:
        swept = ctx.hyperparameters
        if stage2 is None:
            stage2 = cls.default_stage2(swept)
        if not isinstance(stage2, (list, tuple)):
            raise ctx.fail("stage2", "expected a list of swept HP names", stage2)
        for i, n in enumerate(stage2):
            if not isinstance(n, str) or n == "lr" or n not in swept:
                raise ctx.fail(f"stage2[{i}]", "expected a swept HP other than lr", n)
        return list(stage2)

    @staticmethod
    def _parse_confirm(value: Any, noise: Any, ctx: OptionContext) -> int:
        """``auto``: 2 fresh seeds, or 4 when the sweep has one seed and the noise is
        estimated (``noise_sd: auto``). With one sweep seed the noise comes from the
        confirmation runs alone, (configs − 1)(seeds − 1) degrees of freedom: 2 seeds and one
        screened HP would leave 1, and a t-test on one degree of freedom almost never adopts
        a real gain; 4 seeds leave at least 3."""
        if value == "auto":
            return 4 if len(ctx.seeds) < 2 and noise == "auto" else 2
        return int(_at_least(value, "confirm_seeds", 1, ctx, True))

    @staticmethod
    def _parse_noise(noise: Any, confirm_seeds: int, ctx: OptionContext) -> float | str:
        if noise != "auto":
            return _at_least(noise, "noise_sd", 0, ctx)
        if len(ctx.seeds) < 2 and confirm_seeds < 2:
            raise ctx.fail(
                "noise_sd",
                "expected a number (the sd of the loss difference of two configs at one seed)"
                " when the sweep has one seed and confirm_seeds < 2; auto needs two seeds",
                noise,
            )
        return "auto"

    def __init__(self, sweep: SweepSpec, data_fingerprint: str = "") -> None:
        super().__init__(sweep, data_fingerprint)
        self.options = {**self.OPTIONS, **sweep.strategy_options}
        if self.options["stage2"] is None:
            self.options["stage2"] = self.default_stage2(sweep.hyperparameters)
        self.models = sweep.family.specs()
        width = self.options["select_width"]
        self.selected = [m for m in self.models if width is None or m.width == width]
        self._memo: dict[tuple[Any, ...], Any] = {}

    # -- public --------------------------------------------------------------------------

    def propose(
        self, results: pd.DataFrame, pending: Sequence[TrialSpec], max_new: int
    ) -> list[TrialSpec]:
        index = ResultIndex(results, self.sweep.metric)
        return unstarted(self._plan(index).trials, index, pending, max_new)

    def summary(self, results: pd.DataFrame) -> dict[str, Any]:
        """What each finished stage found: pooled losses, measured bests, gains with their
        standard errors and p-values, adoptions, the confirmation against the baseline, the
        final config and its loss (``complete`` says whether the search is done)."""
        plan = self._plan(ResultIndex(results, self.sweep.metric))
        return {**plan.summary, "complete": plan.complete}

    def total_estimate(self, results: pd.DataFrame) -> int:
        n_models, opts = len(self.models), self.options
        n = n_models * len(self.sweep.seeds)
        spaces, defaults = self.sweep.hyperparameters, self.sweep.defaults
        stage2 = opts["stage2"]
        est = n * len(spaces["lr"].values) if "lr" in spaces else n
        est += n * sum(len(set(spaces[h].values) - {defaults[h]}) for h in stage2)
        est += n_models * opts["confirm_seeds"] * (2 + len(stage2) // 2)  # a guess: half pass
        est += n * (opts["resweep_points"] - 1) if stage2 else 0
        est += n_models * opts["confirm_seeds"] * 2
        return max(est, len(results))

    def _fresh(self, round_: int) -> list[int]:
        """The fresh seeds of confirmation round 1 (2-confirm) or 2 (confirm)."""
        k = self.options["confirm_seeds"]
        first = max(self.sweep.seeds) + 1 + (round_ - 1) * k
        return list(range(first, first + k))

    # -- stages --------------------------------------------------------------------------

    def _plan(self, index: ResultIndex) -> _Plan:
        summary: dict[str, Any] = {}
        lr, plan = self._stage1(index, summary)
        if plan is not None:
            return plan
        center = {"lr": lr}
        plan = self._stage2(index, center, summary) or self._stage2_confirm(index, center, summary)
        if plan is not None:
            return plan
        candidate, plan = self._stage3(index, center, summary)
        if plan is not None or candidate is None:
            return plan or _Plan([], summary)
        return self._confirm(index, center, candidate, summary)

    def _stage1(self, index: ResultIndex, summary: dict[str, Any]) -> tuple[float, _Plan | None]:
        spaces = self.sweep.hyperparameters
        lr = self.sweep.defaults["lr"]
        if "lr" in spaces:
            values, trials, done = self._line(index, {}, "lr", spaces["lr"].values, _const("1-lr"))
            if not done:
                return lr, _Plan(trials, summary)
            summary["1-lr"] = self._curve(index, {}, "lr", values)
            lr = summary["1-lr"]["best"]
        summary["stage1_lr"] = lr
        return lr, None

    def _stage2(self, index: ResultIndex, center: HPs, summary: dict[str, Any]) -> _Plan | None:
        opts, spaces, defaults = self.options, self.sweep.hyperparameters, self.sweep.defaults
        trials = self._trials_at(center, "2-baseline", None)
        finished = index.all_done(trials)
        baseline_loss = self._pooled(index, center) if finished else math.nan
        lines: dict[str, list[float]] = {}
        for hp in opts["stage2"]:
            grid = sorted(set(spaces[hp].values) | {defaults[hp]})
            label = _const(f"2-{hp}")
            values, line_trials, done = self._line(index, center, hp, grid, label, baseline_loss)
            trials += line_trials
            lines[hp] = values
            finished = finished and done
        if not finished:
            return _Plan(trials, summary)
        summary["baseline_loss"] = baseline_loss
        for hp, values in lines.items():
            curve = self._curve(index, center, hp, values)
            curve["gain"] = baseline_loss - curve["best_loss"]
            curve["screened"] = bool(
                curve["best"] != defaults[hp] and curve["gain"] > opts["min_gain"]
            )
            summary[f"2-{hp}"] = curve
        return None

    def _stage2_confirm(
        self, index: ResultIndex, center: HPs, summary: dict[str, Any]
    ) -> _Plan | None:
        opts, fresh = self.options, self._fresh(1)
        screened = {
            hp: summary[f"2-{hp}"]["best"]
            for hp in opts["stage2"]
            if summary[f"2-{hp}"]["screened"]
        }
        trials: list[TrialSpec] = []
        if screened:
            trials = self._trials_at(center, "2-confirm", None, seeds=fresh)
            for hp, v in screened.items():
                trials += self._trials_at({**center, hp: v}, "2-confirm", hp, seeds=fresh)
            if not index.all_done(trials):
                return _Plan(trials, summary)
        tables = [self._stage_configs(summary, center)]
        tables.append(([center, *({**center, hp: v} for hp, v in screened.items())], fresh))
        noise = self._noise(index, tables)
        summary["noise"] = {"sd": noise.sd, "dof": noise.dof}
        tests = {
            hp: self._test(index, center, {**center, hp: v}, fresh, noise)
            for hp, v in screened.items()
        }
        # Holm over every stage-2 HP, screened or not: an HP that was not tested counts as
        # a comparison with p = 1 (conservative; keeps the error rate below alpha)
        p_values = [tests[hp]["p"] if hp in tests else 1.0 for hp in opts["stage2"]]
        passed = dict(zip(opts["stage2"], holm(p_values, opts["alpha"]), strict=True))
        adopted: dict[str, float] = {}
        for hp in opts["stage2"]:
            test = tests.get(hp)
            ok = bool(test and passed[hp] and test["gain"] > opts["min_gain"])
            summary[f"2-{hp}"].update(confirm=test, adopted=ok)
            if ok:
                adopted[hp] = screened[hp]
        summary["adopted"] = adopted
        summary["confirm_seeds_2"] = fresh if screened else []
        return None

    def _stage_configs(self, summary: dict[str, Any], center: HPs) -> tuple[list[HPs], Any]:
        """Every config of stages 1 and 2 (the baseline once), with the sweep's seeds."""
        out = [center, *({"lr": v} for v in summary.get("1-lr", {}).get("values", []))]
        for hp in self.options["stage2"]:
            out += [{**center, hp: v} for v in summary[f"2-{hp}"]["values"]]
        defaults, seen, unique = self.sweep.defaults, set(), []
        for hps in out:
            full = tuple(sorted({**defaults, **hps}.items()))
            if full not in seen:
                seen.add(full)
                unique.append(hps)
        return unique, self.sweep.seeds

    def _stage3(
        self, index: ResultIndex, center: HPs, summary: dict[str, Any]
    ) -> tuple[HPs | None, _Plan | None]:
        """The final candidate: the adopted changes together at their best lr, or one adopted
        change alone when that measured better (the baseline when nothing was adopted)."""
        adopted = summary["adopted"]
        if not adopted:
            return dict(center), None
        opts, lr1 = self.options, center["lr"]
        combined = {**center, **adopted}
        half = opts["resweep_points"] // 2
        grid = [lr1 * 2.0 ** (k * opts["resweep_step"]) for k in range(-half, half + 1)]

        def label(v: float) -> str:
            return "3-combined" if v == lr1 else "3-lr-resweep"

        values, trials, done = self._line(index, combined, "lr", grid, label)
        if not done:
            return None, _Plan(trials, summary)
        curve = self._curve(index, combined, "lr", values)
        summary["3-lr-resweep"] = curve
        candidates = [(curve["best_loss"], {**combined, "lr": curve["best"]})]
        if len(adopted) > 1:
            singles = [{**center, hp: v} for hp, v in adopted.items()]
            candidates += [(self._pooled(index, hps), hps) for hps in singles]
        ranked = [(loss if loss == loss else math.inf, hps) for loss, hps in candidates]
        return min(ranked, key=lambda c: c[0])[1], None

    def _confirm(
        self, index: ResultIndex, center: HPs, candidate: HPs, summary: dict[str, Any]
    ) -> _Plan:
        opts, defaults, fresh = self.options, self.sweep.defaults, self._fresh(2)
        trials = self._trials_at(center, "confirm", None, seeds=fresh)
        if candidate != center:
            trials += self._trials_at(candidate, "confirm", None, seeds=fresh)
        if not index.all_done(trials):
            return _Plan(trials, summary)
        final = center
        summary["reverted"] = False
        if candidate != center:
            tables = [self._stage_configs(summary, center), ([center, candidate], fresh)]
            screened = [{**center, hp: v} for hp, v in summary["adopted"].items()]
            tables.append(([center, *screened], summary["confirm_seeds_2"]))
            test = self._test(index, center, candidate, fresh, self._noise(index, tables))
            accepted = test["p"] <= opts["alpha"] and test["gain"] > opts["min_gain"]
            summary["confirm"] = {**test, "accepted": accepted}
            summary["reverted"] = not accepted
            final = candidate if accepted else center
        summary["final_candidate"] = {**defaults, **candidate}
        summary["final"] = {**defaults, **final}
        summary["final_changes"] = {
            hp: v for hp, v in final.items() if hp != "lr" and v != defaults[hp]
        }
        seeds = [*self.sweep.seeds, *fresh]
        summary["final_loss"] = self._pooled(index, final, seeds=seeds)
        summary["confirm_seeds"] = fresh
        return _Plan(trials, summary, complete=True)


def _const(stage: str) -> Callable[[float], str]:
    return lambda _value: stage


def _positive(value: Any, option: str, ctx: OptionContext) -> float:
    """A number > 0 for `option`."""
    value = ctx.number(value, option)
    if value <= 0:
        raise ctx.fail(option, "expected > 0", value)
    return float(value)


def _at_least(
    value: Any, option: str, low: float, ctx: OptionContext, integer: bool = False
) -> float:
    """A number >= `low` for `option` (an int with `integer`)."""
    value = ctx.number(value, option, integer=integer)
    if value < low:
        raise ctx.fail(option, f"expected >= {low}", value)
    return value
