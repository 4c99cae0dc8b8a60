"""Failures around a run, through the real CLI: a run that fails before its first trial
(unreachable Ray cluster, a port where no Ray answers, missing corpus) leaves no run
directory; damaged run files give one line that says what to do, and lose nothing else."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from cli_helpers import cli
from scaleout_helpers import free_port, wait_for

from umup_sweep.errors import StoreError
from umup_sweep.store import RunStore

SWEEP = """
name: damage
proxy: {{base: {{head_dim: 16, seq_len: 32}}, widths: [32], depths: [1]}}
hyperparameters: {{lr: [0.5, 2.0]}}
train: {{steps: 3, batch_size: 2, eval_batches: 1, final_window: 1}}
data: {{source: {source}}}
execution: {{executor: serial, max_failures: 0}}
"""


def one_error_line(out: subprocess.CompletedProcess) -> str:
    assert out.returncode == 2, out.stderr[-2000:]
    assert "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), out.stderr
    return lines[0]


def _listens(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def _sweep(tmp_path: Path, source: str = "stdlib") -> Path:
    path = tmp_path / "damage.yaml"
    path.write_text(SWEEP.format(source=source))
    return path


@pytest.mark.parametrize(
    "case", ["no-ray-cluster", "address-with-a-serial-sweep", "not-a-ray-server", "missing-corpus"]
)
def test_failure_before_the_first_trial_leaves_no_run_directory(tmp_path, case):
    runs = tmp_path / "runs"
    if case == "not-a-ray-server":  # something else listens there: Ray alone would hang
        port = free_port()
        server = subprocess.Popen(
            [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_for(lambda: _listens(port), 30, "the HTTP server")
            start = time.monotonic()
            out = cli(
                "run",
                str(_sweep(tmp_path)),
                "--run-dir",
                str(runs),
                "--address",
                f"127.0.0.1:{port}",
            )
        finally:
            server.kill()
            server.wait()
        line = one_error_line(out)
        assert line.startswith(f"error: nothing at 127.0.0.1:{port} answers as a Ray cluster")
        assert time.monotonic() - start < 30  # no minutes of Ray retries
    elif case in ("no-ray-cluster", "address-with-a-serial-sweep"):
        address = f"127.0.0.1:{free_port()}"
        start = time.monotonic()
        # the sweep file says `executor: serial`: --address alone must still mean that cluster
        args = ["--address", address] + (["--executor", "ray"] if case == "no-ray-cluster" else [])
        line = one_error_line(cli("run", str(_sweep(tmp_path)), "--run-dir", str(runs), *args))
        assert line.startswith(f"error: no Ray cluster at {address} (Connection refused)")
        assert "ray start --head" in line
        assert time.monotonic() - start < 30  # no minutes of Ray retries
    else:
        missing = tmp_path / "nowhere" / "corpus.txt"
        line = one_error_line(
            cli("run", str(_sweep(tmp_path, str(missing))), "--run-dir", str(runs))
        )
        assert str(missing) in line
    assert not runs.exists()


def test_damaged_run_files_are_one_line_errors_and_the_rerun_repairs_them(tmp_path):
    sweep = _sweep(tmp_path)
    runs = tmp_path / "runs"
    out = cli("run", str(sweep), "--run-dir", str(runs), "--no-progress")
    assert out.returncode == 0, out.stderr
    run_dir = runs / "damage"
    before = pd.read_csv(run_dir / "trials.csv")
    good_yaml = (run_dir / "sweep.yaml").read_text()

    # trials.csv is only an export: truncated (e.g. a full disk), readers still see every
    # trial, because they read the trial database.
    text = (run_dir / "trials.csv").read_text()
    (run_dir / "trials.csv").write_text(text[: len(text) // 2])
    assert RunStore.load(run_dir).results()["status"].tolist() == ["ok", "ok"]

    # sweep.yaml damaged in three ways: one line naming the file and what to do.
    for damage in ("name: [unclosed\n", "- just\n- a list\n", "storage: 3\n"):
        (run_dir / "sweep.yaml").write_text(damage)
        with pytest.raises(StoreError) as err:
            RunStore.load(run_dir)
        assert str(err.value).startswith(f"{run_dir / 'sweep.yaml'} is damaged")
        assert "the trials are intact" in str(err.value) and "\n" not in str(err.value)
    line = one_error_line(cli("status", str(run_dir)))
    assert line.startswith(f"error: {run_dir / 'sweep.yaml'} is damaged")

    # Rerunning the sweep recomputes nothing and rewrites both files.
    out = cli("run", str(sweep), "--run-dir", str(runs), "--no-progress")
    assert out.returncode == 0, out.stderr
    assert "(0 trials run now, 2 already done" in out.stdout
    assert (run_dir / "sweep.yaml").read_text() == good_yaml
    pd.testing.assert_frame_equal(pd.read_csv(run_dir / "trials.csv"), before)
