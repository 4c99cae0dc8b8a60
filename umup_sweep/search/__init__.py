"""Search strategies: turn a sweep plus the results so far into the next trials.

Each strategy is a pure function of the results frame (see `BaseStrategy`), so every one of
them resumes after a crash. `make_strategy(sweep)` picks the one the sweep names.

`STRATEGIES` is the one registry of strategy names: the sweep loader checks `strategy:`
against it, and each class declares and validates its own `strategy_options:` (`OPTIONS`,
`parse_options`) and whether it samples ranges with a `budget` (`SAMPLED`).

Example:
    >>> sorted(STRATEGIES), TPEStrategy.SAMPLED, sorted(RandomStrategy.OPTIONS)
    (['bracket', 'grid', 'independent', 'random', 'tpe'], True, ['sampler_seed'])
"""

from umup_sweep.search._base import BaseStrategy
from umup_sweep.search._bracket import BracketStrategy
from umup_sweep.search._factory import STRATEGIES, make_strategy
from umup_sweep.search._fit import fit_log2_minimum, parabola_vertex
from umup_sweep.search._grid import GridStrategy
from umup_sweep.search._independent import IndependentStrategy
from umup_sweep.search._precisions import PerPrecisionStrategy, results_at
from umup_sweep.search._random import RandomStrategy
from umup_sweep.search._tpe import TPEStrategy
from umup_sweep.search._trials import ResultIndex, make_trial

__all__ = [
    "STRATEGIES",
    "BaseStrategy",
    "BracketStrategy",
    "GridStrategy",
    "IndependentStrategy",
    "PerPrecisionStrategy",
    "RandomStrategy",
    "ResultIndex",
    "TPEStrategy",
    "fit_log2_minimum",
    "make_strategy",
    "make_trial",
    "parabola_vertex",
    "results_at",
]
