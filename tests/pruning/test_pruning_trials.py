"""A trial under a `PruneBound`: it stops at the first checkpoint where it is dominated, its
curve is exactly the start of the same trial run in full, and in a fused group the pruned
trial leaves the stack without changing the others (tolerance as in tests/test_fused.py)."""

from __future__ import annotations

import dataclasses
import math

import pytest

from umup_sweep.fused import run_fused
from umup_sweep.spec import ModelSpec, PruneBound, TrainSpec, TrialSpec
from umup_sweep.train import run_trial

REL = 1e-5  # fused matmuls round differently in the last bit (tests/test_fused.py)


def _spec(**train: object) -> TrialSpec:
    settings: dict[str, object] = dict(steps=12, batch_size=2, eval_batches=1, final_window=2)
    settings.update(train)
    return TrialSpec(
        ModelSpec(width=32, depth=1, head_dim=16, seq_len=16),
        TrainSpec(**settings),  # type: ignore[arg-type]
    )


def _stop_at_second_checkpoint(every: int) -> PruneBound:
    """No check at the first checkpoint (infinite margin), any loss above 0 at the second."""
    return PruneBound(every=every, best=(0.0, 0.0, 0.0), margin=(math.inf, 0.0, 0.0))


def test_a_dominated_trial_stops_and_its_curve_is_the_start_of_the_full_one():
    spec = _spec(eval_every=4)
    full = run_trial(spec)
    pruned = run_trial(dataclasses.replace(spec, prune=_stop_at_second_checkpoint(4)))
    assert pruned.trial_key == full.trial_key  # the bound is not part of the trial
    assert pruned.status == "pruned" and full.status == "ok"
    assert pruned.steps == 8 and pruned.tokens == 8 * 2 * 16
    assert pruned.curve == full.curve[:8]  # same machine, same seed: exactly equal
    assert pruned.val_loss is None and pruned.final_train_loss is None
    mean = sum(row[1] for row in full.curve[4:8]) / 4
    assert pruned.note == f"dominated at step 8: loss {mean:.4f} > best 0.0000 + margin 0.0000"


def test_a_trial_within_its_bound_runs_in_full_with_the_same_numbers():
    spec = _spec()
    loose = PruneBound(every=3, best=(10.0, 10.0, 10.0), margin=(0.0, 0.0, 0.0))
    kept, full = run_trial(dataclasses.replace(spec, prune=loose)), run_trial(spec)
    assert kept.status == "ok" and kept.note is None
    assert (kept.curve, kept.val_loss, kept.steps) == (full.curve, full.val_loss, full.steps)


def test_in_a_fused_group_the_pruned_trial_leaves_and_the_others_are_unchanged():
    base = _spec()
    specs = [
        base.with_hps(lr=0.5),
        dataclasses.replace(base.with_hps(lr=2.0), prune=_stop_at_second_checkpoint(3)),
        dataclasses.replace(base, seed=3),
    ]
    fused = run_fused(specs)
    alone = [run_trial(s) for s in specs]
    assert [r.status for r in fused] == ["ok", "pruned", "ok"] == [r.status for r in alone]
    for a, f in zip(alone, fused, strict=True):
        assert (f.steps, f.note is None) == (a.steps, a.note is None)
        assert len(f.curve) == len(a.curve)
        for (s1, t1, v1), (s2, t2, v2) in zip(a.curve, f.curve, strict=True):
            assert s1 == s2 and t2 == pytest.approx(t1, rel=REL) and (v1 is None) == (v2 is None)
        for name in ("val_loss", "final_train_loss"):
            x, y = getattr(a, name), getattr(f, name)
            assert (x is None) == (y is None) and (x is None or y == pytest.approx(x, rel=REL))
    assert fused[1].steps == 6 and fused[1].note is not None
