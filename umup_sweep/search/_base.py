"""The strategy contract: from a sweep and the results so far, the trials to run next."""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import pandas as pd

from umup_sweep.spec import TrialSpec

if TYPE_CHECKING:  # config asks the strategies for their options: no runtime import back
    from umup_sweep.config import OptionContext, SweepSpec


class BaseStrategy(abc.ABC):
    """Turns a `SweepSpec` plus finished results into the next `TrialSpec`s.

    A strategy is stateless between calls: everything it knows comes from `results` (the
    store's trials frame, same columns as `trials.csv`) and `pending` (trials handed out and
    not yet finished). That is what makes every strategy resume after a crash.

    Args:
        sweep: the validated sweep.
        data_fingerprint: fingerprint of the sweep's corpus, written into every TrialSpec so it
            becomes part of the trial key.
    """

    OPTIONS: ClassVar[Mapping[str, Any]] = {}
    """The `strategy_options` this strategy takes, with their defaults (None: derived from the
    sweep by `parse_options`). A sweep giving any other key is refused."""

    SAMPLED: ClassVar[bool] = False
    """True: draws configurations from each HP's range, `budget` per proxy (the sweep must give
    a budget; ranges are derived from values). False: runs each HP's grid points (values)."""

    @classmethod
    def parse_options(cls, options: dict[str, Any], ctx: OptionContext) -> dict[str, Any]:
        """Validate `options` (every key of `OPTIONS`: the sweep's values over the defaults)
        and resolve derived defaults, so the result is explicit; raise `ctx.fail(...)` on a bad
        value. The base strategy takes them as they are.

        Example:
            >>> from umup_sweep.config import OptionContext
            >>> BaseStrategy.parse_options({}, OptionContext())
            {}
        """
        return dict(options)

    def __init__(self, sweep: SweepSpec, data_fingerprint: str = "") -> None:
        self.sweep = sweep
        self.data_fingerprint = data_fingerprint

    @abc.abstractmethod
    def propose(
        self, results: pd.DataFrame, pending: Sequence[TrialSpec], max_new: int
    ) -> list[TrialSpec]:
        """Up to `max_new` trials to start now, none already in `results` or `pending`.

        An empty list means "nothing to start until something pending finishes"; when
        `pending` is also empty it means the sweep is complete.
        """

    def total_estimate(self, results: pd.DataFrame) -> int:
        """Best guess of the total number of trials (for the progress bar)."""
        return len(results)
