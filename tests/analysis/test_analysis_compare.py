"""`report RUN --compare OTHER`: u-μP's search next to SP's lr-tuned best, per width.

Two independent searches run to completion through real run stores on a synthetic loss with
known values: every config's loss is exact up to a ±0.004 seed offset (−0.004 on even seeds,
+0.004 on odd), so a mean over two seeds is the config's value and its standard error is
0.004. u-μP: lr best at 1, residual_mult 0.5 gains 0.05, so the search adopts it; SP: lr best
at 2^-8.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from cli_helpers import cli
from typer.testing import CliRunner

from umup_sweep.analysis import compare_rows, load_comparison
from umup_sweep.cli import _register_commands, app
from umup_sweep.config import load_sweep
from umup_sweep.errors import UserError
from umup_sweep.search import IndependentStrategy
from umup_sweep.spec import TrialResult
from umup_sweep.store import RunStore

from .fabricate import make_trials

_register_commands()
runner = CliRunner()

UMUP_BASE = {32: 3.0, 64: 2.9}  # the loss at lr 1 and every HP at its default
SP_BASE = {32: 2.98, 64: 2.855}  # the loss at lr 2^-8


def _seed_offset(seed: int) -> float:
    return 0.004 if seed % 2 else -0.004


def _umup_loss(t) -> float:
    x_lr, x_rm = math.log2(t.hps["lr"]), math.log2(t.hps["residual_mult"])
    rm = 0.05 * (x_rm + 1) ** 2 - 0.05  # −0.05 at residual_mult 0.5, 0 at the default
    return UMUP_BASE[t.model.width] + 0.01 * x_lr**2 + rm + _seed_offset(t.seed)


def _sp_loss(base: dict[int, float]):
    def loss(t) -> float:
        return base[t.model.width] + 0.01 * (math.log2(t.hps["lr"]) + 8) ** 2 + _seed_offset(t.seed)

    return loss


def _search(root: Path, name: str, hyperparameters: dict, objective, **extra) -> Path:
    """Run an independent search to the end against ``objective``; its run directory."""
    sweep = load_sweep(
        {
            "name": name,
            "proxy": {"base": {"head_dim": 16}, "widths": [32, 64], "depths": [1]},
            "seeds": [0, 1],
            "strategy": "independent",
            "strategy_options": {"noise_sd": 0.01, "confirm_seeds": 2},
            "hyperparameters": hyperparameters,
            "storage": {"run_dir": str(root)},
            **extra,
        }
    )
    strategy = IndependentStrategy(sweep)
    with RunStore.open(sweep) as store:
        while new := strategy.propose(store.results(), [], 1000):
            for t in new:
                loss = objective(t)
                store.commit(
                    t, TrialResult(t.trial_key, "ok", val_loss=loss, final_train_loss=loss)
                )
        assert strategy.summary(store.results())["complete"]
    return sweep.run_dir


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("runs")
    umup_hps = {"lr": {"log2_range": [-3, 2]}, "residual_mult": {"log2_range": [-2, 2]}}
    sp_hps = {"lr": {"log2_range": [-11, -6]}}
    return {
        "umup": _search(root, "umup_ind", umup_hps, _umup_loss),
        "sp": _search(root, "sp_ind", sp_hps, _sp_loss(SP_BASE), parametrization="sp"),
        "sp_better": _search(
            root, "sp_better", sp_hps, _sp_loss({32: 2.98, 64: 2.80}), parametrization="sp"
        ),
    }


def test_report_compare_writes_the_section_and_compare_json(runs):
    res = runner.invoke(app, ["report", str(runs["umup"]), "--compare", str(runs["sp"])])
    assert res.exit_code == 0, res.output
    out = " ".join(res.output.split())
    assert "u-μP full search vs SP lr-tuned at width 32: -0.030 ± 0.006 (u-μP better)" in out
    assert "overall: the search closes the gap" in out
    assert f"wrote {runs['umup'] / 'compare.json'}" in out
    assert f"wrote {runs['umup'] / 'report.md'}" in out

    data = json.loads((runs["umup"] / "compare.json").read_text())
    assert data["metric"] == "val_loss" and data["precision"] == "fp32"
    assert (data["this"]["run"], data["this"]["kind"]) == ("umup_ind", "full search")
    assert (data["other"]["run"], data["other"]["kind"]) == ("sp_ind", "lr-tuned")
    assert data["this"]["confirm_seeds"] == [4, 5] == data["other"]["confirm_seeds"]
    at = {p["width"]: p for p in data["proxies"]}
    assert sorted(at) == [32, 64]
    for width in (32, 64):
        this, other = at[width]["this"], at[width]["other"]
        assert this["lr_only"]["mean"] == pytest.approx(UMUP_BASE[width])
        assert this["final"]["mean"] == pytest.approx(UMUP_BASE[width] - 0.05)
        assert this["final"]["se"] == pytest.approx(0.004)
        assert this["final"]["seeds"] == [4, 5] and this["final"]["n"] == 2
        # the best grid point: the adopted config, on the sweep's seeds
        assert this["best_grid"]["mean"] == pytest.approx(UMUP_BASE[width] - 0.05)
        assert this["best_grid"]["seeds"] == [0, 1]
        assert this["best_grid"]["config"] == {"lr": 1.0, "residual_mult": 0.5}
        assert other["final"]["mean"] == pytest.approx(SP_BASE[width])
        assert other["lr_only"]["mean"] == pytest.approx(SP_BASE[width])  # SP tuned lr only
        assert other["best_grid"]["config"] == {"lr": 2.0**-8}
        assert at[width]["gap"] == pytest.approx(UMUP_BASE[width] - 0.05 - SP_BASE[width])
        assert at[width]["gap_se"] == pytest.approx(math.hypot(0.004, 0.004))
    assert at[32]["verdict"] == "u-μP better" and at[64]["verdict"] == "indistinguishable"
    assert data["closes_gap"] is True

    text = (runs["umup"] / "report.md").read_text()
    section = text.split("## Compared with sp_ind", 1)[1]
    assert (
        "| width | u-μP: lr only | u-μP: full search | SP: final | SP: best grid* "
        "| gap (u-μP − SP) | verdict |"
    ) in section
    assert (
        "| 32 | 3.0000 ± 0.0040 | 2.9500 ± 0.0040 | 2.9800 ± 0.0040 | 2.9800 ± 0.0040 "
        "| -0.0300 ± 0.0057 | u-μP better |"
    ) in section
    assert (
        "| 64 | 2.9000 ± 0.0040 | 2.8500 ± 0.0040 | 2.8550 ± 0.0040 | 2.8550 ± 0.0040 "
        "| -0.0050 ± 0.0057 | indistinguishable |"
    ) in section
    assert "- u-μP full search vs SP lr-tuned at width 64: -0.005 ± 0.006 (indistinguishable)" in (
        section
    )
    assert "selection-biased" in section
    assert (
        "**Overall: the search closes the gap: u-μP full search is not worse than SP lr-tuned "
        "beyond 2 se at any common width.**"
    ) in section
    # every stage-2 HP of the search gets its own figure and its own row
    assert (runs["umup"] / "plots" / "lr.png").exists()
    assert (runs["umup"] / "plots" / "residual_mult.png").exists()
    per_hp = text.split("## Transfer per HP", 1)[1].split("\n## ", 1)[0]
    assert [line.split(" | ")[0] for line in per_hp.splitlines() if line.startswith("| ")][1:] == [
        "| lr",
        "| residual_mult",
    ]


def test_sp_better_does_not_close_the_gap(runs):
    comp = load_comparison(runs["umup"], runs["sp_better"])
    at = {p.width: p for p in comp.proxies}
    assert at[64].gap == pytest.approx(2.85 - 2.80) and at[64].verdict == "SP better"
    assert at[64].sentence == (
        "u-μP full search vs SP lr-tuned at width 64: +0.050 ± 0.006 (SP better)"
    )
    assert comp.closes_gap is False
    assert comp.overall == "the search does not close the gap: SP lr-tuned is better at width 64"


def test_a_grid_run_is_compared_by_its_best_grid_point(runs, run_factory):
    # a grid sweep (no search) with one seed: loss 2.5 + 0.5 − 0.05·log2(w/32) at lr 2^-8
    grid = make_trials(
        widths=(32, 64),
        depths=(1,),
        seeds=(0,),
        c0=-8,
        grid=range(-11, -5),
        noise=0.0,
        offset=0.5,
        parametrization="sp",
    )
    other = run_factory(grid, name="sp_grid")
    comp = load_comparison(runs["umup"], other)
    assert comp.other.kind == "best grid point" and comp.other.basis == "best grid"
    at = {p.width: p for p in comp.proxies}
    assert at[32].other["final"] is None
    assert at[32].other["best_grid"].mean == pytest.approx(3.0)
    assert at[64].other["best_grid"].mean == pytest.approx(2.95)
    assert at[32].gap == pytest.approx(2.95 - 3.0) and at[32].gap_se is None
    assert at[32].sentence == (
        "u-μP full search vs SP best grid point at width 32: -0.050 (no interval (one seed))"
    )
    assert comp.closes_gap is None
    assert comp.overall == (
        "cannot tell whether the search closes the gap: no interval at width 32, width 64"
    )
    # the other way round, the grid run's own columns show the best grid point its gap uses
    back = load_comparison(other, runs["umup"])
    header, rows = compare_rows(back)
    assert header[1:3] == ["SP: lr only", "SP: best grid*"]
    assert rows[0][:3] == ["32", "–", "3.0000 (one seed)"]
    assert back.overall.startswith("cannot tell whether the best grid point closes the gap")


def test_compare_refuses_in_one_line(runs, run_factory, tmp_path):
    elsewhere = run_factory(make_trials(widths=(128, 256), seeds=(0,)), name="wide")
    (tmp_path / "notes").mkdir()
    for other, message in (
        (
            elsewhere,
            f"error: --compare: {runs['umup']} (widths 32, 64) and {elsewhere} (widths 128, 256)"
            " share no width: compare runs made at the same widths",
        ),
        (
            tmp_path / "notes",
            f"error: --compare: {tmp_path / 'notes'} is not a run directory (expected "
            "runs/<name>/ holding sweep.yaml, as `umup-sweep run` writes it)",
        ),
    ):
        out = cli("report", runs["umup"], "--compare", other)
        assert out.returncode == 2, out.stderr
        assert out.stderr.strip() == message
        assert "Traceback" not in out.stderr


def test_compare_refuses_another_metric(runs, run_factory):
    other = run_factory(
        make_trials(widths=(32, 64), depths=(1,), seeds=(0,)),
        name="train_metric",
        metric="final_train_loss",
    )
    message = (
        f"--compare: {runs['umup']} measures val_loss but {other} measures final_train_loss: "
        "compare runs with the same metric"
    )
    with pytest.raises(UserError) as err:
        load_comparison(runs["umup"], other)
    assert str(err.value) == message


def test_report_alone_says_where_the_report_is(runs):
    res = runner.invoke(app, ["report", str(runs["sp"])])
    assert res.exit_code == 0, res.output
    assert res.output.strip() == f"wrote {runs['sp'] / 'report.md'}"
    assert "## Compared with" not in (runs["sp"] / "report.md").read_text()
    res = runner.invoke(app, ["report", str(runs["sp"]), "--verbose"])
    assert res.exit_code == 0, res.output
    assert "transfer: sp_ind" in res.output and "cost of carrying" in res.output


def test_compare_refuses_runs_trained_at_another_horizon(runs, tmp_path):
    """Proxies are matched by width and depth: a run trained 150 steps is not put beside
    one trained the default 300."""
    short = _search(
        tmp_path, "short", {"lr": {"log2_range": [-3, 2]}}, _umup_loss, train={"steps": 150}
    )
    with pytest.raises(UserError) as err:
        load_comparison(runs["umup"], short)
    assert str(err.value) == (
        f"--compare: {runs['umup']} trains at 300 steps × batch 16 but {short} at 150 steps × "
        "batch 16: compare runs with the same training horizon"
    )


def test_compare_refuses_a_run_with_several_horizons(runs, tmp_path):
    from umup_sweep.analysis._compare import compare_runs
    from umup_sweep.analysis._run import RunData, load_run

    sweep = load_sweep(
        {
            "name": "horizons",
            "proxy": {"base": {"head_dim": 16}, "widths": [32, 64], "depths": [1]},
            "hyperparameters": {"lr": {"log2_range": [-3, 2]}},
            "train": {"steps": [150, 300], "batch_size": 16},
            "storage": {"run_dir": str(tmp_path)},
        }
    )
    umup = load_run(runs["umup"])
    several = RunData(
        tmp_path / "horizons", "horizons", "val_loss", ("lr",), 0.25, umup.trials, spec=sweep
    )
    with pytest.raises(UserError) as err:
        compare_runs(umup, several)
    assert str(err.value) == (
        f"--compare: {tmp_path / 'horizons'} trains each proxy at 2 settings (150 steps × batch "
        "16, 300 steps × batch 16): compare runs made at one training horizon and batch size"
    )
