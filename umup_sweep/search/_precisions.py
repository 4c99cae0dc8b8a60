"""The precision and train axes: run a sweep's strategy once per precision and per training
setting (steps × batch size of `train:`'s lists), as it runs once per proxy.

A sweep with `precisions: [fp32, fp8_sim]` is, for searching, two sweeps that differ only in
`train.precision`: each precision gets its own copy of the strategy (`sweep.for_precision`),
which sees only that precision's results and pending trials. So grid runs the cross product
incl. precision, independent search picks its bests per precision, random draws the same
configurations at every precision (same sampler seed: curves compare), and TPE spends its
budget per proxy × precision. Proposals are interleaved across precisions, so a partial run
already compares them point by point.

The train axes (``train: {steps: [150, 300]}``, or a token budget with a list of batch sizes)
work the same way: each (precision, steps, batch size) is one part (`SweepSpec.parts`), with
its own copy of the strategy, so an independent search picks its lr per horizon (the lr
optimum is expected to move with it). A part sees the rows whose trials could have run at its
steps and batch size (`results_for`); the strategies find their own trials by key.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd

from umup_sweep.search._base import BaseStrategy
from umup_sweep.spec import TrialSpec

if TYPE_CHECKING:
    from umup_sweep.config import SweepSpec

__all__ = ["PerPrecisionStrategy", "results_at", "results_for"]


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


def results_for(
    results: pd.DataFrame | None,
    sweep: SweepSpec,
    points: Sequence[tuple[int, int]] = (),
) -> pd.DataFrame:
    """The rows of a trials frame that may belong to one single-setting part of a sweep: its
    precision (`results_at`) and, given the sweep's train `points` ((steps, batch size) each),
    its steps and batch size, read from what the trial did (`steps` run, `tokens` = steps ×
    batch × seq_len): an ok trial ran all its steps, a diverged one at most as many. Only a
    row that fits another point and not this one is left out (a failed trial, or one that
    fits no point, stays): the strategies find their own trials by key, so a row kept too
    many is harmless and a row dropped wrongly would be run again.

    Example:
        >>> from umup_sweep.config import load_sweep
        >>> proxy = {"base": {"head_dim": 16, "seq_len": 8}, "widths": [32], "depths": [1]}
        >>> sweep = load_sweep({"name": "p", "proxy": proxy, "hyperparameters": {"lr": [1, 2]},
        ...                     "train": {"steps": [10, 20], "batch_size": 2}})
        >>> frame = pd.DataFrame({"trial_key": ["a", "b", "c"], "status": ["ok", "ok", "diverged"],
        ...                       "steps": [10, 20, 7], "tokens": [160, 320, 112]})
        >>> points = [(t.steps, t.batch_size) for t in sweep.train_specs()]
        >>> [results_for(frame, part, points)["trial_key"].tolist()
        ...  for part in sweep.parts().values()]
        [['a', 'c'], ['b', 'c']]
    """
    frame = results_at(results, sweep.train.precision)
    if not points or len(frame) == 0 or not {"steps", "tokens", "status"} <= set(frame):
        return frame
    steps = pd.to_numeric(frame["steps"], errors="coerce").fillna(0)
    tokens = pd.to_numeric(frame["tokens"], errors="coerce").fillna(0)
    seq_len = sweep.family.base.seq_len
    ok = frame["status"] == "ok"

    def fits(point: tuple[int, int]) -> pd.Series:
        horizon = (ok & (steps == point[0])) | (~ok & (steps <= point[0]))
        return (steps > 0) & (tokens == steps * point[1] * seq_len) & horizon

    mine = fits((sweep.train.steps, sweep.train.batch_size))
    other = pd.Series(False, index=frame.index)
    for point in points:
        if point != (sweep.train.steps, sweep.train.batch_size):
            other |= fits(point)
    return frame[mine | ~other].reset_index(drop=True)


class PerPrecisionStrategy(BaseStrategy):
    """One strategy per precision of `sweep.precisions` and per point of its train axes
    (`SweepSpec.parts`), their proposals interleaved.

    Args:
        sweep: the sweep (several precisions and/or train axes).
        data_fingerprint: corpus fingerprint (part of every trial key).
        factory: builds the strategy of a one-setting sweep, e.g. `GridStrategy`.

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
        self.parts = sweep.parts()
        # (steps, batch size) of every train point: rows are split by them (none: no axes)
        self.points = (
            [(t.steps, t.batch_size) for t in sweep.train_specs()] if sweep.train_axes else []
        )
        self.strategies = {
            label: factory(part, data_fingerprint) for label, part in self.parts.items()
        }

    def _pending(self, label: str, pending: Sequence[TrialSpec]) -> list[TrialSpec]:
        train = self.parts[label].train
        return [
            t
            for t in pending
            if (t.train.precision, t.train.steps, t.train.batch_size)
            == (train.precision, train.steps, train.batch_size)
        ]

    def propose(
        self, results: pd.DataFrame, pending: Sequence[TrialSpec], max_new: int
    ) -> list[TrialSpec]:
        proposals = [
            strategy.propose(
                results_for(results, self.parts[label], self.points),
                self._pending(label, pending),
                max_new,
            )
            for label, strategy in self.strategies.items()
        ]
        merged: list[TrialSpec] = []
        for i in range(max(map(len, proposals), default=0)):
            merged += [batch[i] for batch in proposals if i < len(batch)]
        return merged[:max_new]

    def total_estimate(self, results: pd.DataFrame) -> int:
        return sum(
            s.total_estimate(results_for(results, self.parts[label], self.points))
            for label, s in self.strategies.items()
        )

    def summary(self, results: pd.DataFrame) -> dict[str, Any]:
        """Per part (precision, or precision with steps × batch size), the strategy's own
        `summary` (strategies that have one).

        Raises:
            AttributeError: the strategy keeps no summary.
        """
        return {
            label: s.summary(results_for(results, self.parts[label], self.points))  # type: ignore[attr-defined]
            for label, s in self.strategies.items()
        }
