"""Each trial's own peak memory is recorded, not the peak of the process it ran in: a small
trial that follows a big one in the same process (the serial driver, a reused Ray worker)
reports its own, smaller peak."""

from __future__ import annotations

import sys

import pytest

from umup_sweep.execute import RayExecutor, SerialExecutor
from umup_sweep.spec import ModelSpec, TrainSpec, TrialResult, TrialSpec

BIG_MIB = 300


def allocating_trial(spec: TrialSpec) -> TrialResult:
    """Touches `spec.seed` MiB of memory, then frees it."""
    block = bytearray(spec.seed * 2**20)
    for i in range(0, len(block), 4096):
        block[i] = 1
    del block
    return TrialResult(spec.trial_key, "ok", val_loss=1.0, peak_rss_mb=1e9)  # replaced


def _spec(mib: int) -> TrialSpec:
    return TrialSpec(ModelSpec(width=32, depth=1), TrainSpec(steps=1), seed=mib)


@pytest.fixture(params=["serial", pytest.param("ray", marks=pytest.mark.ray)])
def executor(request):
    if request.param == "serial":
        return SerialExecutor(allocating_trial, max_failures=0)
    request.getfixturevalue("ray_session")
    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import tests/
    return RayExecutor(allocating_trial, max_failures=0, cpus_per_trial=2)  # one at a time


def test_each_trial_records_its_own_peak_memory(executor):
    peaks = []
    try:
        for mib in (BIG_MIB, 0):  # one after the other: the same process runs both
            executor.submit([_spec(mib)])
            ((_, result),) = list(executor.results())
            assert result.status == "ok"
            peaks.append(result.peak_rss_mb)
    finally:
        executor.close()
    big, small = peaks
    assert big > BIG_MIB  # the allocation is in the big trial's peak ...
    assert small < big - BIG_MIB * 0.8  # ... and not in the next trial's
    assert small > 10  # a real reading of the process, not the trial fn's placeholder
