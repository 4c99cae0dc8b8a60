"""What every executor does around a trial: retry exceptions, never retry divergence.

`max_failures` counts retries: a trial gets at most `1 + max_failures` attempts before it is
recorded as `failed` with a one-line error; a `diverged` result is final on the first attempt.
"""

from __future__ import annotations

import dataclasses

from umup_sweep.execute._base import TrialFn
from umup_sweep.memory import peak_rss_mb, reset_peak_rss
from umup_sweep.spec import TrialResult, TrialSpec


def one_line(exc: BaseException) -> str:
    """`Type: first line of message` (no traceback), for the `error` column."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def failed_result(spec: TrialSpec, error: str, attempts: int) -> TrialResult:
    """The record of a trial whose every attempt raised."""
    return TrialResult(
        trial_key=spec.trial_key,
        status="failed",
        error=f"{error} (after {attempts} attempt{'s' if attempts != 1 else ''})",
    )


def with_threads(spec: TrialSpec, threads: int) -> TrialSpec:
    """The spec with `train.threads` set (threads are not part of the trial key)."""
    if spec.train.threads == threads:
        return spec
    return dataclasses.replace(spec, train=dataclasses.replace(spec.train, threads=threads))


def annotate(result: TrialResult, node_id: str) -> TrialResult:
    """Fill in where the trial ran (unless the trial fn did) and its peak memory: this
    process's peak since `reset_peak_rss()`, which replaces the trial fn's own reading (a
    process-lifetime peak, which a reused worker would carry from trial to trial)."""
    if result.node_id is None:
        result.node_id = node_id
    result.peak_rss_mb = peak_rss_mb()
    return result


def run_with_retries(
    trial_fn: TrialFn, spec: TrialSpec, max_failures: int, node_id: str = "local"
) -> TrialResult:
    """Run `trial_fn(spec)` in this process, retrying exceptions up to `max_failures` times.

    Example:
        >>> from umup_sweep.spec import ModelSpec, TrainSpec
        >>> spec = TrialSpec(ModelSpec(width=32, depth=1), TrainSpec(steps=1))
        >>> def boom(s):
        ...     raise RuntimeError("no")
        >>> run_with_retries(boom, spec, max_failures=1).error
        'RuntimeError: no (after 2 attempts)'
    """
    error = ""
    for _attempt in range(1 + max_failures):
        try:
            reset_peak_rss()
            return annotate(trial_fn(spec), node_id)
        except Exception as exc:  # the trial's own bug or resource error: retry
            error = one_line(exc)
    return failed_result(spec, error, 1 + max_failures)
