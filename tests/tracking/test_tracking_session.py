"""Tracking around the store: turned on for a finished run (stored trials logged once, none
recomputed, the sweep not refused), a tracker that fails (one line, the sweep goes on, a
rerun logs what it missed), a missing package (one line, exit 2, before any trial) and
`umup-sweep run --track` end to end."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest
from ci_strict import require_module
from cli_helpers import cli, cli_env
from sweep_fakes import FakeTrial, tiny_sweep
from tracking_readers import tensorboard_scalars

from umup_sweep.config._tracking import sweep_tracking
from umup_sweep.runner import SweepNotice, run_sweep
from umup_sweep.store import RunStore

pytestmark = pytest.mark.slow

INSTALL = "pip install -e '.[dev]' (or '.[tracking]')"
NAME = "late"


def _run(sweep, fake: FakeTrial) -> tuple[object, list[str]]:
    notices: list[str] = []

    def report(event):
        if isinstance(event, SweepNotice):
            notices.append(event.text)

    return run_sweep(sweep, trial_fn=fake, on_progress=report), notices


def _tracked(sweep, **tracking):
    return dataclasses.replace(sweep, tracking=sweep_tracking(tracking, "<test>"))


def _folders(root: Path) -> dict[str, Path]:
    """TensorBoard trial folders by trial key."""
    base = root / "tensorboard" / NAME
    return {d.name.rsplit("-", 1)[1]: d for d in base.iterdir() if d.name != "summary"}


def test_tracking_turned_on_later_logs_the_stored_trials_once(tmp_path):
    require_module("tensorboard", INSTALL)
    fake = FakeTrial(tmp_path / "log")
    sweep = tiny_sweep(tmp_path / "runs", name=NAME)
    first, notices = _run(sweep, fake)
    assert first.n_new == 4 and notices == []
    attempts = fake.log.read_text()

    summary, notices = _run(_tracked(sweep, backend="tensorboard"), fake)
    assert summary.n_new == 0 and fake.log.read_text() == attempts  # nothing recomputed
    assert notices == ["tracking: logging 4 stored trial(s) to tensorboard"]
    store = RunStore.load(summary.run_dir)
    folders = _folders(summary.run_dir / "tracking")
    assert sorted(folders) == sorted(store.results()["trial_key"])
    for key, folder in folders.items():
        curve = store.curve(key)
        scalars = tensorboard_scalars(folder)
        assert [s for s, _ in scalars["train_loss"]] == curve["step"].tolist()
        assert [v for _, v in scalars["train_loss"]] == pytest.approx(
            curve["train_loss"].tolist(), rel=1e-6
        )

    again, notices = _run(_tracked(sweep, backend="tensorboard"), fake)
    assert notices == [] and again.n_new == 0
    events = list((summary.run_dir / "tracking").rglob("events.out.tfevents.*"))
    assert len(events) == len(folders) + (summary.analysis_error is None)


def test_a_failing_tracker_says_so_once_and_the_sweep_goes_on(tmp_path):
    require_module("tensorboard", INSTALL)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    fake = FakeTrial(tmp_path / "log")
    sweep = tiny_sweep(tmp_path / "runs", name=NAME)
    summary, notices = _run(_tracked(sweep, backend="tensorboard", dir=str(blocker / "tb")), fake)
    assert summary.counts["ok"] == 4 and summary.n_new == 4  # every trial stored
    assert len(notices) == 1 and "\n" not in notices[0]
    assert notices[0].startswith("warning: tracking to tensorboard failed on trial ")
    assert "the trials are stored" in notices[0] and "rerun the sweep" in notices[0]

    good = tmp_path / "tb-ok"
    summary, notices = _run(_tracked(sweep, backend="tensorboard", dir=str(good)), fake)
    assert notices == ["tracking: logging 4 stored trial(s) to tensorboard"]
    assert summary.n_new == 0 and len(_folders(good)) == 4


# Runs `umup-sweep` with some packages made impossible to import, as if not installed.
BLOCKED_CLI = """
import sys

class _NotInstalled:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

BLOCKED = set(sys.argv.pop(1).split(","))
sys.meta_path.insert(0, _NotInstalled())
import umup_sweep.tracking, umup_sweep.runner  # the package imports without any of them
from umup_sweep.cli import main
main()
"""

SWEEP = """
name: clitrack
proxy:
  name: clitrack
  base: {head_dim: 16, seq_len: 32, ffn_ratio: 2.0}
  widths: [32]
  depths: [1]
hyperparameters:
  lr: {values: [0.5, 2.0]}
train: {steps: 3, batch_size: 4, eval_batches: 1, final_window: 2}
execution: {executor: serial, max_concurrent: 1, max_failures: 0}
"""


@pytest.mark.parametrize("backend", ["wandb", "mlflow", "tensorboard"])
def test_a_missing_package_is_one_line_before_any_trial(tmp_path, backend):
    path = tmp_path / "clitrack.yaml"
    path.write_text(SWEEP)
    runs = tmp_path / "runs"
    argv = [sys.executable, "-c", BLOCKED_CLI, "wandb,mlflow,tensorboard"]
    argv += ["run", str(path), "--track", backend, "--run-dir", str(runs), "--no-progress"]
    out = subprocess.run(argv, capture_output=True, text=True, env=cli_env(), timeout=120)
    assert out.returncode == 2, out.stderr
    assert out.stderr.splitlines() == [
        f"error: tracking backend '{backend}' needs the package {backend} "
        "(pip install 'umup-sweep[tracking]')"
    ]
    assert not runs.exists()  # no run directory, no trial


def test_track_flag_runs_a_real_sweep_and_rejects_unknown_trackers(tmp_path):
    require_module("tensorboard", INSTALL)
    path = tmp_path / "clitrack.yaml"
    path.write_text(SWEEP)
    runs = tmp_path / "runs"
    out = cli("run", path, "--track", "neptune", "--run-dir", runs)
    assert out.returncode == 2 and out.stderr.splitlines() == [
        "error: --track: expected wandb, mlflow, tensorboard or none, got 'neptune'"
    ]
    out = cli("run", path, "--track", "tensorboard", "--run-dir", runs, "--no-progress")
    assert out.returncode == 0, out.stderr
    assert out.stderr == "" and f"{runs / 'clitrack' / 'tracking'}" in out.stdout
    tb = runs / "clitrack" / "tracking" / "tensorboard" / "clitrack"
    assert len([d for d in tb.iterdir() if d.name != "summary"]) == 2
    # the sweep without tracking is the same sweep: resumed, nothing rerun or relogged
    out = cli("run", path, "--run-dir", runs, "--no-progress")
    assert out.returncode == 0 and "0 trials run now, 2 already done" in out.stdout
