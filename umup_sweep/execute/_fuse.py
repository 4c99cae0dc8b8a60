"""What the executors share to run fused groups (`execution.fuse`, `umup_sweep.fused`).

A fused group is one unit of work (one serial call, one Ray task) that returns one result per
trial. The executors hand those results out one at a time, as the driver asks for them, from a
`Finished` buffer: a group's results are never recomputed, whichever of them the driver has
committed when it stops asking. A group that raises is not retried as a group: each of its
trials runs again alone (the trial function, with its own retries), so a fused failure costs
at most one attempt and never a result.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator, Sequence

from umup_sweep.execute._base import TrialFn
from umup_sweep.execute._retry import (
    annotate,
    failed_result,
    one_line,
    reset_peak_rss,
    run_with_retries,
)
from umup_sweep.fused import Fuse
from umup_sweep.spec import TrialResult, TrialSpec

GroupFn = Callable[[Sequence[TrialSpec]], list[TrialResult]]
Pair = tuple[TrialSpec, TrialResult]


def default_group_fn() -> GroupFn:
    """`umup_sweep.fused.run_fused` (imported here: it needs torch)."""
    from umup_sweep.fused._train import run_fused

    return run_fused


def fusing(fuse: Fuse, trial_fn: TrialFn | None, group_fn: GroupFn | None) -> Fuse:
    """The fuse setting an executor applies: "off" when it runs a custom trial function
    without a group function to match (a fused group runs `run_trial`'s training, nothing
    else).

    Example:
        >>> fusing(4, None, None), fusing(4, lambda s: None, None)
        (4, 'off')
    """
    return "off" if trial_fn is not None and group_fn is None else fuse


class Finished:
    """Finished (spec, result) pairs not yet handed to the driver, in finishing order."""

    def __init__(self) -> None:
        self._pairs: deque[Pair] = deque()

    def add(self, pairs: Sequence[Pair]) -> None:
        self._pairs.extend(pairs)

    def drain(self) -> Iterator[Pair]:
        """Yield the buffered pairs; each leaves the buffer before it is yielded, so a driver
        that stops iterating after any of them loses none and sees none twice."""
        while self._pairs:
            yield self._pairs.popleft()

    def clear(self) -> None:
        self._pairs.clear()

    def __len__(self) -> int:
        return len(self._pairs)


def run_group(
    group_fn: GroupFn,
    trial_fn: TrialFn,
    specs: Sequence[TrialSpec],
    max_failures: int,
    node_id: str = "local",
) -> list[Pair]:
    """Run a fused group in this process; if it raises, run each trial alone with retries
    (the failed group counts as one of each trial's attempts).

    Example:
        >>> from umup_sweep.spec import ModelSpec, TrainSpec
        >>> specs = [TrialSpec(ModelSpec(width=32), TrainSpec(lr=v)) for v in (1.0, 2.0)]
        >>> def group(ss):
        ...     raise RuntimeError("fused run broke")
        >>> alone = lambda s: TrialResult(s.trial_key, "ok", val_loss=s.train.lr)
        >>> [r.val_loss for _, r in run_group(group, alone, specs, max_failures=1)]
        [1.0, 2.0]
    """
    if len(specs) == 1:
        return [(specs[0], run_with_retries(trial_fn, specs[0], max_failures, node_id))]
    try:
        reset_peak_rss()
        results = group_fn(specs)
    except Exception as exc:  # fall back to the trials alone, each with its own retries
        if max_failures < 1:
            return [(s, failed_result(s, one_line(exc), 1)) for s in specs]
        return [(s, run_with_retries(trial_fn, s, max_failures - 1, node_id)) for s in specs]
    return [(s, annotate(r, node_id)) for s, r in zip(specs, results, strict=True)]
