"""Measuring for the independent search: trials of a config on the proxies and seeds, pooled
losses, paired tests against a baseline, and one-dimensional lines that extend past an edge.

`LineSearch` is a mixin: the strategy using it provides `sweep`, `data_fingerprint`,
`models` (every proxy), `selected` (the proxies whose losses count), `options`
(`noise_sd`, `max_extend`) and `_memo` (a dict).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from umup_sweep.search._evidence import Noise, one_sided_p, paired_gain, pooled_noise
from umup_sweep.search._fit import fit_log2_minimum
from umup_sweep.search._trials import ResultIndex, make_trial
from umup_sweep.spec import ModelSpec, TrialSpec

if TYPE_CHECKING:
    from umup_sweep.config import SweepSpec

__all__ = ["HPs", "LineSearch", "argmin_finite"]

HPs = dict[str, float]


class LineSearch:
    """Measurements and lines shared by the stages of the independent search."""

    sweep: SweepSpec
    data_fingerprint: str
    models: list[ModelSpec]
    selected: list[ModelSpec]
    options: dict[str, Any]
    _memo: dict[tuple[Any, ...], Any]  # TrialSpecs and lists of trial keys

    def _trials_at(
        self,
        hps: Mapping[str, float],
        stage: str,
        hp: str | None,
        seeds: Iterable[int] | None = None,
        models: Sequence[ModelSpec] | None = None,
    ) -> list[TrialSpec]:
        return [
            self._trial(m, hps, s, stage, hp)
            for s in (self.sweep.seeds if seeds is None else seeds)
            for m in (self.models if models is None else models)
        ]

    def _trial(
        self, model: ModelSpec, hps: Mapping[str, float], seed: int, stage: str, hp: str | None
    ) -> TrialSpec:
        """`make_trial`, memoised: the plan is rebuilt from the results at every call, and
        building a spec and hashing its key is what that costs."""
        memo = (id(model), tuple(sorted(hps.items())), seed, stage, hp)
        trial = self._memo.get(memo)
        if trial is None:
            trial = make_trial(
                self.sweep, model, hps, seed, self.data_fingerprint, stage=stage, hp=hp
            )
            key_memo = ("key", *memo[:3])
            if key_memo in self._memo:  # the same trial under other labels: same key
                trial.__dict__["trial_key"] = self._memo[key_memo]
            else:
                self._memo[key_memo] = trial.trial_key
            self._memo[memo] = trial
        return trial

    def _units(self, index: ResultIndex, hps: Mapping[str, float], seeds: Any) -> list[float]:
        """The metric of `hps` at each (seed, selected proxy), in a fixed order."""
        seeds = tuple(self.sweep.seeds if seeds is None else seeds)
        memo = ("keys", tuple(sorted(hps.items())), seeds)
        keys = self._memo.get(memo)
        if keys is None:
            trials = self._trials_at(hps, "", None, seeds=seeds, models=self.selected)
            keys = self._memo[memo] = [t.trial_key for t in trials]
        return [index.loss(k) for k in keys]

    def _pooled(self, index: ResultIndex, hps: Mapping[str, float], seeds: Any = None) -> float:
        """Mean metric over the selected proxies and seeds; inf if any diverged."""
        losses = self._units(index, hps, seeds)
        if any(math.isinf(x) for x in losses):
            return math.inf
        finite = [x for x in losses if not math.isnan(x)]
        return statistics.fmean(finite) if finite else math.nan

    def _noise(self, index: ResultIndex, tables: list[tuple[list[HPs], Any]]) -> Noise:
        """The noise of a paired difference: given, or estimated from (configs, seeds)
        tables, one per proxy (see `pooled_noise`)."""
        given = self.options["noise_sd"]
        if given != "auto":
            return Noise(float(given), math.inf)
        rows = []
        for configs, seeds in tables:
            for model in self.selected:
                rows.append(
                    [
                        [
                            index.loss(t.trial_key)
                            for t in self._trials_at(c, "", None, seeds, [model])
                        ]
                        for c in configs
                    ]
                )
        return pooled_noise(rows)

    def _test(
        self, index: ResultIndex, base: HPs, other: HPs, seeds: Sequence[int], noise: Noise
    ) -> dict[str, float]:
        """The paired gain of `other` over `base` at `seeds`, its standard error and the
        one-sided p-value of "no gain"."""
        gain, n = paired_gain(self._units(index, base, seeds), self._units(index, other, seeds))
        se = noise.sd / math.sqrt(n) if n else math.nan
        return {"gain": gain, "se": se, "p": one_sided_p(gain, se, noise.dof), "n": n}

    # -- one-dimensional lines -----------------------------------------------------------

    def _line(
        self,
        index: ResultIndex,
        center: HPs,
        hp: str,
        grid: Sequence[float],
        label: Callable[[float], str],
        beats: float | None = None,
    ) -> tuple[list[float], list[TrialSpec], bool]:
        """Sweep `hp` over `grid` at `center`, extending past an edge that holds the best
        (only when the best's loss is below `beats`, if given). Returns the values so far,
        their trials, and whether the line is finished."""
        values = sorted(set(grid))
        while True:
            trials = [t for v in values for t in self._trials_at({**center, hp: v}, label(v), hp)]
            if not index.all_done(trials):
                return values, trials, False
            step = self._extension(index, center, hp, values, grid, beats)
            if step is None:
                return values, trials, True
            values = sorted([*values, step])

    def _extension(
        self,
        index: ResultIndex,
        center: HPs,
        hp: str,
        values: list[float],
        grid: Sequence[float],
        beats: float | None,
    ) -> float | None:
        """The value one step past the edge holding the best, or None (interior best, bound
        reached, best not below `beats`, or a non-positive value that has no log2 step)."""
        losses = [self._pooled(index, {**center, hp: v}) for v in values]
        i = argmin_finite(losses)
        if i is None or len(values) < 2 or (beats is not None and not losses[i] < beats):
            return None
        if i == 0:
            edge, inner, added = values[0], values[1], sum(v < min(grid) for v in values)
        elif i == len(values) - 1:
            edge, inner, added = values[-1], values[-2], sum(v > max(grid) for v in values)
        else:
            return None
        if added >= self.options["max_extend"] or edge <= 0 or inner <= 0:
            return None
        return edge * (edge / inner)

    def _curve(
        self, index: ResultIndex, center: HPs, hp: str, values: Sequence[float]
    ) -> dict[str, Any]:
        """Pooled losses of a finished line, its measured best (the centre's value when every
        trial failed) and, for information, its fitted optimum.

        The search adopts the measured best, because what it adopts must have been run; the
        fitted optimum is the transfer analysis's estimator (`umup_sweep.fitting`) on the
        same pooled line, so the two name the same sub-grid optimum for the same data.
        """
        losses = [self._pooled(index, {**center, hp: v}) for v in values]
        i = argmin_finite(losses)
        if i is None:
            best, best_loss, fitted = center.get(hp, self.sweep.defaults[hp]), math.nan, math.nan
        else:
            best, best_loss = values[i], losses[i]
            fitted = fit_log2_minimum(values, losses)
        return {
            "values": list(values),
            "losses": losses,
            "best": best,
            "best_loss": best_loss,
            "fitted": fitted,
        }


def argmin_finite(losses: Sequence[float]) -> int | None:
    """Index of the lowest finite loss (first on ties), or None."""
    finite = [(x, i) for i, x in enumerate(losses) if math.isfinite(x)]
    return min(finite)[1] if finite else None
