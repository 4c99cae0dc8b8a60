"""Independent search (u-μP paper §4.2, with the fixes DESIGN.md's measurements call for).

Stages, each decided from the results so far (so the search resumes from any point):

1. ``1-lr``: sweep lr with every other HP at its default.
2. ``2-<hp>``: at the stage-1 lr, sweep each other HP on its own, all in parallel, plus the
   all-default ``2-baseline`` at that lr.
3. Adopt an HP's best value only when its gain over the baseline beats the seed noise
   (``noise_threshold``; ``auto`` estimates it from seeds); combine the adopted values and
   re-sweep lr around the stage-1 lr (``3-combined`` at the centre, ``3-lr-resweep`` around
   it), because the HPs interact with lr.
4. ``confirm``: the final config at every sweep seed plus ``confirm_seeds`` extra seeds. The
   final config is the best measured candidate that beats the baseline by more than the noise
   (the combined config at its re-fitted lr, or a single stage-2 change), else the baseline.

Where the best is chosen: every stage runs on every proxy of the family and every seed, and a
value's loss is the mean over all proxies and seeds — pooled over widths, because the u-μP
optimum is meant to be shared and one HP set is what gets carried to the target (the
transfer analysis then checks per width). With ``select_width`` only that width's proxies
count. A value with any diverged trial counts as diverged. A stage's best is the sub-grid
parabola fit in log2 space (`fit_log2_minimum`), rounded to ``fit_resolution`` log2 units.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from umup_sweep.config import SweepSpec
from umup_sweep.config_load import STRATEGY_OPTIONS
from umup_sweep.search._base import BaseStrategy
from umup_sweep.search._fit import fit_log2_minimum
from umup_sweep.search._trials import ResultIndex, make_trial, unstarted
from umup_sweep.spec import ModelSpec, TrialSpec

__all__ = ["IndependentStrategy"]

_FALLBACK_NOISE = 0.01  # loss units; "auto" with a single seed


@dataclass
class _Plan:
    trials: list[TrialSpec]  # every trial of the current stage (finished or not)
    summary: dict[str, Any] = field(default_factory=dict)
    complete: bool = False


class IndependentStrategy(BaseStrategy):
    """One HP at a time, lr first; see the module docstring for the stages.

    Example:
        >>> sweep = load_sweep("sweeps/independent.yaml")  # doctest: +SKIP
        >>> lr_line = IndependentStrategy(sweep).propose(pd.DataFrame(), [], 100)  # doctest: +SKIP
    """

    def __init__(self, sweep: SweepSpec, data_fingerprint: str = "") -> None:
        super().__init__(sweep, data_fingerprint)
        self.options = {**STRATEGY_OPTIONS["independent"], **sweep.strategy_options}
        if self.options["stage2"] is None:
            self.options["stage2"] = [n for n in sweep.hyperparameters if n != "lr"]
        self.models = sweep.family.specs()
        width = self.options["select_width"]
        self.selected = [m for m in self.models if width is None or m.width == width]

    # -- public --------------------------------------------------------------------------

    def propose(
        self, results: pd.DataFrame, pending: Sequence[TrialSpec], max_new: int
    ) -> list[TrialSpec]:
        index = ResultIndex(results, self.sweep.metric)
        return unstarted(self._plan(index).trials, index, pending, max_new)

    def summary(self, results: pd.DataFrame) -> dict[str, Any]:
        """What each finished stage found: pooled losses, fitted bests, gains, adoptions, the
        final config and its confirmed loss (``complete`` says whether the search is done)."""
        plan = self._plan(ResultIndex(results, self.sweep.metric))
        return {**plan.summary, "complete": plan.complete}

    def total_estimate(self, results: pd.DataFrame) -> int:
        n = len(self.models) * len(self.sweep.seeds)
        spaces = self.sweep.hyperparameters
        stage2 = self.options["stage2"]
        est = n * len(spaces["lr"].values) if "lr" in spaces else 0
        defaults = self.sweep.defaults
        est += n * (1 + sum(len(set(spaces[h].values) - {defaults[h]}) for h in stage2))
        est += n * self.options["resweep_points"] if stage2 else 0
        est += len(self.models) * (len(self.sweep.seeds) + self.options["confirm_seeds"])
        return max(est, len(results))

    # -- stages --------------------------------------------------------------------------

    def _trials_at(
        self,
        hps: Mapping[str, float],
        stage: str,
        hp: str | None,
        seeds: Iterable[int] | None = None,
        models: Sequence[ModelSpec] | None = None,
    ) -> list[TrialSpec]:
        return [
            make_trial(self.sweep, m, hps, s, self.data_fingerprint, stage=stage, hp=hp)
            for s in (self.sweep.seeds if seeds is None else seeds)
            for m in (self.models if models is None else models)
        ]

    def _pooled(self, index: ResultIndex, hps: Mapping[str, float], seeds: Any = None) -> float:
        """Mean metric over the selected proxies and seeds; inf if any diverged."""
        trials = self._trials_at(hps, "", None, seeds=seeds, models=self.selected)
        losses = [index.loss(t.trial_key) for t in trials]
        if any(math.isinf(x) for x in losses):
            return math.inf
        finite = [x for x in losses if not math.isnan(x)]
        return statistics.fmean(finite) if finite else math.nan

    def _snap(self, value: float, grid: Sequence[float]) -> float:
        """Round a fitted value to `fit_resolution` log2 units, inside the grid's range."""
        if value <= 0 or min(grid) <= 0:
            return value
        res = self.options["fit_resolution"]
        lo, hi = math.log2(min(grid)), math.log2(max(grid))
        snapped = min(max(round(math.log2(value) / res) * res, lo), hi)
        return 2.0**snapped

    def _curve(
        self, index: ResultIndex, center: Mapping[str, float], hp: str, values: Sequence[float]
    ) -> dict[str, Any]:
        losses = [self._pooled(index, {**center, hp: v}) for v in values]
        if all(math.isnan(x) for x in losses):  # every trial failed: keep the centre value
            best, best_loss = center.get(hp, self.sweep.defaults[hp]), math.nan
        else:
            best = self._snap(fit_log2_minimum(values, losses), values)
            best_loss = min(x for x in losses if not math.isnan(x))
        return {"values": list(values), "losses": losses, "best": best, "best_loss": best_loss}

    def _noise(self, index: ResultIndex, configs: Iterable[Mapping[str, float]]) -> float:
        """The gain an HP change must beat: fixed, or 2 standard errors of a difference of
        pooled means, with the per-trial seed spread estimated from the finished configs."""
        threshold = self.options["noise_threshold"]
        if threshold != "auto":
            return float(threshold)
        seeds = self.sweep.seeds
        if len(seeds) < 2:
            return _FALLBACK_NOISE
        variances = []
        for hps in configs:
            for model in self.selected:
                trials = self._trials_at(hps, "", None, models=[model])
                xs = [index.loss(t.trial_key) for t in trials]
                if all(math.isfinite(x) for x in xs):
                    variances.append(statistics.variance(xs))
        if not variances:
            return _FALLBACK_NOISE
        sigma = math.sqrt(statistics.fmean(variances))
        n = len(seeds) * len(self.selected)
        return 2.0 * sigma * math.sqrt(2.0 / n)

    def _plan(self, index: ResultIndex) -> _Plan:
        sweep, opts = self.sweep, self.options
        spaces, defaults = sweep.hyperparameters, sweep.defaults
        summary: dict[str, Any] = {}

        # Stage 1: the lr line.
        lr = defaults["lr"]
        lr_configs: list[dict[str, float]] = []
        if "lr" in spaces:
            lr_configs = [{"lr": v} for v in spaces["lr"].values]
            trials = [t for c in lr_configs for t in self._trials_at(c, "1-lr", "lr")]
            if not index.all_done(trials):
                return _Plan(trials, summary)
            summary["1-lr"] = self._curve(index, {}, "lr", spaces["lr"].values)
            lr = summary["1-lr"]["best"]
        summary["stage1_lr"] = lr

        # Stage 2: each other HP alone at that lr, plus the baseline.
        center = {"lr": lr}
        trials = self._trials_at(center, "2-baseline", None)
        for hp in opts["stage2"]:
            for v in spaces[hp].values:
                trials += self._trials_at({**center, hp: v}, f"2-{hp}", hp)
        if not index.all_done(trials):
            return _Plan(trials, summary)
        baseline_loss = self._pooled(index, center)
        threshold = self._noise(index, lr_configs or [center])
        summary.update(baseline_loss=baseline_loss, threshold=threshold)
        candidates: list[tuple[float, dict[str, float]]] = []
        adopted: dict[str, float] = {}
        for hp in opts["stage2"]:
            values = sorted(set(spaces[hp].values) | {defaults[hp]})
            curve = self._curve(index, center, hp, values)
            curve["gain"] = baseline_loss - curve["best_loss"]
            curve["adopted"] = bool(curve["gain"] > threshold and curve["best"] != defaults[hp])
            summary[f"2-{hp}"] = curve
            if curve["adopted"]:
                adopted[hp] = curve["best"]
            for v, loss in zip(values, curve["losses"], strict=True):
                if v != defaults[hp]:
                    candidates.append((loss, {**center, hp: v}))
        summary["adopted"] = dict(adopted)

        # Stage 3: combine the adopted changes and re-sweep lr around them.
        if adopted:
            combined = {**center, **adopted}
            half = opts["resweep_points"] // 2
            lrs = [lr * 2.0 ** (k * opts["resweep_step"]) for k in range(-half, half + 1)]
            trials = []
            for k, v in zip(range(-half, half + 1), lrs, strict=True):
                stage = "3-combined" if k == 0 else "3-lr-resweep"
                trials += self._trials_at({**combined, "lr": v}, stage, "lr")
            if not index.all_done(trials):
                return _Plan(trials, summary)
            curve = self._curve(index, combined, "lr", lrs)
            summary["3-lr-resweep"] = curve
            candidates.append((curve["best_loss"], {**combined, "lr": curve["best"]}))

        # The final config: the best candidate that beats the baseline by more than the noise.
        final, final_loss = dict(center), baseline_loss
        for loss, hps in candidates:
            if loss < baseline_loss - threshold and loss < final_loss:
                final, final_loss = hps, loss
        summary["final"] = {**defaults, **final}
        summary["final_stage_loss"] = final_loss

        # Confirm with extra seeds.
        extra = range(max(sweep.seeds) + 1, max(sweep.seeds) + 1 + opts["confirm_seeds"])
        seeds = list(sweep.seeds) + list(extra)
        trials = self._trials_at(final, "confirm", None, seeds=seeds)
        if not index.all_done(trials):
            return _Plan(trials, summary)
        summary["final_loss"] = self._pooled(index, final, seeds=seeds)
        summary["confirm_seeds"] = seeds
        return _Plan(trials, summary, complete=True)
