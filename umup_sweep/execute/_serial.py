"""The serial executor: trials run one by one in this process (no Ray). For debugging, unit
tests, and machines where starting Ray is not worth it."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Sequence

from umup_sweep.execute._base import BaseExecutor, TrialFn
from umup_sweep.execute._retry import run_with_retries, with_threads
from umup_sweep.spec import TrialResult, TrialSpec


class SerialExecutor(BaseExecutor):
    """Runs each submitted trial in-process when `results()` is iterated.

    Args:
        trial_fn: the trial function (default `umup_sweep.train.run_trial`).
        max_failures: retries of a trial that raises before it is recorded as failed.
        threads: torch threads per trial (written into `spec.train.threads`).

    Example:
        >>> from umup_sweep.spec import ModelSpec, TrainSpec, TrialResult, TrialSpec
        >>> ex = SerialExecutor(lambda s: TrialResult(s.trial_key, "ok", val_loss=1.0))
        >>> ex.submit([TrialSpec(ModelSpec(width=32, depth=1), TrainSpec(steps=1))])
        >>> [r.status for _, r in ex.results()]
        ['ok']
    """

    def __init__(self, trial_fn: TrialFn | None = None, max_failures: int = 2, threads: int = 1):
        if trial_fn is None:
            from umup_sweep.train import run_trial

            trial_fn = run_trial
        self.trial_fn = trial_fn
        self.max_failures = max_failures
        self.threads = max(1, threads)
        self._queue: deque[TrialSpec] = deque()

    def submit(self, trials: Sequence[TrialSpec]) -> None:
        self._queue.extend(with_threads(t, self.threads) for t in trials)

    def results(self, timeout: float | None = None) -> Iterator[tuple[TrialSpec, TrialResult]]:
        # `timeout` cannot interrupt an in-process trial; each call runs at least one.
        while self._queue:
            spec = self._queue[0]
            result = run_with_retries(self.trial_fn, spec, self.max_failures, node_id="local")
            self._queue.popleft()
            yield spec, result

    @property
    def in_flight(self) -> int:
        return len(self._queue)

    def close(self) -> None:
        self._queue.clear()
