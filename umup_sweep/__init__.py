"""umup-sweep: tune hyperparameters on small u-μP proxies and carry them to the big model.

The Python API mirrors the command line:

    >>> from umup_sweep import ModelSpec, TrainSpec, TrialSpec, build_model, run_trial
    >>> model = build_model(ModelSpec(width=64, depth=2))          # u-μP proxy, HPs default 1.0
    >>> result = run_trial(TrialSpec(ModelSpec(width=32, depth=1, seq_len=32),
    ...                              TrainSpec(steps=5, batch_size=4, eval_batches=1)))
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from umup_sweep.spec import (
    HP_DEFAULTS,
    HP_NAMES,
    DataSpec,
    ModelSpec,
    TrainSpec,
    TrialResult,
    TrialSpec,
)

__version__ = "0.1.0"

# Heavy pieces (torch, optuna, ray) load on first use so `umup-sweep --help` stays fast.
_LAZY = {
    "build_model": "umup_sweep.models",
    "make_optimizer": "umup_sweep.models",
    "count_params": "umup_sweep.models",
    "run_trial": "umup_sweep.train",
    "load_corpus": "umup_sweep.data",
    "load_sweep": "umup_sweep.config",
    "run_sweep": "umup_sweep.runner",
    "analyze_run": "umup_sweep.analysis",
    "recommend": "umup_sweep.analysis",
}

if TYPE_CHECKING:
    from umup_sweep.models import build_model, count_params, make_optimizer
    from umup_sweep.train import run_trial


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'umup_sweep' has no attribute {name!r}")


__all__ = [
    "HP_DEFAULTS",
    "HP_NAMES",
    "DataSpec",
    "ModelSpec",
    "TrainSpec",
    "TrialResult",
    "TrialSpec",
    "analyze_run",
    "build_model",
    "count_params",
    "load_corpus",
    "load_sweep",
    "make_optimizer",
    "recommend",
    "run_sweep",
    "run_trial",
]
