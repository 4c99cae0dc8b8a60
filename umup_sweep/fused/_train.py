"""`run_fused`: train K compatible trials as one stacked model, one result per trial.

Each trial keeps everything that makes it itself: its seed's initialisation (its model is
built under `torch.manual_seed(seed)` exactly as `run_trial` builds it), its own data order
(its own seeded batch generator), its own LR, weight decay and optimizer settings (per-trial
values in the stacked optimizer), and its own divergence: a trial whose loss diverges gets the
curve row `run_trial` would write, is recorded "diverged" and is dropped from the stacks, and
the others go on unchanged (no trial's numbers ever mix with another's). A trial stopped by
its `PruneBound` (`TrialSpec.prune`) leaves the stacks the same way, recorded "pruned".

Timing: `wall_s` is attributed per step, each step's (and each periodic evaluation's) wall
time split evenly among the trials that took part in it, so the K results' `wall_s` add up to
the group's training time and `tokens_per_s` is each trial's share of the fused throughput.
As in `run_trial`, model building and the final evaluation are not counted. `started_at` is the
group's start. `peak_rss_mb` is the group's (one process ran them all).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import cast

import torch
from torch import Tensor

from umup_sweep.device import resolve_device
from umup_sweep.fused._group import check_group
from umup_sweep.fused._optim import StackedOptimizer, clip_grad_norms
from umup_sweep.fused._stack import Batch, FusedStack
from umup_sweep.models import ProxyModel, build_model
from umup_sweep.precision import PrecisionPolicy, make_precision_aware, use_precision
from umup_sweep.spec import TrainSpec, TrialResult, TrialSpec
from umup_sweep.train import (
    TrainLog,
    _eval_due,
    _is_diverged,
    _trial_corpus,
    _trial_result,
    lr_multiplier,
    make_trial_optimizer,
    run_trial,
    train_batches,
)


@dataclass
class _Member:
    """One trial of the group: its spec, model (on the meta device once stacked), batches."""

    spec: TrialSpec
    model: ProxyModel
    batches: Iterator[Batch]
    log: TrainLog = field(default_factory=TrainLog)
    wall_s: float = 0.0


def run_fused(specs: Sequence[TrialSpec]) -> list[TrialResult]:
    """Train compatible trials (`fuse_key`) together; each result as `run_trial` gives it.

    A group of one is `run_trial` itself. Each trial's loss curve and losses equal its run
    alone to float tolerance (the batched matmuls may round differently from the unbatched
    ones; the optimizer step is bit-exact on CPU), and the same group gives the same numbers
    every time.

    Args:
        specs: trials with one `fuse_key` (e.g. different lr, weight decay, optimizer
            settings or seeds of one proxy).

    Returns:
        One `TrialResult` per spec, in order.

    Raises:
        ValueError: the specs cannot be fused (different keys, or `train.compile`).

    Example:
        >>> from umup_sweep.spec import ModelSpec, TrainSpec
        >>> base = TrialSpec(ModelSpec(width=32, depth=1, seq_len=16),
        ...                  TrainSpec(steps=3, batch_size=2, eval_batches=1))
        >>> results = run_fused([base.with_hps(lr=0.5), base.with_hps(lr=2.0)])
        >>> [r.status for r in results]
        ['ok', 'ok']
    """
    check_group(specs)
    if len(specs) == 1:
        return [run_trial(specs[0])]
    train = specs[0].train
    torch.set_num_threads(max(1, int(train.threads)))
    device = resolve_device(train.device)
    policy = PrecisionPolicy(train.precision)
    corpus = _trial_corpus(specs[0])  # one corpus: the data is part of the key
    seq_len = specs[0].model.seq_len
    members, optimizers = [], []
    for spec in specs:
        torch.manual_seed(spec.seed)  # as run_trial: the init draws from the global RNG
        model = cast(ProxyModel, make_precision_aware(build_model(spec.model)).to(device))
        optimizers.append(make_trial_optimizer(model, spec.train))
        generator = torch.Generator().manual_seed(spec.seed)
        batches = train_batches(corpus, train.batch_size, seq_len, generator)
        members.append(_Member(spec, model, batches))
    models = [m.model for m in members]
    stack = FusedStack(models)
    optimizer = StackedOptimizer(stack.params, models, optimizers)
    for model in models[1:]:
        model.to("meta")  # only their sizes are needed now (the stacks hold the weights)
    val_batches = [
        (x.to(device), y.to(device))
        for x, y in corpus.val_batches(train.batch_size, seq_len, train.eval_batches)
    ]
    started_at = time.time()
    active = _train(stack, optimizer, members, train, policy, device, val_batches)
    finals = stack.evaluate(val_batches, policy) if active else []
    val_of = {id(m): v for m, v in zip(active, finals, strict=True)}
    results = []
    for m in members:
        result = _trial_result(m.spec, m.model, m.log, m.wall_s, val_of.get(id(m)))
        results.append(dataclasses.replace(result, started_at=started_at))
    return results


def _train(
    stack: FusedStack,
    optimizer: StackedOptimizer,
    members: list[_Member],
    train: TrainSpec,
    policy: PrecisionPolicy,
    device: torch.device | str,
    val_batches: list[Batch],
) -> list[_Member]:
    """`train_steps` for the whole stack; returns the members still active at the end."""
    active = list(members)
    for step in range(train.steps):
        start = time.perf_counter()
        factor = lr_multiplier(step, train)
        pairs = [next(m.batches) for m in active]
        x = torch.stack([p[0] for p in pairs]).to(device)
        y = torch.stack([p[1] for p in pairs]).to(device)
        with use_precision(policy, device):
            losses = stack.losses(x, y)
        values = losses.detach().tolist()
        keep = [i for i, v in enumerate(values) if not _is_diverged(v, train)]
        vals: Sequence[float | None] = [None] * len(active)
        if keep:
            _update(stack, optimizer, losses, keep, train, factor)
            if _eval_due(step, train):
                vals = stack.evaluate(val_batches, policy)
        share = (time.perf_counter() - start) / len(active)
        for i, m in enumerate(active):
            m.wall_s += share
            m.log.curve.append((step, values[i], vals[i]))
            m.log.diverged = i not in keep
            if not m.log.diverged and m.spec.prune is not None and step + 1 < train.steps:
                m.log.pruned = m.spec.prune.reason(m.log.curve)  # dominated: leaves the stack
        keep = [i for i in keep if active[i].log.pruned is None]
        if len(keep) < len(active):
            optimizer.keep(keep, stack.keep(keep))
            active = [active[i] for i in keep]
        if not active:
            break
    return active


def _update(
    stack: FusedStack,
    optimizer: StackedOptimizer,
    losses: Tensor,
    keep: list[int],
    train: TrainSpec,
    factor: float,
) -> None:
    """Backward of the kept trials' summed loss (each trial's gradient is its own loss's),
    per-trial clipping, one stacked optimizer step. Dropped trials' slices get garbage
    updates that no kept trial ever sees; they leave the stacks right after."""
    optimizer.zero_grad()
    kept = losses if len(keep) == len(losses) else losses[keep]
    kept.sum().backward()
    if train.grad_clip:
        clip_grad_norms(list(stack.params.values()), train.grad_clip)
    optimizer.step(factor)
