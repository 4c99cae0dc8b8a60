"""One training trial: schedule, determinism, divergence, reported fields."""

from __future__ import annotations

import math

import pytest

from umup_sweep.spec import ModelSpec, TrainSpec, TrialSpec
from umup_sweep.train import lr_multiplier, run_trial

TINY_MODEL = ModelSpec(width=32, depth=1, seq_len=32)
TINY_TRAIN = TrainSpec(steps=12, batch_size=4, eval_batches=2, final_window=4, lr=0.5)


def test_schedule_warms_up_linearly_then_decays_to_final_fraction() -> None:
    train = TrainSpec(steps=100, warmup_frac=0.1, schedule="cosine", final_lr_frac=0.1)
    factors = [lr_multiplier(s, train) for s in range(100)]
    assert factors[0] == pytest.approx(0.1)
    assert factors[9] == pytest.approx(1.0)
    assert factors[10] == pytest.approx(1.0)
    assert factors[-1] == pytest.approx(0.1)
    assert all(a >= b for a, b in zip(factors[9:], factors[10:], strict=False))
    mid = 10 + (100 - 10 - 1) / 2
    assert lr_multiplier(int(mid), train) == pytest.approx(0.55, abs=0.02)
    assert lr_multiplier(50, TrainSpec(steps=100, schedule="constant")) == 1.0


@pytest.mark.parametrize("parametrization", ["umup", "sp"])
def test_same_spec_and_seed_give_the_same_loss(parametrization: str) -> None:
    model = ModelSpec(width=32, depth=1, seq_len=32, parametrization=parametrization)
    lr = 0.5 if parametrization == "umup" else 3e-3
    spec = TrialSpec(model, TrainSpec(steps=12, batch_size=4, eval_batches=2, lr=lr), seed=3)
    first, second = run_trial(spec), run_trial(spec)
    assert first.status == "ok"
    assert first.val_loss == second.val_loss
    assert first.final_train_loss == second.final_train_loss
    other_seed = run_trial(TrialSpec(spec.model, spec.train, seed=4))
    assert other_seed.val_loss != first.val_loss


def test_result_fields_describe_the_run() -> None:
    spec = TrialSpec(TINY_MODEL, TINY_TRAIN)
    result = run_trial(spec)
    assert result.trial_key == spec.trial_key
    assert result.steps == 12 and len(result.curve) == 12
    assert result.tokens == 12 * 4 * 32
    assert result.final_train_loss == pytest.approx(sum(row[1] for row in result.curve[-4:]) / 4)
    assert result.curve[-1][2] == result.val_loss
    # Training from scratch on bytes starts near ln(256) and must improve.
    assert result.curve[0][1] == pytest.approx(math.log(256), rel=0.15)
    assert result.final_train_loss < result.curve[0][1]
    assert result.n_params > 0 and result.wall_s > 0 and result.tokens_per_s > 0


def test_exploding_learning_rate_is_reported_as_diverged_and_stops_early() -> None:
    spec = TrialSpec(
        TINY_MODEL,
        TrainSpec(
            steps=40, batch_size=4, eval_batches=1, lr=2.0**12, warmup_frac=0.0, diverge_loss=7.0
        ),
    )
    result = run_trial(spec)
    assert result.status == "diverged"
    assert result.steps < 40
    assert result.val_loss is None
    last = result.curve[-1][1]
    assert not math.isfinite(last) or last > 7.0


def test_compile_flag_compiles_the_model_and_changes_the_key(monkeypatch) -> None:
    import torch

    compiled = []

    def fake_compile(model):  # torch.compile on CPU needs minutes of C++ builds: record only
        compiled.append(type(model).__name__)
        return model

    monkeypatch.setattr(torch, "compile", fake_compile)
    plain = TrialSpec(TINY_MODEL, TrainSpec(steps=2, batch_size=2, eval_batches=1))
    with_compile = TrialSpec(
        TINY_MODEL, TrainSpec(steps=2, batch_size=2, eval_batches=1, compile=True)
    )
    assert plain.trial_key != with_compile.trial_key
    run_trial(plain)
    assert compiled == []
    result = run_trial(with_compile)
    assert result.status == "ok" and len(compiled) == 1


def _tiny_model_and_batches(n: int):
    import torch

    from umup_sweep.models import build_model

    torch.manual_seed(0)
    model = build_model(TINY_MODEL)
    gen = torch.Generator().manual_seed(0)
    batches = [(x, x) for x in (torch.randint(0, 256, (2, 32), generator=gen) for _ in range(n))]
    return model, batches


def test_train_steps_follows_the_schedule_and_evaluates_every_eval_every_steps() -> None:
    from umup_sweep.train import make_trial_optimizer, train_steps

    model, batches = _tiny_model_and_batches(6)
    train = TrainSpec(steps=6, lr=0.5, warmup_frac=0.5, eval_every=2)
    optimizer = make_trial_optimizer(model, train)
    base = [group["lr"] for group in optimizer.param_groups]
    log = train_steps(model, optimizer, batches, train, val_batches=batches[:1])
    assert not log.diverged and [row[0] for row in log.curve] == list(range(6))
    # evaluated after steps 2 and 4 (index 1, 3), not after the last (the caller's job)
    assert [row[2] is not None for row in log.curve] == [False, True, False, True, False, False]
    last = lr_multiplier(5, train)
    assert [g["lr"] for g in optimizer.param_groups] == pytest.approx([b * last for b in base])
    # without validation batches there is no periodic evaluation; fewer batches, fewer steps
    model, batches = _tiny_model_and_batches(3)
    log = train_steps(model, make_trial_optimizer(model, train), batches, train)
    assert [row[2] for row in log.curve] == [None, None, None]


def test_train_steps_stops_at_a_diverged_loss_without_updating() -> None:
    import torch

    from umup_sweep.train import make_trial_optimizer, train_steps

    model, batches = _tiny_model_and_batches(4)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    train = TrainSpec(steps=4, lr=0.5, diverge_loss=1.0)  # the first loss (~5.5) is above it
    log = train_steps(model, make_trial_optimizer(model, train), batches, train)
    assert log.diverged and len(log.curve) == 1 and log.curve[0][1] > 1.0
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
