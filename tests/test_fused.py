"""Fused trials (`umup_sweep.fused`): each trial of a fused group gets the curve, losses and
result it gets alone, a diverging trial is recorded diverged without disturbing the others,
the stacked optimizer step is torch's own, and only compatible trials fuse.

Tolerance: the fused forward batches every matmul over the trials (bmm instead of mm), which
may round differently in the last bit; over these few steps that stays below 1e-5 relative in
every loss (measured: ~1e-7). Everything else (status, steps, tokens, sizes, keys) is exact.
"""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from torch.func import stack_module_state

from umup_sweep.fused import fuse_key, group_size, max_group_size, pack, run_fused
from umup_sweep.fused._optim import StackedOptimizer
from umup_sweep.models import build_model
from umup_sweep.spec import ModelSpec, TrainSpec, TrialResult, TrialSpec
from umup_sweep.train import make_trial_optimizer, run_trial

REL = 1e-5  # see the module docstring


def _base(**train: object) -> TrialSpec:
    settings: dict[str, object] = dict(
        steps=6, batch_size=2, eval_batches=1, eval_every=2, final_window=2, warmup_frac=0.34
    )
    settings.update(train)
    return TrialSpec(
        ModelSpec(width=32, depth=1, head_dim=16, seq_len=16),
        TrainSpec(**settings),  # type: ignore[arg-type]
    )


def _assert_same(alone: TrialResult, fused: TrialResult) -> None:
    assert fused.trial_key == alone.trial_key
    assert fused.status == alone.status
    assert (fused.steps, fused.tokens, fused.n_params) == (
        alone.steps,
        alone.tokens,
        alone.n_params,
    )
    assert len(fused.curve) == len(alone.curve)
    for (s1, train1, val1), (s2, train2, val2) in zip(alone.curve, fused.curve, strict=True):
        assert s1 == s2
        assert train2 == pytest.approx(train1, rel=REL)
        assert (val1 is None) == (val2 is None)
        if val1 is not None:
            assert val2 == pytest.approx(val1, rel=REL)
    for name in ("final_train_loss", "val_loss"):
        a, f = getattr(alone, name), getattr(fused, name)
        assert (a is None) == (f is None)
        if a is not None:
            assert f == pytest.approx(a, rel=REL)


@pytest.mark.parametrize(
    ("train", "lr"),
    [
        ({"grad_clip": 1.0, "weight_decay": 0.1}, 1.0),
        ({"optimizer": "sgd", "schedule": "linear"}, 0.05),
    ],
    ids=["adamw-clip-wd", "sgd"],
)
def test_fused_group_matches_each_trial_alone(train, lr):
    base = _base(**train)
    specs = [
        base.with_hps(lr=0.5 * lr),
        dataclasses.replace(base.with_hps(lr=2.0 * lr), seed=1),
        dataclasses.replace(base.with_hps(lr=lr, weight_decay=0.0), seed=2),
    ]
    fused = run_fused(specs)
    assert len(fused) == 3
    for spec, result in zip(specs, fused, strict=True):
        assert result.status == "ok"
        _assert_same(run_trial(spec), result)
    # the trials really differ (different lr and seed), so matching is not trivial
    assert len({round(r.val_loss or 0.0, 6) for r in fused}) == 3
    # honest time: each trial's share of the group's steps, adding up to the group's time
    assert all(r.wall_s > 0 and r.tokens_per_s > 0 for r in fused)


def test_sp_trials_fuse_too():
    base = dataclasses.replace(
        _base(), model=dataclasses.replace(_base().model, parametrization="sp")
    )
    specs = [base.with_hps(lr=0.01), dataclasses.replace(base.with_hps(lr=0.003), seed=4)]
    for spec, result in zip(specs, run_fused(specs), strict=True):
        _assert_same(run_trial(spec), result)


@pytest.mark.parametrize("parametrization", ["umup", "sp"])
def test_fp8_sim_trials_fuse_to_fp8_tolerance(parametrization):
    # fp8 rounding turns a last-bit difference into one fp8 step now and then: the curves
    # agree to fp8's resolution, not fp32's
    model = dataclasses.replace(_base().model, parametrization=parametrization)
    base = dataclasses.replace(_base(precision="fp8_sim", steps=4), model=model)
    lr = 1.0 if parametrization == "umup" else 0.01
    specs = [base.with_hps(lr=lr), dataclasses.replace(base.with_hps(lr=2 * lr), seed=1)]
    for spec, fused in zip(specs, run_fused(specs), strict=True):
        alone = run_trial(spec)
        assert fused.status == alone.status == "ok"
        for a, f in zip(alone.curve, fused.curve, strict=True):
            assert f[1] == pytest.approx(a[1], rel=1e-2)
        assert fused.val_loss == pytest.approx(alone.val_loss, rel=1e-2)


def test_a_diverging_trial_is_recorded_and_leaves_the_others_alone():
    base = _base(warmup_frac=0.0, eval_every=0)
    specs = [base.with_hps(lr=1.0), base.with_hps(lr=1e5), dataclasses.replace(base, seed=3)]
    fused = run_fused(specs)
    alone = [run_trial(s) for s in specs]
    assert [r.status for r in fused] == ["ok", "diverged", "ok"]
    for a, f in zip(alone, fused, strict=True):
        _assert_same(a, f)
    diverged = fused[1]
    assert diverged.val_loss is None and diverged.final_train_loss is None
    assert diverged.steps < base.train.steps and diverged.curve[-1][2] is None


def test_the_same_group_gives_the_same_numbers():
    base = _base(steps=3)
    specs = [base.with_hps(lr=0.5), dataclasses.replace(base, seed=1)]
    first, second = run_fused(specs), run_fused(specs)
    assert [r.curve for r in first] == [r.curve for r in second]


@pytest.mark.parametrize(
    ("optimizer", "parametrization"), [("adamw", "umup"), ("sgd", "umup"), ("adamw", "sp")]
)
def test_stacked_optimizer_step_is_torchs_bit_for_bit(optimizer, parametrization):
    trains = [
        TrainSpec(lr=0.3 * (k + 1), weight_decay=0.1 * k, optimizer=optimizer, beta1=0.9 - 0.1 * k)
        for k in range(3)
    ]
    models = []
    for k in range(3):
        torch.manual_seed(k)
        models.append(build_model(ModelSpec(width=32, depth=1, parametrization=parametrization)))
    optimizers = [make_trial_optimizer(m, t) for m, t in zip(models, trains, strict=True)]
    params, _ = stack_module_state(models)
    stacked = StackedOptimizer(params, models, optimizers)
    base_lrs = [[g["lr"] for g in opt.param_groups] for opt in optimizers]
    for step, factor in enumerate((0.5, 1.0, 0.7)):
        torch.manual_seed(100 + step)
        grads = {n: torch.randn_like(p) for n, p in params.items()}
        for name, p in params.items():
            p.grad = grads[name].clone()
        stacked.step(factor)
        for k, (model, opt) in enumerate(zip(models, optimizers, strict=True)):
            for name, p in model.named_parameters():
                p.grad = grads[name][k].clone()
            for group, lr in zip(opt.param_groups, base_lrs[k], strict=True):
                group["lr"] = lr * factor
            opt.step()
    for k, model in enumerate(models):
        for name, p in model.named_parameters():
            assert torch.equal(params[name].detach()[k], p.detach()), name


def test_only_trials_differing_in_seed_and_optimizer_hps_fuse():
    base = _base()
    assert fuse_key(base) == fuse_key(dataclasses.replace(base, seed=7))
    assert fuse_key(base) == fuse_key(base.with_hps(lr=3.0, weight_decay=0.2))
    hps = dataclasses.replace(base.train, beta1=0.8, eps=1e-6, threads=2)
    assert fuse_key(base) == fuse_key(dataclasses.replace(base, train=hps))
    # multipliers are Python floats in the model's code: they do not fuse
    assert fuse_key(base) != fuse_key(base.with_hps(attn_softmax_mult=2.0))
    for change in ({"steps": 7}, {"batch_size": 4}, {"precision": "fp8_sim"}, {"optimizer": "sgd"}):
        other = dataclasses.replace(base, train=dataclasses.replace(base.train, **change))
        assert fuse_key(base) != fuse_key(other)
    compiled = dataclasses.replace(base, train=dataclasses.replace(base.train, compile=True))
    assert fuse_key(compiled) is None and group_size(8, compiled) == 1
    bf16 = dataclasses.replace(base, train=dataclasses.replace(base.train, precision="bf16"))
    assert fuse_key(bf16) is None  # autocast does not act under vmap
    with pytest.raises(ValueError, match="cannot be fused"):
        run_fused([base, base.with_hps(residual_mult=2.0)])
    # fusing never touches a trial's key
    assert [s.trial_key for g in pack([base, dataclasses.replace(base, seed=1)], 2) for s in g] == [
        base.trial_key,
        dataclasses.replace(base, seed=1).trial_key,
    ]


def test_pack_and_auto():
    base = _base()
    lrs = [base.with_hps(lr=2.0**i) for i in range(5)]
    other = base.with_hps(ffn_act_mult=2.0)
    groups = pack([lrs[0], other, *lrs[1:]], 2)
    assert [[s.train.lr for s in g] for g in groups] == [[1.0, 2.0], [1.0], [4.0, 8.0], [16.0]]
    assert [len(g) for g in pack(lrs, "off")] == [1] * 5
    wide = dataclasses.replace(base, model=dataclasses.replace(base.model, width=1024))
    gpu = dataclasses.replace(base, train=dataclasses.replace(base.train, device="cuda"))
    assert group_size("auto", base) > 1
    assert group_size("auto", wide) == 1 and group_size("auto", gpu) == 1
    assert max_group_size("auto") >= group_size("auto", base) and max_group_size(3) == 3
    assert math.isfinite(group_size(1, base))
