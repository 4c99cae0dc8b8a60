"""How a running sweep is reported: the driver's `on_progress` events (counts, best, every
committed trial once, notices) and the command line's view of them (`SweepReporter`)."""

from __future__ import annotations

import dataclasses
import io

import pytest
from rich.console import Console
from sweep_fakes import FakeTrial, expected_loss, tiny_sweep

from umup_sweep.commands._progress import SweepReporter
from umup_sweep.commands.summary import trial_line
from umup_sweep.runner import UNUSED_GPUS_WARNING, SweepNotice, SweepProgress, run_sweep
from umup_sweep.search import GridStrategy
from umup_sweep.spec import ModelSpec, TrainSpec, TrialResult, TrialSpec
from umup_sweep.store import RunStore


def test_progress_events_count_the_trials_and_carry_each_committed_one_once(tmp_path):
    sweep = tiny_sweep(tmp_path, lrs=(0.25, 0.5, 1.0, 64.0))
    events: list = []
    fake = FakeTrial(tmp_path / "log", diverge_at=64.0)
    run_sweep(sweep, strategy=GridStrategy(sweep), trial_fn=fake, analyze=False,
              on_progress=events.append)  # fmt: skip
    assert all(isinstance(e, SweepProgress) for e in events)
    stored = RunStore.load(tmp_path / "tiny").results()
    finished = [e for e in events if e.spec is not None]
    assert sorted(e.spec.trial_key for e in finished) == sorted(stored["trial_key"])
    assert all(e.result.trial_key == e.spec.trial_key for e in finished)
    assert events[0].spec is None and events[0].done == 0 and events[0].running > 0
    assert [e.done for e in events] == sorted(e.done for e in events)
    assert all(e.total == 4 and e.metric == "val_loss" for e in events)
    last = events[-1]
    assert last.running == 0 and last.done == 4 and [e.running for e in events].count(0) == 1
    ok = [e.spec for e in finished if e.result.status == "ok"]
    assert last.best == pytest.approx(min(expected_loss(s) for s in ok))


def test_reserved_but_unused_gpus_are_a_notice_before_any_trial(tmp_path):
    sweep = tiny_sweep(tmp_path, lrs=(0.5,))
    sweep = dataclasses.replace(
        sweep, execution=dataclasses.replace(sweep.execution, gpus_per_trial=0.5)
    )
    events: list = []
    run_sweep(sweep, strategy=GridStrategy(sweep), trial_fn=FakeTrial(tmp_path / "log"),
              analyze=False, on_progress=events.append)  # fmt: skip
    assert events[0] == SweepNotice(UNUSED_GPUS_WARNING)
    assert [type(e) for e in events[1:]] == [SweepProgress] * (len(events) - 1)


@pytest.mark.parametrize("verbose", [False, True])
def test_a_failed_analysis_is_in_the_summary_and_its_traceback_a_verbose_notice(
    tmp_path, monkeypatch, verbose
):
    import umup_sweep.analysis as analysis

    def broken(run_dir):
        raise ValueError("no plots today")

    monkeypatch.setattr(analysis, "finalize_run", broken)
    sweep = tiny_sweep(tmp_path, lrs=(0.5,))
    events: list = []
    summary = run_sweep(sweep, strategy=GridStrategy(sweep), trial_fn=FakeTrial(tmp_path / "log"),
                        verbose=verbose, on_progress=events.append)  # fmt: skip
    assert summary.analysis_error.startswith("ValueError: no plots today (rerun with")
    notices = [e.text for e in events if isinstance(e, SweepNotice)]
    if verbose:
        assert len(notices) == 1 and "Traceback" in notices[0] and "no plots today" in notices[0]
    else:
        assert notices == []


def _events() -> tuple[list, TrialSpec]:
    spec = TrialSpec(ModelSpec(width=32, depth=1), TrainSpec(lr=0.5))
    failed = TrialResult(spec.trial_key, "failed", error="ValueError: boom")
    ok = TrialResult(spec.trial_key, "ok", val_loss=2.5)
    return [
        SweepNotice("warning: careful"),
        SweepProgress("val_loss", 0, 2, 2),
        SweepProgress("val_loss", 1, 2, 1, None, spec, failed),
        SweepProgress("val_loss", 2, 2, 0, 2.5, spec, ok),
    ], spec


@pytest.mark.parametrize("verbose", [False, True])
def test_reporter_prints_notices_and_trial_lines_failed_ones_always(verbose):
    console = Console(file=io.StringIO(), width=400)
    events, spec = _events()
    with SweepReporter(progress=False, verbose=verbose, console=console) as report:
        for event in events:
            report(event)
    lines = console.file.getvalue().splitlines()
    failed_line = trial_line(spec, events[2].result, "val_loss")
    ok_line = trial_line(spec, events[3].result, "val_loss")
    assert lines == ["warning: careful", failed_line] + ([ok_line] if verbose else [])
    assert "— ValueError: boom" in failed_line and "val_loss 2.5000" in ok_line


def test_reporter_bar_runs_from_the_first_progress_event_to_the_last():
    console = Console(file=io.StringIO(), width=120)
    events, _ = _events()
    with SweepReporter(progress=True, verbose=False, console=console) as report:
        report(events[0])
        assert console.file.getvalue() == "warning: careful\n"  # no bar before progress
        for event in events[1:]:
            report(event)
        out = console.file.getvalue()
        assert "2/2" in out and "best 2.5000" in out  # the final state, drawn when it stops
    assert console.file.getvalue() == out  # nothing more on exit
