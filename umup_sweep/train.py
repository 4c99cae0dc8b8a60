"""One training trial: build the proxy, train it, report losses, speed and the loss curve.

`run_trial` is a pure function of its `TrialSpec`: the same spec and seed give the same loss
on the same machine (torch threads are set from the spec, every random draw comes from
generators seeded by the spec). Divergence is a result (status "diverged"), not an exception;
real exceptions propagate so the executor can retry them.
"""

from __future__ import annotations

import math
import time
from typing import cast

import torch

from umup_sweep.data import load_corpus
from umup_sweep.device import resolve_device
from umup_sweep.memory import peak_rss_mb
from umup_sweep.models import ProxyModel, build_model, count_params, make_optimizer
from umup_sweep.precision import PrecisionPolicy, make_precision_aware, use_precision
from umup_sweep.spec import TrainSpec, TrialResult, TrialSpec


def lr_multiplier(step: int, train: TrainSpec) -> float:
    """LR factor at `step` (0-based): linear warmup, then cosine/linear decay to final_lr_frac.

    Example:
        >>> t = TrainSpec(steps=100, warmup_frac=0.1, schedule="cosine", final_lr_frac=0.1)
        >>> round(lr_multiplier(9, t), 3), round(lr_multiplier(99, t), 3)
        (1.0, 0.1)
    """
    warmup = int(round(train.warmup_frac * train.steps))
    if step < warmup:
        return (step + 1) / warmup
    if train.schedule == "constant":
        return 1.0
    decay_steps = max(1, train.steps - warmup - 1)
    progress = min(1.0, (step - warmup) / decay_steps)
    if train.schedule == "cosine":
        shape = 0.5 * (1.0 + math.cos(math.pi * progress))
    else:  # linear
        shape = 1.0 - progress
    return train.final_lr_frac + (1.0 - train.final_lr_frac) * shape


def _is_diverged(loss: float, train: TrainSpec) -> bool:
    return not math.isfinite(loss) or loss > train.diverge_loss


@torch.no_grad()
def evaluate(
    model: ProxyModel,
    batches: list[tuple[torch.Tensor, torch.Tensor]],
    policy: PrecisionPolicy | None = None,
) -> float:
    """Mean loss of `model` over fixed validation batches (in the trial's precision)."""
    was_training = model.training
    model.eval()
    total = 0.0
    policy = policy or PrecisionPolicy("fp32")
    for x, y in batches:
        with use_precision(policy, x.device):
            total += float(model.compute_loss(model(x), y))
    model.train(was_training)
    return total / max(1, len(batches))


def run_trial(spec: TrialSpec) -> TrialResult:
    """Train the proxy described by `spec` and report how it did.

    Args:
        spec: model, training, data and seed. `spec.train.threads` sets torch's intra-op threads.

    Returns:
        A `TrialResult` with status "ok" or "diverged", the final train loss (mean of the last
        `final_window` steps), the validation loss, throughput and the loss curve.

    Example:
        >>> from umup_sweep import ModelSpec, TrainSpec, TrialSpec, run_trial
        >>> spec = TrialSpec(ModelSpec(width=32, depth=1, seq_len=32),
        ...                  TrainSpec(steps=5, batch_size=4, eval_batches=1))
        >>> run_trial(spec).status
        'ok'
    """
    train = spec.train
    torch.set_num_threads(max(1, int(train.threads)))
    torch.manual_seed(spec.seed)
    device = resolve_device(train.device)
    policy = PrecisionPolicy(train.precision)
    corpus = load_corpus(spec.data)
    corpus.require(spec.model.seq_len)
    if corpus.vocab_size > spec.model.vocab_size:
        from umup_sweep.errors import DataError

        raise DataError(
            f"corpus {corpus.name} has vocab {corpus.vocab_size} but the model's vocab_size is "
            f"{spec.model.vocab_size}"
        )
    model = cast(ProxyModel, make_precision_aware(build_model(spec.model)).to(device))
    model.train()
    forward = torch.compile(model) if train.compile else model
    optimizer = make_optimizer(
        model,
        lr=train.lr,
        weight_decay=train.weight_decay,
        optimizer=train.optimizer,
        betas=(train.beta1, train.beta2),
        eps=train.eps,
    )
    base_lrs = [group["lr"] for group in optimizer.param_groups]
    generator = torch.Generator().manual_seed(spec.seed)
    seq_len = spec.model.seq_len
    val_batches = [
        (x.to(device), y.to(device))
        for x, y in corpus.val_batches(train.batch_size, seq_len, train.eval_batches)
    ]

    curve: list[tuple[int, float, float | None]] = []
    status = "ok"
    start = time.perf_counter()
    step = 0
    for step in range(train.steps):
        factor = lr_multiplier(step, train)
        for group, base_lr in zip(optimizer.param_groups, base_lrs, strict=True):
            group["lr"] = base_lr * factor
        x, y = corpus.batch("train", train.batch_size, seq_len, generator)
        x, y = x.to(device), y.to(device)
        with use_precision(policy, device):
            loss = model.compute_loss(forward(x), y)
        loss_value = float(loss.detach())
        if _is_diverged(loss_value, train):
            curve.append((step, loss_value, None))
            status = "diverged"
            break
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if train.grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), train.grad_clip)
        optimizer.step()
        val = None
        if train.eval_every and (step + 1) % train.eval_every == 0 and step + 1 < train.steps:
            val = evaluate(model, val_batches, policy)
        curve.append((step, loss_value, val))
    wall_s = time.perf_counter() - start
    steps_done = len(curve)
    tokens = steps_done * train.batch_size * seq_len

    final_train = None
    val_loss = None
    if status == "ok":
        window = [row[1] for row in curve[-max(1, train.final_window) :]]
        final_train = sum(window) / len(window)
        val_loss = evaluate(model, val_batches, policy)
        if _is_diverged(val_loss, train):
            status = "diverged"
        curve[-1] = (curve[-1][0], curve[-1][1], val_loss)
    return TrialResult(
        trial_key=spec.trial_key,
        status=status,  # type: ignore[arg-type]
        final_train_loss=final_train,
        val_loss=val_loss,
        steps=steps_done,
        tokens=tokens,
        wall_s=wall_s,
        tokens_per_s=tokens / wall_s if wall_s > 0 else 0.0,
        n_params=count_params(model),
        peak_rss_mb=peak_rss_mb(),
        curve=curve,
    )
