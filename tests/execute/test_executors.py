"""Serial and Ray executors: same answers, retries of exceptions and dead workers, divergence
never retried, node id and peak memory recorded."""

from __future__ import annotations

import pandas as pd
import pytest
from sweep_fakes import FakeTrial, expected_loss, tiny_sweep

from umup_sweep.config import ExecutionSpec
from umup_sweep.execute import RayExecutor, SerialExecutor, make_executor
from umup_sweep.search import GridStrategy


def _specs(tmp_path, lrs):
    sweep = tiny_sweep(tmp_path, lrs=lrs)
    return GridStrategy(sweep).propose(pd.DataFrame(columns=["trial_key"]), [], 100)


@pytest.fixture(params=["serial", pytest.param("ray", marks=pytest.mark.ray)])
def kind(request):
    if request.param == "ray":
        request.getfixturevalue("ray_session")
    return request.param


def _make(kind, fake, max_failures):
    if kind == "serial":
        return SerialExecutor(fake, max_failures=max_failures)
    return RayExecutor(fake, max_failures=max_failures, cpus_per_trial=1)


def test_results_retries_and_divergence(kind, tmp_path):
    lrs = (0.5, 1.0, 2.0, 4.0, 64.0)
    fake = FakeTrial(tmp_path / "log", fail_lrs=(2.0,), flaky_lrs=(4.0,), diverge_at=64.0)
    specs = _specs(tmp_path, lrs)
    ex = _make(kind, fake, max_failures=2)
    try:
        ex.submit(specs)
        assert ex.in_flight == 5
        got = {spec.train.lr: result for spec, result in ex.results()}
        assert ex.in_flight == 0
    finally:
        ex.close()
    assert sorted(got) == sorted(lrs)
    for spec in specs:
        result = got[spec.train.lr]
        assert result.trial_key == spec.trial_key
        if result.status == "failed":
            continue
        assert result.node_id  # "local" or the Ray node id
        assert result.peak_rss_mb is not None and result.peak_rss_mb > 10
    assert got[0.5].status == "ok" and got[0.5].val_loss == pytest.approx(expected_loss(specs[0]))
    # raises every time: 1 + max_failures attempts, then failed with a one-line error
    assert got[2.0].status == "failed"
    assert got[2.0].error == "ValueError: boom at lr=2.0 (after 3 attempts)"
    assert fake.attempts(specs[2].trial_key) == 3
    # raises once: retried, then ok
    assert got[4.0].status == "ok" and fake.attempts(specs[3].trial_key) == 2
    # divergence is a result: never retried
    assert got[64.0].status == "diverged" and fake.attempts(specs[4].trial_key) == 1
    assert fake.attempts(specs[0].trial_key) == 1


def test_threads_follow_cpus_per_trial(tmp_path):
    seen = []
    ex = make_executor(
        ExecutionSpec(executor="serial", cpus_per_trial=2),
        trial_fn=lambda s: seen.append(s.train.threads) or FakeTrial(tmp_path / "log")(s),
    )
    ex.submit(_specs(tmp_path, (1.0,)))
    ((spec, _),) = list(ex.results())
    assert seen == [2] and spec.train.threads == 2


def test_max_failures_zero_means_one_attempt(tmp_path):
    fake = FakeTrial(tmp_path / "log", flaky_lrs=(1.0,))
    ex = SerialExecutor(fake, max_failures=0)
    ex.submit(_specs(tmp_path, (1.0,)))
    ((_, result),) = list(ex.results())
    assert result.status == "failed" and result.error.endswith("(after 1 attempt)")


@pytest.mark.ray
def test_ray_dead_worker_is_rescheduled(ray_session, tmp_path):
    fake = FakeTrial(tmp_path / "log", crash_lrs=(1.0,))
    specs = _specs(tmp_path, (0.5, 1.0))
    ex = RayExecutor(fake, max_failures=1)
    try:
        ex.submit(specs)
        got = {spec.train.lr: r for spec, r in ex.results()}
    finally:
        ex.close()
    assert got[1.0].status == "ok" and fake.attempts(specs[1].trial_key) == 2
    assert got[0.5].status == "ok"


@pytest.mark.ray
def test_ray_dead_worker_counts_as_failure(ray_session, tmp_path):
    fake = FakeTrial(tmp_path / "log", crash_lrs=(1.0,))
    ex = RayExecutor(fake, max_failures=0)
    try:
        ex.submit(_specs(tmp_path, (1.0,)))
        ((_, result),) = list(ex.results())
    finally:
        ex.close()
    assert result.status == "failed"
    assert "WorkerCrashedError" in result.error or "died" in result.error.lower()


@pytest.mark.ray
def test_ray_results_timeout_returns_while_busy(ray_session, tmp_path):
    fake = FakeTrial(tmp_path / "log", sleep=2.0)
    ex = RayExecutor(fake)
    try:
        ex.submit(_specs(tmp_path, (1.0,)))
        assert list(ex.results(timeout=0.1)) == []
        assert ex.in_flight == 1
        assert [r.status for _, r in ex.results()] == ["ok"]
    finally:
        ex.close()
    import ray

    assert ray.is_initialized()  # an executor never shuts down a Ray it did not start
