"""Fabricated trials tables with a known optimum and drift, and run stores holding them.

Loss is a quadratic bowl in log2(HP) whose centre moves by `drift` log2 per width doubling
(and `depth_drift` per depth doubling), plus seeded Gaussian noise: the oracle for the analyzer.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from sqlalchemy import event
from sqlalchemy.engine import Engine

from umup_sweep.config import SweepSpec, load_sweep
from umup_sweep.errors import ConfigError
from umup_sweep.spec import HP_DEFAULTS, MODEL_HPS, TrialResult, TrialSpec
from umup_sweep.store import TRIAL_COLUMNS, RunStore


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
    centres: dict[int, float] | None = None,
) -> pd.DataFrame:
    """Loss = 2.5 + offset − 0.05·log2(w/w0) + curvature·(x − c0 − drift·log2(w/w0))² + seeded
    noise. With ``precision`` the frame has a `precision` column (else none, as old runs);
    ``centres`` sets the optimum (log2) of the listed widths instead of the drift line."""
    rng = np.random.default_rng(rng_seed)
    rows = []
    for depth in depths:
        for width in widths:
            u = math.log2(width / widths[0])
            v = math.log2(depth / depths[0])
            centre = c0 + drift * u + depth_drift * v
            if centres is not None and width in centres:
                centre = centres[width] + depth_drift * v
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


DEFAULT_BASE = {"width": 64, "depth": 2, "head_dim": 16, "seq_len": 32}


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
    """A run directory written by the real store: the sweep through `RunStore.open`, and each
    row of `trials` committed as the trial it describes (its `trial_key` is the store's).

    Analysis settings the config loader refuses (e.g. ``{"precision_tolerance": "wide"}``) are
    put into sweep.yaml afterwards, as a hand edit would."""
    params = sorted(trials["parametrization"].unique()) if len(trials) else ["umup"]
    mapping = {
        "name": name,
        "proxy": {
            "name": "tiny",
            "base": (base or DEFAULT_BASE) | {"parametrization": params[0]},
            "widths": sorted(int(w) for w in trials["width"].unique()) if len(trials) else [64],
            "depths": sorted(int(d) for d in trials["depth"].unique()) if len(trials) else [2],
        },
        "hyperparameters": {h: {"values": [1.0]} for h in swept},
        "metric": metric,
        "storage": {"run_dir": str(root)},
        "analysis": {"tolerance": tolerance} | (analysis or {}),
    }
    try:
        sweep, hand_edit = load_sweep(mapping), None
    except ConfigError:
        hand_edit = mapping.pop("analysis")
        sweep = load_sweep(mapping)
    with _fast_sqlite(), _FixtureStore.open(sweep) as store:
        for row in trials.to_dict("records"):
            store.commit(*_trial(sweep, row))
        if len(store.results()) != len(trials):
            raise ValueError("two rows of the frame describe the same trial")
        store.exporting = True
        store.export()
    if hand_edit is not None:
        data = yaml.safe_load(store.sweep_yaml.read_text())
        store.sweep_yaml.write_text(yaml.safe_dump(data | {"analysis": hand_edit}))
    return store.run_dir


class _FixtureStore(RunStore):
    """A RunStore that writes the trials.csv export once, when told, not after every commit:
    the fixture's only shortcut besides `_fast_sqlite` (the export is never read back)."""

    exporting = False

    def export(self) -> Path:
        return super().export() if self.exporting else self.trials_csv


@contextlib.contextmanager
def _fast_sqlite() -> Iterator[None]:
    """SQLite connections opened meanwhile skip the disk syncs (a fixture needs no durability:
    the file is the same, written ~2x faster)."""

    def pragmas(dbapi_connection, _record) -> None:
        if isinstance(dbapi_connection, sqlite3.Connection):
            dbapi_connection.execute("PRAGMA synchronous=OFF")
            dbapi_connection.execute("PRAGMA journal_mode=MEMORY")

    event.listen(Engine, "connect", pragmas)
    try:
        yield
    finally:
        event.remove(Engine, "connect", pragmas)


def _trial(sweep: SweepSpec, row: dict) -> tuple[TrialSpec, TrialResult]:
    """The (spec, result) pair a fabricated row stands for (a blank precision is fp32)."""
    model = dataclasses.replace(
        sweep.family.base,
        width=int(row["width"]),
        depth=int(row["depth"]),
        n_heads=None,
        parametrization=row["parametrization"],
        **{h: float(row[h]) for h in MODEL_HPS},
    )
    precision = row.get("precision")
    if not isinstance(precision, str) or not precision:
        precision = "fp32"
    hps = {"lr": float(row["lr"]), "weight_decay": float(row["weight_decay"])}
    train = dataclasses.replace(sweep.train, **hps, precision=precision)
    spec = TrialSpec(model, train, sweep.data, int(row["seed"]), labels={"stage": row["stage"]})
    result = TrialResult(
        spec.trial_key,
        row["status"],
        **{k: _number(row[k]) for k in ("final_train_loss", "val_loss", "peak_rss_mb")},
        **{k: int(row[k]) for k in ("steps", "tokens", "n_params")},
        wall_s=float(row["wall_s"]),
        tokens_per_s=float(row["tokens_per_s"]),
        node_id=row["node_id"],
        error=row["error"] or None,
    )
    return spec, result


def _number(value) -> float | None:
    return None if value is None or math.isnan(value) else float(value)
