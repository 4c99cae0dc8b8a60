"""How a finished trial looks in the Optuna study, so that optuna-dashboard (and
`optuna.importance`) can read a run.

Params: the swept HPs, `width`, `depth`, `seed`, `precision`, `parametrization`, and `steps`
and `batch_size` when the sweep (or the study) has more than one of them. Each has one
distribution for the whole study (`distributions`): the sweep's range (a log2 range or a
`log_uniform_values` distribution is log-scale; a list of values > 0 is too), widened to hold
every value stored; widths on a log scale, depths and seeds on a linear one; precision and
parametrization categorical over every value they can take. Optuna compares a param's
distributions trial by trial (its importance evaluators split trials by distribution, and it
refuses a trial whose distribution is of another kind than the study's first), so when the
distributions change (a new run of the sweep, a grown or widened sweep, a study written with
the single-point distributions of earlier versions) `realign` rewrites the stored trials'
params to the new ones, in one transaction.

Times: a trial starts at `TrialResult.started_at` and completes `wall_s` later (without
`started_at`, it completes when committed). Intermediate values: each evaluation's validation
loss, keyed by step. User attrs: `trial_key`, `stage`, `status`, `spec`, `result` (what the
store reads back) and, beside them, the key numbers of the result (`RESULT_NUMBERS`).
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, get_args

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
    distribution_to_json,
)
from optuna.trial import FrozenTrial, TrialState

from umup_sweep.spec import Parametrization, Precision, TrialResult, TrialSpec
from umup_sweep.store._rows import finite_or_inf

if TYPE_CHECKING:
    from umup_sweep.config import SweepSpec

# The result numbers kept as user attrs of their own (beside `result`, one JSON value).
RESULT_NUMBERS = ("final_train_loss", "tokens_per_s", "wall_s", "peak_rss_mb")
# Integer params: name -> log scale.
_INTS = {"width": True, "depth": False, "seed": False, "steps": True, "batch_size": True}
_ONLY_WHEN_VARIED = ("steps", "batch_size")  # params only when they take 2+ values
_CATEGORIES: dict[str, tuple[str, ...]] = {
    "precision": get_args(Precision),
    "parametrization": get_args(Parametrization),
}

Seen = Mapping[str, Iterable[Any]]


def param_values(spec: TrialSpec, swept: Iterable[str]) -> dict[str, Any]:
    """Every param value of one trial (before `distributions` picks the params).

    Example:
        >>> from umup_sweep.spec import ModelSpec, TrainSpec
        >>> spec = TrialSpec(ModelSpec(width=32, depth=1), TrainSpec(lr=0.5))
        >>> param_values(spec, ["lr"])["lr"], param_values(spec, ["lr"])["precision"]
        (0.5, 'fp32')
    """
    hps = spec.hps
    values: dict[str, Any] = {name: hps[name] for name in swept if name in hps}
    values.update(
        width=int(spec.model.width),
        depth=int(spec.model.depth),
        seed=int(spec.seed),
        steps=int(spec.train.steps),
        batch_size=int(spec.train.batch_size),
        precision=str(spec.train.precision),
        parametrization=str(spec.model.parametrization),
    )
    return values


def distributions(sweep: SweepSpec, seen: Seen) -> dict[str, BaseDistribution]:
    """The distribution of each param: the sweep's (a `SweepSpec`) widened to the values
    `seen` (param name -> the values stored or about to be).

    Example:
        >>> from umup_sweep.config import load_sweep
        >>> sweep = load_sweep({"name": "d", "hyperparameters": {"lr": {"log2_range": [-2, 2]}},
        ...     "proxy": {"base": {"head_dim": 16}, "widths": [32, 64], "depths": [1]}})
        >>> dists = distributions(sweep, {"lr": [8.0]})
        >>> dists["lr"]
        FloatDistribution(high=8.0, log=True, low=0.25, step=None)
        >>> dists["width"]
        IntDistribution(high=64, log=True, low=32, step=1)
    """
    out: dict[str, BaseDistribution] = {}
    for name in sweep.swept:
        space = sweep.hyperparameters[name]
        bounds = [b for b in (space.low, space.high) if b is not None]
        values = [float(v) for v in (*space.values, *bounds, *seen.get(name, ()))]
        low, high = min(values), max(values)
        out[name] = FloatDistribution(low, high, log=bool(space.log) and low > 0)
    axes: dict[str, list[Any]] = {
        "width": list(sweep.family.widths),
        "depth": list(sweep.family.depths),
        "seed": list(sweep.seeds),
        "steps": [t.steps for t in sweep.train_specs()],
        "batch_size": [t.batch_size for t in sweep.train_specs()],
    }
    for name, log in _INTS.items():
        ints = {int(v) for v in (*axes[name], *seen.get(name, ()))}
        if name in _ONLY_WHEN_VARIED and len(ints) < 2:
            continue
        out[name] = IntDistribution(min(ints), max(ints), log=log and min(ints) > 0)
    precisions = [*sweep.precisions, *seen.get("precision", ())]
    for name, known in _CATEGORIES.items():
        more = precisions if name == "precision" else [sweep.parametrization]
        more += list(seen.get(name, ()))
        extra = sorted({str(v) for v in more} - set(known))
        out[name] = CategoricalDistribution((*known, *extra))
    return out


def fitted(
    values: Mapping[str, Any], dists: Mapping[str, BaseDistribution]
) -> tuple[dict[str, Any], dict[str, BaseDistribution]]:
    """The params of one trial (those of `values` that `dists` has) and their distributions.

    Raises:
        ValueError: a value outside its distribution (widen `dists` first).
    """
    params = {name: values[name] for name in dists if name in values}
    for name, value in params.items():
        if not dists[name]._contains(dists[name].to_internal_repr(value)):
            raise ValueError(f"{name}={value!r} is outside {dists[name]}")
    return params, {name: dists[name] for name in params}


def contains(values: Mapping[str, Any], dists: Mapping[str, BaseDistribution]) -> bool:
    """Whether every value of `values` that has a distribution lies in it."""
    try:
        fitted(values, dists)
    except ValueError:
        return False
    return True


def frozen_trial(
    spec: TrialSpec,
    result: TrialResult,
    metric: str,
    params: tuple[dict[str, Any], dict[str, BaseDistribution]],
    now: float,
) -> FrozenTrial:
    """The Optuna trial that records one finished trial (see the module docstring); `params`
    from `fitted`, `now` the commit's Unix time."""
    attrs: dict[str, Any] = {
        "trial_key": spec.trial_key,
        "stage": spec.labels.get("stage"),
        "status": result.status,
        "spec": spec.to_dict(),
        "result": {k: v for k, v in result.to_dict().items() if k != "curve"},
    }
    for name in RESULT_NUMBERS:
        value = getattr(result, name)
        attrs[name] = float(value) if value is not None and math.isfinite(value) else None
    state, value = TrialState.COMPLETE, None
    if result.status == "failed":
        attrs["error"] = result.error or "unknown error"
        state = TrialState.FAIL
    elif result.status == "pruned":  # stopped early: no final value, its curve so far
        attrs["pruned"] = result.note or "pruned"
        state = TrialState.PRUNED
    else:
        value = finite_or_inf(getattr(result, metric) if result.status == "ok" else None)
    trial = optuna.trial.create_trial(
        state=state,
        value=value,
        params=params[0],
        distributions=params[1],
        user_attrs=attrs,
        intermediate_values=intermediate_values(result),
    )
    wall = max(float(result.wall_s or 0.0), 0.0)
    start = result.started_at if result.started_at is not None else now - wall
    trial.datetime_start = datetime.datetime.fromtimestamp(start)
    trial.datetime_complete = datetime.datetime.fromtimestamp(start + wall)
    return trial


def intermediate_values(result: TrialResult) -> dict[int, float]:
    """Each evaluation's validation loss by step (finite ones: a learning curve).

    Example:
        >>> r = TrialResult("k", "ok", curve=[(0, 3.0, None), (5, 2.5, 2.6), (9, 2.0, 2.1)])
        >>> intermediate_values(r)
        {5: 2.6, 9: 2.1}
    """
    return {
        int(step): float(val)
        for step, _train, val in result.curve
        if val is not None and math.isfinite(val)
    }


def stale(
    trials: Iterable[tuple[FrozenTrial, Mapping[str, Any]]],
    dists: Mapping[str, BaseDistribution],
) -> tuple[list[int], list[dict[str, Any]]]:
    """The stored trials whose params or distributions differ from what `dists` gives them
    (`trials`: each with its `param_values`): their ids, and the param rows they should have.
    """
    ids: list[int] = []
    rows: list[dict[str, Any]] = []
    for trial, values in trials:
        params, wanted = fitted(values, dists)
        if trial.params == params and trial.distributions == wanted:
            continue
        ids.append(trial._trial_id)
        rows.extend(
            {
                "trial": trial._trial_id,
                "name": name,
                "value": float(wanted[name].to_internal_repr(value)),
                "dist": distribution_to_json(wanted[name]),
            }
            for name, value in params.items()
        )
    return ids, rows


def realign(
    storage: optuna.storages.BaseStorage,
    trials: Iterable[tuple[FrozenTrial, Mapping[str, Any]]],
    dists: Mapping[str, BaseDistribution],
) -> int:
    """Rewrite the params of the `stale` trials, in one transaction. Returns how many trials
    it rewrote."""
    ids, rows = stale(trials, dists)
    if not ids:
        return 0
    import sqlalchemy

    backend = getattr(storage, "_backend", storage)  # under Optuna's cache, if any
    if not isinstance(backend, optuna.storages.RDBStorage):
        raise TypeError(f"cannot rewrite the params of trials in {type(backend).__name__}")
    delete = sqlalchemy.text("DELETE FROM trial_params WHERE trial_id IN :ids").bindparams(
        sqlalchemy.bindparam("ids", expanding=True)
    )
    insert = sqlalchemy.text(
        "INSERT INTO trial_params (trial_id, param_name, param_value, distribution_json) "
        "VALUES (:trial, :name, :value, :dist)"
    )
    with backend.engine.begin() as conn:
        for start in range(0, len(ids), 500):
            conn.execute(delete, {"ids": ids[start : start + 500]})
        if rows:
            conn.execute(insert, rows)
    return len(ids)
