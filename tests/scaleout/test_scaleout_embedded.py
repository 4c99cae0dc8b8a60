"""The embedded Ray of `umup-sweep run` (no --address): every Ray server it starts listens on
loopback only, no dashboard port is opened, its GCS refuses a client without the run's
token, its temp folder is owner-only, no token file is written, and when the run ends its
processes and its temp folder are gone and the run directory holds results only (no
per-trial checkpoints)."""

from __future__ import annotations

import ipaddress
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import psutil
import pytest
from cli_helpers import cli_popen
from scaleout_helpers import REPO

pytestmark = [pytest.mark.ray, pytest.mark.slow]

# What a finished run directory may hold, nothing else.
RESULT_FILES = {".lock", "sweep.yaml", "study.db", "trials.csv", "transfer.json", "report.md"}
RESULT_DIRS = {"curves": {".csv"}, "plots": {".png", ".svg"}}


def _listening(pids: set[int]) -> set[tuple[str, int]]:
    out = set()
    for conn in psutil.net_connections("inet"):
        if conn.status == psutil.CONN_LISTEN and conn.pid in pids:
            out.add((conn.laddr.ip, conn.laddr.port))
    return out


# A client with no token asks the GCS for its cluster id.
PROBE = """
import sys
from ray._raylet import GcsClient
from ray.exceptions import AuthenticationError
try:
    GcsClient(address=sys.argv[1])
except AuthenticationError:
    print("refused")
else:
    print("accepted")
"""


def _gcs_address(procs) -> str | None:
    """The GCS's port (Ray picks a free one for the embedded cluster)."""
    for proc in procs:
        try:
            if proc.name() != "gcs_server":
                continue
            ports = [c.laddr.port for c in proc.net_connections() if c.status == "LISTEN"]
        except psutil.Error:
            continue
        if ports:
            return f"127.0.0.1:{ports[0]}"
    return None


def _probe_without_token(address: str, home: Path) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    out = subprocess.run(
        [sys.executable, "-c", PROBE, address],
        env={**env, "HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    return out.stdout.strip()


def _is_loopback(ip: str) -> bool:
    addr = ipaddress.ip_address(ip)
    mapped = getattr(addr, "ipv4_mapped", None)
    return (mapped or addr).is_loopback


def _modes(paths) -> list[int]:
    """Permission bits of each path that still exists: the driver removes its Ray temp
    directory at the end of the run, possibly between the glob and the stat."""
    out = []
    for path in paths:
        try:
            out.append(path.stat().st_mode & 0o777)
        except FileNotFoundError:
            continue
    return out


def test_embedded_ray_is_loopback_only_and_leaves_nothing_behind(tmp_path):
    home = tmp_path / "home"  # where Ray would put a generated token: ~/.ray/auth_token
    home.mkdir()
    no_ray_settings: dict[str, str | None] = {k: None for k in os.environ if k.startswith("RAY_")}
    cli = cli_popen(
        "run",
        REPO / "sweeps" / "smoke.yaml",
        "--executor",
        "ray",
        "--run-dir",
        tmp_path / "runs",
        "--no-progress",
        env={**no_ray_settings, "HOME": str(home)},
    )
    seen_procs: dict[int, psutil.Process] = {}
    listening: set[tuple[str, int]] = set()
    probe, temp_modes = "", []
    try:
        driver = psutil.Process(cli.pid)
        while cli.poll() is None:  # sample the cluster's sockets for the whole run
            try:
                for child in driver.children(recursive=True):
                    seen_procs.setdefault(child.pid, child)
            except psutil.NoSuchProcess:
                break
            listening |= _listening({cli.pid, *seen_procs})
            gcs = _gcs_address(seen_procs.values())
            if gcs and not probe:
                probe = _probe_without_token(gcs, home)
            temp_modes += _modes(Path("/tmp").glob(f"umup-ray-{cli.pid}-*"))
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
    assert probe == "refused"  # token auth is on: a client without the run's token is refused
    assert temp_modes and temp_modes[-1] == 0o700  # Ray made it 0777; the driver closed it
    assert not (home / ".ray").exists()  # the token lived in the processes' environment only
    assert "token" not in err.lower()  # and Ray printed no auth warning

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
