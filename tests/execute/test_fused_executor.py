"""Executors with `execution.fuse`: compatible trials run as fused groups (one call / one Ray
task each), every trial's result comes back once, one at a time as the driver asks, none is
recomputed; a failing group falls back to its trials alone; a fused sweep commits every trial
and a rerun finds them all stored."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Sequence

import pandas as pd
import pytest
from sweep_fakes import FakeTrial, expected_loss, tiny_sweep

from umup_sweep.execute import RayExecutor, SerialExecutor, _serial
from umup_sweep.fused import run_fused
from umup_sweep.runner import run_sweep
from umup_sweep.search import GridStrategy
from umup_sweep.spec import TrialResult, TrialSpec
from umup_sweep.store import RunStore
from umup_sweep.train import run_trial

CALLS: list[int] = []  # group sizes the fake group function saw (this process only)


class FakeGroup:
    """A group function: the fake trial's answer for each spec; records group sizes."""

    def __init__(self, trial: FakeTrial, fail: bool = False) -> None:
        self.trial, self.fail = trial, fail
        self.sizes: list[int] = []

    def __call__(self, specs: Sequence[TrialSpec]) -> list[TrialResult]:
        self.sizes.append(len(specs))
        CALLS.append(len(specs))
        if self.fail:
            raise RuntimeError("fused run broke")
        return [self.trial(s) for s in specs]


def _specs(tmp_path, lrs=(0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0)):
    sweep = tiny_sweep(tmp_path, lrs=lrs)
    return GridStrategy(sweep).propose(pd.DataFrame(columns=["trial_key"]), [], 100)


def _drain_like_the_driver(ex) -> list[tuple[TrialSpec, TrialResult]]:
    """Take one result per `results()` call, as `runner._Loop` does."""
    got = []
    while ex.in_flight:
        for pair in ex.results():
            got.append(pair)
            break
    return got


def test_serial_runs_groups_and_hands_each_result_out_once(tmp_path):
    fake = FakeTrial(tmp_path / "log")
    group = FakeGroup(fake)
    specs = _specs(tmp_path)
    odd = specs[0].with_hps(residual_mult=2.0)  # a multiplier: does not fuse
    ex = SerialExecutor(fake, fuse=3, group_fn=group)
    assert ex.slot_size == 3
    ex.submit([specs[0], odd, *specs[1:]])
    assert ex.in_flight == 8
    got = _drain_like_the_driver(ex)
    assert group.sizes == [3, 3]  # the other two ran alone (odd, and the last lr)
    assert sorted(s.trial_key for s, _ in got) == sorted(s.trial_key for s in [odd, *specs])
    for spec, result in got:
        assert result.trial_key == spec.trial_key and result.node_id == "local"
        assert result.val_loss == pytest.approx(expected_loss(spec))
    assert all(fake.attempts(s.trial_key) == 1 for s in specs)  # nothing recomputed


def test_a_failing_group_falls_back_to_its_trials_alone(tmp_path):
    fake = FakeTrial(tmp_path / "log")
    specs = _specs(tmp_path, lrs=(0.5, 1.0))
    ex = SerialExecutor(fake, max_failures=1, fuse=2, group_fn=FakeGroup(fake, fail=True))
    ex.submit(specs)
    got = dict((s.trial_key, r) for s, r in ex.results())
    assert [got[s.trial_key].status for s in specs] == ["ok", "ok"]
    # with no retries left, the group's error is each trial's
    ex = SerialExecutor(fake, max_failures=0, fuse=2, group_fn=FakeGroup(fake, fail=True))
    ex.submit(specs)
    errors = {r.error for _, r in ex.results()}
    assert errors == {"RuntimeError: fused run broke (after 1 attempt)"}


def test_custom_trial_fn_without_group_fn_is_not_fused(tmp_path):
    ex = SerialExecutor(FakeTrial(tmp_path / "log"), fuse=4)
    assert ex.fuse == "off" and ex.slot_size == 1


def test_fused_sweep_commits_every_trial_and_a_rerun_finds_them(tmp_path, monkeypatch):
    sizes: list[int] = []

    def spy(specs):
        sizes.append(len(specs))
        return run_fused(specs)

    monkeypatch.setattr(_serial, "default_group_fn", lambda: spy)
    sweep = tiny_sweep(tmp_path / "runs", lrs=(0.5, 1.0, 2.0), seeds=(0, 1), steps=3)
    sweep = dataclasses.replace(
        sweep, execution=dataclasses.replace(sweep.execution, fuse=4, max_concurrent=1)
    )
    first = run_sweep(sweep, analyze=False)
    assert first.counts["ok"] == 6 and first.n_new == 6
    assert sum(sizes) == 6 and max(sizes) == 4  # 4 in flight at once: one slot of 4
    second = run_sweep(sweep, analyze=False)
    assert second.n_new == 0 and second.n_resumed == 6 and sum(sizes) == 6
    assert sizes == [4, 2]
    store = RunStore.open(sweep)
    try:
        rows = store.results()
    finally:
        store.close()
    assert len(rows) == 6 and set(rows["status"]) == {"ok"}


@pytest.mark.ray
def test_ray_runs_a_group_as_one_task(tmp_path, ray_session):
    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    fake = FakeTrial(tmp_path / "log")
    specs = _specs(tmp_path, lrs=(0.25, 0.5, 1.0, 2.0, 4.0))
    ex = RayExecutor(fake, cpus_per_trial=1, fuse=2, group_fn=FakeGroup(fake))
    try:
        ex.submit(specs)
        assert ex.in_flight == 5
        got = _drain_like_the_driver(ex)
    finally:
        ex.close()
    assert sorted(s.trial_key for s, _ in got) == sorted(s.trial_key for s in specs)
    assert all(fake.attempts(s.trial_key) == 1 for s in specs)
    assert all(r.status == "ok" and r.node_id not in (None, "local") for _, r in got)


def test_run_fused_results_are_what_a_sweep_commits(tmp_path):
    sweep = tiny_sweep(tmp_path / "runs", lrs=(0.5, 2.0), steps=3)
    specs = GridStrategy(sweep).propose(pd.DataFrame(columns=["trial_key"]), [], 100)
    alone = run_trial(specs[1])
    ex = SerialExecutor(fuse=2)
    ex.submit(specs)
    got = dict((s.trial_key, r) for s, r in ex.results())
    assert got[specs[1].trial_key].val_loss == pytest.approx(alone.val_loss, rel=1e-5)
