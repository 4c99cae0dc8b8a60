"""The Ray executor: each trial is a Ray Core task, results stream back as they finish.

Why tasks, not a Ray Tune Tuner: a Tuner adds 1.5-2 s per trial on this machine, tasks far
less (see benchmarks/bench_orchestration.py); the RunStore, not Ray, records what is done.
Ray's own retries are off (`max_retries=0`): the executor resubmits a trial that raised or
whose worker died, up to `max_failures` times, then reports it failed.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from umup_sweep.device import ray_resources, trial_threads
from umup_sweep.execute._base import BaseExecutor, TrialFn
from umup_sweep.execute._fuse import Finished, GroupFn, default_group_fn, fusing
from umup_sweep.execute._ray_cluster import RayConnection
from umup_sweep.execute._retry import (
    annotate,
    failed_result,
    one_line,
    reset_peak_rss,
    with_threads,
)
from umup_sweep.fused import Fuse, group_size, max_group_size, pack
from umup_sweep.spec import TrialResult, TrialSpec


def _run_in_worker(trial_fn: TrialFn, spec: TrialSpec) -> TrialResult:
    """Body of the Ray task: run the trial and note the node and peak memory of the worker."""
    import ray

    reset_peak_rss()  # workers are reused: measure this trial's peak, not the worker's
    return annotate(trial_fn(spec), ray.get_runtime_context().get_node_id())


def _run_group_in_worker(group_fn: GroupFn, specs: list[TrialSpec]) -> list[TrialResult]:
    """Body of a fused group's Ray task: one result per trial, node and peak memory noted."""
    import ray

    reset_peak_rss()
    node = ray.get_runtime_context().get_node_id()
    return [annotate(result, node) for result in group_fn(specs)]


class RayExecutor(BaseExecutor):
    """Runs trials as Ray tasks, `cpus_per_trial` CPUs (= torch threads) and
    `gpus_per_trial` (fractional) GPUs each.

    Args:
        trial_fn: the trial function (default `umup_sweep.train.run_trial`); it must be
            importable on the workers or picklable by value.
        max_failures: retries of a trial that raises or loses its worker.
        cpus_per_trial: Ray CPUs per trial; also the trial's torch threads (at least 1).
        gpus_per_trial: Ray GPUs per trial (fractions share a GPU).
        address: attach to this cluster (`"auto"`, `host:port`); None starts an embedded one.
        num_cpus: CPUs of an embedded cluster (default all cores).
        verbose: Ray info logs and worker output on the terminal.
        fuse: `execution.fuse`: each `submit` is packed into fused groups
            (`umup_sweep.fused.pack`), each group one task on one slot's resources; a group
            whose task fails is resubmitted as its trials alone.
        group_fn: what runs a fused group (default `umup_sweep.fused.run_fused`); with a
            custom `trial_fn` and no `group_fn`, nothing is fused.

    Example:
        >>> ex = RayExecutor(my_trial_fn, cpus_per_trial=1)  # doctest: +SKIP
        >>> ex.submit(specs); done = list(ex.results()); ex.close()  # doctest: +SKIP
    """

    def __init__(
        self,
        trial_fn: TrialFn | None = None,
        *,
        max_failures: int = 2,
        cpus_per_trial: float = 1.0,
        gpus_per_trial: float = 0.0,
        address: str | None = None,
        num_cpus: int | None = None,
        verbose: bool = False,
        fuse: Fuse = "off",
        group_fn: GroupFn | None = None,
    ) -> None:
        import ray

        self.fuse = fusing(fuse, trial_fn, group_fn)
        if self.fuse != "off" and group_fn is None:
            group_fn = default_group_fn()
        if trial_fn is None:
            from umup_sweep.train import run_trial

            trial_fn = run_trial
        self.max_failures = max_failures
        self.threads = trial_threads(cpus_per_trial)
        self.resources = ray_resources(cpus_per_trial, gpus_per_trial)  # checked before Ray starts
        self._conn = RayConnection(address=address, num_cpus=num_cpus, verbose=verbose)
        self._task = ray.remote(_run_in_worker).options(**self.resources, max_retries=0)
        self._fn_ref = ray.put(trial_fn)
        if group_fn is not None:
            self._group_task = ray.remote(_run_group_in_worker).options(
                **self.resources, max_retries=0
            )
            self._group_ref = ray.put(group_fn)
        # ObjectRef -> (specs, failures): one spec for a trial alone, several for a fused group
        self._pending: dict[Any, tuple[list[TrialSpec], int]] = {}
        self._finished = Finished()
        self._staged: list[TrialSpec] = []  # submitted, waiting for group-mates

    def submit(self, trials: Sequence[TrialSpec]) -> None:
        self._staged.extend(with_threads(spec, self.threads) for spec in trials)
        self._flush(partial=False)

    def _flush(self, partial: bool) -> None:
        """Launch the staged trials: full fused groups (and trials that do not fuse) at once,
        partial groups only when `partial` (the driver is about to wait). So trials the driver
        submits one by one, as it commits a group's results, gather into full groups again."""
        staged, self._staged = self._staged, []
        for group in pack(staged, self.fuse):
            if len(group) == 1 and (partial or group_size(self.fuse, group[0]) == 1):
                self._launch(group[0], failures=0)
            elif len(group) > 1 and (partial or len(group) == group_size(self.fuse, group[0])):
                self._pending[self._group_task.remote(self._group_ref, group)] = (group, 0)
            else:
                self._staged.extend(group)

    def _launch(self, spec: TrialSpec, failures: int) -> None:
        self._pending[self._task.remote(self._fn_ref, spec)] = ([spec], failures)

    def results(self, timeout: float | None = None) -> Iterator[tuple[TrialSpec, TrialResult]]:
        import ray
        from ray.exceptions import RayError

        yield from self._finished.drain()
        self._flush(partial=True)
        while self._pending:
            ready, _ = ray.wait(list(self._pending), num_returns=1, timeout=timeout)
            if not ready:
                return
            ref = ready[0]
            specs, failures = self._pending.pop(ref)
            try:
                got = ray.get(ref)
                results = got if isinstance(got, list) else [got]
            except RayError as exc:  # the trial or group raised, or its worker/node died
                failures += 1
                if failures <= self.max_failures:
                    for spec in specs:  # a failed group's trials go on alone
                        self._launch(spec, failures)
                    continue
                cause = getattr(exc, "cause", None)
                error = one_line(cause if isinstance(cause, BaseException) else exc)
                results = [failed_result(spec, error, failures) for spec in specs]
            self._finished.add(list(zip(specs, results, strict=True)))
            yield from self._finished.drain()

    def cluster_resources(self) -> dict[str, float]:
        """The connected cluster's total resources (`ray.cluster_resources()`), e.g. for
        `umup_sweep.device.validate_device_request` before any trial is submitted."""
        import ray

        return {str(k): float(v) for k, v in ray.cluster_resources().items()}

    @property
    def in_flight(self) -> int:
        running = sum(len(specs) for specs, _ in self._pending.values())
        return running + len(self._staged) + len(self._finished)

    @property
    def slot_size(self) -> int:
        return max_group_size(self.fuse)

    def close(self) -> None:
        """Cancel trials still running and disconnect (stopping an embedded cluster)."""
        import ray

        if ray.is_initialized():
            for ref in list(self._pending):
                try:
                    ray.cancel(ref, force=True)
                except Exception:  # already finished or worker gone: nothing to cancel
                    pass
        self._pending.clear()
        self._staged.clear()
        self._finished.clear()
        self._conn.close()
