"""transfer.json and report.md state what the independent search decided: per HP the measured
best, its gain on fresh seeds ± its standard error, adoption, and the final check against the
baseline. Trials are synthetic (no training) but go through a real run store."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

from umup_sweep.analysis import analyze_run, write_report
from umup_sweep.config import load_sweep
from umup_sweep.search import IndependentStrategy
from umup_sweep.spec import TrialResult
from umup_sweep.store import RunStore

from .fabricate import make_trials

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "search"))
from search_synthetic import trial_loss  # noqa: E402


def _run(tmp_path: Path, objective, widths=(32, 64)) -> tuple[Path, dict]:
    sweep = load_sweep(
        {
            "name": "ind",
            "proxy": {"base": {"head_dim": 16}, "widths": list(widths), "depths": [1]},
            "seeds": [0, 1],
            "strategy": "independent",
            "hyperparameters": {
                "lr": {"log2_range": [-3, 2]},
                "residual_mult": {"log2_range": [-2, 2]},
                "attn_softmax_mult": {"log2_range": [-2, 2]},
            },
            "storage": {"run_dir": str(tmp_path / "runs")},
        }
    )
    strategy = IndependentStrategy(sweep)
    with RunStore.open(sweep) as store:
        while True:
            new = strategy.propose(store.results(), [], 1000)
            if not new:
                break
            for t in new:
                loss = objective(t)
                store.commit(
                    t, TrialResult(t.trial_key, "ok", val_loss=loss, final_train_loss=loss)
                )
        summary = strategy.summary(store.results())
    return sweep.run_dir, summary


def test_transfer_json_and_report_state_the_search_decisions(tmp_path: Path) -> None:
    run_dir, summary = _run(tmp_path, lambda t: trial_loss(t, noise=0.01))
    assert summary["complete"]
    report = analyze_run(run_dir)
    search = json.loads((run_dir / "transfer.json").read_text())["search"]["fp32"]
    # the record is the driver's decisions, replayed from the stored trials
    assert search["stage1_lr"] == summary["stage1_lr"]
    assert search["adopted"] == summary["adopted"]
    assert search["final"] == summary["final"]
    rm = search["hps"]["residual_mult"]
    confirm = summary["2-residual_mult"]["confirm"]
    assert rm["confirm"]["gain"] == pytest.approx(confirm["gain"])
    assert rm["confirm"]["se"] == pytest.approx(confirm["se"]) and rm["confirm"]["se"] > 0
    assert rm["adopted"] == ("residual_mult" in summary["adopted"])
    assert search["noise"]["sd"] == pytest.approx(summary["noise"]["sd"])
    text = write_report(report).read_text()
    section = text.split("## Independent search", 1)[1]
    row = next(line for line in section.splitlines() if line.startswith("| residual_mult |"))
    assert f"{confirm['gain']:.4g} ± {confirm['se']:.4g}" in row
    assert ("**yes**" in row) == rm["adopted"]
    assert "Final config: lr" in section


def test_a_reverted_search_says_so(tmp_path: Path) -> None:
    # residual_mult 0.5 helps on seeds 0-3 (sweep and 2-confirm seeds), hurts on 4-5
    def objective(t):
        rm = t.hps["residual_mult"] == 0.5
        sign = -1.0 if t.seed <= 3 else 1.0
        noise = 0.001 * math.sin(7 * t.seed + 3 * t.model.width + 11 * t.hps["lr"])
        return 2.5 + 0.05 * math.log2(t.hps["lr"]) ** 2 + sign * 0.05 * rm + noise

    run_dir, summary = _run(tmp_path, objective, widths=(32,))
    assert summary["reverted"]
    report = analyze_run(run_dir)
    assert report.search is not None and report.search["fp32"]["reverted"]
    text = write_report(report).read_text()
    assert "did not beat the baseline on fresh seeds [4, 5]" in text
    assert "the search returned the baseline" in text


def test_other_strategies_have_no_search_section(run_factory) -> None:
    report = analyze_run(run_factory(make_trials()))
    assert report.search is None
    assert "search" not in json.loads((Path(report.run_dir) / "transfer.json").read_text())
