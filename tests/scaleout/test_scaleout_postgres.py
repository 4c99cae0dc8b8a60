"""A shared trial database on a real PostgreSQL server: a driver killed with SIGKILL is resumed
by a second driver process (from another run directory) without losing or recomputing a
finished trial; a second driver on the same study is refused while the first runs; an
unreachable server is one line, exit 2, password hidden, no run directory."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import optuna
import pandas as pd
from cli_helpers import cli_popen, finish
from scaleout_helpers import REPO, TESTS, free_port, wait_for

N_TRIALS = 8

DRIVER = """
import dataclasses, os, sys, time
from pathlib import Path
sys.path.insert(0, {tests!r})
from sweep_fakes import FakeTrial, tiny_sweep
from umup_sweep.config import StorageSpec
from umup_sweep.runner import run_sweep
from umup_sweep.search import GridStrategy

log, url, run_root, sleep, name, gate = sys.argv[1:7]
sweep = tiny_sweep(Path(run_root), name=name, lrs=[2.0 ** k for k in range(-4, {n} - 4)])
sweep = dataclasses.replace(sweep, storage=StorageSpec(run_dir=Path(run_root), url=url))
fake = FakeTrial(Path(log), sleep=float(sleep))


def trial(spec):
    # With a gate file named: after the first trial, wait until the test creates it.
    deadline = time.monotonic() + 120
    while gate and fake.log.exists() and not os.path.exists(gate) and time.monotonic() < deadline:
        time.sleep(0.05)
    return fake(spec)


s = run_sweep(sweep, strategy=GridStrategy(sweep), trial_fn=trial, analyze=False)
print("done", s.n_new, s.n_resumed, s.counts["total"], s.counts["ok"], flush=True)
"""


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO)}


def _driver(tmp_path: Path, *args: str) -> list[str]:
    script = tmp_path / "driver.py"
    script.write_text(DRIVER.format(tests=str(TESTS), n=N_TRIALS))
    return [sys.executable, str(script), *args]


def _attempts(log: Path) -> Counter:
    return Counter(line.split()[0] for line in log.read_text().splitlines())


def _stored(url: str, name: str) -> list[str]:
    """trial_keys of the finished trials in the shared study (the database is the truth)."""
    study = optuna.load_study(study_name=name, storage=url)
    done = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    return [t.user_attrs["trial_key"] for t in done]


def _csv_rows(path: Path) -> int:
    return len(path.read_text().splitlines()) - 1 if path.exists() else 0


def test_killed_driver_resumed_by_another_driver_from_the_shared_database(postgres_url, tmp_path):
    log = tmp_path / "log"
    first = subprocess.Popen(
        _driver(tmp_path, str(log), postgres_url, str(tmp_path / "a"), "0.4", "pgsweep", ""),
        env=_env(),
    )
    try:
        wait_for(lambda: _csv_rows(tmp_path / "a" / "pgsweep" / "trials.csv") >= 3, 60, "3 trials")
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    committed = _stored(postgres_url, "pgsweep")
    assert 3 <= len(committed) < N_TRIALS

    # A second driver, another process and another run directory, same database.
    out = subprocess.run(
        _driver(tmp_path, str(log), postgres_url, str(tmp_path / "b"), "0", "pgsweep", ""),
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    n_new, n_resumed, total, ok = map(int, out.stdout.split()[1:])
    assert (n_resumed, n_new, total, ok) == (
        len(committed),
        N_TRIALS - len(committed),
        N_TRIALS,
        N_TRIALS,
    )
    stored = _stored(postgres_url, "pgsweep")
    assert len(stored) == N_TRIALS and len(set(stored)) == N_TRIALS  # none lost, none twice
    attempts = _attempts(log)
    assert len(attempts) == N_TRIALS
    assert all(attempts[key] == 1 for key in committed)  # no finished trial ran again
    assert sum(n > 1 for n in attempts.values()) <= 1  # only the one in flight at the kill
    csv = pd.read_csv(tmp_path / "b" / "pgsweep" / "trials.csv")
    assert len(csv) == N_TRIALS and set(csv["status"]) == {"ok"}
    assert set(csv["trial_key"]) == set(stored)


SWEEP_YAML = """
name: pgtwo
proxy: {{base: {{head_dim: 16, seq_len: 32}}, widths: [32], depths: [1]}}
hyperparameters: {{lr: [0.0625, 0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0]}}
train: {{steps: 2, batch_size: 2, eval_batches: 1, final_window: 1}}
execution: {{executor: serial, max_failures: 1}}
storage: {{url: "{url}"}}
"""


def test_second_driver_on_the_same_study_is_refused_and_nothing_is_corrupted(
    postgres_url, tmp_path
):
    log, gate = tmp_path / "log", tmp_path / "gate"
    first = subprocess.Popen(
        _driver(tmp_path, str(log), postgres_url, str(tmp_path / "a"), "0.2", "pgtwo", str(gate)),
        env=_env(),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: _csv_rows(tmp_path / "a" / "pgtwo" / "trials.csv") >= 1, 60, "a trial")
        sweep_file = tmp_path / "pgtwo.yaml"
        sweep_file.write_text(SWEEP_YAML.format(url=postgres_url))
        # Another run directory (say, another machine): refused by the database lock.
        other_proc = cli_popen("run", sweep_file, "--run-dir", tmp_path / "b", "--no-progress")
        # The same run directory: refused by the run directory's lock.
        same_proc = cli_popen("run", sweep_file, "--run-dir", tmp_path / "a", "--no-progress")
        other, same = finish(other_proc), finish(same_proc)
        running = first.poll() is None
        gate.touch()  # let the first driver finish
        stdout, _ = first.communicate(timeout=120)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert running, "the first driver should still have been running"
    assert other.returncode == 2, other.stderr
    lines = other.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in other.stderr
    assert lines[0].startswith("error: study 'pgtwo' in postgresql+psycopg2://umup@127.0.0.1:")
    assert (
        f"in use by another umup-sweep driver (host {os.uname().nodename}, pid {first.pid})"
        in lines[0]
    )
    assert not (tmp_path / "b").exists()  # a refused driver leaves no run directory
    assert same.returncode == 2
    assert same.stderr.strip().splitlines() == [
        f"error: {tmp_path / 'a' / 'pgtwo'} is in use by another umup-sweep driver "
        f"(pid {first.pid}); wait for it to finish or stop it, then rerun"
    ]
    # The first driver finished undisturbed: every trial once, nothing duplicated.
    assert first.returncode == 0
    assert stdout.split()[1:] == [str(N_TRIALS), "0", str(N_TRIALS), str(N_TRIALS)]
    stored = _stored(postgres_url, "pgtwo")
    assert len(stored) == len(set(stored)) == N_TRIALS
    assert set(_attempts(log).values()) == {1}


def test_unreachable_database_is_one_line_exit_2_with_password_hidden(tmp_path):
    url = f"postgresql+psycopg2://umup:s3cret@127.0.0.1:{free_port()}/nowhere"
    sweep_file = tmp_path / "pgtwo.yaml"
    sweep_file.write_text(SWEEP_YAML.format(url=url))
    start = time.monotonic()
    out = finish(cli_popen("run", sweep_file, "--run-dir", tmp_path / "runs", "--no-progress"))
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in out.stderr
    assert lines[0].startswith(
        f"error: cannot use the trial database postgresql+psycopg2://umup:***@{url.split('@')[1]}"
    )
    assert "check that the server is running" in lines[0] and "s3cret" not in out.stderr
    assert not (tmp_path / "runs").exists()
    assert time.monotonic() - start < 60
