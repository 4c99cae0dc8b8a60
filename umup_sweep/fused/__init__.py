"""Fused trials: K trials of one proxy shape trained as one stacked model in one worker.

`run_fused(specs)` trains trials that differ only in seed and optimizer hyperparameters as
one model with (K, ...) weights: the proxy's own forward under `torch.vmap`, one backward, one
stacked optimizer with per-trial settings; each trial's result is what `run_trial` returns
for it alone (to float tolerance), and a trial that diverges is dropped from the stack and
recorded diverged without touching the others. `pack` splits a batch of trials into fused
groups under a sweep's `execution.fuse` (`auto`, `off` or K); `fuse_key` says which trials fuse.
See docs/FUSED.md for where fusing pays.

`run_fused` (torch) is imported on first use, so the executors can pack trials without it.
"""

from __future__ import annotations

from typing import Any

from umup_sweep.fused._group import (
    AUTO_K,
    AUTO_MAX_WORK_CPU,
    Fuse,
    check_group,
    fuse_key,
    group_size,
    max_group_size,
    pack,
)

__all__ = [
    "AUTO_K",
    "AUTO_MAX_WORK_CPU",
    "Fuse",
    "check_group",
    "fuse_key",
    "group_size",
    "max_group_size",
    "pack",
    "run_fused",
]


def __getattr__(name: str) -> Any:
    if name == "run_fused":
        from umup_sweep.fused._train import run_fused

        return run_fused
    raise AttributeError(name)
