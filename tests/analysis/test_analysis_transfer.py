"""The analyzer on fabricated sweeps with a known optimum and drift (see fabricate.py)."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from umup_sweep.analysis import analyze_run, analyze_trials, verdict_for
from umup_sweep.errors import UserError

from .fabricate import make_trials


def _lr(trials, **kw):
    return analyze_trials(trials, ["lr"], **kw)["lr"]["umup"]


def test_zero_drift_transfers_and_recovers_optimum():
    res = _lr(make_trials(c0=-0.6, drift=0.0, noise=0.005))
    assert res.verdict == "transfers"
    assert res.axes == ["width"]
    d = res.drift["width"]
    assert abs(d.slope) < 0.05 and d.se < 0.05
    assert res.centre_log2 == pytest.approx(-0.6, abs=0.1)
    # the sub-grid fit finds the off-grid optimum; the grid argmin is the nearest grid point
    for p in res.per_proxy:
        assert p.fit_method == "parabola"
        assert p.fit_optimum_log2 == pytest.approx(-0.6, abs=0.15)
        assert p.grid_optimum_log2 == -1.0 and p.grid_optimum == 0.5
    assert [p.width for p in res.per_proxy] == [64, 128, 256, 512]
    assert res.regret["fit"] < 0.002
    assert "within ±0.25" in res.reason


@pytest.mark.parametrize("drift,c0", [(-1.0, -1.0), (0.5, 0.3)])
def test_known_drift_is_recovered(drift, c0):
    res = _lr(make_trials(c0=c0, drift=drift, noise=0.005))
    d = res.drift["width"]
    assert d.slope == pytest.approx(drift, abs=0.05)
    assert res.verdict == "drifts"
    assert math.copysign(1, d.slope) == math.copysign(1, drift)
    assert res.centre_log2 == pytest.approx(c0, abs=0.1)
    for i, p in enumerate(res.per_proxy):
        assert p.fit_optimum_log2 == pytest.approx(c0 + drift * i, abs=0.15)
    # regret at 512 of the narrowest optimum: on the grid (nearest points), and on the fit
    c_big = c0 + 3 * drift
    g_small, g_big = round(c0), round(c_big)
    grid_regret = 0.03 * ((g_small - c_big) ** 2 - (g_big - c_big) ** 2)
    assert res.regret["grid"] == pytest.approx(grid_regret, abs=0.015)
    if "fit" in res.regret:
        assert res.regret["fit"] == pytest.approx(0.03 * (3 * drift) ** 2, abs=0.015)


@pytest.mark.parametrize("rng_seed", [0, 1, 2])
def test_huge_noise_is_inconclusive(rng_seed):
    res = _lr(make_trials(noise=0.5, rng_seed=rng_seed, drift=-0.2))
    d = res.drift["width"]
    assert d.ci[0] < -0.25 < 0.25 < d.ci[1] or res.verdict == "inconclusive"
    assert res.verdict == "inconclusive"
    assert "straddles" in res.reason or res.drift == {}


def test_diverged_trials_are_counted_and_excluded():
    clean = _lr(make_trials(noise=0.005))
    res = _lr(make_trials(noise=0.005, diverge_above=1))
    # 4 widths x 3 seeds x 2 grid points (x = 2, 3) diverged
    assert res.n_diverged == 24 and clean.n_diverged == 0
    assert res.n_ok == clean.n_ok - 24
    top = res.per_proxy[0].curve[-1]
    assert (top.log2, top.n_diverged, top.n_ok, top.mean) == (3.0, 3, 0, None)
    # divergence is far from the optimum: the fit is unchanged
    assert res.drift["width"].slope == pytest.approx(clean.drift["width"].slope, abs=1e-9)
    assert not any(p.at_edge for p in res.per_proxy)


def test_mostly_diverged_grid_point_cannot_be_the_optimum():
    t = make_trials(widths=(64, 128), seeds=(0, 1, 2), noise=0.0)
    at_best = (t["lr"] == 0.5) & (t["seed"] > 0)
    t.loc[at_best, "status"] = "diverged"
    t.loc[at_best, "val_loss"] = float("nan")
    res = _lr(t)
    for p in res.per_proxy:
        assert p.grid_optimum_log2 in (-2.0, 0.0)
        assert next(c for c in p.curve if c.log2 == -1).n_diverged == 2


def test_depth_sweep_uses_depth_axis():
    same = _lr(make_trials(widths=(64,), depths=(2, 4, 8, 16), noise=0.003))
    assert same.axes == ["depth"] and same.verdict == "transfers"
    moving = _lr(make_trials(widths=(64,), depths=(2, 4, 8, 16), depth_drift=-1.0, noise=0.003))
    assert moving.drift["depth"].slope == pytest.approx(-1.0, abs=0.05)
    assert moving.verdict == "drifts"


def test_single_width_is_inconclusive():
    res = _lr(make_trials(widths=(64,)))
    assert res.verdict == "inconclusive" and res.drift == {}
    assert "≥ 2 widths" in res.reason


def test_optimum_at_grid_edge_is_noted():
    res = _lr(make_trials(c0=-6.0, grid=range(-5, 2), noise=0.001))
    assert all(p.at_edge for p in res.per_proxy)
    assert any("edge of the swept range" in n for n in res.notes)


def test_wider_but_worse_is_flagged():
    t = make_trials(noise=0.0)
    t.loc[t["width"] == 256, "val_loss"] += 0.2
    flags = _lr(t).loss_flags
    assert len(flags) == 1 and "width 128 to 256" in flags[0]


def test_grid_of_two_hps_analyses_each_on_its_best_slice():
    frames = [
        make_trials(
            widths=(64, 128), seeds=(0,), noise=0.0, c0=-1.0, fixed={"residual_mult": 2.0**k}
        )
        for k in (-2, -1, 0, 1)
    ]
    for k, f in zip((-2, -1, 0, 1), frames, strict=True):
        f["val_loss"] += 0.01 * (k + 1) ** 2  # residual_mult optimum at 2^-1
    t = pd.concat(frames, ignore_index=True)
    out = analyze_trials(t, ["lr", "residual_mult"])
    lr, rm = out["lr"]["umup"], out["residual_mult"]["umup"]
    assert all(p.fixed["residual_mult"] == 0.5 for p in lr.per_proxy)
    assert all(p.fixed["lr"] == 0.5 for p in rm.per_proxy)
    assert all(p.grid_optimum_log2 == -1 for p in rm.per_proxy)
    assert lr.verdict == "transfers"


def test_independent_stages_are_split_into_lines():
    stage1 = make_trials(widths=(64, 128), seeds=(0,), noise=0.0, stage="1-lr")
    stage2 = make_trials(
        widths=(64, 128),
        seeds=(0,),
        noise=0.0,
        hp="residual_mult",
        grid=range(-2, 3),
        c0=1.0,
        fixed={"lr": 0.5},
        stage="2-residual_mult",
    )
    confirm = make_trials(
        widths=(64, 128),
        seeds=(0, 1, 2),
        grid=(1,),
        noise=0.0,
        c0=1.0,
        hp="residual_mult",
        fixed={"lr": 0.5},
        stage="3-confirm",
    )
    out = analyze_trials(pd.concat([stage1, stage2, confirm]), ["lr", "residual_mult"])
    assert {p.fixed["residual_mult"] for p in out["lr"]["umup"].per_proxy} == {1.0}
    rm = out["residual_mult"]["umup"]
    assert [p.grid_optimum_log2 for p in rm.per_proxy] == [1.0, 1.0]
    # the confirmed config joins its line: 1 seed from stage 2 + 3 from the confirmation
    assert [next(c for c in p.curve if c.log2 == 1).n_ok for p in rm.per_proxy] == [4, 4]


def test_verdict_rule_boundaries():
    assert verdict_for(0.0, 0.125, 0.25) == "transfers"  # CI exactly ±0.25
    assert verdict_for(0.0, 0.13, 0.25) == "inconclusive"
    assert verdict_for(-0.5, 0.124, 0.25) == "drifts"
    assert verdict_for(0.5, 0.2, 0.25) == "inconclusive"
    assert verdict_for(float("nan"), 0.1, 0.25) == "inconclusive"


def test_transfer_json_round_trip_and_tolerance(run_factory):
    run = run_factory(make_trials(drift=-0.3, noise=0.003, diverge_above=2), tolerance=0.5)
    report = analyze_run(run)
    data = json.loads((run / "transfer.json").read_text())
    assert data["tolerance"] == 0.5
    assert data["counts"] == {"total": 108, "ok": 96, "diverged": 12, "pruned": 0, "failed": 0}
    lr = data["results"]["lr"]["umup"]
    assert lr["verdict"] == "transfers"  # |−0.3| < 0.5 at this tolerance
    assert lr["drift"]["width"]["slope"] == pytest.approx(
        report.results["lr"]["umup"].drift["width"].slope
    )
    assert [p["width"] for p in lr["per_proxy"]] == [64, 128, 256, 512]
    assert lr["per_proxy"][0]["curve"][-1]["mean"] is None  # NaN written as null
    strict = analyze_run(run, tolerance=0.1, write=False)
    assert strict.results["lr"]["umup"].verdict == "drifts"


def test_run_without_trials_is_a_user_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="has no trials yet: run `umup-sweep run"):
        analyze_run(tmp_path / "empty")
    with pytest.raises(UserError, match="not a run directory"):
        analyze_run(tmp_path / "missing")


def test_pure_noise_never_claims_a_drift():
    """Windows centred on noisy argmins make the fit's own se overconfident; the bootstrap of
    the whole procedure must keep a zero-drift, noise-dominated sweep from reading 'drifts'."""
    for rng_seed in range(6):
        res = _lr(make_trials(widths=(64, 128), noise=0.4, rng_seed=rng_seed))
        assert res.verdict == "inconclusive", rng_seed
        d = res.drift["width"]
        assert d.se >= d.se_wald and d.se_bootstrap is not None


def test_bootstrap_se_agrees_with_wald_when_noise_is_small():
    d = _lr(make_trials(noise=0.01)).drift["width"]
    assert d.se_bootstrap == pytest.approx(d.se_wald, rel=0.5)


def test_half_step_grid_in_any_row_order_finds_each_widths_optimum():
    # 2^-9.5 and friends are not exact after rounding: every trial must still land on its own
    # grid point, whatever order the trials were stored in (a real SP run exposed this).
    grid = [x / 2 for x in range(-21, -11)]  # -10.5 .. -6.0 in half steps
    trials = make_trials(
        widths=(32, 64, 128), seeds=(0,), grid=grid, c0=-7.0, drift=-1.0, noise=0.0
    )
    trials = trials.sample(frac=1.0, random_state=3).reset_index(drop=True)
    res = _lr(trials)
    for i, p in enumerate(res.per_proxy):
        assert p.grid_optimum_log2 == pytest.approx(-7.0 - i, abs=1e-6)
        assert p.fit_optimum_log2 == pytest.approx(-7.0 - i, abs=0.05)
    assert res.drift["width"].slope == pytest.approx(-1.0, abs=0.05)
    assert res.verdict == "drifts"


def test_full_sweep_of_the_hp_wins_over_a_short_better_resweep():
    """An independent search sweeps lr at the defaults (stage 1, 9 values), then re-sweeps it at
    3 values with the adopted HPs (stage 3, a lower loss). The analysis must use the stage-1
    line: 3 points around a best value say little about where the optimum moves."""
    stage1 = make_trials(widths=(64, 128), seeds=(0,), noise=0.0, stage="1-lr")
    stage3 = make_trials(
        widths=(64, 128),
        seeds=(0,),
        grid=(-2, -1, 0),
        noise=0.0,
        offset=-0.05,
        fixed={"residual_mult": 2.0},
        stage="3-lr-resweep",
    )
    res = _lr(pd.concat([stage1, stage3], ignore_index=True))
    assert all(p.fixed["residual_mult"] == 1.0 for p in res.per_proxy)
    assert all(len(p.curve) == 9 for p in res.per_proxy)
    assert [p.grid_optimum_log2 for p in res.per_proxy] == [-1.0, -1.0]
