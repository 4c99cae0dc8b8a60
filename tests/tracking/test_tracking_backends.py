"""A tiny real sweep logged to W&B (offline), MLflow (local store) and TensorBoard, each
read back with each library's reader: one run per trial whose config, curve and final
numbers equal the store's, one summary run with the verdicts and figures, and a resumed
sweep that logs nothing twice."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pandas as pd
import pytest
from ci_strict import require_module
from sweep_fakes import tiny_sweep
from tracking_readers import (
    mlflow_runs,
    tensorboard_accumulator,
    tensorboard_scalars,
    wandb_runs,
)

from umup_sweep.config._tracking import sweep_tracking
from umup_sweep.runner import SweepNotice, run_sweep
from umup_sweep.store import RunStore
from umup_sweep.tracking import LEDGER_FILE

pytestmark = pytest.mark.slow

INSTALL = "pip install -e '.[dev]' (or '.[tracking]')"
NAME = "tracked"
BACKENDS = ["wandb", "mlflow", "tensorboard"]
LRS = (0.25, 1.0, 4.0)


@dataclasses.dataclass
class Tracked:
    run_dir: Path
    rows: pd.DataFrame  # the store's trials
    curves: dict[str, pd.DataFrame]  # the store's curves by trial key
    transfer: dict  # the analysis (transfer.json)
    notices: list[str]
    sweep: object

    @property
    def tracking(self) -> Path:
        return self.run_dir / "tracking"


def _run(sweep, notices: list[str]):
    def report(event):
        if isinstance(event, SweepNotice):
            notices.append(event.text)

    return run_sweep(sweep, on_progress=report)


_RUNS: dict[str, Tracked] = {}


def _tracked(tmp_path_factory, backend: str) -> Tracked:
    """6 real trials (3 lrs × 2 widths, 6 steps, val every 2) logged to `backend` (one run
    per backend, shared by its tests)."""
    if backend in _RUNS:
        return _RUNS[backend]
    require_module(backend, INSTALL)
    root = tmp_path_factory.mktemp(backend)
    sweep = tiny_sweep(root / "runs", name=NAME, lrs=LRS, widths=(32, 64), steps=6)
    sweep = dataclasses.replace(
        sweep,
        train=dataclasses.replace(sweep.train, eval_every=2),
        tracking=sweep_tracking({"backend": backend}, "<test>"),
    )
    notices: list[str] = []
    summary = _run(sweep, notices)
    assert summary.counts["ok"] == 6 and summary.analysis_error is None
    assert notices == []  # nothing failed
    store = RunStore.load(summary.run_dir)
    rows = store.results()
    curves = {k: store.curve(k) for k in rows["trial_key"]}
    transfer = json.loads((summary.run_dir / "transfer.json").read_text())
    assert (summary.run_dir / "plots" / "lr.png").is_file() and transfer["results"]["lr"]
    _RUNS[backend] = Tracked(summary.run_dir, rows, curves, transfer, notices, sweep)
    return _RUNS[backend]


@pytest.fixture
def wandb_run(tmp_path_factory) -> Tracked:
    return _tracked(tmp_path_factory, "wandb")


@pytest.fixture
def mlflow_run(tmp_path_factory) -> Tracked:
    return _tracked(tmp_path_factory, "mlflow")


@pytest.fixture
def tensorboard_run(tmp_path_factory) -> Tracked:
    return _tracked(tmp_path_factory, "tensorboard")


def _row(t: Tracked, key: str) -> pd.Series:
    return t.rows.set_index("trial_key").loc[key]


def _curve(t: Tracked, key: str, column: str) -> list[tuple[int, float]]:
    frame = t.curves[key]
    frame = frame[frame[column].notna()]
    return [(int(s), float(v)) for s, v in zip(frame["step"], frame[column], strict=True)]


def test_wandb_offline_runs_hold_the_stored_numbers(wandb_run):
    tracked = wandb_run
    runs = wandb_runs(tracked.tracking)
    trials = [r for r in runs if r.job_type == "trial"]
    assert sorted(r.config["trial_key"] for r in trials) == sorted(tracked.rows["trial_key"])
    for run in trials:
        key = run.config["trial_key"]
        row = _row(tracked, key)
        assert run.group == NAME and run.project == NAME
        assert run.name == f"{row['width']}x1 lr={row['lr']:.4g} seed=0"
        assert (run.config["lr"], run.config["width"], run.config["depth"]) == (
            row["lr"],
            row["width"],
            1,
        )
        assert run.config["steps"] == 6 and run.config["parametrization"] == "umup"
        assert run.config["precision"] == "fp32" and run.config["batch_size"] == 4
        assert run.metric("train_loss") == _curve(tracked, key, "train_loss")
        assert run.metric("val_loss") == _curve(tracked, key, "val_loss")
        assert len(run.metric("val_loss")) >= 3  # every 2 steps and at the end
        assert run.summary["final_val_loss"] == row["val_loss"]
        assert run.summary["final_train_loss"] == row["final_train_loss"]
        assert run.summary["tokens_per_s"] == row["tokens_per_s"]
        assert run.summary["wall_s"] == row["wall_s"]
        assert run.summary["diverged"] == 0.0 and run.summary["status"] == "ok"
    (summary,) = [r for r in runs if r.job_type == "summary"]
    lr = tracked.transfer["results"]["lr"]["umup"]
    assert summary.group == NAME and summary.name == f"{NAME} summary"
    assert summary.summary["verdict/lr/umup"] == lr["verdict"]
    assert summary.summary["drift/lr/umup/width"] == lr["drift"]["width"]["slope"]
    assert summary.summary["se/lr/umup/width"] == lr["drift"]["width"]["se"]
    assert summary.summary["trials/ok"] == 6
    assert summary.summary["figures/lr/_type"] == "image-file"  # wandb.Image, in media/
    assert summary.summary["transfer/_type"] == "table-file"  # the verdicts as a table
    assert {"transfer.json", "report.md"} <= set(summary.files)
    (folder,) = [
        d
        for d in (tracked.tracking / "wandb").glob("offline-run-*")
        if (d / "files" / "transfer.json").exists()
    ]
    assert (folder / "files" / "report.md").read_text() == (
        tracked.run_dir / "report.md"
    ).read_text()


def test_mlflow_runs_hold_the_stored_numbers(mlflow_run):
    tracked = mlflow_run
    uri = f"sqlite:///{tracked.tracking / 'mlflow.db'}"
    client, runs = mlflow_runs(uri, NAME)
    trials = [r for r in runs if r.data.tags.get("kind") == "trial"]
    assert sorted(r.data.tags["trial_key"] for r in trials) == sorted(tracked.rows["trial_key"])
    for run in trials:
        key = run.data.tags["trial_key"]
        row = _row(tracked, key)
        params, metrics = run.data.params, run.data.metrics
        assert run.data.tags["sweep"] == NAME and run.info.status == "FINISHED"
        assert run.info.run_name == f"{row['width']}x1 lr={row['lr']:.4g} seed=0"
        assert float(params["lr"]) == row["lr"] and int(params["width"]) == row["width"]
        assert params["parametrization"] == "umup" and params["steps"] == "6"
        for column in ("train_loss", "val_loss"):
            history = client.get_metric_history(run.info.run_id, column)
            got = sorted((m.step, m.value) for m in history)
            assert got == _curve(tracked, key, column)
        assert metrics["final_val_loss"] == row["val_loss"]
        assert metrics["final_train_loss"] == row["final_train_loss"]
        assert metrics["tokens_per_s"] == row["tokens_per_s"] and metrics["diverged"] == 0.0
    (summary,) = [r for r in runs if r.data.tags.get("kind") == "summary"]
    lr = tracked.transfer["results"]["lr"]["umup"]
    assert summary.data.params["verdict/lr/umup"] == lr["verdict"]
    assert summary.data.metrics["drift/lr/umup/width"] == lr["drift"]["width"]["slope"]
    artifacts = {a.path for a in client.list_artifacts(summary.info.run_id)}
    assert {"transfer.json", "report.md", "verdicts.json", "verdicts.md", "figures"} <= artifacts
    figures = [a.path for a in client.list_artifacts(summary.info.run_id, "figures")]
    assert figures == ["figures/lr.png"]
    local = Path(client.download_artifacts(summary.info.run_id, "figures/lr.png"))
    assert local.read_bytes() == (tracked.run_dir / "plots" / "lr.png").read_bytes()


def test_tensorboard_event_files_hold_the_stored_numbers(tensorboard_run):
    tracked = tensorboard_run
    root = tracked.tracking / "tensorboard" / NAME
    folders = {d.name.rsplit("-", 1)[1]: d for d in root.iterdir() if d.name != "summary"}
    assert sorted(folders) == sorted(tracked.rows["trial_key"])
    for key, folder in folders.items():
        row = _row(tracked, key)
        scalars = tensorboard_scalars(folder)
        for column in ("train_loss", "val_loss"):  # event files hold float32
            want = _curve(tracked, key, column)
            assert [s for s, _ in scalars[column]] == [s for s, _ in want]
            assert [v for _, v in scalars[column]] == pytest.approx([v for _, v in want], 1e-6)
        assert scalars["final/val_loss"][0][1] == pytest.approx(row["val_loss"], rel=1e-6)
        assert scalars["final/diverged"][0][1] == 0.0
        assert tensorboard_accumulator(folder).PluginTagToContent("hparams")
    summary = tensorboard_accumulator(root / "summary")
    lr = tracked.transfer["results"]["lr"]["umup"]
    (drift,) = summary.Scalars("drift/lr/umup/width")
    assert drift.value == pytest.approx(lr["drift"]["width"]["slope"], rel=1e-6)
    assert drift.step == 6  # the stored trials
    (image,) = summary.Images("figures/lr")
    assert image.encoded_image_string == (tracked.run_dir / "plots" / "lr.png").read_bytes()


def _count(tracked: Tracked, backend: str) -> int:
    """Runs the backend holds (trials and summaries)."""
    if backend == "wandb":
        return len(wandb_runs(tracked.tracking))
    if backend == "mlflow":
        return len(mlflow_runs(f"sqlite:///{tracked.tracking / 'mlflow.db'}", NAME)[1])
    return len(list((tracked.tracking / "tensorboard").rglob("events.out.tfevents.*")))


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_resumed_sweep_logs_nothing_twice(tmp_path_factory, backend):
    tracked = _tracked(tmp_path_factory, backend)
    assert _count(tracked, backend) == 7  # 6 trials and the summary
    notices: list[str] = []
    summary = _run(tracked.sweep, notices)
    assert summary.n_new == 0 and summary.n_resumed == 6 and notices == []
    assert _count(tracked, backend) == 7
    ledger = json.loads((tracked.tracking / LEDGER_FILE).read_text())
    (entry,) = ledger.values()
    assert sorted(entry["trials"]) == sorted(tracked.rows["trial_key"])


def test_no_nonfinite_value_reaches_a_tracker(wandb_run):
    for run in wandb_runs(wandb_run.tracking):
        for row in run.history:
            assert all(math.isfinite(v) for v in row.values() if isinstance(v, float))
