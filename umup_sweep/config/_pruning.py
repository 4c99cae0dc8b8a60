"""The sweep file's `pruning` section: stop hopeless trials early (`umup_sweep.pruning`).

    pruning: true                      # the same as {enabled: true}
    pruning:
      enabled: true
      every: 30              # steps between checkpoints (default: train.eval_every, else steps/10)
      margin_factor: 2.0     # safety factor on the catch-up measured in the stored curves
      min_references: 4      # finished trials of a proxy before any of its trials is pruned

A mapping without `enabled` means enabled (why else write it). Pruning is not part of the
sweep's identity: turning it on or off never changes which trials a sweep holds.

Example:
    >>> pruning_section(True, "s.yaml").enabled, pruning_section({"every": 25}, "s.yaml").every
    (True, 25)
    >>> pruning_section({"margin_factor": 0}, "s.yaml")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    umup_sweep.errors.ConfigError: s.yaml: pruning.margin_factor: expected > 0, got 0 (int)
"""

from __future__ import annotations

from typing import Any

from umup_sweep.config._spec import PruningSpec
from umup_sweep.config._validate import as_mapping, build_section

__all__ = ["pruning_section"]


def pruning_section(value: Any, source: str) -> PruningSpec:
    """`pruning:` validated: a bool, or a mapping of `PruningSpec`'s keys (None: off).

    Raises:
        ConfigError: an unknown key, a wrong type or a bad value (one line: file, key, what).
    """
    if value is None or value is False:
        return PruningSpec()
    if value is True:
        return PruningSpec(enabled=True)
    mapping = dict(as_mapping(value, source, "pruning"))
    mapping.setdefault("enabled", True)
    return build_section(PruningSpec, mapping, source, "pruning")
