"""The training axes of a sweep: lists of horizons and batch sizes under `train:`.

``train: {steps: 300, batch_size: 16}`` (scalars) is one training setting, as always. A list
makes it an axis that every proxy runs along, like `widths:`:

* ``steps: [150, 300, 600, 1200]``: each proxy at each horizon (the schedule — warmup
  fraction, cosine decay to `final_lr_frac` — scales with the horizon);
* ``tokens: N`` (or a list) instead of `steps`: the horizon in tokens, run at
  ``steps = N / (batch_size × seq_len)``; with ``batch_size: [8, 16, 32, 64]`` every batch
  size trains on the same tokens (the batch-size axis at fixed tokens);
* ``batch_size: [...]`` needs `tokens` or a list of steps: at one fixed step count the tokens
  would grow with the batch, and the two drifts could not be told apart.

A one-element list is the scalar (same sweep hash, same trial keys).

Example:
    >>> vals, axes = train_axes({"tokens": 10240, "batch_size": [2, 4]}, "s.yaml", 128)
    >>> vals, axes.points(TrainSpec())
    ({'steps': 40, 'batch_size': 2}, [(40, 2), (20, 4)])
    >>> train_axes({"steps": [300], "batch_size": 16}, "s.yaml", 128)
    ({'steps': 300, 'batch_size': 16}, None)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from umup_sweep.config._spec import TrainAxes
from umup_sweep.config._validate import POS, check_keys, fail, int_list, number
from umup_sweep.spec import TrainSpec

__all__ = ["MIN_STEPS", "train_axes"]

# The fewest steps a point of a train axis may have: below it the warmup is a step or two
# and the loss has not left its starting plateau.
MIN_STEPS = 10


def _ints(raw: Any, source: str, key: str) -> list[int]:
    """A positive integer or a non-empty list of distinct ones (integral floats and numeric
    strings accepted, so ``tokens: 6.144e5`` reads)."""
    if isinstance(raw, list | tuple):
        return int_list([_integral(v) for v in raw], source, key, POS, unique=True)
    value = number(_integral(raw), source, key, integer=True)
    if value <= 0:
        raise fail(source, key, "expected > 0", raw)
    return [value]


def _integral(value: Any) -> Any:
    """``'6.144e5'`` → 614400 (PyYAML reads an exponent without a sign as a string); any
    other value as it is (the integer check names it)."""
    if isinstance(value, str):
        try:
            as_float = float(value)
        except ValueError:
            return value
        return int(as_float) if as_float.is_integer() else value
    return value


def train_axes(
    train_raw: Mapping[str, Any], source: str, seq_len: int
) -> tuple[dict[str, int], TrainAxes | None]:
    """Read `steps`, `batch_size` and `tokens` of a sweep's `train:` section.

    Returns:
        (the scalar ``steps`` and ``batch_size`` for the TrainSpec — the first point of the
        axes —, the axes or None when every value is a scalar or a one-element list).

    Raises:
        ConfigError: a bad value, `steps` together with `tokens`, a batch-size list at one
            fixed step count, a token budget that is not a whole number of steps, or (on an
            axis, or from `tokens`) a point with fewer than `MIN_STEPS` steps.
    """
    defaults = TrainSpec()
    names = [f.name for f in dataclasses.fields(TrainSpec)]
    check_keys(train_raw, [*names, "tokens"], source, "train")
    steps = _ints(train_raw["steps"], source, "train.steps") if "steps" in train_raw else None
    tokens = _ints(train_raw["tokens"], source, "train.tokens") if "tokens" in train_raw else None
    batches = (
        _ints(train_raw["batch_size"], source, "train.batch_size")
        if "batch_size" in train_raw
        else [defaults.batch_size]
    )
    if steps is not None and tokens is not None:
        raise fail(source, "train.tokens", "give train.steps or train.tokens, not both")
    if len(batches) > 1 and tokens is None and (steps is None or len(steps) < 2):
        raise fail(
            source,
            "train.batch_size",
            "a list of batch sizes needs train.tokens (each batch size then trains on the same "
            "tokens) or a list of train.steps: at one step count the tokens grow with the batch "
            "and the two cannot be told apart",
            list(batches),
        )
    if tokens is not None:
        _check_tokens(tokens, batches, seq_len, source)
    axes = TrainAxes(
        steps=tuple(steps) if steps is not None and len(steps) > 1 else (),
        tokens=tuple(tokens) if tokens is not None and len(tokens) * len(batches) > 1 else (),
        batch_sizes=tuple(batches) if len(batches) > 1 else (),
        seq_len=seq_len,
    )
    first_steps = (steps or [defaults.steps])[0]
    if tokens is not None:
        first_steps = tokens[0] // (batches[0] * seq_len)
    first = TrainSpec(steps=first_steps, batch_size=batches[0])
    points = axes.points(first)
    for s, b in points if len(points) > 1 or tokens is not None else ():
        if s < MIN_STEPS:
            key = "train.tokens" if tokens is not None else "train.steps"
            raise fail(
                source, key, f"gives {s} steps at batch_size {b}: expected >= {MIN_STEPS}", s
            )
    if len(points) == 1:
        return {"steps": first_steps, "batch_size": batches[0]}, None
    return {"steps": first_steps, "batch_size": batches[0]}, axes


def _check_tokens(tokens: list[int], batches: list[int], seq_len: int, source: str) -> None:
    """Every token budget must be a whole number of steps at every batch size."""
    for i, t in enumerate(tokens):
        for b in batches:
            per_step = b * seq_len
            if t % per_step:
                key = "train.tokens" if len(tokens) == 1 else f"train.tokens.{i}"
                raise fail(
                    source,
                    key,
                    f"expected a multiple of batch_size {b} × seq_len {seq_len} = {per_step} "
                    f"tokens per step (a whole number of steps)",
                    t,
                )
