"""RunStore: commit and read back, resume bookkeeping, changed-sweep refusal, the lock,
damaged files."""

from __future__ import annotations

import dataclasses
import math
import os
import subprocess
import sys

import optuna
import pandas as pd
import pytest
import yaml
from sweep_fakes import FakeTrial, expected_loss, tiny_sweep

from umup_sweep.errors import StoreError
from umup_sweep.search import GridStrategy
from umup_sweep.spec import HP_NAMES, TrialResult
from umup_sweep.store import TRIAL_COLUMNS, RunStore


def _specs(sweep):
    return GridStrategy(sweep).propose(pd.DataFrame(columns=["trial_key"]), [], 100)


def test_commit_roundtrip_writes_trials_csv_curves_and_study(tmp_path):
    sweep = tiny_sweep(tmp_path, lrs=(0.5, 1.0, 64.0))
    fake = FakeTrial(tmp_path / "log", diverge_at=64.0)
    fail = _specs(sweep)[0]
    with RunStore.open(sweep) as store:
        for spec in _specs(sweep):
            store.commit(spec, fake(spec))
        store.commit(fail, TrialResult(fail.trial_key, "failed", error="ValueError: x"))
        curve_ok = store.curve(_specs(sweep)[1].trial_key)

    run_dir = tmp_path / "tiny"
    csv = pd.read_csv(run_dir / "trials.csv")
    assert list(csv.columns) == list(TRIAL_COLUMNS)
    assert set(HP_NAMES) <= set(csv.columns)
    by_lr = csv.set_index("lr")
    # A failure never hides the final result committed before it.
    assert by_lr.loc[0.5, "status"] == "ok"
    assert by_lr.loc[64.0, "status"] == "diverged"
    spec1 = _specs(sweep)[1]
    assert by_lr.loc[1.0, "val_loss"] == pytest.approx(expected_loss(spec1))
    assert by_lr.loc[1.0, "stage"] == "grid"
    assert by_lr.loc[1.0, "width"] == 32 and by_lr.loc[1.0, "parametrization"] == "umup"
    assert list(curve_ok.columns) == ["step", "train_loss", "val_loss"]
    assert curve_ok["train_loss"].tolist() == pytest.approx(
        [expected_loss(spec1) + 1 / (s + 1) for s in range(3)]
    )
    assert math.isnan(curve_ok["val_loss"][0]) and curve_ok["val_loss"][2] == pytest.approx(
        expected_loss(spec1)
    )

    # The Optuna study holds one trial per commit; diverged = COMPLETE with value inf.
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{run_dir / 'study.db'}")
    states = [(t.user_attrs["status"], t.state.name, t.value) for t in study.trials]
    assert ("diverged", "COMPLETE", math.inf) in states
    assert ("failed", "FAIL", None) in states
    assert study.best_trial.params["lr"] == 0.5
    assert study.best_trial.params["width"] == 32
    assert study.best_trial.user_attrs["spec"]["model"]["width"] == 32

    # Re-read from disk: same rows, same answers to has().
    again = RunStore.load(run_dir)
    pd.testing.assert_frame_equal(again.results(), RunStore.load(run_dir).results())
    assert len(again.results()) == 3
    assert again.has(spec1.trial_key) and again.has(_specs(sweep)[2].trial_key)
    assert yaml.safe_load((run_dir / "sweep.yaml").read_text())["name"] == "tiny"


def test_failed_trial_is_not_final_and_is_superseded(tmp_path):
    sweep = tiny_sweep(tmp_path, lrs=(1.0,))
    (spec,) = _specs(sweep)
    with RunStore.open(sweep) as store:
        store.commit(spec, TrialResult(spec.trial_key, "failed", error="E: x (after 2 attempts)"))
        assert not store.has(spec.trial_key)
    with RunStore.open(sweep) as store:
        assert store.results()["status"].tolist() == ["failed"]
        assert store.results()["error"].tolist() == ["E: x (after 2 attempts)"]
        store.commit(spec, FakeTrial(tmp_path / "log")(spec))
        assert store.has(spec.trial_key)
    assert RunStore.load(tmp_path / "tiny").results()["status"].tolist() == ["ok"]


def test_changed_sweep_refused_then_forced_aside(tmp_path):
    sweep = tiny_sweep(tmp_path, lrs=(0.5, 1.0))
    with RunStore.open(sweep) as store:
        spec = _specs(sweep)[0]
        store.commit(spec, FakeTrial(tmp_path / "log")(spec))
    # Execution settings do not change the sweep's identity.
    same = dataclasses.replace(
        sweep, execution=dataclasses.replace(sweep.execution, max_concurrent=7)
    )
    RunStore.open(same).close()

    changed = dataclasses.replace(sweep, train=dataclasses.replace(sweep.train, steps=99))
    with pytest.raises(StoreError, match=r"holds a different sweep \(changed keys: train\.steps\)"):
        RunStore.open(changed)
    with RunStore.open(changed, force=True) as store:
        assert len(store.results()) == 0
    backups = list(tmp_path.glob("tiny.bak-*"))
    assert len(backups) == 1
    old = RunStore.load(backups[0])  # the old run is intact, not deleted
    assert old.results()["trial_key"].tolist() == [spec.trial_key]


def test_second_driver_refused_by_lock_naming_pid(tmp_path):
    sweep = tiny_sweep(tmp_path)
    code = (
        "import sys, time; sys.path.insert(0, {!r}); from sweep_fakes import tiny_sweep;"
        "from umup_sweep.store import RunStore; from pathlib import Path;"
        "s = RunStore.open(tiny_sweep(Path({!r}))); print('locked', flush=True); time.sleep(60)"
    ).format(str(os.path.dirname(__file__) + "/.."), str(tmp_path))
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        with pytest.raises(
            StoreError, match=rf"in use by another umup-sweep driver \(pid {proc.pid}\)"
        ):
            RunStore.open(sweep)
    finally:
        proc.kill()  # SIGKILL: the kernel drops the flock with the process
        proc.wait()
    RunStore.open(sweep).close()  # no stale lock after kill -9


def test_damaged_study_db_is_a_clear_error(tmp_path):
    sweep = tiny_sweep(tmp_path)
    with RunStore.open(sweep) as store:
        spec = _specs(sweep)[0]
        store.commit(spec, FakeTrial(tmp_path / "log")(spec))
    db = tmp_path / "tiny" / "study.db"
    db.write_bytes(db.read_bytes()[:1000])  # truncated
    with pytest.raises(
        StoreError, match=r"study\.db is not a readable trial database.*move it aside"
    ):
        RunStore.open(sweep)
    with pytest.raises(StoreError, match="not a readable trial database"):
        RunStore.load(tmp_path / "tiny")
    assert db.stat().st_size == 1000  # nothing was overwritten


def test_damaged_curve_is_a_clear_error_and_other_trials_survive(tmp_path):
    sweep = tiny_sweep(tmp_path, lrs=(0.5, 1.0))
    specs = _specs(sweep)
    with RunStore.open(sweep) as store:
        for spec in specs:
            store.commit(spec, FakeTrial(tmp_path / "log")(spec))
    path = tmp_path / "tiny" / "curves" / f"{specs[0].trial_key}.csv"
    path.write_text("step,train_loss,val_loss\n0,2.5,\n1,zz")
    store = RunStore.load(tmp_path / "tiny")
    with pytest.raises(
        StoreError, match=rf"{specs[0].trial_key}\.csv is damaged .*delete this file"
    ):
        store.curve(specs[0].trial_key)
    assert len(store.curve(specs[1].trial_key)) == 3
    assert store.results()["status"].tolist() == ["ok", "ok"]


def test_load_of_a_folder_that_is_not_a_run(tmp_path):
    with pytest.raises(StoreError, match="is not a run directory"):
        RunStore.load(tmp_path)
