"""Warnings for the axes where proxies and target differ untested: one per axis, with both
values, the ratio, and what a factor-2 lr miss costs at the source proxy."""

from __future__ import annotations

from types import SimpleNamespace

from umup_sweep.analysis._axes import untested_axis_warnings
from umup_sweep.spec import ModelSpec

PROXY = ModelSpec(width=64, depth=2, head_dim=16, seq_len=128, vocab_size=256)
TRAIN = {"steps": 200, "batch_size": 16}
TARGET = ModelSpec(width=4096, depth=32, head_dim=128, n_kv_heads=8, seq_len=4096, vocab_size=32000)


def by_axis(warnings: list[str]) -> dict[str, str]:
    return {w.split(":")[0]: w for w in warnings}


def test_every_differing_axis_is_named_with_values_ratio_and_cost() -> None:
    plan = SimpleNamespace(tokens=1_000_000_000_000, batch_size=1024)
    got = by_axis(untested_axis_warnings(PROXY, TRAIN, TARGET, plan, {"width"}, 0.0125))
    assert set(got) == {"sequence length", "vocabulary", "training tokens", "batch size"}
    assert "proxies 128, target 4096 (×32)" in got["sequence length"]
    assert "proxies 256, target 32000" in got["vocabulary"]
    # proxies: 200 steps × 16 sequences × 128 tokens = 409,600 tokens
    assert "proxies 409,600, target 1,000,000,000,000" in got["training tokens"]
    assert "×2.44e+06" in got["training tokens"]
    assert (
        "proxies 16 sequences (2,048 tokens), target 1024 (4,194,304 tokens)" in (got["batch size"])
    )
    for w in got.values():
        assert "an lr off by a factor 2 costs ≈ 0.013 nats at the source proxy" in w


def test_equal_or_measured_axes_say_nothing() -> None:
    same = ModelSpec(width=4096, depth=32, head_dim=128, seq_len=128, vocab_size=256)
    plan = SimpleNamespace(tokens=200 * 16 * 128, batch_size=16)
    assert untested_axis_warnings(PROXY, TRAIN, same, plan, {"width"}, 0.01) == []
    plan = SimpleNamespace(tokens=10**9, batch_size=64)
    measured = {"width", "seq_len", "vocab_size", "tokens", "batch_size"}
    assert untested_axis_warnings(PROXY, TRAIN, TARGET, plan, measured, 0.01) == []


def test_no_plan_is_one_warning_and_no_curvature_is_said() -> None:
    same = ModelSpec(width=4096, depth=32, head_dim=128, seq_len=128, vocab_size=256)
    (only,) = untested_axis_warnings(PROXY, TRAIN, same, None, {"width"}, None)
    assert only.startswith("training plan: the target's tokens and batch size are not given")
    assert "proxies train 409,600 tokens at batch 16" in only
    assert "the sweep has no curvature to price a miss" in only
