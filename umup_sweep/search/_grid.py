"""Grid search: every combination of the swept HPs' values × every proxy × every seed."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import pandas as pd

from umup_sweep.search._base import BaseStrategy
from umup_sweep.search._trials import ResultIndex, make_trial, unstarted
from umup_sweep.spec import TrialSpec

__all__ = ["GridStrategy"]


class GridStrategy(BaseStrategy):
    """The full cross product, seeds outermost and narrow proxies first.

    Example:
        >>> strategy = GridStrategy(load_sweep("sweeps/smoke.yaml"))  # doctest: +SKIP
        >>> len(strategy.trials())  # lrs × proxies × seeds  # doctest: +SKIP
        3
    """

    def trials(self) -> list[TrialSpec]:
        """Every trial of the grid, in proposal order."""
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
        index = ResultIndex(results, self.sweep.metric)
        return unstarted(self.trials(), index, pending, max_new)

    def total_estimate(self, results: pd.DataFrame) -> int:
        return len({t.trial_key for t in self.trials()})
