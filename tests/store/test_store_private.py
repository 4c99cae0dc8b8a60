"""Run directories are private by default: the folders owner-only (0700) and every file the
store writes owner-only (0600), less what the user's umask also removes. A run holds results
and may name a database; other users of a shared machine should not read it."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = """
import os, sys
from pathlib import Path
os.umask(int(sys.argv[2], 8))
from umup_sweep.config import load_sweep
from umup_sweep.spec import TrialResult
from umup_sweep.store import RunStore
from umup_sweep.search import GridStrategy
sweep = load_sweep({"name": "priv", "proxy": {"base": {"head_dim": 16}, "widths": [32],
    "depths": [1]}, "hyperparameters": {"lr": [0.5, 1.0]},
    "storage": {"run_dir": sys.argv[1]}})
with RunStore.open(sweep) as store:
    for t in GridStrategy(sweep).propose(store.results(), [], 10):
        store.commit(t, TrialResult(t.trial_key, "ok", val_loss=2.0,
                                    curve=[(1, 2.5, None), (2, 2.0, 2.0)]))
"""


def _modes(run_dir: Path) -> dict[str, int]:
    return {
        str(p.relative_to(run_dir)): stat.S_IMODE(p.stat().st_mode)
        for p in [run_dir, *run_dir.rglob("*")]
    }


@pytest.mark.parametrize("umask", ["022", "002", "027"])
def test_run_directory_and_its_files_are_owner_only(tmp_path: Path, umask: str) -> None:
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path / "runs"), umask],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    run_dir = tmp_path / "runs" / "priv"
    modes = _modes(run_dir)
    assert {"sweep.yaml", "study.db", "trials.csv", ".lock", "curves"} <= set(modes)
    assert len([k for k in modes if k.startswith("curves/")]) == 2
    for name, mode in modes.items():
        is_dir = (run_dir / name).is_dir() if name != "." else True
        assert mode == (0o700 if is_dir else 0o600), (name, oct(mode))
    # the runs/ folder above is an ordinary folder (several runs, maybe several users)
    assert stat.S_IMODE((tmp_path / "runs").stat().st_mode) == 0o777 & ~int(umask, 8)


def test_a_umask_that_asks_for_less_is_honoured(tmp_path: Path) -> None:
    # umask 077 already takes every group and other bit: the run stays owner-only
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path / "runs"), "077"],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    modes = _modes(tmp_path / "runs" / "priv")
    assert all(mode & 0o077 == 0 for mode in modes.values()), modes


def test_a_relaxed_run_directory_is_left_as_the_user_set_it(tmp_path: Path) -> None:
    """Sharing a run on purpose (chmod g+rX) survives the next run of the sweep."""
    args = [sys.executable, "-c", SCRIPT, str(tmp_path / "runs"), "022"]
    assert subprocess.run(args, capture_output=True).returncode == 0
    run_dir = tmp_path / "runs" / "priv"
    os.chmod(run_dir, 0o750)
    os.chmod(run_dir / "study.db", 0o640)
    assert subprocess.run(args, capture_output=True).returncode == 0
    assert stat.S_IMODE(run_dir.stat().st_mode) == 0o750
    assert stat.S_IMODE((run_dir / "study.db").stat().st_mode) == 0o640
