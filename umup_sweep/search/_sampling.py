"""Shared by the Optuna-backed strategies: the search space as Optuna distributions."""

from __future__ import annotations

import optuna
from optuna.distributions import BaseDistribution, FloatDistribution

from umup_sweep.config import SweepSpec

__all__ = ["distributions", "quiet_optuna"]


def distributions(sweep: SweepSpec) -> dict[str, BaseDistribution]:
    """One `FloatDistribution` per swept HP (bounds from min/max or the values' range)."""
    out: dict[str, BaseDistribution] = {}
    for name, space in sweep.hyperparameters.items():
        if space.low is None or space.high is None:
            raise ValueError(f"{name} has no range: load the sweep with a random/tpe strategy")
        out[name] = FloatDistribution(space.low, space.high, log=space.log)
    return out


def quiet_optuna() -> None:
    """Optuna logs every trial at INFO; a strategy rebuilds studies often, so keep it quiet."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
