"""One training trial: build the proxy, train it, report losses, speed and the loss curve.

`run_trial` is a pure function of its `TrialSpec`: the same spec and seed give the same loss
on the same machine (torch threads are set from the spec, every random draw comes from
generators seeded by the spec). Divergence is a result (status "diverged"), not an exception;
real exceptions propagate so the executor can retry them.

The loop itself is `train_steps` (schedule, precision, clipping, divergence, periodic
evaluation), which benchmarks and tests drive with models and batches of their own.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import cast

import torch
from torch import Tensor

from umup_sweep.data import Corpus, check_vocab, load_corpus
from umup_sweep.device import resolve_device
from umup_sweep.memory import peak_rss_mb
from umup_sweep.models import ProxyModel, build_model, count_params, make_optimizer
from umup_sweep.precision import PrecisionPolicy, make_precision_aware, use_precision
from umup_sweep.spec import PruneBound, TrainSpec, TrialResult, TrialSpec

Batch = tuple[Tensor, Tensor]
CurveRow = tuple[int, float, float | None]  # (step, train loss, val loss or None)


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
    batches: Sequence[Batch],
    policy: PrecisionPolicy | None = None,
) -> float:
    """Mean loss of `model` over fixed validation batches (in the trial's precision).

    Example:
        >>> from umup_sweep.models import build_model
        >>> from umup_sweep.spec import ModelSpec
        >>> _ = torch.manual_seed(0)
        >>> model = build_model(ModelSpec(width=32, depth=1, seq_len=8))
        >>> ids = torch.randint(0, 256, (2, 8))
        >>> 5.0 < evaluate(model, [(ids, ids)]) < 6.5  # untrained: about ln 256
        True
    """
    was_training = model.training
    model.eval()
    total = 0.0
    policy = policy or PrecisionPolicy("fp32")
    for x, y in batches:
        with use_precision(policy, x.device):
            total += float(model.compute_loss(model(x), y))
    model.train(was_training)
    return total / max(1, len(batches))


def make_trial_optimizer(model: torch.nn.Module, train: TrainSpec) -> torch.optim.Optimizer:
    """The optimizer `train` describes for `model` (its LR, weight decay, betas, eps).

    Example:
        >>> from umup_sweep.models import build_model
        >>> from umup_sweep.spec import ModelSpec
        >>> model = build_model(ModelSpec(width=32, depth=1, parametrization="sp"))
        >>> make_trial_optimizer(model, TrainSpec(lr=0.01)).param_groups[0]["lr"]
        0.01
    """
    coupled = train.weight_decay_coupled  # the decay per step is lr × weight_decay
    return make_optimizer(
        model,
        lr=train.lr,
        weight_decay=train.weight_decay * train.lr if coupled else train.weight_decay,
        optimizer=train.optimizer,
        betas=(train.beta1, train.beta2),
        eps=train.eps,
    )


def train_batches(
    corpus: Corpus, batch_size: int, seq_len: int, generator: torch.Generator
) -> Iterator[Batch]:
    """Endless random training batches of `corpus`, drawn from `generator` one per step.

    Example:
        >>> from umup_sweep.data import load_corpus
        >>> from umup_sweep.spec import DataSpec
        >>> batches = train_batches(load_corpus(DataSpec()), 2, 8, torch.Generator())
        >>> [tuple(t.shape) for t in next(batches)]
        [(2, 8), (2, 8)]
    """
    while True:
        yield corpus.batch("train", batch_size, seq_len, generator)


@dataclass
class TrainLog:
    """What `train_steps` did.

    Attributes:
        curve: one (step, train loss, val loss or None) row per step taken.
        diverged: it stopped at a diverged loss (the last row's step made no update).
        pruned: why it stopped early under its `PruneBound` (None: it did not).
    """

    curve: list[CurveRow] = field(default_factory=list)
    diverged: bool = False
    pruned: str | None = None


def train_steps(
    model: ProxyModel,
    optimizer: torch.optim.Optimizer,
    batches: Iterable[Batch],
    train: TrainSpec,
    *,
    policy: PrecisionPolicy | None = None,
    device: torch.device | str = "cpu",
    forward: Callable[[Tensor], Tensor] | None = None,
    val_batches: Sequence[Batch] | None = None,
    prune: PruneBound | None = None,
) -> TrainLog:
    """Train for `train.steps` steps (fewer if `batches` runs out) and log the loss curve.

    Each step: LR = the optimizer's LR at the call × `lr_multiplier(step, train)`; forward
    and loss under `policy` on `device`; stop (no update) at a diverged loss (NaN/inf or above
    `train.diverge_loss`); backward, gradient clipping (`train.grad_clip`), optimizer step;
    every `train.eval_every` steps (not the last) the loss on `val_batches`, if given; at each
    checkpoint of `prune` (not the last step), stop if the trial is dominated.

    Args:
        model: the proxy (its `compute_loss` gives the loss).
        optimizer: its optimizer, at the base LRs.
        batches: (inputs, targets) per step, moved to `device` here.
        train: steps, schedule, clipping, divergence and evaluation settings.
        policy: the precision the forward passes run in (default fp32).
        device: where the batches go (and where autocast acts).
        forward: what computes the logits (default `model`; e.g. a compiled model).
        val_batches: batches for the periodic evaluation (None: no periodic evaluation).
        prune: the bound under which the trial stops early (`TrialSpec.prune`), or None.

    Example:
        >>> from umup_sweep.models import build_model
        >>> from umup_sweep.spec import ModelSpec
        >>> _ = torch.manual_seed(0)
        >>> model = build_model(ModelSpec(width=32, depth=1, seq_len=8))
        >>> train = TrainSpec(steps=3, lr=0.5)
        >>> ids = torch.randint(0, 256, (4, 8))
        >>> log = train_steps(model, make_trial_optimizer(model, train), [(ids, ids)] * 3, train)
        >>> [row[0] for row in log.curve], log.diverged
        ([0, 1, 2], False)
    """
    policy = policy or PrecisionPolicy("fp32")
    forward = forward or model
    base_lrs = [group["lr"] for group in optimizer.param_groups]
    log = TrainLog()
    for step, (x, y) in zip(range(train.steps), batches, strict=False):
        factor = lr_multiplier(step, train)
        for group, base_lr in zip(optimizer.param_groups, base_lrs, strict=True):
            group["lr"] = base_lr * factor
        x, y = x.to(device), y.to(device)
        with use_precision(policy, device):
            loss = model.compute_loss(forward(x), y)
        loss_value = float(loss.detach())
        if _is_diverged(loss_value, train):
            log.curve.append((step, loss_value, None))
            log.diverged = True
            break
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if train.grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), train.grad_clip)
        optimizer.step()
        val = None
        if val_batches is not None and _eval_due(step, train):
            val = evaluate(model, val_batches, policy)
        log.curve.append((step, loss_value, val))
        if prune is not None and step + 1 < train.steps:
            log.pruned = prune.reason(log.curve)
            if log.pruned is not None:
                break
    return log


def _eval_due(step: int, train: TrainSpec) -> bool:
    """Whether the periodic evaluation runs after `step` (the final one is the caller's)."""
    return bool(train.eval_every) and (step + 1) % train.eval_every == 0 and step + 1 < train.steps


def _trial_corpus(spec: TrialSpec) -> Corpus:
    """The trial's corpus, checked against the model's sequence length and vocabulary."""
    corpus = load_corpus(spec.data)
    corpus.require(spec.model.seq_len)
    check_vocab(corpus, spec.data, spec.model.vocab_size)
    return corpus


def run_trial(spec: TrialSpec) -> TrialResult:
    """Train the proxy described by `spec` and report how it did.

    Args:
        spec: model, training, data and seed. `spec.train.threads` sets torch's intra-op threads.

    Returns:
        A `TrialResult` with status "ok", "diverged" or "pruned" (stopped early under
        `spec.prune`), the final train loss (mean of the last
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
    corpus = _trial_corpus(spec)
    model = cast(ProxyModel, make_precision_aware(build_model(spec.model)).to(device))
    model.train()
    forward = torch.compile(model) if train.compile else model
    optimizer = make_trial_optimizer(model, train)
    seq_len = spec.model.seq_len
    val_batches = [
        (x.to(device), y.to(device))
        for x, y in corpus.val_batches(train.batch_size, seq_len, train.eval_batches)
    ]
    generator = torch.Generator().manual_seed(spec.seed)
    batches = train_batches(corpus, train.batch_size, seq_len, generator)
    start, started_at = time.perf_counter(), time.time()
    log = train_steps(
        model,
        optimizer,
        batches,
        train,
        policy=policy,
        device=device,
        forward=forward,
        val_batches=val_batches,
        prune=spec.prune,
    )
    wall_s = time.perf_counter() - start
    stopped = log.diverged or log.pruned is not None
    val_loss = None if stopped else evaluate(model, val_batches, policy)
    result = _trial_result(spec, model, log, wall_s, val_loss)
    return dataclasses.replace(result, started_at=started_at)


def _trial_result(
    spec: TrialSpec, model: ProxyModel, log: TrainLog, wall_s: float, val_loss: float | None
) -> TrialResult:
    """The `TrialResult` of a finished loop (`val_loss`: the final evaluation, None if the
    loop diverged or was pruned)."""
    train, curve = spec.train, log.curve
    status = "diverged" if log.diverged else "pruned" if log.pruned is not None else "ok"
    final_train = None
    if val_loss is not None:
        window = [row[1] for row in curve[-max(1, train.final_window) :]]
        final_train = sum(window) / len(window)
        if _is_diverged(val_loss, train):
            status = "diverged"
        curve[-1] = (curve[-1][0], curve[-1][1], val_loss)
    tokens = len(curve) * train.batch_size * spec.model.seq_len
    return TrialResult(
        trial_key=spec.trial_key,
        status=status,  # type: ignore[arg-type]
        final_train_loss=final_train,
        val_loss=val_loss,
        steps=len(curve),
        tokens=tokens,
        wall_s=wall_s,
        tokens_per_s=tokens / wall_s if wall_s > 0 else 0.0,
        n_params=count_params(model),
        peak_rss_mb=peak_rss_mb(),
        curve=curve,
        note=log.pruned,
    )
