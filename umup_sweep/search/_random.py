"""Random search: `budget` configurations drawn by Optuna's seeded `RandomSampler`.

The draws do not depend on results, so the whole list is fixed by `sampler_seed`: every proxy
gets the same configurations (which makes per-width curves comparable), each run at every seed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import optuna
import pandas as pd

from umup_sweep.search._base import BaseStrategy
from umup_sweep.search._sampling import distributions, quiet_optuna, sampler_seed
from umup_sweep.search._trials import ResultIndex, make_trial, unstarted
from umup_sweep.spec import TrialSpec

if TYPE_CHECKING:
    from umup_sweep.config import OptionContext, SweepSpec

__all__ = ["RandomStrategy"]


class RandomStrategy(BaseStrategy):
    """`budget` random configurations per proxy (log-uniform where the space is log).

    Example:
        >>> from umup_sweep.config import load_sweep
        >>> proxy = {"base": {"head_dim": 16}, "widths": [32], "depths": [1]}
        >>> sweep = load_sweep({"name": "r", "proxy": proxy, "strategy": "random", "budget": 5,
        ...                     "hyperparameters": {"lr": {"log2_range": [-3, 2]}}})
        >>> configs = RandomStrategy(sweep).configs()
        >>> len(configs), all(0.125 <= c["lr"] <= 4.0 for c in configs)
        (5, True)
    """

    OPTIONS: ClassVar[Mapping[str, Any]] = {"sampler_seed": 0}  # seeds the draws
    SAMPLED: ClassVar[bool] = True

    @classmethod
    def parse_options(cls, options: dict[str, Any], ctx: OptionContext) -> dict[str, Any]:
        return {**options, "sampler_seed": sampler_seed(options, ctx)}

    def __init__(self, sweep: SweepSpec, data_fingerprint: str = "") -> None:
        super().__init__(sweep, data_fingerprint)
        if sweep.budget is None:
            raise ValueError("random search needs sweep.budget")
        self._configs = self._draw(sweep.budget, int(sweep.strategy_options.get("sampler_seed", 0)))

    def _draw(self, n: int, seed: int) -> list[dict[str, float]]:
        quiet_optuna()
        dists = distributions(self.sweep)
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
        return [dict(study.ask(dists).params) for _ in range(n)]

    def configs(self) -> list[dict[str, float]]:
        """The drawn HP configurations, in proposal order."""
        return [dict(c) for c in self._configs]

    def trials(self) -> list[TrialSpec]:
        """Every trial: configurations outermost, then proxies, then seeds."""
        label = ",".join(self.sweep.hyperparameters)
        return [
            make_trial(self.sweep, m, c, s, self.data_fingerprint, stage="random", hp=label)
            for c in self._configs
            for m in self.sweep.family.specs()
            for s in self.sweep.seeds
        ]

    def propose(
        self, results: pd.DataFrame, pending: Sequence[TrialSpec], max_new: int
    ) -> list[TrialSpec]:
        index = ResultIndex(results, self.sweep.metric)
        return unstarted(self.trials(), index, pending, max_new)

    def total_estimate(self, results: pd.DataFrame) -> int:
        return len(self._configs) * len(self.sweep.family.specs()) * len(self.sweep.seeds)
