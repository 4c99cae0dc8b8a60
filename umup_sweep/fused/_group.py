"""Which trials fuse, and how many at once (`execution.fuse: auto | off | K`).

Trials fuse when they differ only in what the stacked model keeps per trial: the seed (init
and data order) and the optimizer's hyperparameters (lr, weight decay and its coupling,
betas, eps). Everything else must be equal: the model spec (shape, depth, parametrization,
and the five u-μP multipliers, which live in the model's code as Python floats and so do not
fuse), steps, batch, schedule, clipping, divergence and evaluation settings, optimizer kind,
precision, device and the data. A `train.compile` trial never fuses, nor does a bf16 one:
under `torch.vmap` torch's autocast does not reach the ops it would cast (attention receives
mixed dtypes), so a fused bf16 trial would not compute what it computes alone. fp32 and
fp8_sim fuse. Fusing never changes a trial's key: the specs are not touched.

`auto` takes K from the crossover `benchmarks/bench_fused.py` measured (recorded in
benchmarks/results/fused.txt, docs/FUSED.md): on CPU (one thread), fused groups of 8 beat the
same trials one by one only while a trial's step is small, width × batch × seq_len up to
`AUTO_MAX_WORK_CPU` (1.17-1.21× there; 0.96-1.03× at twice that, and slower from there up,
e.g. every width at the usual batch 16 × seq 128); groups of 2 never paid. Off the CPU
nothing was measured, so `auto` leaves those trials alone.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from typing import Any, Literal

from umup_sweep.spec import TrialSpec

Fuse = int | Literal["auto", "off"]
# TrainSpec fields a fused group may hold different values of (per-trial in the optimizer);
# `threads` is the executor's, never part of a trial's identity.
PER_TRIAL_TRAIN = ("lr", "weight_decay", "weight_decay_coupled", "beta1", "beta2", "eps", "threads")
# The precisions a fused group computes as the trials alone do (see the module docstring).
FUSED_PRECISIONS = ("fp32", "fp8_sim")
# What `auto` does (see the module docstring): K, and the largest per-step work
# (width × batch × seq_len) it fuses on CPU.
AUTO_K = 8
AUTO_MAX_WORK_CPU = 8192


def fuse_key(spec: TrialSpec) -> str | None:
    """The key trials must share to fuse, or None when `spec` never fuses (compile, bf16).

    Example:
        >>> from umup_sweep.spec import ModelSpec, TrainSpec
        >>> a = TrialSpec(ModelSpec(width=32), TrainSpec(lr=0.5), seed=0)
        >>> fuse_key(a) == fuse_key(a.with_hps(lr=2.0)), fuse_key(a) == fuse_key(a.with_hps(
        ...     attn_softmax_mult=2.0))
        (True, False)
    """
    if spec.train.compile or spec.train.precision not in FUSED_PRECISIONS:
        return None
    train = {
        f.name: getattr(spec.train, f.name)
        for f in dataclasses.fields(spec.train)
        if f.name not in PER_TRIAL_TRAIN
    }
    payload: dict[str, Any] = {
        "model": dataclasses.asdict(spec.model),
        "train": train,
        "data": dataclasses.asdict(spec.data),
        "data_fingerprint": spec.data_fingerprint,
    }
    return json.dumps(payload, sort_keys=True, default=str)


def check_group(specs: Sequence[TrialSpec]) -> None:
    """Raise ValueError unless `specs` is a non-empty group of trials that can fuse."""
    if not specs:
        raise ValueError("a fused group needs at least one trial")
    if len(specs) == 1:
        return
    keys = {fuse_key(s) for s in specs}
    if None in keys or len(keys) != 1:
        raise ValueError(
            "these trials cannot be fused: they differ in more than seed and optimizer "
            "hyperparameters (or use train.compile or bf16)"
        )
    if len({s.trial_key for s in specs}) != len(specs):
        raise ValueError("a fused group holds the same trial twice")


def group_size(fuse: Fuse, spec: TrialSpec) -> int:
    """How many trials like `spec` one fused group holds under `fuse` (1: not fused).

    Example:
        >>> from umup_sweep.spec import ModelSpec, TrainSpec
        >>> small = TrialSpec(ModelSpec(width=64, seq_len=32), TrainSpec(batch_size=4))
        >>> group_size("auto", small), group_size("off", small), group_size(4, small)
        (8, 1, 4)
        >>> group_size("auto", TrialSpec(ModelSpec(width=64), TrainSpec()))  # 16 x 128 tokens
        1
    """
    if fuse == "off" or fuse_key(spec) is None:
        return 1
    if fuse == "auto":
        device = spec.train.device.strip().lower()
        work = spec.model.width * spec.train.batch_size * spec.model.seq_len
        fits = device == "cpu" and work <= AUTO_MAX_WORK_CPU
        return AUTO_K if fits else 1
    return max(1, int(fuse))


def max_group_size(fuse: Fuse) -> int:
    """The largest group `fuse` can make (what a worker slot may hold).

    Example:
        >>> max_group_size("off"), max_group_size("auto"), max_group_size(4)
        (1, 8, 4)
    """
    if fuse == "off":
        return 1
    return AUTO_K if fuse == "auto" else max(1, int(fuse))


def pack(specs: Sequence[TrialSpec], fuse: Fuse) -> list[list[TrialSpec]]:
    """Split `specs` into fused groups (first-come order kept within and across groups).

    Trials with one `fuse_key` fill groups of `group_size` in the order given; a trial that
    cannot fuse is a group of one. Under `off` every trial is its own group.

    Example:
        >>> from umup_sweep.spec import ModelSpec, TrainSpec
        >>> base = TrialSpec(ModelSpec(width=32), TrainSpec())
        >>> specs = [base.with_hps(lr=v) for v in (0.5, 1.0, 2.0)] + [base.with_hps(
        ...     residual_mult=2.0)]
        >>> [len(g) for g in pack(specs, 2)]
        [2, 1, 1]
    """
    groups: list[list[TrialSpec]] = []
    open_group: dict[str, list[TrialSpec]] = {}
    for spec in specs:
        key, size = fuse_key(spec), group_size(fuse, spec)
        if key is None or size == 1:
            groups.append([spec])
            continue
        group = open_group.get(key)
        if group is None or len(group) >= size:
            group = open_group[key] = []
            groups.append(group)
        group.append(spec)
    return groups
