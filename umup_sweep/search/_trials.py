"""Shared helpers: build a strategy's TrialSpec, and look finished results up by trial key."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

import pandas as pd

from umup_sweep.spec import STOPPED, ModelSpec, TrialSpec

if TYPE_CHECKING:
    from umup_sweep.config import SweepSpec

__all__ = ["ResultIndex", "make_trial", "unstarted"]


def make_trial(
    sweep: SweepSpec,
    model: ModelSpec,
    hps: Mapping[str, float],
    seed: int,
    data_fingerprint: str = "",
    *,
    stage: str,
    hp: str | None = None,
) -> TrialSpec:
    """The trial for `model` at the sweep's defaults overridden by `hps`, with stage labels.

    Args:
        sweep: the sweep (train/data specs and HP defaults come from it).
        model: one proxy of the sweep's family (`sweep.family.specs()`).
        hps: HP values to set; the rest stay at `sweep.defaults`.
        seed: training seed.
        data_fingerprint: corpus fingerprint (part of the trial key).
        stage: label, e.g. "grid", "1-lr", "2-residual_mult", "3-combined", "confirm".
        hp: the HP this trial sweeps (label only).
    """
    values = {**sweep.defaults, **{k: float(v) for k, v in hps.items()}}
    spec = TrialSpec(
        model=model,
        train=sweep.train,
        data=sweep.data,
        seed=seed,
        data_fingerprint=data_fingerprint,
        labels={"stage": stage, "hp": hp},
    )
    return spec.with_hps(**values)


class ResultIndex:
    """Finished trials by key: status and the metric (inf if diverged or pruned, NaN if
    failed). A pruned trial was stopped because it could not end near the best of its proxy
    (`umup_sweep.pruning`): to a search it is a loss as final as a diverged one.

    Args:
        results: the store's trials frame (`trial_key`, `status`, metric column).
        metric: the sweep's metric column.
    """

    def __init__(self, results: pd.DataFrame | None, metric: str) -> None:
        self._loss: dict[str, float] = {}
        if results is None or len(results) == 0:
            return
        has_metric = metric in results.columns
        for row in results.itertuples(index=False):
            key = str(row.trial_key)
            status = getattr(row, "status", "ok")
            if status in STOPPED:
                loss = math.inf
            elif status == "ok" and has_metric:
                value = getattr(row, metric)
                loss = float(value) if value is not None and not pd.isna(value) else math.nan
            else:
                loss = math.nan
            self._loss[key] = loss

    def __contains__(self, key: object) -> bool:
        return key in self._loss

    def __len__(self) -> int:
        return len(self._loss)

    def loss(self, key: str) -> float:
        """The metric of a finished trial: inf when diverged or pruned, NaN when failed or
        unknown."""
        return self._loss.get(key, math.nan)

    def all_done(self, trials: Iterable[TrialSpec]) -> bool:
        """Whether every trial has a result."""
        return all(t.trial_key in self._loss for t in trials)


def unstarted(
    candidates: Iterable[TrialSpec],
    index: ResultIndex,
    pending: Sequence[TrialSpec],
    max_new: int,
) -> list[TrialSpec]:
    """The first `max_new` candidates neither finished nor pending (deduplicated by key)."""
    seen = {t.trial_key for t in pending}
    out: list[TrialSpec] = []
    for trial in candidates:
        if len(out) >= max_new:
            break
        key = trial.trial_key
        if key in seen or key in index:
            continue
        seen.add(key)
        out.append(trial)
    return out
