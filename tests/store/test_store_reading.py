"""The store is the one reader of a run: `results()` and the validated `sweep()` from
`RunStore.load`, whatever happened to the `trials.csv` export; a damaged sweep.yaml is one
line; importing the package changes nothing (the umask is applied when a file is made)."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pandas as pd
import pytest
import yaml
from sweep_fakes import FakeTrial, tiny_sweep

from umup_sweep import store as store_pkg
from umup_sweep.analysis import load_run
from umup_sweep.config import load_sweep, sweep_to_dict
from umup_sweep.errors import StoreError
from umup_sweep.search import GridStrategy
from umup_sweep.store import STUDY_FILE, SWEEP_FILE, TRIALS_FILE, RunStore


def _run(tmp_path, **kw):
    sweep = tiny_sweep(tmp_path, lrs=(0.5, 1.0), **kw)
    with RunStore.open(sweep) as store:
        for spec in GridStrategy(sweep).propose(store.results(), [], 100):
            store.commit(spec, FakeTrial(tmp_path / "log")(spec))
    return sweep


def test_load_gives_the_validated_sweep_and_the_trials_without_the_export(tmp_path):
    sweep = _run(tmp_path)
    run_dir = sweep.run_dir
    assert {SWEEP_FILE, STUDY_FILE, TRIALS_FILE} <= {p.name for p in run_dir.iterdir()}
    (run_dir / TRIALS_FILE).unlink()  # only an export: nothing reads it back
    store = RunStore.load(run_dir)
    assert store.sweep() == load_sweep(sweep_to_dict(sweep))  # the resolved form
    assert (store.metric, store.swept) == (sweep.metric, sweep.swept)
    assert store.results()["status"].tolist() == ["ok", "ok"]


def test_analysis_reads_the_run_through_the_store(tmp_path):
    sweep = _run(tmp_path)
    run_dir = sweep.run_dir
    (run_dir / TRIALS_FILE).write_text("trial_key,sta")  # a truncated export changes nothing
    run = load_run(run_dir)
    pd.testing.assert_frame_equal(run.trials, RunStore.load(run_dir).results())
    assert run.spec == RunStore.load(run_dir).sweep()
    assert (run.name, run.metric, run.swept, run.base) == (
        sweep.name,
        sweep.metric,
        sweep.swept,
        sweep.family.base,
    )
    analysis = sweep.analysis
    assert (run.tolerance, run.precision_tolerance, run.precision_loss_threshold) == (
        analysis.tolerance,
        analysis.precision_tolerance,
        analysis.precision_loss_threshold,
    )


def test_sweep_yaml_with_an_invalid_value_is_a_one_line_damage_error(tmp_path):
    run_dir = _run(tmp_path).run_dir
    data = yaml.safe_load((run_dir / SWEEP_FILE).read_text())
    data["analysis"]["tolerance"] = -1
    (run_dir / SWEEP_FILE).write_text(yaml.safe_dump(data))
    with pytest.raises(StoreError) as err:
        RunStore.load(run_dir)
    msg = str(err.value)
    assert msg.startswith(f"{run_dir / SWEEP_FILE} is damaged (analysis.tolerance: ")
    assert "the trials are intact" in msg and "\n" not in msg


def test_a_changed_analysis_section_is_read_back(tmp_path):
    sweep = tiny_sweep(tmp_path)
    sweep = dataclasses.replace(
        sweep, analysis=dataclasses.replace(sweep.analysis, precision_tolerance=0.75)
    )
    RunStore.open(sweep).close()
    assert RunStore.load(sweep.run_dir).sweep().analysis.precision_tolerance == 0.75


def test_import_sets_no_umask_and_files_are_owner_only(tmp_path):
    code = f"""
import os, stat
from pathlib import Path
real = os.umask
def refuse(mask):
    raise AssertionError("os.umask called")
os.umask = refuse
import umup_sweep.store
from umup_sweep.store import atomic_write_text
os.umask = real
os.umask(0o027)
path = Path({str(tmp_path)!r}) / "f.txt"
atomic_write_text(path, "x")
print(oct(stat.S_IMODE(path.stat().st_mode)))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "0o600"  # owner-only, whatever the umask lets through
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"]  # no temporary file left


def test_public_names():
    for name in ("RunStore", "TRIAL_COLUMNS", "CURVE_COLUMNS", "FINAL_STATUSES", "RunLock",
                 "StudyLock", "lock_holder", "storage_label", "changed_keys", "write_curve",
                 "read_curve", "atomic_write_text", "SWEEP_FILE", "PLOTS_DIR"):  # fmt: skip
        assert name in store_pkg.__all__ and hasattr(store_pkg, name)
