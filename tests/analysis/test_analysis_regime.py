"""From which width on the optimum transfers (`_regime.py`): the neighbour steps against their
closed form, the regime found on fabricated sweeps whose optimum jumps at the narrow end, and
how often noise alone makes a width look too narrow (rates over simulated datasets)."""

from __future__ import annotations

import math

import pytest

from umup_sweep.analysis import analyze_hp

from .fabricate import make_trials

ISSUE = {64: -1.6, 128: -1.0, 256: -0.96, 512: -1.03}  # +0.6 from 64 to 128, then flat ±0.05


def _lr(trials, n_boot: int = 200):
    res = analyze_hp(trials, "lr", "val_loss", 0.25, n_boot=n_boot)
    assert res is not None
    return res


def test_optimum_that_settles_from_128_on_transfers_from_128():
    res = _lr(make_trials(seeds=(0, 1), noise=0.003, centres=ISSUE))
    reg = res.regime
    assert reg["widths"] == [64, 128, 256, 512] and reg["depth"] == 2
    assert reg["from_width"] == 128 and reg["too_narrow"] == [64]
    first, *rest = reg["steps"]
    assert (first["from"], first["to"], first["verdict"]) == (64, 128, "drifts")
    assert first["slope"] == pytest.approx(0.6, abs=0.05)
    assert all(abs(s["slope"]) < 0.15 and s["verdict"] == "transfers" for s in rest)
    d = reg["drift"]
    assert d["widths"] == [128, 256, 512] and d["verdict"] == "transfers"
    assert abs(d["slope"]) < 0.05 and d["se"] >= d["se_wald"]
    assert d["ci"] == pytest.approx([d["slope"] - 2 * d["se"], d["slope"] + 2 * d["se"]])
    assert reg["sentence"] == (
        f"transfers from width 128 on (drift {d['slope']:+.2f} ± {d['se']:.2f} over 128–512); "
        "width 64 is too narrow"
    )
    # the drift over every width averages the jump away; it is still computed and stored
    assert 0.05 < res.drift["width"].slope < 0.2


def test_clean_transfer_holds_from_the_smallest_width():
    reg = _lr(make_trials(seeds=(0, 1), noise=0.003, c0=-0.6)).regime
    assert (reg["from_width"], reg["too_narrow"], reg["drift"]) == (64, [], None)
    assert reg["sentence"] == "transfers at every width (64–512)"
    assert [s["verdict"] for s in reg["steps"]] == ["transfers"] * 3


def test_drift_at_every_width_has_no_regime():
    reg = _lr(make_trials(widths=(64, 128, 256), noise=0.003, drift=-1.0)).regime
    assert reg["from_width"] is None and reg["too_narrow"] == [] and reg["drift"] is None
    assert reg["sentence"] == "no width range where it transfers"
    assert [s["verdict"] for s in reg["steps"]] == ["drifts", "drifts"]


def test_two_widths_follow_the_main_verdict():
    flat = _lr(make_trials(widths=(64, 128), noise=0.003))
    assert flat.verdict == "transfers"
    assert flat.regime["from_width"] == 64 and len(flat.regime["steps"]) == 1
    moving = _lr(make_trials(widths=(64, 128), noise=0.003, drift=1.0))
    assert moving.verdict == "drifts" and moving.regime["from_width"] is None


def test_steps_are_optimum_differences_per_doubling():
    # widths four apart: each step spans two doublings
    res = _lr(make_trials(widths=(64, 256, 1024), seeds=(0, 1, 2), noise=0.01, drift=0.2))
    a, b, c = res.per_proxy
    for step, (p, q) in zip(res.regime["steps"], [(a, b), (b, c)], strict=True):
        assert (step["from"], step["to"]) == (p.width, q.width)
        assert step["slope"] == pytest.approx((q.fit_optimum_log2 - p.fit_optimum_log2) / 2)
        assert step["se"] == pytest.approx(math.hypot(p.fit_optimum_se, q.fit_optimum_se) / 2)
        assert step["slope"] == pytest.approx(0.2, abs=0.1)


def test_edge_optimum_at_the_narrow_end_makes_that_width_too_narrow():
    trials = make_trials(widths=(64, 128, 256), seeds=(0, 1), noise=0.003, centres={64: -6.5})
    res = _lr(trials)
    assert res.verdict == "inconclusive" and res.reason.startswith("the best lr at 64x2")
    assert [e["proxy"] for e in res.edges] == ["64x2"]
    assert res.regime["from_width"] == 128 and res.regime["too_narrow"] == [64]


def test_regime_follows_the_depth_with_the_most_widths():
    t = make_trials(widths=(64, 128, 256), depths=(2, 4), seeds=(0, 1), noise=0.003)
    t = t[~((t["depth"] == 4) & (t["width"] == 256))]
    res = _lr(t)
    assert res.axes == ["width", "depth"]
    assert res.regime["depth"] == 2 and res.regime["widths"] == [64, 128, 256]
    assert res.regime["from_width"] == 64


def test_noise_alone_never_makes_a_width_too_narrow():
    """No drift, seed noise 0.03 (a tenth of the bowl's depth one step off the optimum): over 12
    datasets the regime never leaves a width out, and it starts at 64 exactly when the main
    verdict transfers (in simulation: 40 of 40, 50 bootstrap replicates as here)."""
    for k in range(12):
        res = _lr(
            make_trials(widths=(64, 128, 256), seeds=(0, 1), noise=0.03, rng_seed=200 + k),
            n_boot=50,
        )
        assert res.regime["too_narrow"] == [], k
        assert (res.regime["from_width"] == 64) == (res.verdict == "transfers"), k


def test_a_jump_at_the_narrow_end_is_found_despite_noise():
    """The issue's optimum on 64–256 with seed noise 0.01: transfers from 128 on in ≥ 8 of 12
    datasets (in simulation: 35 of 40; below 8 of 12 is a 1% event at that rate), and never
    from 64."""
    found = 0
    for k in range(12):
        trials = make_trials(
            widths=(64, 128, 256), seeds=(0, 1), noise=0.01, rng_seed=200 + k, centres=ISSUE
        )
        reg = _lr(trials, n_boot=50).regime
        found += reg["from_width"] == 128
        assert reg["from_width"] != 64
    assert found >= 8


def test_too_little_evidence_is_not_reported_as_no_transfer():
    """Two widths, a flat valley and heavy noise: the drift is inconclusive, so the regime must
    say the transfer is not shown yet, not that it fails."""
    from umup_sweep.analysis._report_hp import holds_from

    weak = _lr(make_trials(widths=(64, 128), seeds=(0, 1), noise=0.05, curvature=0.01))
    assert weak.verdict == "inconclusive"
    assert weak.regime["from_width"] is None and weak.regime["drift_shown"] is False
    assert weak.regime["sentence"] == (
        "no width range shown to transfer yet (inconclusive: add seeds or widths)"
    )
    assert holds_from(weak) == "not shown"
    moving = _lr(make_trials(widths=(64, 128), noise=0.003, drift=1.0))
    assert moving.regime["drift_shown"] is True and holds_from(moving) == "none"
