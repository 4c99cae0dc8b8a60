"""`plot`, `recommend`, `report`, `coord-check` from the command line: files, output, errors."""

from __future__ import annotations

import json

import pytest
import yaml
from cli_helpers import cli as main
from typer.testing import CliRunner

from umup_sweep.cli import _register_commands, app

from .fabricate import make_trials

BASE = {"width": 64, "depth": 2, "head_dim": 16, "seq_len": 32}
_register_commands()
runner = CliRunner()


def test_plot_two_runs_side_by_side(run_factory, tmp_path):
    a = run_factory(make_trials(widths=(64, 128), noise=0.003), name="lr_width")
    b = run_factory(
        make_trials(
            widths=(64, 128),
            c0=-4,
            drift=-1.0,
            grid=range(-8, 1),
            noise=0.003,
            parametrization="sp",
        ),
        name="sp_lr_width",
    )
    res = runner.invoke(app, ["plot", str(a), str(b), "--out", str(tmp_path / "figs"), "--no-svg"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "figs" / "lr_lr_width_vs_sp_lr_width.png").exists()
    assert not list((tmp_path / "figs").glob("*.svg"))
    assert "transfers" in res.output and "drifts" in res.output
    for run in (a, b):  # each run's analysis is refreshed
        assert json.loads((run / "transfer.json").read_text())["run"] == run.name


def test_recommend_and_report(run_factory, tmp_path):
    run = run_factory(make_trials(widths=(64, 128), noise=0.003), base=BASE, name="lr_width")
    out = tmp_path / "rec.yaml"
    res = runner.invoke(
        app, ["recommend", str(run), "--width", "512", "--depth", "2", "--out", str(out)]
    )
    assert res.exit_code == 0, res.output
    lr = yaml.safe_load(out.read_text())["hyperparameters"]["lr"]
    assert lr == pytest.approx(0.5, rel=0.05)  # the parabola optimum near the 2^-1 grid best
    assert "blocks.*.attn.qkv.weight" in res.output and f"wrote {out}" in res.output
    res = runner.invoke(app, ["report", str(run)])
    assert res.exit_code == 0, res.output
    assert (run / "report.md").exists() and (run / "plots" / "lr.png").exists()


def test_help_says_what_each_output_is():
    for cmd, words in (
        ("plot", ["transfer.json", "plots/<hp>.png"]),
        ("recommend", ["recommended.yaml", "param_groups", "paste"]),
        ("coord-check", ["coord_check.json", "coord_check_activations.png"]),
        ("report", ["report.md"]),
    ):
        res = runner.invoke(app, [cmd, "--help"], terminal_width=200)
        assert res.exit_code == 0
        text = " ".join(res.output.split())
        for word in words:
            assert word in text, (cmd, word)


def test_run_without_trials_is_one_line_exit_2(tmp_path):
    (tmp_path / "runs" / "x").mkdir(parents=True)
    out = main("plot", str(tmp_path / "runs" / "x"))
    assert out.returncode == 2
    assert out.stderr.strip() == (
        f"error: {tmp_path / 'runs' / 'x'} has no trials yet: run `umup-sweep run "
        "<sweep.yaml>` first"
    )
    assert "Traceback" not in out.stderr


def test_bad_widths_flag_is_a_user_error(tmp_path):
    proxy = tmp_path / "p.yaml"
    proxy.write_text("name: p\nbase: {head_dim: 16}\nwidths: [32, 64]\ndepths: [1]\n")
    out = main("coord-check", str(proxy), "--widths", "32,abc")
    assert out.returncode == 2 and out.stderr.startswith("error: --widths: expected")
    out = main("coord-check", str(proxy), "--widths", "32,40")
    assert out.returncode == 2 and "not a multiple of head_dim 16" in out.stderr
