"""The serial executor: trials run one by one in this process (no Ray). For debugging, unit
tests, and machines where starting Ray is not worth it."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Sequence

from umup_sweep.execute._base import BaseExecutor, TrialFn
from umup_sweep.execute._fuse import Finished, GroupFn, default_group_fn, fusing, run_group
from umup_sweep.execute._retry import run_with_retries, with_threads
from umup_sweep.fused import Fuse, max_group_size, pack
from umup_sweep.spec import TrialResult, TrialSpec


class SerialExecutor(BaseExecutor):
    """Runs each submitted trial in-process when `results()` is iterated.

    Args:
        trial_fn: the trial function (default `umup_sweep.train.run_trial`).
        max_failures: retries of a trial that raises before it is recorded as failed.
        threads: torch threads per trial (written into `spec.train.threads`).
        fuse: `execution.fuse`: the queue's head and the queued trials that fuse with it run
            as one fused group (`umup_sweep.fused.pack`); "off" (the default) runs each alone.
        group_fn: what runs a fused group (default `umup_sweep.fused.run_fused`); with a
            custom `trial_fn` and no `group_fn`, nothing is fused.

    Example:
        >>> from umup_sweep.spec import ModelSpec, TrainSpec, TrialResult, TrialSpec
        >>> ex = SerialExecutor(lambda s: TrialResult(s.trial_key, "ok", val_loss=1.0))
        >>> ex.submit([TrialSpec(ModelSpec(width=32, depth=1), TrainSpec(steps=1))])
        >>> [r.status for _, r in ex.results()]
        ['ok']
    """

    def __init__(
        self,
        trial_fn: TrialFn | None = None,
        max_failures: int = 2,
        threads: int = 1,
        *,
        fuse: Fuse = "off",
        group_fn: GroupFn | None = None,
    ):
        self.fuse = fusing(fuse, trial_fn, group_fn)
        if trial_fn is None:
            from umup_sweep.train import run_trial

            trial_fn = run_trial
        self.trial_fn = trial_fn
        self.group_fn = group_fn
        self.max_failures = max_failures
        self.threads = max(1, threads)
        self._queue: deque[TrialSpec] = deque()
        self._finished = Finished()

    def submit(self, trials: Sequence[TrialSpec]) -> None:
        self._queue.extend(with_threads(t, self.threads) for t in trials)

    def results(self, timeout: float | None = None) -> Iterator[tuple[TrialSpec, TrialResult]]:
        # `timeout` cannot interrupt an in-process trial; each call runs at least one group.
        yield from self._finished.drain()
        while self._queue:
            group = pack(list(self._queue), self.fuse)[0]  # the head and what fuses with it
            if len(group) == 1:
                spec = group[0]
                pairs = [(spec, run_with_retries(self.trial_fn, spec, self.max_failures))]
            else:
                pairs = run_group(self._group_fn(), self.trial_fn, group, self.max_failures)
            taken = {id(s) for s in group}
            self._queue = deque(s for s in self._queue if id(s) not in taken)
            self._finished.add(pairs)
            yield from self._finished.drain()

    def _group_fn(self) -> GroupFn:
        if self.group_fn is None:
            self.group_fn = default_group_fn()
        return self.group_fn

    @property
    def in_flight(self) -> int:
        return len(self._queue) + len(self._finished)

    @property
    def slot_size(self) -> int:
        return max_group_size(self.fuse)

    def close(self) -> None:
        self._queue.clear()
        self._finished.clear()
