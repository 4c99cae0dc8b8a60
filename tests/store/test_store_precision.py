"""The `precision` column: trials.csv and the results frame carry each trial's precision,
it survives re-opening the store, and a two-precision sweep runs end to end (serial, fake
trials) into a run the analysis compares across precisions."""

from __future__ import annotations

import dataclasses
import json

import pandas as pd
from sweep_fakes import FakeTrial, expected_loss, tiny_sweep

from umup_sweep.runner import run_sweep
from umup_sweep.search import make_strategy
from umup_sweep.store import TRIAL_COLUMNS, RunStore, trial_row

BOTH = ("fp32", "fp8_sim")


def two_precision_sweep(tmp_path, **kw):
    sweep = tiny_sweep(tmp_path, **kw)
    return dataclasses.replace(sweep, precisions=BOTH)


def test_precision_column_is_appended_before_error() -> None:
    """Where README documents it: the contract columns keep their order."""
    assert TRIAL_COLUMNS[-3:] == ("node_id", "precision", "error")


def test_commit_exports_and_rereads_the_precision(tmp_path) -> None:
    sweep = two_precision_sweep(tmp_path, lrs=(0.5, 1.0))
    specs = make_strategy(sweep, "fp").propose(pd.DataFrame(), [], 100)
    assert sorted(s.train.precision for s in specs) == ["fp32", "fp32", "fp8_sim", "fp8_sim"]
    fake = FakeTrial(tmp_path / "log")
    with RunStore.open(sweep) as store:
        for spec in specs:
            store.commit(spec, fake(spec))
        frame = store.results()
    want = {s.trial_key: s.train.precision for s in specs}
    assert dict(zip(frame["trial_key"], frame["precision"], strict=True)) == want
    assert trial_row(specs[1], fake(specs[1]))["precision"] == specs[1].train.precision

    csv = pd.read_csv(tmp_path / "tiny" / "trials.csv")
    assert list(csv.columns) == list(TRIAL_COLUMNS)
    assert dict(zip(csv["trial_key"], csv["precision"], strict=True)) == want
    # rebuilt from the study alone (trials.csv deleted): same column
    (tmp_path / "tiny" / "trials.csv").unlink()
    reread = RunStore.load(tmp_path / "tiny").results()
    assert dict(zip(reread["trial_key"], reread["precision"], strict=True)) == want
    assert list(reread.columns) == list(TRIAL_COLUMNS)


def test_two_precision_sweep_runs_end_to_end_and_resumes(tmp_path) -> None:
    sweep = two_precision_sweep(tmp_path, lrs=(0.25, 0.5, 1.0, 2.0), widths=(32, 64))
    fake = FakeTrial(tmp_path / "log")
    summary = run_sweep(sweep, trial_fn=fake, analyze=True)
    assert summary.counts["ok"] == 2 * 2 * 4 and summary.analysis_error is None
    trials = pd.read_csv(tmp_path / "tiny" / "trials.csv")
    assert trials.groupby(["precision", "width"]).size().to_dict() == {
        (p, w): 4 for p in BOTH for w in (32, 64)
    }
    stored = RunStore.load(tmp_path / "tiny")
    for key in trials["trial_key"]:
        spec = stored.spec(key)
        assert spec.train.precision == trials.set_index("trial_key").loc[key, "precision"]
        assert trials.set_index("trial_key").loc[key, "val_loss"] == expected_loss(spec)
    # the analysis saw both precisions (the fake loss ignores precision: the optimum holds)
    transfer = json.loads((tmp_path / "tiny" / "transfer.json").read_text())
    assert transfer["precision"]["precisions"] == ["fp32", "fp8_sim"]
    assert transfer["precision"]["comparisons"]["lr"]["umup"]["fp8_sim"]["verdict"] == "holds"
    again = run_sweep(sweep, trial_fn=fake, analyze=False)
    assert again.n_new == 0 and again.n_resumed == 16
