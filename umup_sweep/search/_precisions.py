"""The precision axis: run a sweep's strategy once per precision, as it runs once per proxy.

A sweep with `precisions: [fp32, fp8_sim]` is, for searching, two sweeps that differ only in
`train.precision`: each precision gets its own copy of the strategy (`sweep.for_precision`),
which sees only that precision's results and pending trials. So grid runs the cross product
incl. precision, independent search picks its bests per precision, random draws the same
configurations at every precision (same sampler seed: curves compare), and TPE spends its
budget per proxy × precision. Proposals are interleaved across precisions, so a partial run
already compares them point by point.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd

from umup_sweep.search._base import BaseStrategy
from umup_sweep.spec import TrialSpec

if TYPE_CHECKING:
    from umup_sweep.config import SweepSpec

__all__ = ["PerPrecisionStrategy", "results_at"]


def results_at(results: pd.DataFrame | None, precision: str) -> pd.DataFrame:
    """The rows of a trials frame that ran at `precision`.

    A frame without a `precision` column is returned whole: the strategies find their trials
    by trial key, which includes the precision, so other precisions' rows are simply unused.

    Example:
        >>> frame = pd.DataFrame({"trial_key": ["a", "b"], "precision": ["fp32", "fp8_sim"]})
        >>> results_at(frame, "fp8_sim")["trial_key"].tolist()
        ['b']
    """
    if results is None:
        return pd.DataFrame()
    if "precision" not in results.columns:
        return results
    return results[results["precision"] == precision].reset_index(drop=True)


class PerPrecisionStrategy(BaseStrategy):
    """One strategy per precision of `sweep.precisions`, their proposals interleaved.

    Args:
        sweep: the sweep (several precisions).
        data_fingerprint: corpus fingerprint (part of every trial key).
        factory: builds the strategy of a one-precision sweep, e.g. `GridStrategy`.

    Example:
        >>> from umup_sweep.config import load_sweep
        >>> from umup_sweep.search import GridStrategy
        >>> proxy = {"base": {"head_dim": 16}, "widths": [32], "depths": [1]}
        >>> sweep = load_sweep({"name": "p", "proxy": proxy, "hyperparameters": {"lr": [1, 2]},
        ...                     "precisions": ["fp32", "fp8_sim"]})
        >>> strategy = PerPrecisionStrategy(sweep, "fp", GridStrategy)
        >>> sorted(t.train.precision for t in strategy.propose(pd.DataFrame(), [], 100))
        ['fp32', 'fp32', 'fp8_sim', 'fp8_sim']
    """

    def __init__(
        self,
        sweep: SweepSpec,
        data_fingerprint: str,
        factory: Callable[[SweepSpec, str], BaseStrategy],
    ) -> None:
        super().__init__(sweep, data_fingerprint)
        self.strategies = {
            p: factory(sweep.for_precision(p), data_fingerprint) for p in sweep.precisions
        }

    def propose(
        self, results: pd.DataFrame, pending: Sequence[TrialSpec], max_new: int
    ) -> list[TrialSpec]:
        proposals = [
            strategy.propose(
                results_at(results, p), [t for t in pending if t.train.precision == p], max_new
            )
            for p, strategy in self.strategies.items()
        ]
        merged: list[TrialSpec] = []
        for i in range(max(map(len, proposals), default=0)):
            merged += [batch[i] for batch in proposals if i < len(batch)]
        return merged[:max_new]

    def total_estimate(self, results: pd.DataFrame) -> int:
        return sum(s.total_estimate(results_at(results, p)) for p, s in self.strategies.items())

    def summary(self, results: pd.DataFrame) -> dict[str, Any]:
        """Per precision, the strategy's own `summary` (strategies that have one).

        Raises:
            AttributeError: the strategy keeps no summary.
        """
        return {
            p: s.summary(results_at(results, p))  # type: ignore[attr-defined]
            for p, s in self.strategies.items()
        }
