"""Embedded-cluster housekeeping that needs no running Ray: stale temp dirs, PYTHONPATH."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import umup_sweep
from umup_sweep.execute import _ray_cluster


def test_stale_temp_dirs_of_dead_drivers_are_removed(tmp_path):
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    dead_pid = int(dead.stdout)
    stale = Path(f"/tmp/{_ray_cluster.TEMP_PREFIX}{dead_pid}-test{os.getpid()}")
    live = Path(f"/tmp/{_ray_cluster.TEMP_PREFIX}{os.getpid()}-test")
    for path in (stale, live):
        (path / "session_x").mkdir(parents=True, exist_ok=True)
    try:
        _ray_cluster._remove_stale_temp_dirs()
        assert not stale.exists()
        assert live.exists()
    finally:
        for path in (stale, live):
            subprocess.run(["rm", "-rf", str(path)], check=True)


def test_package_root_put_on_workers_pythonpath(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", "relative/dir")
    _ray_cluster._make_package_importable()
    parts = os.environ["PYTHONPATH"].split(os.pathsep)
    assert parts[0] == str(Path(umup_sweep.__file__).resolve().parent.parent)
    assert parts[1] == str(Path("relative/dir").resolve())  # absolute: workers change cwd
