"""The executor contract: run trials somewhere, hand each result back as soon as it finishes."""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterator, Sequence

from umup_sweep.spec import TrialResult, TrialSpec

TrialFn = Callable[[TrialSpec], TrialResult]


class BaseExecutor(abc.ABC):
    """Runs `TrialSpec`s (by default through `umup_sweep.train.run_trial`).

    Executors never write results themselves: they yield them, and the driver commits each one
    to the store before asking for the next.
    """

    @abc.abstractmethod
    def submit(self, trials: Sequence[TrialSpec]) -> None:
        """Queue trials to run."""

    @abc.abstractmethod
    def results(self, timeout: float | None = None) -> Iterator[tuple[TrialSpec, TrialResult]]:
        """Yield finished (spec, result) pairs as they complete; returns when none are in flight
        or `timeout` passes without one."""

    @property
    @abc.abstractmethod
    def in_flight(self) -> int:
        """Trials submitted and not yet yielded."""

    @property
    def slot_size(self) -> int:
        """Trials one worker slot may run at once (a fused group's largest size; 1 unfused):
        the driver keeps `execution.max_concurrent` × this many trials in flight."""
        return 1

    def close(self) -> None:
        """Release workers (Ray: shut down the embedded cluster)."""
        return None

    def __enter__(self) -> BaseExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
