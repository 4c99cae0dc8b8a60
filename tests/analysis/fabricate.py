"""Fabricated trials tables with a known optimum and drift, and run directories holding them.

Loss is a quadratic bowl in log2(HP) whose centre moves by `drift` log2 per width doubling
(and `depth_drift` per depth doubling), plus seeded Gaussian noise: the oracle for the analyzer.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from umup_sweep.spec import HP_DEFAULTS
from umup_sweep.store_rows import TRIAL_COLUMNS


def make_trials(
    widths=(64, 128, 256, 512),
    depths=(2,),
    seeds=(0, 1, 2),
    grid=tuple(range(-5, 4)),
    c0=-1.0,
    drift=0.0,
    depth_drift=0.0,
    curvature=0.03,
    noise=0.005,
    diverge_above: float | None = None,
    hp: str = "lr",
    parametrization: str = "umup",
    rng_seed: int = 0,
    fixed: dict | None = None,
    stage: str = "grid",
    precision: str | None = None,
    offset: float = 0.0,
) -> pd.DataFrame:
    """Loss = 2.5 + offset − 0.05·log2(w/w0) + curvature·(x − c0 − drift·log2(w/w0))² + seeded
    noise. With ``precision`` the frame has a `precision` column (else none, as old runs)."""
    rng = np.random.default_rng(rng_seed)
    rows = []
    for depth in depths:
        for width in widths:
            u = math.log2(width / widths[0])
            v = math.log2(depth / depths[0])
            centre = c0 + drift * u + depth_drift * v
            for seed in seeds:
                for x in grid:
                    hps = dict(HP_DEFAULTS) | (fixed or {})
                    hps[hp] = 2.0**x
                    diverged = diverge_above is not None and x > diverge_above
                    loss = 2.5 + offset - 0.05 * u - 0.02 * v + curvature * (x - centre) ** 2
                    loss += rng.normal(0, noise)
                    rows.append(
                        {
                            "trial_key": "-".join(
                                str(v) for v in (parametrization, precision, width, depth, seed, x)
                            ),
                            "stage": stage,
                            "parametrization": parametrization,
                            "width": width,
                            "depth": depth,
                            "seed": seed,
                            **hps,
                            "status": "diverged" if diverged else "ok",
                            "final_train_loss": math.nan if diverged else loss + 0.01,
                            "val_loss": math.nan if diverged else loss,
                            "steps": 10,
                            "tokens": 100,
                            "wall_s": 1.0,
                            "tokens_per_s": 100.0,
                            "n_params": 1000 * width,
                            "peak_rss_mb": 100.0,
                            "node_id": "n0",
                            "error": "" if not diverged else "loss is nan",
                        }
                        | ({} if precision is None else {"precision": precision})
                    )
    df = pd.DataFrame(rows)
    lead = list(TRIAL_COLUMNS[: TRIAL_COLUMNS.index("status")])  # the contract's id + HP columns
    return df[lead + [c for c in df.columns if c not in lead]]


def write_run(
    root: Path,
    name: str,
    trials: pd.DataFrame,
    swept=("lr",),
    tolerance=0.25,
    base: dict | None = None,
    metric: str = "val_loss",
    analysis: dict | None = None,
) -> Path:
    """A run directory with sweep.yaml and trials.csv as the driver writes them."""
    run = root / name
    run.mkdir(parents=True)
    params = sorted(trials["parametrization"].unique()) if len(trials) else ["umup"]
    sweep = {
        "name": name,
        "family": {
            "name": "tiny",
            "base": (base or {"width": 64, "depth": 2, "head_dim": 16, "seq_len": 32})
            | {"parametrization": params[0]},
            "widths": sorted(int(w) for w in trials["width"].unique()) if len(trials) else [64],
            "depths": sorted(int(d) for d in trials["depth"].unique()) if len(trials) else [2],
        },
        "hyperparameters": {h: {"values": [1.0]} for h in swept},
        "metric": metric,
        "analysis": {"tolerance": tolerance} | (analysis or {}),
    }
    (run / "sweep.yaml").write_text(yaml.safe_dump(sweep))
    trials.to_csv(run / "trials.csv", index=False)
    return run
