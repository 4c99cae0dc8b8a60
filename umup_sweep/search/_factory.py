"""`make_strategy`: the strategy a sweep names."""

from __future__ import annotations

from typing import TYPE_CHECKING

from umup_sweep.search._base import BaseStrategy
from umup_sweep.search._bracket import BracketStrategy
from umup_sweep.search._grid import GridStrategy
from umup_sweep.search._independent import IndependentStrategy
from umup_sweep.search._precisions import PerPrecisionStrategy
from umup_sweep.search._random import RandomStrategy
from umup_sweep.search._tpe import TPEStrategy

if TYPE_CHECKING:
    from umup_sweep.config import SweepSpec

__all__ = ["STRATEGIES", "make_strategy"]

# The one registry of strategy names: a sweep's `strategy:` is checked against it, and its
# `strategy_options:` against the class's OPTIONS (`BaseStrategy.parse_options`).
STRATEGIES: dict[str, type[BaseStrategy]] = {
    "bracket": BracketStrategy,
    "grid": GridStrategy,
    "independent": IndependentStrategy,
    "random": RandomStrategy,
    "tpe": TPEStrategy,
}


def make_strategy(sweep: SweepSpec, data_fingerprint: str = "") -> BaseStrategy:
    """The strategy `sweep.strategy` names, bound to the sweep and the corpus fingerprint.

    A sweep with several `precisions` or train axes gets that strategy once per precision
    and training setting (`PerPrecisionStrategy`), as each proxy gets it once.

    Example:
        >>> from umup_sweep.config import load_sweep
        >>> proxy = {"base": {"head_dim": 16}, "widths": [32], "depths": [1]}
        >>> sweep = load_sweep({"name": "s", "proxy": proxy, "hyperparameters": {"lr": [1, 2]}})
        >>> type(make_strategy(sweep, "fp")).__name__
        'GridStrategy'
        >>> both = load_sweep({"name": "s", "proxy": proxy, "hyperparameters": {"lr": [1, 2]},
        ...                    "precisions": ["fp32", "bf16"]})
        >>> type(make_strategy(both, "fp")).__name__
        'PerPrecisionStrategy'
    """
    try:
        cls = STRATEGIES[sweep.strategy]
    except KeyError:
        raise ValueError(f"unknown strategy {sweep.strategy!r}") from None
    if len(sweep.precisions) > 1 or sweep.train_axes is not None:  # one per part
        return PerPrecisionStrategy(sweep, data_fingerprint, cls)
    if sweep.train.precision != sweep.precisions[0]:  # a hand-built spec: the axis decides
        sweep = sweep.for_precision(sweep.precisions[0])
    return cls(sweep, data_fingerprint)
