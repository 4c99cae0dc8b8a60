"""Optima on an edge of the swept range make the transfer verdict inconclusive, with the
range to add in the reason (`_edges.py`); the drift is still fitted; the new fields are plain
JSON."""

from __future__ import annotations

import dataclasses
import json

import pytest

from umup_sweep.analysis import analyze_trials

from .fabricate import make_trials


def _lr(trials):
    return analyze_trials(trials, ["lr"])["lr"]["umup"]


def test_upper_edge_at_one_proxy_makes_a_drift_inconclusive():
    # 128's optimum (2) lies beyond the range: its best grid point is the top, 2^1
    t = make_trials(widths=(64, 128), grid=range(-3, 2), noise=0.002, centres={128: 2.0})
    res = _lr(t)
    assert res.edges == [
        {
            "proxy": "128x2",
            "width": 128,
            "depth": 2,
            "side": "upper",
            "value": 2.0,
            "log2": 1.0,
            "extend_to": [4.0, 8.0],
            "extend_to_log2": [2.0, 3.0],
        }
    ]
    assert res.verdict == "inconclusive"
    prefix = (
        "the best lr at 128x2 is on the upper edge of the swept range (2^1): extend the range "
        "to 2^2..2^3 and rerun; drift +"
    )
    assert res.reason.startswith(prefix)
    # the drift is still fitted and stored (the joint bowl sees 128's rising side: ≈ +3)
    d = res.drift["width"]
    assert d.slope == pytest.approx(3.0, abs=0.2) and d.verdict == "drifts"


def test_lower_edges_on_a_half_step_grid_share_one_clause():
    grid = [x / 2 for x in range(-6, 3)]  # -3 .. 1 in half steps
    res = _lr(make_trials(widths=(64, 128, 256), grid=grid, c0=-5.0, noise=0.001))
    assert [e["side"] for e in res.edges] == ["lower"] * 3
    assert all(e["extend_to_log2"] == [-3.5, -4.0] for e in res.edges)
    assert res.edges[0]["extend_to"] == [0.0883883, 0.0625]
    assert res.reason.startswith(
        "the best lr at 64x2, 128x2 and 256x2 is on the lower edge of the swept range (2^-3): "
        "extend the range to 2^-4..2^-3.5 and rerun; drift "
    )
    assert res.verdict == "inconclusive"


def test_top_value_is_no_edge_when_the_next_one_up_diverged():
    # the best value is the largest that trained, the ones above it diverged: bracketed
    t = make_trials(widths=(64, 128), c0=1.0, grid=range(-3, 4), diverge_above=1, noise=0.002)
    res = _lr(t)
    assert res.edges == [] and res.verdict == "transfers"


def test_new_fields_are_plain_json():
    t = make_trials(widths=(64, 128, 256), seeds=(0, 1), grid=range(-3, 2), noise=0.005)
    for res in (_lr(t), _lr(make_trials(widths=(64, 128, 256), c0=-4.0, grid=range(-3, 2)))):
        data = json.loads(json.dumps(dataclasses.asdict(res), allow_nan=False))
        assert set(data["regret"]) >= {"cost", "cost_se", "cost_ci", "seed_sd", "judgement"}
        assert set(data["regime"]) == {
            "depth",
            "widths",
            "steps",
            "from_width",
            "too_narrow",
            "drift",
            "drift_shown",
            "sentence",
        }
        assert isinstance(data["edges"], list)


def test_an_edge_off_the_power_of_two_grid_is_named_by_its_value():
    """Values like weight decay 0.03, 0.1, 0.3 are not powers of 2: the reason names the
    values (0.03; extend to 0.009..0.0027 at the same log spacing), not 2^-5.05889."""
    import math

    grid = [math.log2(v) for v in (0.03, 0.1, 0.3, 1.0)]
    res = _lr(make_trials(widths=(64, 128), grid=grid, c0=-8.0, noise=0.001))
    step = math.log2(0.1) - math.log2(0.03)
    assert all(e["side"] == "lower" for e in res.edges)
    low, lower = (0.03 * 2.0 ** (-k * step) for k in (1, 2))
    assert res.edges[0]["extend_to"] == [
        pytest.approx(low, rel=1e-5),
        pytest.approx(lower, rel=1e-5),
    ]
    assert res.reason.startswith(
        f"the best lr at 64x2 and 128x2 is on the lower edge of the swept range (0.03): "
        f"extend the range to {lower:.3g}..{low:.3g} and rerun; drift "
    )
