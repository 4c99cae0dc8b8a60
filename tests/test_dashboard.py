"""`umup-sweep dashboard RUN`: a real run served by optuna-dashboard and opened in a real
headless browser (Debian's chromium), plus its one-line errors.

The browser test saves its screenshot as a test artifact: under `tmp_path`, and copied to
`$PYTEST_ARTIFACTS` if set, else to `test-artifacts/` at the repository root (ignored by git).
Without chromium it skips on a developer's machine and fails in CI (`.ci/services.sh` installs
it).
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from ci_strict import missing, require_module
from cli_helpers import REPO, cli, cli_command, cli_env
from sweep_fakes import FakeTrial, tiny_sweep

from umup_sweep.runner import run_sweep
from umup_sweep.search import GridStrategy
from umup_sweep.store import RunStore

URL_LINE = re.compile(r"^optuna-dashboard for .* \(study '(?P<name>[^']+)'\): (?P<url>http://\S+)$")


def _artifact_dir() -> Path:
    return Path(os.environ.get("PYTEST_ARTIFACTS") or REPO / "test-artifacts")


def _chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    missing("chromium is not installed: apt-get install chromium (CI: .ci/services.sh)")


def _browse(chromium: str, url: str, profile: Path, screenshot: Path | None = None) -> str:
    """The page's DOM after its scripts ran (and a screenshot of it, if asked)."""
    args = [
        chromium,
        "--headless=new",
        "--no-sandbox",  # root in containers; the page is our own, on loopback
        "--disable-gpu",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
        "--window-size=1400,2600",  # tall enough for the intermediate-values plot
        "--virtual-time-budget=10000",
        "--dump-dom",
    ]
    if screenshot is not None:
        args.append(f"--screenshot={screenshot}")
    out = subprocess.run([*args, url], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    if screenshot is not None:
        assert screenshot.stat().st_size > 10_000, out.stderr[-2000:]
    return out.stdout


def _serve(run_dir: Path) -> tuple[subprocess.Popen[str], str, str]:
    """`umup-sweep dashboard RUN --port 0`, once it answers: (process, study URL, name).

    Started with SIGINT ignored, as a parent that ignores it (a test runner with Ray in it,
    `nohup`) hands it on: Ctrl-C must still stop the server (`_stop`)."""
    proc = subprocess.Popen(
        cli_command("dashboard", run_dir, "--port", "0"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(None),
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    assert proc.stdout is not None
    first = proc.stdout.readline().strip()
    match = URL_LINE.match(first)
    if match is None:
        proc.kill()
        pytest.fail(f"unexpected first line {first!r}; stderr: {proc.communicate()[1]}")
    url = match["url"]
    assert url.startswith("http://127.0.0.1:")  # loopback by default
    deadline = time.monotonic() + 90  # a loaded 2-core machine
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                assert response.status == 200
            return proc, url, match["name"]
        except OSError:
            if time.monotonic() > deadline:
                proc.kill()
                raise
            time.sleep(0.2)


def _stop(proc: subprocess.Popen[str]) -> tuple[str, str]:
    """Ctrl-C (SIGINT) the server and collect its output; killed if it does not stop."""
    proc.send_signal(signal.SIGINT)
    try:
        return proc.communicate(timeout=90)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise


def test_dashboard_shows_the_study_trials_and_learning_curves_in_chromium(tmp_path):
    require_module("optuna_dashboard", "pip install -e '.[dev]' (or '.[dashboard]')")
    chromium = _chromium()
    sweep = tiny_sweep(tmp_path / "runs", name="dash_tiny", lrs=(0.0625, 0.5, 4.0), steps=8)
    sweep = dataclasses.replace(sweep, train=dataclasses.replace(sweep.train, eval_every=4))
    run_sweep(sweep, strategy=GridStrategy(sweep), analyze=False)  # real (tiny) trials

    proc, url, name = _serve(sweep.run_dir)
    try:
        shot = tmp_path / "dashboard.png"
        study_page = _browse(chromium, url, tmp_path / "profile", screenshot=shot)
        trials_page = _browse(chromium, f"{url}/trials", tmp_path / "profile")
    finally:
        stdout, stderr = _stop(proc)
    artifacts = _artifact_dir()
    artifacts.mkdir(parents=True, exist_ok=True)
    shutil.copy(shot, artifacts / "dashboard_study.png")

    assert proc.returncode == 0 and "Traceback" not in stderr, stderr
    assert name == "dash_tiny" and f"{name} (id=" in study_page  # the study, by name
    # the learning curves: the intermediate-values plot, one line per trial
    curves = study_page.split('id="graph-intermediate-values"', 1)
    assert len(curves) == 2, "no intermediate-values plot on the study page"
    assert curves[1].split("</svg>", 1)[0].count('class="trace scatter') >= 3
    assert "Hyperparameter Importance" in study_page
    for number in range(3):  # every trial has its row in the trial list
        assert f"Trial {number}" in trials_page
    assert len(RunStore.load(sweep.run_dir).results()) == 3


def test_dashboard_without_optuna_dashboard_says_how_to_install_in_one_line(tmp_path):
    sweep = tiny_sweep(tmp_path)
    fake = FakeTrial(tmp_path / "log")
    run_sweep(sweep, strategy=GridStrategy(sweep), trial_fn=fake, analyze=False)
    hide = "import sys; sys.modules['optuna_dashboard'] = None; "
    out = subprocess.run(
        [sys.executable, "-c", hide + "from umup_sweep.cli import main; main()"]
        + ["dashboard", str(sweep.run_dir)],
        capture_output=True,
        text=True,
        env=cli_env(),
        timeout=120,
    )
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr == (
        "error: optuna-dashboard is not installed: pip install 'umup-sweep[dashboard]'\n"
    )


def test_dashboard_of_a_folder_that_is_no_run_is_one_line(tmp_path):
    require_module("optuna_dashboard", "pip install -e '.[dev]' (or '.[dashboard]')")
    out = cli("dashboard", tmp_path)
    assert out.returncode == 2 and len(out.stderr.splitlines()) == 1
    assert out.stderr.startswith(f"error: {tmp_path} is not a run directory")
    help_text = cli("dashboard", "--help").stdout
    assert "127.0.0.1" in help_text and "umup-sweep dashboard runs/lr_width" in help_text


def test_dashboard_of_a_run_with_single_point_params_says_the_next_run_rewrites_them(tmp_path):
    """A trial stored as earlier versions did (a single-point lr) is named on stderr; the
    server still starts and stops cleanly on Ctrl-C (SIGINT)."""
    require_module("optuna_dashboard", "pip install -e '.[dev]' (or '.[dashboard]')")
    import optuna
    from optuna.distributions import FloatDistribution

    sweep = tiny_sweep(tmp_path, lrs=(0.5, 1.0))
    fake = FakeTrial(tmp_path / "log")
    run_sweep(sweep, strategy=GridStrategy(sweep), trial_fn=fake, analyze=False)
    with RunStore.open(sweep) as store:
        storage, study_id = store.optuna_study()
        spec = GridStrategy(sweep).propose(store.results().iloc[:0], [], 1)[0]
        result = fake(spec)
        attrs = {"trial_key": spec.trial_key, "status": "ok", "spec": spec.to_dict()}
        attrs["result"] = {k: v for k, v in result.to_dict().items() if k != "curve"}
        old = optuna.trial.create_trial(
            value=result.val_loss,
            params={"lr": 0.5},
            distributions={"lr": FloatDistribution(0.5, 0.5, log=True)},
            user_attrs=attrs,
        )
        storage.create_new_trial(study_id, template_trial=old)
    proc, url, _ = _serve(sweep.run_dir)
    stdout, stderr = _stop(proc)
    assert proc.returncode == 0 and stdout == "Ctrl-C to stop\n"
    assert stderr.startswith("note: 1 trials hold params without the sweep's current ranges")
    assert "next `umup-sweep run`" in stderr and len(stderr.splitlines()) == 1
