"""report.md's verdict table and "Transfer per HP" tables, and the plot titles: the cost of
carrying an optimum (± se, judged against seed noise), the width from which it holds, and the
edges to extend. The analyses' cost, regime and edge fields are set here explicitly, so the
text is checked against known values."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
import pytest

from umup_sweep.analysis import (
    TransferReport,
    analyze_trials,
    plot_runs,
    transfer_figure,
    write_report,
)

from .fabricate import make_trials

WIDTHS = (64, 128, 256)
EDGE = {
    "proxy": "256x2",
    "width": 256,
    "depth": 2,
    "side": "upper",
    "value": 8.0,
    "log2": 3.0,
    "extend_to": [16.0, 32.0],
    "extend_to_log2": [4.0, 5.0],
}
SENTENCE = (
    "carrying the optimum from 64x2 to 256x2 costs 0.008 ± 0.004 val_loss (seed noise 0.010): "
    "negligible"
)


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> TransferReport:
    """u-μP sweeps lr and residual_mult, SP sweeps lr, at widths 64-256."""
    trials = pd.concat(
        [
            make_trials(widths=WIDTHS, noise=0.003),
            make_trials(
                widths=WIDTHS,
                hp="residual_mult",
                grid=range(-3, 4),
                c0=0.0,
                drift=0.8,
                fixed={"lr": 2.0**-1.5},
                noise=0.003,
                rng_seed=1,
            ),
            make_trials(
                widths=WIDTHS,
                c0=-4,
                drift=-1.0,
                grid=range(-9, 1),
                noise=0.003,
                parametrization="sp",
                rng_seed=2,
            ),
        ]
    )
    results = analyze_trials(trials, ["lr", "residual_mult"])
    lr, rm, sp = results["lr"]["umup"], results["residual_mult"]["umup"], results["lr"]["sp"]
    lr.regret = {
        "from": "64x2",
        "to": "256x2",
        "grid": 0.01,
        "cost": 0.008,
        "cost_se": 0.004,
        "cost_ci": [0.0, 0.016],
        "seed_sd": 0.01,
        "judgement": "negligible",
        "sentence": SENTENCE,
    }
    lr.regime = {"axis": "width", "from_width": 128, "too_narrow": [64], "sentence": "…"}
    lr.edges = []
    rm.regret = {"from": "64x2", "to": "256x2", "grid": 0.0123, "fit": 0.0125}  # no cost
    rm.regime = {}
    rm.edges = [EDGE]
    sp.regret = {"from": "64x2", "to": "256x2", "cost": 0.1234, "judgement": "no interval"}
    sp.regime = {"axis": "width", "from_width": None, "too_narrow": [], "sentence": "…"}
    sp.edges = []
    out = tmp_path_factory.mktemp("run")
    counts = {"total": len(trials), "ok": len(trials), "diverged": 0, "failed": 0}
    return TransferReport("demo", str(out), "val_loss", 0.25, counts, results)


def _optima(res) -> list[str]:
    return [f"{p.fit_optimum_log2:+.2f}" for p in res.per_proxy]


def _drift(res) -> str:
    return f"{res.drift['width'].slope:+.2f} ± {res.drift['width'].se:.2f}"


def test_verdict_table_has_cost_and_holds_from(report):
    text = write_report(report, plots=[]).read_text()
    verdict = text.split("## Verdict", 1)[1].split("\n## ", 1)[0]
    lr, rm, sp = (
        report.get("lr", "umup"),
        report.get("residual_mult", "umup"),
        report.get("lr", "sp"),
    )
    assert (
        "| HP | parametrization | drift per doubling | verdict | cost of carrying (± se) "
        "| holds from |"
    ) in verdict
    assert (
        f"| lr | u-μP | {_drift(lr)} /width×2 | **{lr.verdict}** | +0.0080 ± 0.0040 (negligible) "
        "| width 128 (64 too narrow) |"
    ) in verdict
    assert f"| residual_mult | u-μP | {_drift(rm)} /width×2 | **{rm.verdict}** | 0.0125 | – |" in (
        verdict
    )
    assert (
        f"| lr | SP | {_drift(sp)} /width×2 | **{sp.verdict}** | +0.1234 (no interval) | none |"
        in (verdict)
    )
    assert f"Cost of carrying: {SENTENCE}." in text  # the per-proxy detail keeps the sentence


def test_one_table_per_parametrization_one_row_per_hp(report):
    text = write_report(report, plots=[]).read_text()
    section = text.split("## Transfer per HP", 1)[1].split("\n## ", 1)[0]
    tables = section.split("\n### ")[1:]
    assert [t.splitlines()[0] for t in tables] == ["SP", "u-μP"]  # the analysis's order
    sp_table, umup_table = tables
    head = (
        "| HP | optimum at width 64 (log2) | optimum at width 128 (log2) | optimum at width 256 "
        "(log2) | drift per doubling ± se | verdict | cost of carrying ± se | holds from |"
    )
    umup_rows = [line for line in umup_table.splitlines() if line.startswith("| ")]
    lr, rm = report.get("lr", "umup"), report.get("residual_mult", "umup")
    assert umup_rows == [
        head,
        "| "
        + " | ".join(["lr", *_optima(lr), _drift(lr), f"**{lr.verdict}**"])
        + " | +0.0080 ± 0.0040 (negligible) | width 128 (64 too narrow) |",
        "| "
        + " | ".join(["residual_mult", *_optima(rm)[:2], _optima(rm)[2] + " (edge)"])
        + f" | {_drift(rm)} | **{rm.verdict}** | 0.0125 | – |",
    ]
    assert (
        "- ⚠ residual_mult at 256x2: the best value (2^3) is on the upper edge of the swept "
        "range; extend it to 2^4, 2^5"
    ) in umup_table
    sp = report.get("lr", "sp")
    sp_rows = [line for line in sp_table.splitlines() if line.startswith("| ")]
    assert sp_rows[1] == (
        "| "
        + " | ".join(["lr", *_optima(sp), _drift(sp), f"**{sp.verdict}**"])
        + " | +0.1234 (no interval) | none |"
    )
    assert len(sp_rows) == 2  # SP swept lr only


def test_plot_title_ends_with_the_cost_and_the_edges(report):
    lr, rm = report.get("lr", "umup"), report.get("residual_mult", "umup")
    fig = transfer_figure([("demo", lr)], "val_loss")
    assert fig.axes[0].get_title().splitlines()[-1] == "carry 64→256: +0.008 ± 0.004 (noise 0.010)"
    plt.close(fig)
    fig = transfer_figure([("demo", rm)], "val_loss")
    title = fig.axes[0].get_title().splitlines()
    assert title[-1] == "extend range: upper edge at 256x2"  # no cost of carrying: the edges only
    assert title[0] == f"residual_mult — u-μP (demo): {rm.verdict}"
    plt.close(fig)


def test_each_swept_hp_gets_its_own_figure(report, tmp_path):
    written = plot_runs([report], tmp_path / "plots", formats=("png",))
    assert [p.name for p in written] == ["lr.png", "residual_mult.png"]
    assert all(p.stat().st_size > 10_000 for p in written)
