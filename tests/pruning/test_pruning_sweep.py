"""Pruning through the real driver, store and analysis, with real tiny proxies: hopeless
trials stop early and are stored "pruned" with their partial curves (PRUNED in the Optuna
study), a rerun keeps them, `rerun_pruned` runs exactly them in full, the analysis never takes
a pruned value as an optimum, and the command line turns it on and reports the savings."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import optuna
import pytest
from ci_strict import require_module
from cli_helpers import cli
from sweep_fakes import tiny_sweep
from typer.testing import CliRunner

from umup_sweep.analysis import analyze_run
from umup_sweep.analysis._plots import transfer_figure
from umup_sweep.cli import _register_commands, app
from umup_sweep.config import PruningSpec, SweepSpec, load_sweep, sweep_hash
from umup_sweep.config._tracking import sweep_tracking
from umup_sweep.runner import SweepInterrupted, run_sweep
from umup_sweep.spec import TrialResult, TrialSpec
from umup_sweep.store import RunStore
from umup_sweep.train import run_trial

LRS = (2**-7, 2**-5, 2**-3, 2**-1, 2.0)  # u-μP's optimum is near 1: the low two are hopeless
STEPS, EVERY = 60, 10


class CountingTrial:
    """The real `run_trial`, keeping every spec it is asked to run."""

    def __init__(self) -> None:
        self.specs: list[TrialSpec] = []

    def __call__(self, spec: TrialSpec) -> TrialResult:
        self.specs.append(spec)
        return run_trial(spec)


def _sweep(tmp_path: Path) -> SweepSpec:
    # one trial at a time: later trials run under bounds from the earlier ones
    sweep = tiny_sweep(tmp_path / "runs", lrs=LRS, seeds=(0, 1), steps=STEPS, max_concurrent=1)
    pruning = PruningSpec(enabled=True, every=EVERY, min_references=3)
    return dataclasses.replace(sweep, pruning=pruning)


@pytest.fixture(scope="module")
def pruned_run(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("pruned")
    sweep = _sweep(tmp_path)
    trial = CountingTrial()
    summary = run_sweep(sweep, trial_fn=trial)
    return sweep, summary, trial


def test_hopeless_trials_are_pruned_and_stored_with_their_partial_curves(pruned_run):
    sweep, summary, trial = pruned_run
    store = RunStore.load(summary.run_dir)
    df = store.results()
    pruned = df[df["status"] == "pruned"]
    assert summary.counts["pruned"] == len(pruned) >= 1
    assert set(pruned["lr"]) <= {2**-7, 2**-5} and set(pruned["seed"]) == {1}
    assert (df.loc[df["status"] == "ok", "steps"] == STEPS).all()
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{store.study_db}")
    by_key = {t.user_attrs["trial_key"]: t for t in study.trials}
    bounded = {s.trial_key for s in trial.specs if s.prune is not None}
    for row in pruned.itertuples():
        assert row.trial_key in bounded
        assert row.steps < STEPS and row.steps % EVERY == 0 and math.isnan(row.val_loss)
        curve = store.curve(row.trial_key)
        spec = store.spec(row.trial_key)
        full = run_trial(spec)  # the same trial without a bound
        assert curve["train_loss"].tolist() == [r[1] for r in full.curve[: row.steps]]
        frozen = by_key[row.trial_key]
        assert frozen.state == optuna.trial.TrialState.PRUNED and frozen.value is None
        assert frozen.user_attrs["pruned"].startswith(f"dominated at step {row.steps}: loss ")
    assert summary.pruning is not None and summary.pruning.n_pruned == len(pruned)
    assert 0 < summary.pruning.saved_s < summary.pruning.spent_s
    # the first three ran before the proxy had 3 references: under no bound
    assert [s.prune for s in trial.specs[:3]] == [None] * 3


def test_the_analysis_never_takes_a_pruned_value_as_the_optimum(pruned_run):
    _, summary, _ = pruned_run
    report = analyze_run(summary.run_dir, write=False)
    (proxy,) = report.results["lr"]["umup"].per_proxy
    pruned = [c for c in proxy.curve if c.n_pruned]
    assert pruned and all(not c.eligible and c.tested for c in pruned)
    assert proxy.grid_optimum_log2 not in {c.log2 for c in pruned}
    assert proxy.n_pruned == report.counts["pruned"] == summary.counts["pruned"]
    text = (summary.run_dir / "report.md").read_text()
    assert f"{report.counts['pruned']} pruned" in text
    # the figure marks the pruned values (hollow triangles on the top edge) and says so
    fig = transfer_figure([("umup", report.results["lr"]["umup"])], "val_loss")
    ax = fig.axes[0]
    marked = [line for line in ax.lines if line.get_marker() == "v"]
    assert len(marked) == 1
    assert sorted(marked[0].get_xdata()) == sorted(c.log2 for c in pruned)
    assert "pruned (stopped early)" in [t.get_text() for t in ax.get_legend().get_texts()]


def test_a_rerun_keeps_pruned_trials_and_rerun_pruned_runs_exactly_them_in_full(tmp_path):
    sweep = _sweep(tmp_path)
    run_sweep(sweep, analyze=False, trial_fn=run_trial)
    pruned = set(RunStore.load(sweep.run_dir).results().query("status == 'pruned'")["trial_key"])
    assert pruned
    again = CountingTrial()
    summary = run_sweep(sweep, analyze=False, trial_fn=again)
    assert again.specs == [] and summary.counts["pruned"] == len(pruned)
    full = CountingTrial()
    summary = run_sweep(sweep, analyze=False, trial_fn=full, rerun_pruned=True)
    assert {s.trial_key for s in full.specs} == pruned
    assert all(s.prune is None for s in full.specs)  # run in full, not under a new bound
    df = RunStore.load(sweep.run_dir).results()
    assert summary.counts["pruned"] == 0 and (df["steps"] == STEPS).all()
    assert summary.n_new == len(pruned)


class StopAfter:
    """The real `run_trial` for `n` trials, then Ctrl-C (as a user would press it)."""

    def __init__(self, n: int) -> None:
        self.left = n

    def __call__(self, spec: TrialSpec) -> TrialResult:
        if self.left == 0:
            raise KeyboardInterrupt
        self.left -= 1
        return run_trial(spec)


def test_an_interrupted_sweep_resumes_under_the_same_bounds(tmp_path, pruned_run):
    """The references are rebuilt from the store (curves re-read): after Ctrl-C, the resumed
    trials run under exactly the bounds the uninterrupted run gave them."""
    _, _, uninterrupted = pruned_run
    sweep = _sweep(tmp_path)
    with pytest.raises(SweepInterrupted):
        run_sweep(sweep, analyze=False, trial_fn=StopAfter(4))
    resumed = CountingTrial()
    run_sweep(sweep, analyze=False, trial_fn=resumed)
    given = {s.trial_key: s.prune for s in uninterrupted.specs}
    assert len(resumed.specs) == 2 * len(LRS) - 4
    assert [s.prune for s in resumed.specs] == [given[s.trial_key] for s in resumed.specs]
    assert any(s.prune is not None for s in resumed.specs)


def test_pruning_is_not_part_of_the_sweep_and_the_cli_turns_it_on(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(
        "name: clipruned\n"
        "proxy: {name: t, base: {head_dim: 16, seq_len: 32, ffn_ratio: 2.0}, widths: [32], "
        "depths: [1]}\n"
        f"seeds: [0, 1]\nhyperparameters:\n  lr: {{values: {list(LRS)}}}\n"
        f"train: {{steps: {STEPS}, batch_size: 4, eval_batches: 1, final_window: 3}}\n"
        "execution: {executor: serial, max_concurrent: 1}\n"
        f"pruning: {{every: {EVERY}, min_references: 3, enabled: false}}\n"
    )
    sweep = load_sweep(path)
    on = load_sweep(path, overrides={"pruning.enabled": True})
    assert not sweep.pruning.enabled and on.pruning == PruningSpec(True, EVERY, 2.0, 3)
    assert sweep_hash(sweep) == sweep_hash(on)
    _register_commands()
    runner = CliRunner()
    res = runner.invoke(
        app, ["run", str(path), "--prune", "--no-progress", "--run-dir", str(tmp_path / "r")]
    )
    assert res.exit_code == 0, res.output
    assert " pruned, 0 failed" in res.output
    assert "trials stopped early, saving about" in res.output
    res = runner.invoke(app, ["status", str(tmp_path / "r" / "clipruned")])
    assert res.exit_code == 0 and "pruned: " in res.output, res.output


def test_a_bad_pruning_section_is_one_line_exit_2(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(
        "name: bad\nproxy: {base: {head_dim: 16}, widths: [32], depths: [1]}\n"
        "hyperparameters: {lr: [0.5, 1.0]}\npruning: {min_references: 1}\n"
    )
    out = cli("run", str(path), "--run-dir", str(tmp_path / "runs"))
    assert out.returncode == 2, out.stderr
    assert out.stderr.strip().splitlines() == [
        f"error: {path}: pruning.min_references: expected >= 2 (the margin is measured between "
        "stored trials), got 1 (int)"
    ]
    assert not (tmp_path / "runs").exists()


def tensorboard_scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar tag of one TensorBoard run folder: (step, value) in order."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_trackers_flag_pruned_trials_and_get_the_full_run_after_rerun_pruned(tmp_path):
    """TensorBoard (local event files): a pruned trial is logged with its partial curve and
    final/pruned = 1; `--rerun-pruned` logs the full run of the same trial (ledger entry
    `<key>` beside `<key>:pruned`), and a plain rerun logs nothing again."""
    require_module("tensorboard", "pip install -e '.[dev]' (or '.[tracking]')")
    sweep = dataclasses.replace(
        _sweep(tmp_path), tracking=sweep_tracking({"backend": "tensorboard"}, "<test>")
    )
    run_sweep(sweep, analyze=False, trial_fn=run_trial)
    df = RunStore.load(sweep.run_dir).results()
    pruned = sorted(df.loc[df["status"] == "pruned", "trial_key"])
    assert pruned
    root = sweep.run_dir / "tracking" / "tensorboard" / "tiny"
    folders = {d.name.rsplit("-", 1)[1]: d for d in root.iterdir() if d.name != "summary"}
    for key in pruned:
        scalars = tensorboard_scalars(folders[key])
        assert scalars["final/pruned"][0][1] == 1.0
        assert len(scalars["train_loss"]) < STEPS
    ledger = sweep.run_dir / "tracking" / "logged.json"
    (entries,) = (set(d["trials"]) for d in json.loads(ledger.read_text()).values())
    assert {f"{k}:pruned" for k in pruned} <= entries and not set(pruned) & entries
    run_sweep(sweep, analyze=False, trial_fn=run_trial, rerun_pruned=True)
    (entries,) = (set(d["trials"]) for d in json.loads(ledger.read_text()).values())
    assert set(pruned) <= entries
    for key in pruned:  # the full run's curve is in the same folder now
        assert max(s for s, _ in tensorboard_scalars(folders[key])["train_loss"]) == STEPS - 1
    before = ledger.read_text()
    run_sweep(sweep, analyze=False, trial_fn=run_trial)
    assert ledger.read_text() == before
