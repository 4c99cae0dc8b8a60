"""The regret of carrying the narrowest proxy's optimum to the widest: its cost against the
closed form of fabricated bowls, the seed bootstrap's interval (coverage rates over simulated
datasets), the seed noise it is judged against, and the judgement (see `_regret.py`)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from umup_sweep.analysis._drift import FitProxy
from umup_sweep.analysis._regret import carry_cost
from umup_sweep.analysis._transfer import _proxy_optimum, analyze_trials
from umup_sweep.fitting import FIT_WINDOW

from .fabricate import make_trials

CURVATURE = 0.03  # make_trials' default: loss = ... + 0.03·(x − centre)²


def _lr(trials):
    return analyze_trials(trials, ["lr"])["lr"]["umup"]


def _fit_proxy(trials, width: int) -> FitProxy:
    opt, pts, mask = _proxy_optimum(
        width, 2, trials[trials["width"] == width], "lr", "val_loss", FIT_WINDOW
    )
    return FitProxy(opt, pts, mask, [0.0])


def _regret(trials, n_boot: int = 200) -> dict:
    """`carry_cost` from 64 to 128 alone (no joint fit: fast enough for many datasets)."""
    return carry_cost(
        _fit_proxy(trials, 64), _fit_proxy(trials, 128), "val_loss", FIT_WINDOW, n_boot
    )


def test_cost_inside_the_window_is_the_parabola_at_the_carried_value():
    # noise-free bowls at −1 (64) and 0 (128): carrying −1 costs 0.03·1² on the 128 parabola
    t = make_trials(widths=(64, 128), seeds=(0, 1), noise=0.0, centres={64: -1.0, 128: 0.0})
    r = _lr(t).regret
    assert r["carried_log2"] == pytest.approx(-1.0, abs=1e-9)
    assert r["cost_method"] == "parabola"
    assert r["cost"] == pytest.approx(CURVATURE, abs=1e-9)
    assert r["fit"] == pytest.approx(r["cost"], abs=1e-12)  # the old estimate stays
    assert r["grid"] == pytest.approx(CURVATURE, abs=1e-9)
    # identical seeds: every replicate is the estimate; no seed noise, so anything costs
    assert r["replicates"] == 200 and r["cost_se"] == pytest.approx(0.0, abs=1e-9)
    assert r["cost_ci"] == pytest.approx([CURVATURE, CURVATURE], abs=1e-9)
    assert r["seed_sd"] == 0.0 and r["judgement"] == "costly"
    assert r["sentence"] == (
        "carrying the optimum from 64x2 to 128x2 costs 0.030 ± 0.000 val_loss "
        "(seed noise 0.000): costly"
    )


def test_cost_outside_the_window_interpolates_the_seed_means():
    # optimum −0.5 at 64, −4 at 128: −0.5 lies outside 128's window [−5, −2], so the cost is
    # the straight line between its grid points −1 and 0: (0.03·3² + 0.03·4²) / 2 − 0
    t = make_trials(widths=(64, 128), seeds=(0, 1), noise=0.0, centres={64: -0.5, 128: -4.0})
    r = _lr(t).regret
    assert r["carried_log2"] == pytest.approx(-0.5, abs=1e-9)
    assert r["cost_method"] == "interpolation" and "fit" not in r
    assert r["cost"] == pytest.approx(CURVATURE * (9 + 16) / 2, abs=1e-9)
    assert r["cost"] > CURVATURE * 3.5**2  # the chord lies above the bowl


def test_one_seed_gives_no_interval():
    r = _lr(make_trials(widths=(64, 128), seeds=(0,), noise=0.002, drift=0.5)).regret
    assert r["cost"] == pytest.approx(CURVATURE * 0.5**2, abs=0.003)
    assert (r["cost_se"], r["cost_ci"], r["replicates"], r["seed_sd"]) == (None, None, 0, None)
    assert r["judgement"] == "no interval"
    assert r["sentence"].endswith("val_loss (one seed: no interval)")


def test_seed_sd_pools_the_seed_scatter_near_the_largest_proxys_optimum():
    t = make_trials(widths=(64, 128), seeds=(0, 1, 2), noise=0.02, rng_seed=4)
    r = _lr(t).regret
    big = t[t["width"] == 128]
    means = big.groupby("lr")["val_loss"].mean()
    best = math.log2(means.idxmin())
    near = big[(np.log2(big["lr"]) - best).abs() <= 2]  # the fit window: ±2 grid points
    dev = near["val_loss"] - near.groupby("lr")["val_loss"].transform("mean")
    dof = len(near) - near["lr"].nunique()
    assert r["seed_sd"] == pytest.approx(math.sqrt((dev**2).sum() / dof), rel=1e-9)


def test_regret_is_deterministic():
    t = make_trials(widths=(64, 128), seeds=(0, 1, 2), noise=0.02, drift=0.3)
    assert _regret(t) == _regret(t)


def test_interval_covers_the_true_cost_and_a_real_cost_reads_costly():
    """Drift 1 per doubling: carrying costs 0.03 (3 seed-noise sd). Over 30 datasets with 4
    seeds, the ≈95% interval must cover it in ≥ 24 (80%; the simulated rate is ≈93%, at which
    fewer than 24 has probability 0.4%) and every judgement must be `costly`."""
    covered, judged = 0, set()
    for k in range(30):
        t = make_trials(widths=(64, 128), seeds=range(4), noise=0.01, drift=1.0, rng_seed=100 + k)
        r = _regret(t)
        covered += r["cost_ci"][0] <= CURVATURE <= r["cost_ci"][1]
        judged.add(r["judgement"])
        assert r["seed_sd"] == pytest.approx(0.01, rel=0.5)
    assert covered >= 24
    assert judged == {"costly"}


def test_transferring_optimum_reads_negligible():
    """No drift, 4 seeds, seed noise 0.01: the carried optimum is off by its estimation error
    only, so the cost's upper end stays under the seed noise in ≥ 18 of 20 datasets (in
    simulation it did in 40 of 40)."""
    judgements = [
        _regret(make_trials(widths=(64, 128), seeds=range(4), noise=0.01, rng_seed=300 + k))[
            "judgement"
        ]
        for k in range(20)
    ]
    assert judgements.count("negligible") >= 18
    assert "costly" not in judgements
