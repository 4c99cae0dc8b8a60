"""The sweep driver: completes, resumes without recomputing, retries/records failures,
records divergence, survives Ctrl-C and kill -9; Ray and serial agree on real trials."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from sweep_fakes import FakeTrial, expected_loss, tiny_sweep

from umup_sweep.commands.summary import summary_lines
from umup_sweep.runner import SweepInterrupted, run_sweep
from umup_sweep.search import GridStrategy
from umup_sweep.store import RunStore

TESTS_DIR = Path(__file__).resolve().parent


def _run(sweep, fake, **kw):
    kw.setdefault("analyze", False)
    return run_sweep(sweep, strategy=GridStrategy(sweep), trial_fn=fake, **kw)


def _keys_run(log: Path) -> list[str]:
    return [line.split()[0] for line in log.read_text().splitlines()] if log.exists() else []


def test_sweep_completes_with_best_and_outputs_then_rerun_skips_everything(tmp_path):
    sweep = tiny_sweep(tmp_path, lrs=(0.25, 0.5, 1.0, 2.0), widths=(32, 64))
    fake = FakeTrial(tmp_path / "log")
    summary = _run(sweep, fake)
    assert summary.counts == {"total": 8, "ok": 8, "diverged": 0, "pruned": 0, "failed": 0}
    assert summary.n_new == 8 and summary.n_resumed == 0
    # oracle: loss minimal at log2 lr = -1, lower for the wider proxy
    assert summary.best["lr"] == 0.5 and summary.best["width"] == 64
    assert summary.best["val_loss"] == pytest.approx(2 + 8 / 64)
    text = "\n".join(summary_lines(summary))
    assert "8 ok, 0 diverged, 0 failed" in text and "lr=2^-1" in text
    assert str(tmp_path / "tiny" / "trials.csv") in text

    trials = pd.read_csv(tmp_path / "tiny" / "trials.csv")
    assert len(trials) == 8 and set(trials["status"]) == {"ok"}
    assert len(list((tmp_path / "tiny" / "curves").glob("*.csv"))) == 8

    again = _run(sweep, fake)
    assert again.n_new == 0 and again.n_resumed == 8
    assert len(_keys_run(tmp_path / "log")) == 8  # nothing ran twice


@pytest.mark.parametrize("kind", ["serial", pytest.param("ray", marks=pytest.mark.ray)])
def test_failures_retried_then_recorded_and_divergence_final(kind, tmp_path, request):
    if kind == "ray":
        request.getfixturevalue("ray_session")
    sweep = tiny_sweep(tmp_path, lrs=(0.5, 1.0, 2.0, 64.0), executor=kind, max_failures=2)
    fake = FakeTrial(tmp_path / "log", fail_lrs=(2.0,), diverge_at=64.0)
    summary = _run(sweep, fake)
    assert summary.counts == {"total": 4, "ok": 2, "diverged": 1, "pruned": 0, "failed": 1}
    runs = pd.Series(_keys_run(tmp_path / "log")).value_counts()
    df = RunStore.load(tmp_path / "tiny").results().set_index("lr")
    assert runs[df.loc[2.0, "trial_key"]] == 3  # 1 + max_failures attempts
    assert runs[df.loc[64.0, "trial_key"]] == 1  # divergence never retried
    assert df.loc[2.0, "error"] == "ValueError: boom at lr=2.0 (after 3 attempts)"
    assert df.loc[64.0, "status"] == "diverged"
    assert df.loc[1.0, "val_loss"] == pytest.approx(2 + 0.1 + 8 / 32)

    # A rerun tries the failed trial again (once more: 3 attempts), nothing else.
    fake.fail_lrs = ()
    rerun = _run(sweep, fake)
    assert rerun.n_new == 1 and rerun.counts["failed"] == 0 and rerun.counts["ok"] == 3
    assert len(_keys_run(tmp_path / "log")) == 3 + 1 + 1 + 1 + 1


def test_ctrl_c_keeps_finished_trials_and_resume_completes(tmp_path):
    sweep = tiny_sweep(tmp_path, lrs=(0.25, 0.5, 1.0, 2.0))
    fake = FakeTrial(tmp_path / "log")

    def interrupt_third(spec):
        if len(_keys_run(tmp_path / "log")) == 2:
            raise KeyboardInterrupt
        return fake(spec)

    with pytest.raises(SweepInterrupted) as stop:
        _run(sweep, interrupt_third)
    assert stop.value.summary.interrupted and stop.value.summary.counts["ok"] == 2
    assert len(pd.read_csv(tmp_path / "tiny" / "trials.csv")) == 2
    summary = _run(sweep, fake)  # the lock was released
    assert summary.n_new == 2 and summary.counts["ok"] == 4
    assert sorted(pd.Series(_keys_run(tmp_path / "log")).value_counts()) == [1, 1, 1, 1]


DRIVER = """
import sys
from pathlib import Path
sys.path.insert(0, {tests!r})
from sweep_fakes import FakeTrial, tiny_sweep
from umup_sweep.runner import run_sweep
from umup_sweep.search import GridStrategy
root = Path({root!r})
sweep = tiny_sweep(root, lrs=[2.0 ** k for k in range(-4, 4)])
fake = FakeTrial(root / "log", sleep=0.4)
s = run_sweep(sweep, strategy=GridStrategy(sweep), trial_fn=fake, analyze=False)
print("done", s.n_new, s.n_resumed)
"""


def test_kill_minus_nine_loses_at_most_the_trial_in_flight(tmp_path):
    script = tmp_path / "driver.py"
    script.write_text(DRIVER.format(tests=str(TESTS_DIR), root=str(tmp_path)))
    env = {**os.environ, "PYTHONPATH": str(TESTS_DIR.parent)}
    proc = subprocess.Popen([sys.executable, str(script)], env=env)
    csv = tmp_path / "tiny" / "trials.csv"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if csv.exists() and len(csv.read_text().splitlines()) - 1 >= 3:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    committed = set(pd.read_csv(csv)["trial_key"])
    assert 3 <= len(committed) < 8

    out = subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    n_new, n_resumed = map(int, out.stdout.split()[1:])
    assert n_resumed == len(committed) and n_new == 8 - len(committed)
    counts = pd.Series(_keys_run(tmp_path / "log")).value_counts()
    assert len(counts) == 8
    assert all(counts[k] == 1 for k in committed)  # no finished trial ran again
    assert (counts > 1).sum() <= 1  # only the one in flight at the kill (serial executor)
    final = RunStore.load(tmp_path / "tiny").results()
    assert len(final) == 8 and set(final["status"]) == {"ok"}


@pytest.mark.ray
def test_real_trials_same_loss_through_ray_and_serial(ray_session, tmp_path):
    losses = {}
    for kind in ("serial", "ray"):
        sweep = tiny_sweep(tmp_path / kind, lrs=(0.5, 2.0, 2.0**12), executor=kind)
        summary = run_sweep(sweep, strategy=GridStrategy(sweep), analyze=False)
        assert summary.counts["total"] == 3
        df = RunStore.load(tmp_path / kind / "tiny").results()
        losses[kind] = df.set_index("lr").sort_index()[["status", "val_loss", "final_train_loss"]]
        nodes = set(df["node_id"])
        assert nodes == ({"local"} if kind == "serial" else {ray_session_node_id()})
    pd.testing.assert_frame_equal(losses["serial"], losses["ray"])
    ok = losses["serial"].loc[[0.5, 2.0]]
    assert (ok["status"] == "ok").all() and ok["val_loss"].between(1.0, 6.0).all()
    # a learning rate of 2^12 diverges, and is recorded as such (not retried, not failed)
    assert losses["serial"].loc[2.0**12, "status"] == "diverged"


def ray_session_node_id() -> str:
    import ray

    return ray.get_runtime_context().get_node_id()


def test_best_ignores_diverged_and_nan(tmp_path):
    sweep = tiny_sweep(tmp_path, lrs=(64.0, 128.0))
    summary = _run(sweep, FakeTrial(tmp_path / "log", diverge_at=64.0))
    assert summary.best is None and "best: none" in "\n".join(summary_lines(summary))
    assert summary.counts["diverged"] == 2
    assert math.isinf(max(t.value for t in _study(tmp_path).trials))


def _study(tmp_path):
    import optuna

    return optuna.load_study(
        study_name="tiny", storage=f"sqlite:///{tmp_path / 'tiny' / 'study.db'}"
    )


def test_expected_loss_oracle_matches_fake(tmp_path):
    sweep = tiny_sweep(tmp_path, lrs=(1.0,))
    _run(sweep, FakeTrial(tmp_path / "log"))
    (spec_key,) = RunStore.load(tmp_path / "tiny").results()["trial_key"]
    spec = RunStore.load(tmp_path / "tiny").spec(spec_key)
    assert RunStore.load(tmp_path / "tiny").results()["val_loss"][0] == expected_loss(spec)
