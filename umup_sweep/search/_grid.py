"""Grid search: every combination of the swept HPs' values × every proxy × every seed."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import pandas as pd

from umup_sweep.search._base import BaseStrategy
from umup_sweep.search._trials import ResultIndex, make_trial
from umup_sweep.spec import TrialSpec

__all__ = ["GridStrategy"]


class GridStrategy(BaseStrategy):
    """The full cross product, seeds outermost and narrow proxies first. No options.

    Example:
        >>> from umup_sweep.config import load_sweep
        >>> proxy = {"base": {"head_dim": 16}, "widths": [32, 64], "depths": [1]}
        >>> sweep = load_sweep({"name": "g", "proxy": proxy, "seeds": [0, 1],
        ...                     "hyperparameters": {"lr": [0.25, 1.0, 4.0]}})
        >>> len(GridStrategy(sweep).trials())  # lrs × proxies × seeds
        12
    """

    OPTIONS: ClassVar[Mapping[str, Any]] = {}

    _trials: list[TrialSpec] | None = None  # built on first use: propose is called per batch
    _keyed_trials: list[tuple[str, TrialSpec]] | None = None  # with their trial keys

    def trials(self) -> list[TrialSpec]:
        """Every trial of the grid, in proposal order (built once, then a copy of the cache)."""
        if self._trials is None:
            self._trials = self._build()
        return list(self._trials)

    def _build(self) -> list[TrialSpec]:
        sweep = self.sweep
        names = list(sweep.hyperparameters)
        grids = [sweep.hyperparameters[n].values for n in names]
        label = ",".join(names)
        return [
            make_trial(
                sweep,
                model,
                dict(zip(names, combo, strict=True)),
                seed,
                self.data_fingerprint,
                stage="grid",
                hp=label,
            )
            for seed in sweep.seeds
            for model in sweep.family.specs()
            for combo in itertools.product(*grids)
        ]

    def propose(
        self, results: pd.DataFrame, pending: Sequence[TrialSpec], max_new: int
    ) -> list[TrialSpec]:
        # As `unstarted(self.trials(), ...)`, but over the cached keys (trial_key hashes the spec).
        index = ResultIndex(results, self.sweep.metric)
        seen = {t.trial_key for t in pending}
        out: list[TrialSpec] = []
        for key, trial in self._keyed():
            if len(out) >= max_new:
                break
            if key in seen or key in index:
                continue
            seen.add(key)
            out.append(trial)
        return out

    def total_estimate(self, results: pd.DataFrame) -> int:
        return len({key for key, _ in self._keyed()})

    def _keyed(self) -> list[tuple[str, TrialSpec]]:
        """(trial_key, trial) for every trial in proposal order, computed once per strategy."""
        if self._keyed_trials is None:
            self._keyed_trials = [(t.trial_key, t) for t in self.trials()]
        return self._keyed_trials
