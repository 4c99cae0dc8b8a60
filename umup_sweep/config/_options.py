"""A sweep's `strategy` and `strategy_options`, as the strategies in `umup_sweep.search` declare.

The names come from `umup_sweep.search.STRATEGIES`; each strategy class declares its options
and their defaults (`OPTIONS`), whether it samples ranges with a budget (`SAMPLED`), and
validates its own options (`parse_options`, given an `OptionContext` to report errors with).
The search package loads (Optuna, pandas) only once a sweep is actually read.

Example:
    >>> cls = strategy_class("tpe", "s.yaml")
    >>> strategy_options({"sampler_seed": 3}, cls, OptionContext("s.yaml", budget=12))
    {'sampler_seed': 3, 'n_startup_trials': 4}
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from umup_sweep.config._validate import as_mapping, check_keys, did_you_mean, fail, join, number
from umup_sweep.errors import ConfigError

if TYPE_CHECKING:
    from umup_sweep.config._spec import HPSpace
    from umup_sweep.search import BaseStrategy

__all__ = ["OptionContext", "strategy_class", "strategy_options"]


@dataclass(frozen=True)
class OptionContext:
    """What a strategy's `parse_options` may check its options against, and how to report.

    Args:
        source: the sweep file (or ``<inline>``), named in errors.
        hyperparameters: the sweep's swept HPs and their spaces.
        widths: the proxy family's widths.
        budget: trials per proxy (sampling strategies), else None.
        prefix: the dotted key the options sit under.
        seeds: the sweep's seeds.
    """

    source: str = "<inline>"
    hyperparameters: Mapping[str, HPSpace] = field(default_factory=dict)
    widths: tuple[int, ...] = ()
    budget: int | None = None
    prefix: str = "strategy_options"
    seeds: tuple[int, ...] = (0,)

    def fail(self, option: str, expected: str, value: Any = ...) -> ConfigError:
        """The error for option `option` (e.g. ``"stage2[0]"``): to raise.

        Example:
            >>> str(OptionContext("s.yaml").fail("resweep_step", "expected > 0", -1.0))
            's.yaml: strategy_options.resweep_step: expected > 0, got -1.0 (float)'
        """
        return fail(self.source, join(self.prefix, option), expected, value)

    def number(self, value: Any, option: str, *, integer: bool = False) -> Any:
        """`value` as a finite float (or an int with `integer`), else the error for `option`.

        Example:
            >>> OptionContext().number("0.25", "fit_resolution")
            0.25
        """
        return number(value, self.source, join(self.prefix, option), integer=integer)


def strategy_class(name: Any, source: str) -> type[BaseStrategy]:
    """The strategy class `strategy:` names (one of `umup_sweep.search.STRATEGIES`).

    Example:
        >>> strategy_class("tpe", "s.yaml").__name__
        'TPEStrategy'
        >>> strategy_class("tpee", "s.yaml")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        umup_sweep.errors.ConfigError: s.yaml: strategy: ...; did you mean 'tpe'?, got 'tpee' (str)
    """
    from umup_sweep.search import STRATEGIES  # heavy (Optuna, pandas): only once a sweep loads

    if not isinstance(name, str) or name not in STRATEGIES:
        hint = did_you_mean(str(name), STRATEGIES)
        raise fail(source, "strategy", f"expected one of {', '.join(STRATEGIES)}{hint}", name)
    return STRATEGIES[name]


def strategy_options(raw: Any, cls: type[BaseStrategy], ctx: OptionContext) -> dict[str, Any]:
    """`strategy_options:` checked against `cls.OPTIONS`, defaults filled in, then validated
    and resolved (every option explicit) by `cls.parse_options`."""
    given = as_mapping(raw, ctx.source, ctx.prefix)
    check_keys(given, cls.OPTIONS, ctx.source, ctx.prefix)
    return cls.parse_options({**cls.OPTIONS, **given}, ctx)
