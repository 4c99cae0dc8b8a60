"""Grouped-query attention in sweep files: `n_kv_heads` reaches every proxy, and a width that
cannot keep it is a one-line error naming the width."""

from __future__ import annotations

import pytest

from umup_sweep.config import load_sweep
from umup_sweep.errors import ConfigError


def _sweep(base: dict, widths: list[int]) -> dict:
    return {
        "name": "gqa",
        "proxy": {"base": base, "widths": widths, "depths": [1]},
        "hyperparameters": {"lr": [0.5, 1.0]},
    }


def test_every_proxy_keeps_the_kv_heads() -> None:
    sweep = load_sweep(_sweep({"head_dim": 16, "n_kv_heads": 2}, [64, 128]))
    assert [(s.n_heads, s.kv_heads) for s in sweep.family.specs()] == [(4, 2), (8, 2)]


def test_a_width_that_cannot_keep_the_kv_heads_is_named() -> None:
    with pytest.raises(ConfigError) as err:
        load_sweep(_sweep({"head_dim": 16, "n_kv_heads": 4}, [64, 96]))
    assert str(err.value) == (
        "<inline>: proxy.widths[1]: width gives 6 heads of head_dim 16, not a multiple of "
        "n_kv_heads 4, got 96 (int)"
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [(0, "expected > 0, got 0 (int)"), ("x", "expected an integer, got 'x' (str)")],
)
def test_bad_kv_heads_values(value: object, expected: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_sweep(_sweep({"head_dim": 16, "n_kv_heads": value}, [64]))
    assert str(err.value) == f"<inline>: proxy.base.n_kv_heads: {expected}"
