"""The pruning rule: when is a running trial hopeless? Pure functions of stored loss curves.

A trial is *dominated* at a checkpoint when its loss there is behind the leading stored trial
of the same proxy by more than any stored trial has been seen to catch up from that checkpoint
to the end (times a safety factor). The statistic at checkpoint ``j`` is the mean train loss of
the ``every`` steps that end at step ``(j + 1) * every`` (`window_means`): every stored curve
has it, with or without periodic evaluation.

Why this is calibrated rather than guessed: write ``W_r[j]`` for trial r's window mean at
checkpoint j and ``m_r`` for its final metric. What r still gains from j to the end is
``W_r[j] - m_r`` (any constant offset between train and validation loss cancels below).
A trial x that is ``δ`` behind the leader at j finishes behind it by at least
``δ - (gain_x - gain_leader)``, so if every trial's gain lies in the range the stored trials
span, x cannot finish ahead of the leader once ``δ`` exceeds that range, ``catch_up[j]``
(`catch_up`). That range covers every late crossing among the stored trials (a crossing is a
catch-up larger than the gap it closes). Out-of-range trials are what `margin_factor` is for:
the margin is ``margin_factor × catch_up[j]``.

Example:
    >>> import numpy as np
    >>> refs = [Reference(2.0, np.array([3.0, 2.4])), Reference(2.2, np.array([2.8, 2.5]))]
    >>> catch_up(refs).round(3).tolist()  # the first gains 1.0 then 0.4, the second 0.6, 0.3
    [0.4, 0.1]
    >>> bound = prune_bound(refs, steps=30, every=10, margin_factor=2.0, min_references=2)
    >>> bound.best, tuple(round(m, 3) for m in bound.margin)
    ((2.8, 2.4), (0.8, 0.2))
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from umup_sweep.spec import PruneBound, TrainSpec

__all__ = ["Reference", "catch_up", "checkpoint_every", "prune_bound", "window_means"]


def checkpoint_every(train: TrainSpec, every: int | None) -> int:
    """Steps between pruning checkpoints: `every` when given, else the trial's evaluation
    interval (`train.eval_every`), else a tenth of its steps.

    Example:
        >>> checkpoint_every(TrainSpec(steps=300), None), checkpoint_every(TrainSpec(), 25)
        (30, 25)
    """
    if every:
        return int(every)
    if train.eval_every:
        return int(train.eval_every)
    return max(1, train.steps // 10)


def window_means(train_losses: Sequence[float], every: int) -> np.ndarray:
    """The mean train loss of each whole window of `every` steps (checkpoint j: steps
    ``j * every`` to ``(j + 1) * every - 1``), as `PruneBound.reason` computes it.

    Example:
        >>> window_means([4.0, 3.0, 2.0, 2.0, 1.0], 2).tolist()
        [3.5, 2.0]
    """
    n = len(train_losses) // every
    return np.asarray(train_losses[: n * every], dtype=float).reshape(n, every).mean(axis=1)


@dataclass(frozen=True)
class Reference:
    """One finished trial of a proxy, as the rule sees it: its final metric and its window
    means (one per checkpoint)."""

    final: float
    windows: np.ndarray


def catch_up(refs: Sequence[Reference]) -> np.ndarray:
    """Per checkpoint, the largest amount one stored trial gained on another from there to the
    end: ``max_r (W_r[j] - m_r) - min_r (W_r[j] - m_r)`` (see the module docstring)."""
    gains = np.stack([r.windows - r.final for r in refs])
    return gains.max(axis=0) - gains.min(axis=0)


def prune_bound(
    refs: Sequence[Reference],
    *,
    steps: int,
    every: int,
    margin_factor: float,
    min_references: int,
) -> PruneBound | None:
    """The bound a new trial of the proxy runs under, or None (no check) while fewer than
    `min_references` finished trials of it are stored. Checkpoints before the last step only:
    the last window is the trial's result, not a prediction of it.

    Args:
        refs: the proxy's finished (ok) trials, each with all its window means.
        steps: the trials' planned steps.
        every: steps between checkpoints (`checkpoint_every`).
        margin_factor: the safety factor on the calibrated catch-up.
        min_references: how many finished trials the calibration needs.
    """
    n = (steps - 1) // every  # checkpoints strictly before the last step
    usable = [r for r in refs if len(r.windows) >= n and math.isfinite(r.final)]
    if n < 1 or len(usable) < max(2, min_references):
        return None
    trimmed = [Reference(r.final, r.windows[:n]) for r in usable]
    best = np.stack([r.windows for r in trimmed]).min(axis=0)
    margin = margin_factor * catch_up(trimmed)
    return PruneBound(
        every=every,
        best=tuple(float(v) for v in best),
        margin=tuple(float(v) for v in margin),
    )
