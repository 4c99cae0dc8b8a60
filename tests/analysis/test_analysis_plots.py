"""Plots: files written, every trial drawn (diverged ones on the top edge), titles and axes."""

from __future__ import annotations

import os
import subprocess
import sys

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.image import imread

from umup_sweep.analysis import analyze_run, analyze_trials, plot_runs, transfer_figure

from .fabricate import make_trials


def _diverged_markers(ax):
    return [ln for ln in ax.get_lines() if ln.get_marker() == "x"]


def test_figure_draws_curves_optima_and_diverged_points():
    t = make_trials(widths=(64, 128, 256), diverge_above=1, noise=0.003)
    res = analyze_trials(t, ["lr"])["lr"]["umup"]
    fig = transfer_figure([("demo", res)], "val_loss")
    curves, drift = fig.axes[0], fig.axes[1]
    solid = [ln for ln in curves.get_lines() if ln.get_linestyle() == "-"]
    assert [ln.get_label() for ln in solid] == ["width 64", "width 128", "width 256"]
    for ln in solid:  # ok points only; the curve never includes diverged x
        assert list(ln.get_xdata()) == list(np.arange(-5.0, 2.0))
    markers = _diverged_markers(curves)
    assert len(markers) == 3
    for ln in markers:
        assert list(ln.get_xdata()) == [2.0, 3.0]
        assert all(y > 0.9 for y in ln.get_ydata())  # axes coordinates: the top edge
    assert "transfers" in curves.get_title() and "lr" in curves.get_title()
    assert "u-μP" in curves.get_title()
    labels = [t.get_text() for t in curves.get_xticklabels()]
    assert "$2^{-1}$" in labels
    optimum_pts = [ln for ln in curves.get_lines() if ln.get_marker() == "o"]
    assert sorted(ln.get_xdata()[0] for ln in optimum_pts) == [-1.0, -1.0, -1.0]
    fit_line = [ln for ln in drift.get_lines() if ln.get_color() == "tab:red"][0]
    assert fit_line.get_ydata()[0] == pytest.approx(res.centre_log2)
    plt.close(fig)


def test_plot_run_writes_png_and_svg(run_factory):
    run = run_factory(make_trials(widths=(64, 128), noise=0.003), name="lr_width")
    written = plot_runs([run])
    assert sorted(p.name for p in written) == ["lr.png", "lr.svg"]
    assert all(p.parent == run / "plots" for p in written)
    img = imread(run / "plots" / "lr.png")
    assert img.shape[0] > 500 and img.shape[1] > 500
    assert "<svg" in (run / "plots" / "lr.svg").read_text()[:500]
    assert (run / "transfer.json").exists()


def test_side_by_side_umup_vs_sp(run_factory, tmp_path):
    umup = run_factory(make_trials(widths=(64, 128, 256), noise=0.003), name="lr_width")
    sp = run_factory(
        make_trials(
            widths=(64, 128, 256),
            c0=-4,
            drift=-1.0,
            grid=range(-9, 1),
            noise=0.003,
            parametrization="sp",
        ),
        name="sp_lr_width",
    )
    report_umup, report_sp = analyze_run(umup), analyze_run(sp)
    written = plot_runs([report_umup, report_sp], out_dir=tmp_path / "cmp", formats=("png",))
    assert [p.name for p in written] == ["lr_lr_width_vs_sp_lr_width.png"]
    fig = transfer_figure(
        [
            ("lr_width", report_umup.results["lr"]["umup"]),
            ("sp_lr_width", report_sp.results["lr"]["sp"]),
        ],
        "val_loss",
    )
    titles = [ax.get_title() for ax in fig.axes]
    assert any("u-μP" in t and "transfers" in t for t in titles)
    assert any("SP" in t and "drifts" in t for t in titles)
    plt.close(fig)


def test_importing_the_analysis_leaves_matplotlib_alone(tmp_path):
    """No import-time side effects: no backend chosen, no pyplot loaded; the figures draw on
    their own Agg canvas, so plotting picks no global backend either (a fresh interpreter)."""
    code = (
        "import sys, matplotlib\n"
        "import umup_sweep.analysis as a\n"
        "assert 'matplotlib.pyplot' not in sys.modules\n"
        "assert matplotlib.rcParams._get_backend_or_none() is None\n"
        "import pandas as pd\n"
        "from umup_sweep.spec import HP_DEFAULTS\n"
        "rows = [HP_DEFAULTS | {'lr': 2.0**x, 'width': w, 'depth': 2, 'seed': 0, 'status': 'ok',\n"
        "        'parametrization': 'umup', 'val_loss': 3 + 0.05 * (x + 1) ** 2}\n"
        "        for w in (64, 128) for x in range(-4, 3)]\n"
        "res = a.analyze_trials(pd.DataFrame(rows), ['lr'])\n"
        "a.transfer_figure([('demo', res['lr']['umup'])], 'val_loss')\n"
        "assert 'matplotlib.pyplot' not in sys.modules\n"
        "assert matplotlib.rcParams._get_backend_or_none() is None\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
    env["MPLCONFIGDIR"] = str(tmp_path)
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
