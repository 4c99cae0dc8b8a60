"""Executors: where trials run. `ray` (default; embedded local cluster or `--address`) and
`serial` (in-process, no Ray). `make_executor` builds one from a sweep's `execution` block."""

from __future__ import annotations

from umup_sweep.config import ExecutionSpec
from umup_sweep.errors import ConfigError
from umup_sweep.execute._base import BaseExecutor, TrialFn
from umup_sweep.execute._retry import run_with_retries
from umup_sweep.execute._serial import SerialExecutor

__all__ = [
    "BaseExecutor",
    "RayExecutor",
    "SerialExecutor",
    "TrialFn",
    "make_executor",
    "run_with_retries",
]


def __getattr__(name: str) -> object:
    # RayExecutor imports ray only when asked for (keeps `import umup_sweep` fast).
    if name == "RayExecutor":
        from umup_sweep.execute._ray import RayExecutor

        return RayExecutor
    raise AttributeError(name)


def make_executor(
    execution: ExecutionSpec,
    trial_fn: TrialFn | None = None,
    *,
    address: str | None = None,
    verbose: bool = False,
) -> BaseExecutor:
    """The executor named by `execution.executor`.

    Args:
        execution: the sweep's execution block (executor, cpus/gpus per trial, retries,
            fusing: `fuse` packs compatible trials into fused groups, see `umup_sweep.fused`).
        trial_fn: what runs one trial (default `umup_sweep.train.run_trial`; a custom one
            turns fusing off).
        address: Ray cluster to attach to (overrides `execution.address`).
        verbose: Ray's logs and the workers' output on the terminal.

    Example:
        >>> make_executor(ExecutionSpec(executor="serial")).__class__.__name__
        'SerialExecutor'
    """
    threads = max(1, int(execution.cpus_per_trial))
    if execution.executor == "serial":
        return SerialExecutor(
            trial_fn, max_failures=execution.max_failures, threads=threads, fuse=execution.fuse
        )
    if execution.executor == "ray":
        from umup_sweep.execute._ray import RayExecutor

        return RayExecutor(
            trial_fn,
            max_failures=execution.max_failures,
            cpus_per_trial=execution.cpus_per_trial,
            gpus_per_trial=execution.gpus_per_trial,
            address=address or execution.address,
            verbose=verbose,
            fuse=execution.fuse,
        )
    raise ConfigError("<execution>", "execution.executor", "one of: ray, serial")
