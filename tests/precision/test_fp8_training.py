"""Unit scaling is what makes a plain FP8 cast work: under fp8_sim a u-μP proxy trains to
almost its fp32 loss, while the SP proxy (tiny weights, tiny gradients: off the FP8 grid's
sweet spot) loses much more. Also: the precision is wired into a trial and its key.

Both go through `run_trial`, the one training loop every trial uses."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest
import torch

from umup_sweep.spec import ModelSpec, TrainSpec, TrialSpec
from umup_sweep.train import run_trial

STEPS, BATCH, SEQ = 60, 16, 64
# Each at its best fp32 LR for width 64: u-μP 2^-1, SP 2^-7.
LRS = {"umup": 2.0**-1, "sp": 2.0**-7}


def val_loss_after_training(parametrization: Any, precision: Any, seed: int = 0) -> float:
    """Train width 64 / depth 2 for STEPS steps under `precision`; mean loss on 4 val batches."""
    model = ModelSpec(width=64, depth=2, seq_len=SEQ, parametrization=parametrization)
    train = TrainSpec(
        steps=STEPS, batch_size=BATCH, eval_batches=4, lr=LRS[parametrization], precision=precision
    )
    result = run_trial(TrialSpec(model, train, seed=seed))
    assert result.status == "ok" and result.val_loss is not None
    return result.val_loss


@pytest.fixture
def restore_threads() -> Iterator[None]:
    """A trial sets torch's threads (to 1 here, as a trial runs); put them back afterwards."""
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.mark.slow
def test_umup_keeps_its_loss_under_fp8_sim_while_sp_degrades(restore_threads: None) -> None:
    loss = {
        (p, prec): val_loss_after_training(p, prec)
        for p in ("umup", "sp")
        for prec in ("fp32", "fp8_sim")
    }
    umup_gap = loss["umup", "fp8_sim"] - loss["umup", "fp32"]
    sp_gap = loss["sp", "fp8_sim"] - loss["sp", "fp32"]
    # Measured here (2-core CPU, torch 2.13), seeds 0 / 1:
    #   u-μP 2.924 -> 2.930 (+0.006) / 2.854 -> 2.864 (+0.010)
    #   SP   2.908 -> 3.382 (+0.475) / 2.977 -> 3.365 (+0.388)
    assert loss["umup", "fp32"] == pytest.approx(2.92, abs=0.1)  # it did train (ln 256 = 5.5)
    assert loss["sp", "fp32"] == pytest.approx(2.91, abs=0.1)
    assert abs(umup_gap) < 0.03
    assert sp_gap > 0.2
    assert sp_gap > 10 * abs(umup_gap)


def test_a_trial_runs_under_its_precision_and_records_it_in_the_key(
    restore_threads: None,
) -> None:
    model = ModelSpec(width=32, depth=1, seq_len=32)
    base = TrainSpec(steps=8, batch_size=4, eval_batches=1, lr=0.5)
    results = {}
    for precision in ("fp32", "fp8_sim", "bf16"):
        spec = TrialSpec(model, dataclasses.replace(base, precision=precision))
        results[precision] = (spec.trial_key, run_trial(spec))
    keys = {key for key, _ in results.values()}
    assert len(keys) == 3
    fp32, fp8, bf16 = (results[p][1] for p in ("fp32", "fp8_sim", "bf16"))
    assert fp32.status == fp8.status == bf16.status == "ok"
    assert fp8.val_loss != fp32.val_loss and bf16.val_loss != fp32.val_loss
    assert fp8.val_loss == pytest.approx(fp32.val_loss, abs=0.05)
    assert bf16.val_loss == pytest.approx(fp32.val_loss, abs=0.05)
