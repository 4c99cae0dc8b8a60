"""The precision axis: analyses per (parametrization, precision), the fp8_sim-vs-fp32 comparison
(known optimum shift and loss gap recovered, verdicts), plots, recommend and report, and runs
from before the axis (no `precision` column)."""

from __future__ import annotations

import json
import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from umup_sweep.analysis import (
    analyze_run,
    analyze_trials,
    compare_precisions,
    finalize_run,
    load_run,
    plot_runs,
    precision_verdict,
    recommend,
    transfer_figure,
)
from umup_sweep.errors import StoreError

from .fabricate import make_trials

BASE = {"width": 64, "depth": 2, "head_dim": 16, "seq_len": 32}
CURV = 0.03  # make_trials' default curvature: loss per log2² away from the optimum
WIDTHS = (64, 128, 256)


def _two(c0_low=-1.0, offset=0.0, noise=0.005, drift_low=0.0, widths=WIDTHS, **kw):
    """fp32 bowl at log2 lr = −1; fp8_sim bowl at ``c0_low``, ``offset`` higher, own noise."""
    fp32 = make_trials(widths=widths, c0=-1.0, noise=noise, precision="fp32", **kw)
    fp8 = make_trials(
        widths=widths,
        c0=c0_low,
        drift=drift_low,
        noise=noise,
        offset=offset,
        rng_seed=1,
        precision="fp8_sim",
        **kw,
    )
    return pd.concat([fp32, fp8], ignore_index=True)


def _compare(trials, **kw):
    results = analyze_trials(trials, ["lr"])
    return results, compare_precisions(trials, results, **kw).get("lr", "umup", "fp8_sim")


def test_known_shift_and_gap_are_recovered():
    results, c = _compare(_two(c0_low=-0.4, offset=0.02))
    # each precision gets its own analysis; fp32 keeps the plain key
    assert set(results["lr"]) == {"umup", "umup@fp8_sim"}
    assert results["lr"]["umup"].precision == "fp32"
    assert results["lr"]["umup@fp8_sim"].precision == "fp8_sim"
    assert results["lr"]["umup@fp8_sim"].key == "umup@fp8_sim"
    assert [p.width for p in c.per_proxy] == list(WIDTHS)
    for p in c.per_proxy:
        assert p.reference_optimum_log2 == pytest.approx(-1.0, abs=0.1)
        assert p.optimum_log2 == pytest.approx(-0.4, abs=0.1)
        assert p.shift_log2 == pytest.approx(0.6, abs=0.1)
        assert 0 < p.shift_se < 0.1
        assert p.gap == pytest.approx(0.02, abs=0.005)
        # fp8_sim at fp32's optimum: the offset plus the bowl 0.6 log2 away from its centre
        assert p.gap_at_reference_optimum == pytest.approx(0.02 + CURV * 0.6**2, abs=0.006)
        assert p.regret == pytest.approx(CURV * 0.6**2, abs=0.004)
        assert p.verdict == "shifts"
    assert c.shift_log2 == pytest.approx(0.6, abs=0.05)
    assert c.shift_ci[0] > 0.5  # the whole interval is beyond the 0.5 tolerance
    assert c.verdict == "shifts" and "outside ±0.5" in c.reason
    assert c.max_gap == pytest.approx(0.02, abs=0.005)
    # the per-proxy optimum is the transfer analysis's own
    fp8 = results["lr"]["umup@fp8_sim"]
    for p, q in zip(c.per_proxy, fp8.per_proxy, strict=True):
        assert p.optimum_log2 == pytest.approx(q.fit_optimum_log2, abs=1e-9)
    assert fp8.vs_reference["verdict"] == "shifts"
    assert fp8.vs_reference["shift_log2"] == pytest.approx(c.shift_log2)


def test_equal_curves_hold():
    _, same = _compare(
        pd.concat(
            [
                make_trials(widths=WIDTHS, noise=0.005, precision=p, c0=-0.7)
                for p in ("fp32", "fp8_sim")
            ]
        )
    )
    assert same.verdict == "holds"
    assert same.shift_log2 == pytest.approx(0.0, abs=1e-9) and same.max_gap == pytest.approx(0.0)
    _, noisy = _compare(_two(c0_low=-1.0, noise=0.01))  # independent noise, same bowl
    assert noisy.verdict == "holds"
    assert abs(noisy.shift_log2) < 0.15 and abs(noisy.max_gap) < 0.01
    assert "within ±0.5" in noisy.reason


def test_big_loss_gap_degrades():
    _, c = _compare(_two(c0_low=-1.0, offset=0.2))
    assert c.verdict == "degrades"
    assert c.max_gap == pytest.approx(0.2, abs=0.01)
    assert all(p.verdict == "degrades" for p in c.per_proxy)
    assert "exceeds 0.05 at 64x2, 128x2, 256x2" in c.reason
    # the threshold is a setting: 0.3 nats is not exceeded
    _, lenient = _compare(_two(c0_low=-1.0, offset=0.2), loss_threshold=0.3)
    assert lenient.verdict == "holds"


def test_all_diverged_at_low_precision_degrades():
    t = _two()
    low = (t["precision"] == "fp8_sim") & (t["width"] == 256)
    t.loc[low, "status"], t.loc[low, "val_loss"] = "diverged", math.nan
    _, c = _compare(t)
    assert c.verdict == "degrades"
    dead = c.per_proxy[-1]
    assert (dead.width, dead.verdict, dead.optimum_log2, dead.n_diverged) == (
        256,
        "degrades",
        None,
        27,
    )
    assert "every fp8_sim trial diverged or failed at 256x2" in c.reason


def test_drift_stays_within_a_precision_and_disagreeing_proxies_widen_the_error():
    results, c = _compare(_two(c0_low=-1.0, drift_low=-0.5, noise=0.003))
    assert results["lr"]["umup"].verdict == "transfers"
    fp8 = results["lr"]["umup@fp8_sim"]
    assert fp8.verdict == "drifts" and fp8.drift["width"].slope == pytest.approx(-0.5, abs=0.05)
    shifts = [p.shift_log2 for p in c.per_proxy]
    assert shifts == pytest.approx([0.0, -0.5, -1.0], abs=0.1)
    # pooled over proxies that disagree far beyond their errors: the Birge ratio widens it
    naive = 1 / math.sqrt(sum(1 / max(p.shift_se, 0.01) ** 2 for p in c.per_proxy))
    assert c.shift_se > 5 * naive
    assert c.verdict in ("inconclusive", "shifts")


def test_standard_errors_are_calibrated_on_repeats():
    """Same bowl at both precisions: |shift| / se behaves like a standard normal."""
    z = []
    for r in range(6):
        a = make_trials(widths=WIDTHS, noise=0.02, rng_seed=2 * r, precision="fp32")
        b = make_trials(widths=WIDTHS, noise=0.02, rng_seed=2 * r + 1, precision="fp8_sim")
        t = pd.concat([a, b], ignore_index=True)
        c = compare_precisions(t, analyze_trials(t, ["lr"]), n_boot=60).get("lr", "umup", "fp8_sim")
        z += [p.shift_log2 / p.shift_se for p in c.per_proxy]
    assert 0.5 < float(np.std(z)) < 1.6
    assert float(np.mean(np.abs(z) > 3)) < 0.1


def test_precision_verdict_rule():
    assert precision_verdict(0.1, 0.1, [(0.01, 0.005)]) == "holds"
    assert precision_verdict(0.1, 0.25, [(0.01, 0.005)]) == "inconclusive"  # CI straddles 0.5
    assert precision_verdict(-0.9, 0.1, [(0.01, 0.005)]) == "shifts"
    assert precision_verdict(0.0, 0.1, [(0.01, 0.005), (0.07, 0.005)]) == "degrades"
    assert precision_verdict(0.0, 0.1, [(0.045, 0.005)]) == "inconclusive"  # gap CI straddles
    assert precision_verdict(None, None, [(0.0, 0.001)]) == "inconclusive"
    assert precision_verdict(0.0, 0.1, [(0.045, 0.005)], loss_threshold=0.1) == "holds"


def test_transfer_json_has_precision_section_and_settings_from_sweep(run_factory):
    t = _two(c0_low=-1.0, offset=0.03)
    run = run_factory(t, base=BASE, analysis={"precision_loss_threshold": 0.01})
    loaded = load_run(run)
    assert loaded.precisions == ["fp32", "fp8_sim"]
    assert loaded.precision_loss_threshold == 0.01 and loaded.precision_tolerance == 0.5
    analyze_run(run)
    data = json.loads((run / "transfer.json").read_text())
    assert data["precisions"] == ["fp32", "fp8_sim"]
    sec = data["precision"]
    assert (sec["reference"], sec["loss_threshold"], sec["tolerance"]) == ("fp32", 0.01, 0.5)
    c = sec["comparisons"]["lr"]["umup"]["fp8_sim"]
    assert c["verdict"] == "degrades"  # 0.03 nats > the sweep's 0.01
    assert [p["width"] for p in c["per_proxy"]] == list(WIDTHS)
    assert all(p["gap"] == pytest.approx(0.03, abs=0.006) for p in c["per_proxy"])
    assert data["results"]["lr"]["umup@fp8_sim"]["precision"] == "fp8_sim"
    assert data["results"]["lr"]["umup"]["precision"] == "fp32"
    # the argument overrides the sweep
    report = analyze_run(run, write=False, precision_loss_threshold=0.1)
    assert report.precision.get("lr", "umup", "fp8_sim").verdict == "holds"


def test_bad_precision_setting_names_file_and_key(run_factory):
    run = run_factory(_two(), analysis={"precision_tolerance": "wide"})
    # a hand-edited sweep.yaml the config loader refuses: the store's one-line damage error
    with pytest.raises(
        StoreError, match=r"sweep\.yaml is damaged \(analysis\.precision_tolerance: expected a"
    ):
        load_run(run)


def test_runs_without_precision_column_work_as_before(run_factory):
    t = make_trials(widths=(64, 128), noise=0.003)
    assert "precision" not in t.columns
    run = run_factory(t, base=BASE)
    assert (load_run(run).trials["precision"] == "fp32").all()
    report = finalize_run(run)
    assert (
        list(report.results["lr"]) == ["umup"]
        and report.results["lr"]["umup"].verdict == "transfers"
    )
    data = json.loads((run / "transfer.json").read_text())
    assert data["precisions"] == ["fp32"] and data["precision"]["comparisons"] == {}
    assert "## Precision" not in (run / "report.md").read_text()
    # blank cells (a column added half-way through a run) also read as fp32
    t2 = t.assign(precision="")
    t2.loc[t2["seed"] == 0, "precision"] = "fp32"
    run2 = run_factory(t2)
    assert load_run(run2).precisions == ["fp32"]


def test_plot_has_a_panel_per_precision_on_a_shared_axis(run_factory):
    run = run_factory(_two(c0_low=-0.4, offset=0.02), name="prec")
    report = analyze_run(run)
    written = plot_runs([report], formats=("png",))
    assert [p.name for p in written] == ["lr.png"]
    panels = [("prec", r) for r in report.results["lr"].values()]
    fig = transfer_figure(panels, "val_loss")
    top = [ax for ax in fig.axes if ax.get_xlabel().startswith("lr")]
    assert len(top) == 2
    assert "u-μP fp32" in top[0].get_title() and "u-μP fp8_sim" in top[1].get_title()
    assert "vs fp32: shifts (shift +0.6" in top[1].get_title()
    assert top[0].get_ylim() == top[1].get_ylim()
    # fp32's optimum at its widest proxy, dotted, in the fp8_sim panel only
    dotted = [ln for ln in top[1].get_lines() if ln.get_linestyle() == ":"]
    assert len(dotted) == 1 and dotted[0].get_xdata()[0] == pytest.approx(-1.0, abs=0.1)
    assert not [ln for ln in top[0].get_lines() if ln.get_linestyle() == ":"]
    drift_fp8 = fig.axes[3]
    labels = drift_fp8.get_legend_handles_labels()[1]
    assert "optimum per proxy (fp32)" in labels and "optimum per proxy (fp8_sim)" in labels
    plt.close(fig)


def test_recommend_uses_fp32_and_warns_when_fp8_shifts(run_factory):
    run = run_factory(_two(c0_low=1.0, offset=0.01, widths=(64, 128)), base=BASE)
    rec = recommend(run, width=256, depth=2)
    # fp32's optimum (grid best 2^-1, parabola-refined), not fp8_sim's 2.0
    assert rec.evidence["hps"]["lr"]["grid_value"] == 0.5
    assert rec.hyperparameters["lr"] == pytest.approx(0.5, rel=0.05)
    assert rec.source["precision"] == "fp32" and rec.source["seeds"] == 3
    assert rec.evidence["precision"] == "fp32"
    (line,) = rec.evidence["precision_checks"]
    assert line.startswith("lr: the optimum shifts in fp8_sim vs fp32")
    ev = rec.evidence["hps"]["lr"]["precision"]["fp8_sim"]
    assert ev["verdict"] == "shifts" and ev["shift_log2"] == pytest.approx(2.0, abs=0.15)
    warning = next(w for w in rec.warnings if "does NOT hold in fp8_sim" in w)
    assert "shifts by +2.0" in warning and "to about 2" in warning


def test_recommend_says_the_optimum_holds(run_factory):
    run = run_factory(_two(widths=(64, 128)), base=BASE)
    rec = recommend(run, width=256, depth=2)
    (line,) = rec.evidence["precision_checks"]
    assert line.startswith("lr: the optimum holds in fp8_sim vs fp32")
    assert not any("fp8_sim" in w for w in rec.warnings)


def test_report_has_a_precision_table(run_factory):
    run = run_factory(_two(c0_low=-1.0, offset=0.2, widths=(64, 128)), base=BASE, name="p")
    finalize_run(run)
    text = (run / "report.md").read_text()
    assert "## Precision" in text
    assert "| HP | parametrization | precision | shift vs fp32 (log2) |" in text
    row = next(ln for ln in text.splitlines() if ln.startswith("| lr | u-μP | fp8_sim |"))
    assert row.endswith("| **degrades** |") and "+0.2" in row
    assert "### lr — u-μP fp8_sim vs fp32: **degrades**" in text
    assert "| 64×2 | -1.0" in text
    # the verdict table tells the two analyses apart
    assert "| lr | u-μP fp8_sim |" in text and "| lr | u-μP |" in text
