"""The numerical fits against closed-form answers and against their own sampling distribution."""

from __future__ import annotations

import numpy as np
import pytest

from umup_sweep.analysis import fit_moving_bowl, fit_parabola


def test_parabola_matches_polyfit_and_vertex():
    rng = np.random.default_rng(1)
    x = np.repeat(np.arange(-3.0, 3.0), 3)
    y = 2.0 + 0.1 * (x - 0.37) ** 2 + rng.normal(0, 0.01, len(x))
    fit = fit_parabola(x, y)
    c2, c1, c0 = np.polyfit(x, y, 2)
    assert fit.coef == pytest.approx((c0, c1, c2), rel=1e-8, abs=1e-10)
    assert fit.optimum == pytest.approx(-c1 / (2 * c2), rel=1e-9)
    assert fit.min_value == pytest.approx(fit(fit.optimum), abs=1e-12)
    assert abs(fit.optimum - 0.37) < 3 * fit.optimum_se
    assert fit_parabola(np.array([0.0, 1.0, 0.0]), np.array([1.0, 2.0, 1.0])) is None


def test_parabola_without_minimum_has_nan_optimum():
    x = np.arange(-2.0, 3.0)
    fit = fit_parabola(x, -(x**2))
    assert not fit.convex and np.isnan(fit.optimum)


def test_bowl_recovers_exact_parameters_two_axes():
    xs, ys, ps, us = [], [], [], []
    proxies = [(0, 0), (1, 0), (2, 0), (0, 1), (1, 1)]
    for p, (uw, ud) in enumerate(proxies):
        for x in np.arange(-4.0, 3.0, 0.5):
            xs.append(x)
            ys.append(3.0 - 0.1 * p + 0.04 * (x - (-0.7 + 0.3 * uw - 0.8 * ud)) ** 2)
            ps.append(p)
            us.append([uw, ud])
    fit = fit_moving_bowl(np.array(xs), np.array(ys), np.array(ps), np.array(us))
    assert fit.centre == pytest.approx(-0.7, abs=1e-6)
    assert fit.drift == pytest.approx((0.3, -0.8), abs=1e-6)
    assert fit.curvature == pytest.approx((0.04,) * 5, rel=1e-6)
    assert fit.offsets == pytest.approx([3.0 - 0.1 * p for p in range(5)], abs=1e-6)
    assert fit.optimum_at([2, 1]) == pytest.approx(-0.7 + 0.6 - 0.8, abs=1e-6)


def test_bowl_per_proxy_curvature_and_shared_fallback():
    x = np.tile(np.arange(-3.0, 4.0), 3)
    p = np.repeat(np.arange(3), 7)
    b = np.array([0.01, 0.05, 0.2])[p]  # sharper bowls at larger proxies
    y = 2.0 + b * (x - (0.5 - 0.7 * p)) ** 2
    fit = fit_moving_bowl(x, y, p, p[:, None].astype(float))
    assert fit.curvature == pytest.approx((0.01, 0.05, 0.2), rel=1e-6)
    assert fit.drift[0] == pytest.approx(-0.7, abs=1e-6)
    shared = fit_moving_bowl(x, y, p, p[:, None].astype(float), per_proxy_curvature=False)
    assert len(shared.curvature) == 1
    assert shared.rss > fit.rss + 1e-6  # the misspecified shared model fits worse


def test_bowl_standard_error_is_calibrated():
    """The reported se of the drift matches the spread of the estimate over noise draws."""
    rng = np.random.default_rng(0)
    x = np.tile(np.repeat(np.arange(-3.0, 2.0), 2), 3)
    p = np.repeat(np.arange(3), 10)
    u = p[:, None].astype(float)
    truth = 2.0 + 0.05 * (x - (-1.0 - 0.5 * p)) ** 2
    drifts, ses = [], []
    for _ in range(150):
        fit = fit_moving_bowl(x, truth + rng.normal(0, 0.02, len(x)), p, u)
        drifts.append(fit.drift[0])
        ses.append(fit.drift_se[0])
    assert np.mean(drifts) == pytest.approx(-0.5, abs=0.03)
    assert np.std(drifts) == pytest.approx(np.mean(ses), rel=0.3)


def test_bowl_refuses_too_few_points():
    x = np.array([0.0, 1.0, 2.0])
    assert fit_moving_bowl(x, x**2, np.array([0, 1, 1]), np.array([[0.0], [1.0], [1.0]])) is None
