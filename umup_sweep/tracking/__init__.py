"""Experiment tracking: log every finished trial to W&B, MLflow and/or TensorBoard.

A sweep's `tracking:` section (or `umup-sweep run --track NAME`) names the trackers; the
driver logs each trial once it is committed to the store (one run per trial: HPs and proxy
shape as config, the loss curve by step, the final numbers; grouped by sweep) and, after the
analysis, one summary run (verdicts, recommendation, figures). The store stays the record:
a tracker that fails says so in one line and the sweep goes on. Every library is optional
(``pip install 'umup-sweep[tracking]'``) and imported only when a tracker is used.

    tracking:
      backend: [wandb, mlflow, tensorboard]   # or one name
      dir: runs/my_sweep/tracking             # the default: <run_dir>/tracking
      project: my-project                     # W&B project / MLflow experiment (alias:
                                              # experiment); default: the sweep name
      mode: offline                           # wandb: offline (default) | online
      tracking_uri: http://mlflow:5000        # mlflow: default a local store under dir

Each tracker is a `BaseTracker` subclass in its own module, declaring its options; see
`WandbTracker`, `MLflowTracker`, `TensorBoardTracker`.

Example:
    >>> sorted(TRACKERS)
    ['mlflow', 'tensorboard', 'wandb']
    >>> TRACKERS["wandb"].OPTIONS["mode"]
    'offline'
"""

from umup_sweep.tracking._base import (
    TRACKING_DIR,
    BaseTracker,
    SweepInfo,
    SweepSummary,
    TrackingError,
    curve_metrics,
    final_metrics,
    trial_config,
)
from umup_sweep.tracking._mlflow import MLflowTracker
from umup_sweep.tracking._registry import TRACKERS, option_owners
from umup_sweep.tracking._session import LEDGER_FILE, Tracking, read_summary, sweep_info
from umup_sweep.tracking._tensorboard import TensorBoardTracker
from umup_sweep.tracking._wandb import WandbTracker

__all__ = [
    "LEDGER_FILE",
    "TRACKERS",
    "TRACKING_DIR",
    "BaseTracker",
    "MLflowTracker",
    "SweepInfo",
    "SweepSummary",
    "TensorBoardTracker",
    "Tracking",
    "TrackingError",
    "WandbTracker",
    "curve_metrics",
    "final_metrics",
    "option_owners",
    "read_summary",
    "sweep_info",
    "trial_config",
]
