"""A sweep that grows instead of starting over: a run extended with a seed and a width runs
exactly the new trials (real tiny proxies through the real runner) and the analysis uses all;
a shrunk grid leaves the dropped trials out; adaptive strategies continue from the store;
a grown sweep cut short resumes with nothing lost; the summary and status say "N reused, M
new"."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import optuna
import pandas as pd
import pytest
from sweep_fakes import FakeTrial, tiny_sweep

from umup_sweep.analysis import analyze_run
from umup_sweep.commands.summary import status_lines, summary_lines
from umup_sweep.config import HPSpace
from umup_sweep.errors import StoreError
from umup_sweep.run_status import run_status
from umup_sweep.runner import SweepInterrupted, run_sweep
from umup_sweep.spec import TrialResult, TrialSpec
from umup_sweep.store import Growth, RunStore
from umup_sweep.train import run_trial

TESTS_DIR = Path(__file__).resolve().parent


class CountingTrial:
    """The real `run_trial`, noting the key of every trial it is asked to run."""

    def __init__(self) -> None:
        self.keys: list[str] = []

    def __call__(self, spec: TrialSpec) -> TrialResult:
        self.keys.append(spec.trial_key)
        return run_trial(spec)


def _study_keys(run_dir: Path, name: str = "tiny") -> list[str]:
    storage = f"sqlite:///{run_dir / 'study.db'}"
    return [
        t.user_attrs["trial_key"]
        for t in optuna.load_study(study_name=name, storage=storage).trials
    ]


def test_a_seed_and_a_width_more_run_only_the_new_trials_and_the_analysis_uses_all(tmp_path):
    lrs = (0.25, 1.0, 4.0)
    first = CountingTrial()
    run_sweep(tiny_sweep(tmp_path, lrs=lrs, steps=5), trial_fn=first, analyze=False)
    run_dir = tmp_path / "tiny"
    before = RunStore.load(run_dir).results().set_index("trial_key")["val_loss"]
    assert len(first.keys) == 3 and before.notna().all()

    grown = tiny_sweep(tmp_path, lrs=lrs, widths=(32, 64), seeds=(0, 1), steps=5)
    second = CountingTrial()
    summary = run_sweep(grown, trial_fn=second, analyze=False)

    stored = _study_keys(run_dir)
    assert len(stored) == 12 and len(set(stored)) == 12  # 3 lrs x 2 widths x 2 seeds, once each
    assert len(second.keys) == 9 and set(second.keys) == set(stored) - set(first.keys)
    after = RunStore.load(run_dir).results().set_index("trial_key")["val_loss"]
    pd.testing.assert_series_equal(after.loc[before.index], before)  # the old trials, untouched
    assert (summary.n_new, summary.n_resumed) == (9, 3)
    assert summary.growth == Growth(("proxy.widths +[64]", "seeds +[1]"), (), reused=3, new=9)
    line = "grown: proxy.widths +[64], seeds +[1] — 3 reused, 9 new"
    assert line in summary_lines(summary)
    assert line in status_lines(run_status(RunStore.load(run_dir)))

    report = analyze_run(run_dir, write=False)  # what `umup-sweep report` computes
    assert report.counts == {"total": 12, "ok": 12, "diverged": 0, "pruned": 0, "failed": 0}
    lr = report.get("lr", "umup")
    assert lr is not None and [(p.width, p.depth) for p in lr.per_proxy] == [(32, 1), (64, 1)]
    assert len(pd.read_csv(run_dir / "trials.csv")) == 12


def test_a_refused_change_runs_nothing_and_says_which_key(tmp_path):
    sweep = tiny_sweep(tmp_path, lrs=(0.5, 1.0))
    fake = FakeTrial(tmp_path / "log")
    run_sweep(sweep, trial_fn=fake, analyze=False)
    stored = (tmp_path / "tiny" / "sweep.yaml").read_text()
    changed = dataclasses.replace(
        sweep, seeds=(0, 1), train=dataclasses.replace(sweep.train, steps=11)
    )
    with pytest.raises(StoreError, match=r"\(changed keys: train\.steps\); use --force"):
        run_sweep(changed, trial_fn=fake, analyze=False)
    assert len((tmp_path / "log").read_text().splitlines()) == 2
    assert (tmp_path / "tiny" / "sweep.yaml").read_text() == stored


def test_a_shrunk_grid_runs_nothing_and_leaves_the_dropped_trials_out(tmp_path):
    fake = FakeTrial(tmp_path / "log")
    run_sweep(tiny_sweep(tmp_path, widths=(32, 64), seeds=(0, 1)), trial_fn=fake, analyze=False)
    narrow = tiny_sweep(tmp_path, widths=(64,), seeds=(0, 1))
    summary = run_sweep(narrow, trial_fn=fake, analyze=False)
    assert summary.n_new == 0 and summary.counts["total"] == 8
    assert summary.growth == Growth((), ("proxy.widths -[32]",), reused=8, new=0, outside=8)
    assert "8 stored trials outside the sweep (kept, not used)" in summary_lines(summary)[2]
    from umup_sweep.analysis import load_run

    assert set(load_run(tmp_path / "tiny").trials["width"]) == {64}
    assert len(_study_keys(tmp_path / "tiny")) == 16
    assert len((tmp_path / "log").read_text().splitlines()) == 16


def _random(tmp_path: Path, budget: int, seeds=(0,)):
    space = {"lr": HPSpace(low=0.25, high=4.0)}
    return dataclasses.replace(
        tiny_sweep(tmp_path, seeds=seeds),
        strategy="random",
        budget=budget,
        hyperparameters=space,
        strategy_options={"sampler_seed": 0},
    )


def test_random_budget_grows_by_its_new_draws_only(tmp_path):
    fake = FakeTrial(tmp_path / "log")
    run_sweep(_random(tmp_path, 3), trial_fn=fake, analyze=False)
    first = set(_study_keys(tmp_path / "tiny"))
    summary = run_sweep(_random(tmp_path, 5, seeds=(0, 1)), trial_fn=fake, analyze=False)
    assert summary.n_new == 10 - 3 and summary.growth is not None
    assert (summary.growth.reused, summary.growth.new) == (3, 7)
    assert first <= set(_study_keys(tmp_path / "tiny"))  # the first 3 draws are the same
    wider = dataclasses.replace(
        _random(tmp_path, 5, seeds=(0, 1)), hyperparameters={"lr": HPSpace(low=0.125, high=4.0)}
    )
    with pytest.raises(StoreError, match="random sweep draws its configurations from the ranges"):
        run_sweep(wider, trial_fn=fake, analyze=False)


def test_tpe_with_a_seed_more_reruns_its_stored_configurations_at_that_seed(tmp_path):
    fake = FakeTrial(tmp_path / "log")
    tpe = dataclasses.replace(_random(tmp_path, 3), strategy="tpe", strategy_options={})
    run_sweep(tpe, trial_fn=fake, analyze=False)
    df = RunStore.load(tmp_path / "tiny").results()
    summary = run_sweep(dataclasses.replace(tpe, seeds=(0, 1)), trial_fn=fake, analyze=False)
    assert (summary.n_new, summary.n_resumed) == (3, 3)
    grown = RunStore.load(tmp_path / "tiny").results()
    assert sorted(grown[grown["seed"] == 1]["lr"]) == sorted(df["lr"])  # the same 3 configs


def test_a_grown_sweep_cut_short_resumes_with_nothing_lost_or_run_twice(tmp_path):
    fake = FakeTrial(tmp_path / "log")
    run_sweep(tiny_sweep(tmp_path, lrs=(0.5, 1.0)), trial_fn=fake, analyze=False)
    grown = tiny_sweep(tmp_path, lrs=(0.5, 1.0), seeds=(0, 1, 2))

    def interrupt_second_new(spec):
        if len(_keys_run(tmp_path / "log")) == 2 + 1:  # one new trial committed
            raise KeyboardInterrupt
        return fake(spec)

    with pytest.raises(SweepInterrupted) as stop:
        run_sweep(grown, trial_fn=interrupt_second_new, analyze=False)
    assert stop.value.summary.growth == Growth(("seeds +[1, 2]",), (), reused=2, new=1)
    summary = run_sweep(grown, trial_fn=fake, analyze=False)
    assert (summary.n_new, summary.n_resumed) == (3, 3)
    assert summary.growth == Growth(("seeds +[1, 2]",), (), reused=2, new=4)
    runs = pd.Series(_keys_run(tmp_path / "log")).value_counts()
    assert len(runs) == 6 and set(runs) == {1}  # every trial of the grown sweep ran once
    assert sorted(_study_keys(tmp_path / "tiny")) == sorted(runs.index)


def _keys_run(log: Path) -> list[str]:
    return [line.split()[0] for line in log.read_text().splitlines()] if log.exists() else []
