"""The Optuna study a run writes reads meaningfully in Optuna and optuna-dashboard: params over
the sweep's ranges (one distribution per param for the whole study, lr on a log scale), real
start and end times, the validation curve as intermediate values, the key result numbers as
attributes; and studies written with the earlier single-point params resume, grow and are
rewritten to the new form."""

from __future__ import annotations

import dataclasses
import math
import time
import warnings

import optuna
import pandas as pd
import pytest
from optuna.distributions import (
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
    check_distribution_compatibility,
)
from sweep_fakes import FakeTrial, tiny_sweep

from umup_sweep.config import HPSpace
from umup_sweep.runner import run_sweep
from umup_sweep.search import GridStrategy
from umup_sweep.spec import TrialResult
from umup_sweep.store import RunStore
from umup_sweep.store._optuna_trial import RESULT_NUMBERS

LRS = tuple(2.0**e for e in (-10, -7, -4, -1, 2))


def _specs(sweep):
    return GridStrategy(sweep).propose(pd.DataFrame(columns=["trial_key"]), [], 100)


def _study(sweep) -> optuna.Study:
    url = f"sqlite:///{sweep.run_dir / 'study.db'}"
    return optuna.load_study(study_name=sweep.name, storage=url)


def _importances(study: optuna.Study) -> dict[str, float]:
    """What optuna-dashboard shows: the default evaluator (PED-ANOVA in Optuna 5)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return optuna.importance.get_param_importances(study)


def _one_distribution_per_param(study: optuna.Study) -> dict[str, object]:
    dists: dict[str, set] = {}
    for trial in study.trials:
        for name, dist in trial.distributions.items():
            dists.setdefault(name, set()).add(dist)
    assert all(len(d) == 1 for d in dists.values()), dists
    return {name: next(iter(d)) for name, d in dists.items()}


def test_real_sweep_gives_lr_the_importance_and_a_dashboard_ready_study(tmp_path):
    """A real (tiny) grid over lr x 2 seeds: Optuna ranks lr far above seed, every param has
    one distribution (lr log-scale over the sweep's range), trials carry their curve, times
    and result numbers; the trials table is the one the store always gave."""
    sweep = tiny_sweep(tmp_path, lrs=LRS, seeds=(0, 1), steps=12)
    sweep = dataclasses.replace(sweep, train=dataclasses.replace(sweep.train, eval_every=4))
    before = time.time()
    run_sweep(sweep, strategy=GridStrategy(sweep), analyze=False)
    study = _study(sweep)
    assert len(study.trials) == 10 and study.metric_names == ["val_loss"]

    importances = _importances(study)
    print("importances:", {k: round(v, 4) for k, v in importances.items()})
    assert importances["lr"] > 0.5
    assert importances["lr"] > 10 * importances["seed"]
    assert len(set(importances.values())) > 2  # not the equal shares of a degenerate study

    dists = _one_distribution_per_param(study)
    assert dists["lr"] == FloatDistribution(min(LRS), max(LRS), log=True)
    assert dists["seed"] == IntDistribution(0, 1)
    assert dists["width"] == IntDistribution(32, 32, log=True)
    assert dists["precision"] == CategoricalDistribution(("fp32", "bf16", "fp8_sim"))
    assert dists["parametrization"] == CategoricalDistribution(("umup", "sp"))

    results = RunStore.load(sweep.run_dir).results().set_index("trial_key")
    for trial in study.trials:
        row = results.loc[trial.user_attrs["trial_key"]]
        assert trial.params["lr"] == row["lr"] and trial.params["precision"] == "fp32"
        assert sorted(trial.intermediate_values) == [3, 7, 11]
        assert trial.intermediate_values[11] == pytest.approx(trial.value)
        result = trial.user_attrs["result"]
        start = trial.datetime_start.timestamp()
        assert before - 1 <= start <= time.time()
        assert start == pytest.approx(result["started_at"], abs=1e-3)
        assert trial.duration.total_seconds() == pytest.approx(row["wall_s"], abs=1e-3)
        assert trial.duration.total_seconds() > 0
        for name in RESULT_NUMBERS:
            assert trial.user_attrs[name] == pytest.approx(row[name])
        assert trial.user_attrs["status"] == "ok" and "spec" in trial.user_attrs


def _old_frozen(spec, result, swept):
    """A trial as umup-sweep wrote it before the params had ranges: single-point
    distributions, no times, no curve, no separate numbers."""
    params = {name: spec.hps[name] for name in swept}
    dists = {name: FloatDistribution(v, v) for name, v in params.items()}
    for name in ("width", "depth"):
        params[name] = getattr(spec.model, name)
        dists[name] = IntDistribution(params[name], params[name])
    params["seed"], dists["seed"] = spec.seed, IntDistribution(spec.seed, spec.seed)
    attrs = {
        "trial_key": spec.trial_key,
        "stage": spec.labels.get("stage"),
        "status": result.status,
        "spec": spec.to_dict(),
        "result": {k: v for k, v in result.to_dict().items() if k not in ("curve", "started_at")},
    }
    return optuna.trial.create_trial(
        value=result.val_loss, params=params, distributions=dists, user_attrs=attrs
    )


def _write_old_run(sweep, fake):
    with RunStore.open(sweep) as store:
        storage, study_id = store.optuna_study()
        for spec in _specs(sweep):
            old = _old_frozen(spec, fake(spec), sweep.swept)
            storage.create_new_trial(study_id, template_trial=old)


def test_old_single_point_study_resumes_grows_and_is_rewritten(tmp_path):
    """A study written the old way (every param a single point, lr not log) resumes: its trials
    are reused, a grown sweep adds trials, and the stored ones get the new distributions (else
    Optuna would refuse the first new trial: log differs)."""
    fake = FakeTrial(tmp_path / "log")
    old = tiny_sweep(tmp_path, lrs=(0.25, 1.0, 4.0))
    _write_old_run(old, fake)
    with pytest.raises(ValueError, match="log"):
        check_distribution_compatibility(
            FloatDistribution(0.25, 0.25), FloatDistribution(0.25, 4.0, log=True)
        )
    reader = RunStore.load(old.run_dir)
    assert reader.stale_trials() == 3 and len(reader.results()) == 3  # read as before

    grown = tiny_sweep(tmp_path, lrs=(0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0), seeds=(0, 1))
    with RunStore.open(grown) as store:
        assert store.stale_trials() == 0
        assert all(store.has(s.trial_key) for s in _specs(old))
        for spec in _specs(grown):
            if not store.has(spec.trial_key):
                store.commit(spec, fake(spec))
        assert len(store.results()) == 14
    assert len(fake.log.read_text().splitlines()) == 14  # 3 old + 11 new: none ran twice

    study = _study(grown)
    dists = _one_distribution_per_param(study)
    assert dists["lr"] == FloatDistribution(0.125, 8.0, log=True)
    assert dists["seed"] == IntDistribution(0, 1)
    assert {t.params["lr"] for t in study.trials} == {2.0**e for e in range(-3, 4)}
    assert all("precision" in t.params for t in study.trials)  # added to the old trials too
    importances = _importances(study)
    assert importances["lr"] > importances["seed"]  # FakeTrial: lr matters, seed barely


def test_values_beyond_the_range_and_a_widened_sweep_rewrite_the_study(tmp_path):
    """A trial whose lr lies outside every stored value and the sweep's range is stored (the
    study's distribution widens); a later run with a wider log2 range and another width
    widens it again. No growth crashes, and every trial shares the new distributions."""
    fake = FakeTrial(tmp_path / "log")
    sweep = tiny_sweep(tmp_path, lrs=(0.5, 1.0))
    sweep = dataclasses.replace(sweep, hyperparameters={"lr": HPSpace((0.5, 1.0), 0.5, 1.0)})
    with RunStore.open(sweep) as store:
        specs = _specs(sweep)
        for spec in specs:
            store.commit(spec, fake(spec))
        beyond = dataclasses.replace(specs[0], train=dataclasses.replace(specs[0].train, lr=16.0))
        store.commit(beyond, fake(beyond))
    assert _one_distribution_per_param(_study(sweep))["lr"] == FloatDistribution(
        0.5, 16.0, log=True
    )

    wider = dataclasses.replace(
        tiny_sweep(tmp_path, lrs=(0.25, 0.5, 1.0, 2.0), widths=(32, 64)),
        hyperparameters={"lr": HPSpace((0.25, 0.5, 1.0, 2.0), 0.25, 2.0)},
    )
    with RunStore.open(wider) as store:
        for spec in _specs(wider):
            if not store.has(spec.trial_key):
                store.commit(spec, fake(spec))
    dists = _one_distribution_per_param(_study(wider))
    assert dists["lr"] == FloatDistribution(0.25, 16.0, log=True)
    assert dists["width"] == IntDistribution(32, 64, log=True)
    assert len(_study(wider).trials) == 9


def test_failed_and_diverged_trials_keep_their_state_times_and_numbers(tmp_path):
    sweep = tiny_sweep(tmp_path, lrs=(0.5, 64.0))
    ok_spec, bad_spec = _specs(sweep)
    started = time.time() - 100.0
    ok = dataclasses.replace(FakeTrial(tmp_path / "log")(ok_spec), started_at=started, wall_s=7.5)
    diverged = TrialResult(bad_spec.trial_key, "diverged", final_train_loss=math.inf, wall_s=2.0)
    failed = TrialResult(bad_spec.trial_key, "failed", error="ValueError: x")
    with RunStore.open(sweep) as store:
        store.commit(ok_spec, ok)
        store.commit(bad_spec, failed)
        store.commit(bad_spec, diverged)
    t_ok, t_failed, t_div = _study(sweep).trials
    assert t_ok.datetime_start.timestamp() == pytest.approx(started, abs=1e-3)
    assert t_ok.duration.total_seconds() == pytest.approx(7.5, abs=1e-3)
    assert t_ok.user_attrs["wall_s"] == 7.5 and t_ok.intermediate_values == {2: ok.val_loss}
    assert t_failed.state == optuna.trial.TrialState.FAIL
    assert t_failed.user_attrs["error"] == "ValueError: x" and t_failed.params["lr"] == 64.0
    assert t_div.value == math.inf and t_div.user_attrs["final_train_loss"] is None
    assert t_div.duration.total_seconds() == pytest.approx(2.0, abs=1e-3)
    assert t_div.intermediate_values == {}
