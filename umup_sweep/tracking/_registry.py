"""The trackers by name (what `tracking.backend` and `umup-sweep run --track` take).

Importing this imports no tracker library: each is imported when a tracker is used.

Example:
    >>> list(TRACKERS)
    ['wandb', 'mlflow', 'tensorboard']
    >>> sorted(option_owners())
    ['entity', 'mode', 'tags', 'tracking_uri']
"""

from __future__ import annotations

from umup_sweep.tracking._base import BaseTracker
from umup_sweep.tracking._mlflow import MLflowTracker
from umup_sweep.tracking._tensorboard import TensorBoardTracker
from umup_sweep.tracking._wandb import WandbTracker

__all__ = ["TRACKERS", "option_owners"]

TRACKERS: dict[str, type[BaseTracker]] = {
    cls.NAME: cls for cls in (WandbTracker, MLflowTracker, TensorBoardTracker)
}


def option_owners() -> dict[str, str]:
    """Each tracker option's name -> the tracker that takes it (names are unique)."""
    owners: dict[str, str] = {}
    for name, cls in TRACKERS.items():
        for option in cls.OPTIONS:
            if option in owners:  # a bug in a tracker class, not user input
                raise TypeError(f"tracking option {option!r} of both {owners[option]} and {name}")
            owners[option] = name
    return owners
