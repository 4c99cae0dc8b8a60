"""The embedded Ray of `umup-sweep run` (no --address): every Ray server it starts listens on
loopback only, no dashboard port is opened, and when the run ends its processes and its temp
folder are gone and the run directory holds results only (no per-trial checkpoints)."""

from __future__ import annotations

import ipaddress
import os
import time
from pathlib import Path

import pandas as pd
import psutil
import pytest
from cli_helpers import cli_popen
from scaleout_helpers import REPO

pytestmark = [pytest.mark.ray, pytest.mark.slow]

# What a finished run directory may hold (the contract in docs/DESIGN.md), nothing else.
RESULT_FILES = {".lock", "sweep.yaml", "study.db", "trials.csv", "transfer.json", "report.md"}
RESULT_DIRS = {"curves": {".csv"}, "plots": {".png", ".svg"}}


def _listening(pids: set[int]) -> set[tuple[str, int]]:
    out = set()
    for conn in psutil.net_connections("inet"):
        if conn.status == psutil.CONN_LISTEN and conn.pid in pids:
            out.add((conn.laddr.ip, conn.laddr.port))
    return out


def _is_loopback(ip: str) -> bool:
    addr = ipaddress.ip_address(ip)
    mapped = getattr(addr, "ipv4_mapped", None)
    return (mapped or addr).is_loopback


def test_embedded_ray_is_loopback_only_and_leaves_nothing_behind(tmp_path):
    no_ray_settings = {k: None for k in os.environ if k.startswith("RAY_")}
    cli = cli_popen(
        "run",
        REPO / "sweeps" / "smoke.yaml",
        "--executor",
        "ray",
        "--run-dir",
        tmp_path / "runs",
        "--no-progress",
        env=no_ray_settings,
    )
    seen_procs: dict[int, psutil.Process] = {}
    listening: set[tuple[str, int]] = set()
    try:
        driver = psutil.Process(cli.pid)
        while cli.poll() is None:  # sample the cluster's sockets for the whole run
            try:
                for child in driver.children(recursive=True):
                    seen_procs.setdefault(child.pid, child)
            except psutil.NoSuchProcess:
                break
            listening |= _listening({cli.pid, *seen_procs})
            time.sleep(0.2)
        out, err = cli.communicate(timeout=300)
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait()
    assert cli.returncode == 0, err[-3000:]
    assert len(seen_procs) >= 3  # gcs_server, raylet, workers... were observed
    assert listening, "no listening socket was observed"
    assert all(_is_loopback(ip) for ip, _ in listening), sorted(listening)
    assert not any(port == 8265 for _, port in listening)  # no dashboard

    # Nothing of the embedded cluster survives the run.
    psutil.wait_procs(list(seen_procs.values()), timeout=15)
    assert not [p.pid for p in seen_procs.values() if p.is_running() and p.status() != "zombie"]
    assert not list(Path("/tmp").glob(f"umup-ray-{cli.pid}-*"))

    # The run directory holds results only: no per-trial checkpoints or temp files.
    run_dir = tmp_path / "runs" / "smoke"
    for path in run_dir.iterdir():
        if path.is_dir():
            assert path.name in RESULT_DIRS, path
            assert {p.suffix for p in path.iterdir()} <= RESULT_DIRS[path.name], path
        else:
            assert path.name in RESULT_FILES, path
    trials = pd.read_csv(run_dir / "trials.csv")
    assert len(trials) == 3 and (trials["peak_rss_mb"] > 50).all()
    assert len(list((run_dir / "curves").iterdir())) == 3
