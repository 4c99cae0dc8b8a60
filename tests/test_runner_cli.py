"""`umup-sweep run` / `status` end to end in a subprocess: one-line errors with exit code 2,
a real tiny sweep, its status, the changed-sweep refusal, and Ctrl-C (exit 130, resumable)."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pandas as pd
import pytest
from cli_helpers import cli, cli_popen

SWEEP = """
name: clitiny
proxy:
  name: clitiny
  base: {{head_dim: 16, seq_len: 32, ffn_ratio: 2.0}}
  widths: [32]
  depths: [1]
strategy: grid
hyperparameters:
  lr: {{values: {lrs}}}
train: {{steps: {steps}, batch_size: 4, eval_batches: 1, final_window: 3}}
execution: {{executor: serial, max_concurrent: 1, max_failures: 0}}
"""


def _write(tmp_path: Path, lrs="[0.5, 2.0]", steps=5) -> Path:
    path = tmp_path / "clitiny.yaml"
    path.write_text(SWEEP.format(lrs=lrs, steps=steps))
    return path


@pytest.mark.parametrize(
    "text, expected",
    [
        ("name: x\nhyperparameters: [oops\n", "clitiny.yaml"),  # YAML syntax error
        (SWEEP.format(lrs="[1.0]", steps=5).replace("serial", "slurm"), "execution.executor"),
    ],
)
def test_bad_sweep_file_is_one_line_exit_2(tmp_path, text, expected):
    path = tmp_path / "clitiny.yaml"
    path.write_text(text)
    out = cli("run", str(path), "--run-dir", str(tmp_path / "runs"))
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0]
    assert "Traceback" not in out.stderr and not (tmp_path / "runs").exists()


def test_bad_flags_are_one_line_exit_2(tmp_path):
    out = cli("run", str(_write(tmp_path)), "--executor", "slurm")
    assert out.returncode == 2 and out.stderr.strip().splitlines() == [
        "error: --executor: expected ray or serial, got 'slurm'"
    ]
    out = cli("run", str(_write(tmp_path)), "--executor", "serial", "--address", "auto")
    assert out.returncode == 2 and out.stderr.strip().splitlines() == [
        "error: --address: names a Ray cluster, which --executor serial would not use"
    ]
    out = cli("status", str(tmp_path))
    assert out.returncode == 2
    assert (
        out.stderr.strip() == f"error: {tmp_path} is not a run directory (no sweep.yaml); "
        "give the folder `umup-sweep run` wrote, e.g. runs/<sweep name>"
    )


def test_run_status_and_changed_sweep_refused(tmp_path):
    runs = tmp_path / "runs"
    out = cli("run", str(_write(tmp_path)), "--run-dir", str(runs), "--no-progress")
    assert out.returncode == 0, out.stderr
    assert "trials: 2 stored — 2 ok, 0 diverged, 0 failed" in out.stdout
    assert str(runs / "clitiny" / "trials.csv") in out.stdout
    trials = pd.read_csv(runs / "clitiny" / "trials.csv")
    assert sorted(trials["lr"]) == [0.5, 2.0] and set(trials["status"]) == {"ok"}
    best = trials.loc[trials["val_loss"].idxmin()]
    assert f"best val_loss {best['val_loss']:.4f}" in out.stdout

    status = cli("status", str(runs / "clitiny"))
    assert status.returncode == 0, status.stderr
    assert "not running" in status.stdout
    assert "2 stored — 2 ok, 0 diverged, 0 failed" in status.stdout
    assert "remaining: about 0 of 2 trials" in status.stdout

    changed = _write(tmp_path, steps=6)
    out = cli("run", str(changed), "--run-dir", str(runs), "--no-progress")
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        f"error: {runs / 'clitiny'} holds a different sweep (changed keys: train.steps); "
        "use --force to start over (the old run is moved aside) or give a new name"
    ]


def test_ctrl_c_exits_130_and_rerun_resumes(tmp_path):
    runs = tmp_path / "runs"
    sweep = _write(tmp_path, lrs="[0.25, 0.5, 1.0, 2.0]", steps=40)
    proc = cli_popen("run", sweep, "--run-dir", runs, "--no-progress")
    csv = runs / "clitiny" / "trials.csv"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and proc.poll() is None:
        if csv.exists() and len(csv.read_text().splitlines()) >= 2:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert f"resume with: umup-sweep run {sweep}" in err and "Traceback" not in err
    done = len(pd.read_csv(csv))
    assert 1 <= done < 4
    out = cli("run", str(sweep), "--run-dir", str(runs), "--no-progress")
    assert out.returncode == 0, out.stderr
    assert f"({4 - done} trials run now, {done} already done" in out.stdout
