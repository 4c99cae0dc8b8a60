"""A cheap stand-in for training: a loss with a known optimum in log2 HP space, and a loop that
drives a strategy to completion against it (no model, no executor).

loss = 2 + 8/width + Σ_h w_h (x_h − c_h)² + w_lr (x_lr − c_lr − 0.3 (x_rm − c_rm)
       − 0.2 (x_ls − c_ls))² + noise,   x = log2 HP.
A positive-definite quadratic, so the optimum is exactly at c. The lr term couples lr to
residual_mult and loss_softmax_mult (as measured on real proxies), so with those at their defaults
the best lr is c_lr + 0.3·1 − 0.2·1 = −0.4, not c_lr. lr above 2^2.5 diverges.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Callable, Mapping

import pandas as pd

from umup_sweep.search import BaseStrategy
from umup_sweep.spec import TrialSpec
from umup_sweep.store import TRIAL_COLUMNS

OPT = {
    "lr": -0.5,
    "residual_mult": -1.0,
    "residual_attn_ratio": -1.3,
    "attn_softmax_mult": 0.0,
    "ffn_act_mult": 0.3,
    "loss_softmax_mult": 1.0,
}
WEIGHT = {
    "residual_mult": 0.03,
    "residual_attn_ratio": 0.02,
    "attn_softmax_mult": 0.002,
    "ffn_act_mult": 0.002,
    "loss_softmax_mult": 0.03,
}
W_LR = 0.08

COLUMNS = list(TRIAL_COLUMNS[: TRIAL_COLUMNS.index("val_loss") + 1])


def optimum_loss(width: int) -> float:
    return 2.0 + 8.0 / width


def synthetic_loss(hps: Mapping[str, float], width: int, seed: int, noise: float = 0.0) -> float:
    """The objective above; `noise` is the sd of a deterministic per-(config, seed) jitter."""
    x = {h: math.log2(hps.get(h, 1.0)) for h in OPT}
    if x["lr"] > 2.5:
        return math.inf
    loss = optimum_loss(width)
    loss += sum(w * (x[h] - OPT[h]) ** 2 for h, w in WEIGHT.items())
    shift = 0.3 * (x["residual_mult"] - OPT["residual_mult"]) + 0.2 * (
        x["loss_softmax_mult"] - OPT["loss_softmax_mult"]
    )
    loss += W_LR * (x["lr"] - OPT["lr"] - shift) ** 2
    if noise:
        blob = repr((sorted(hps.items()), width, seed)).encode()
        rng = random.Random(int(hashlib.sha256(blob).hexdigest()[:12], 16))
        loss += rng.gauss(0.0, noise)
    return loss


def trial_loss(trial: TrialSpec, noise: float = 0.0) -> float:
    return synthetic_loss(trial.hps, trial.model.width, trial.seed, noise)


def row(trial: TrialSpec, loss: float) -> dict:
    """One trials-frame row (the store's columns) for a finished trial."""
    diverged = not math.isfinite(loss)
    return {
        "trial_key": trial.trial_key,
        "stage": trial.labels.get("stage"),
        "parametrization": trial.model.parametrization,
        "width": trial.model.width,
        "depth": trial.model.depth,
        "seed": trial.seed,
        **trial.hps,
        "status": "diverged" if diverged else "ok",
        "final_train_loss": None if diverged else loss,
        "val_loss": None if diverged else loss,
    }


def frame(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=COLUMNS)


def drive(
    strategy: BaseStrategy,
    objective: Callable[[TrialSpec], float] = trial_loss,
    max_new: int = 4,
    max_rounds: int = 500,
) -> pd.DataFrame:
    """Propose, 'run' against the objective, record; until the strategy has nothing left."""
    rows: list[dict] = []
    for _ in range(max_rounds):
        new = strategy.propose(frame(rows), [], max_new)
        if not new:
            return frame(rows)
        assert len(new) <= max_new
        rows += [row(t, objective(t)) for t in new]
    raise AssertionError("strategy did not finish")
