"""Shared by the Optuna-backed strategies: the search space as Optuna distributions, and the
`sampler_seed` option both take."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import optuna
from optuna.distributions import BaseDistribution, FloatDistribution

if TYPE_CHECKING:
    from umup_sweep.config import OptionContext, SweepSpec

__all__ = ["distributions", "quiet_optuna", "sampler_seed"]


def sampler_seed(options: Mapping[str, Any], ctx: OptionContext) -> int:
    """The `sampler_seed` option: an integer (it seeds Optuna's sampler).

    Example:
        >>> from umup_sweep.config import OptionContext
        >>> sampler_seed({"sampler_seed": 7.0}, OptionContext())
        7
    """
    return int(ctx.number(options["sampler_seed"], "sampler_seed", integer=True))


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
