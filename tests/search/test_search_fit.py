"""The sub-grid optimum: exact on quadratics, grid argmin where a parabola cannot be trusted."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from umup_sweep.search import fit_log2_minimum, parabola_vertex


def test_recovers_quadratic_minimum_between_grid_points() -> None:
    xs = [2.0**k for k in range(-3, 2)]
    ys = [3.0 + 0.2 * (math.log2(x) - 0.3) ** 2 for x in xs]
    assert fit_log2_minimum(xs, ys) == pytest.approx(2**0.3, rel=1e-12)


def test_unsorted_and_uneven_grid() -> None:
    logs = [1.5, -2.0, 0.0, -0.5, 3.0]
    ys = [(x + 0.2) ** 2 for x in logs]
    assert math.log2(fit_log2_minimum([2**x for x in logs], ys)) == pytest.approx(-0.2)


@given(
    c=st.floats(-2.49, 0.49),  # argmin strictly inside the grid -3..1
    a=st.floats(0.01, 10.0),
    b=st.floats(-5.0, 5.0),
)
def test_exact_for_any_interior_quadratic(c: float, a: float, b: float) -> None:
    xs = [2.0**k for k in range(-3, 2)]
    ys = [b + a * (math.log2(x) - c) ** 2 for x in xs]
    assert math.log2(fit_log2_minimum(xs, ys)) == pytest.approx(c, abs=1e-6)


def test_edge_argmin_is_not_extrapolated() -> None:
    xs = [0.25, 0.5, 1.0]
    assert fit_log2_minimum(xs, [1.0, 2.0, 3.0]) == 0.25
    assert fit_log2_minimum(xs, [3.0, 2.0, 1.0]) == 1.0


def test_diverged_neighbour_gives_grid_argmin() -> None:
    xs = [0.25, 0.5, 1.0, 2.0]
    assert fit_log2_minimum(xs, [3.0, 2.0, 1.9, math.inf]) == 1.0
    assert fit_log2_minimum(xs, [math.inf, math.inf, math.inf, math.inf]) == 0.25


def test_failed_points_are_skipped() -> None:
    xs = [0.25, 0.5, 1.0, 2.0, 4.0]
    ys = [(math.log2(x) - 0.2) ** 2 for x in xs]
    ys[1] = math.nan  # a failed trial: the fit uses 0.25, 1, 2
    assert math.log2(fit_log2_minimum(xs, ys)) == pytest.approx(0.2)
    with pytest.raises(ValueError):
        fit_log2_minimum(xs, [math.nan] * 5)


def test_vertex_is_clipped_to_neighbours() -> None:
    # a sharp asymmetric V: the parabola's vertex is pulled toward the flatter side but stays
    # within the argmin's neighbours
    xs = [0.5, 1.0, 2.0]
    best = fit_log2_minimum(xs, [10.0, 0.0, 0.01])
    assert 1.0 < best <= 2.0


def test_nonpositive_values_use_grid_argmin() -> None:
    assert fit_log2_minimum([0.0, 0.1, 0.2], [2.0, 1.0, 1.5]) == 0.1


def test_parabola_vertex_rejects_concave() -> None:
    assert parabola_vertex([0, 1, 2], [0, 1, 0]) is None
    assert parabola_vertex([0, 1, 2], [1, 1, 1]) is None


def test_same_estimator_as_the_analysis() -> None:
    """On the same curve the search and the transfer analysis name the same optimum: both are
    `umup_sweep.fitting.log2_optimum` (the analysis fits two grid points either side)."""
    import pandas as pd

    from umup_sweep.analysis import analyze_trials
    from umup_sweep.spec import HP_DEFAULTS

    xs = [-4.0, -3.0, -2.0, -1.0, 0.0, 1.0, 2.0]
    losses = [3.0 + 0.05 * (x + 0.6) ** 2 + 0.02 * abs(x + 0.6) ** 3 for x in xs]
    rows = [
        HP_DEFAULTS
        | {"lr": 2.0**x, "width": w, "depth": 2, "seed": 0, "status": "ok"}
        | {"parametrization": "umup", "val_loss": y}
        for w in (64, 128)
        for x, y in zip(xs, losses, strict=True)
    ]
    res = analyze_trials(pd.DataFrame(rows), ["lr"])["lr"]["umup"]
    found = math.log2(fit_log2_minimum([2.0**x for x in xs], losses, window=2))
    assert res.per_proxy[0].fit_method == "parabola"
    assert res.per_proxy[0].fit_optimum_log2 == pytest.approx(found, abs=1e-12)
    assert found != pytest.approx(-0.6, abs=1e-3)  # not a quadratic: the window matters
