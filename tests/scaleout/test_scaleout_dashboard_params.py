"""On a shared PostgreSQL study, trials stored with the earlier single-point params are
rewritten to the sweep's ranges when the sweep grows (the same SQL as for SQLite), and the
study then reads in Optuna with one distribution per param."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import optuna
import pandas as pd
from optuna.distributions import FloatDistribution, IntDistribution
from sweep_fakes import FakeTrial, tiny_sweep

from umup_sweep.config import StorageSpec
from umup_sweep.search import GridStrategy
from umup_sweep.store import RunStore


def _on(url: str, root: Path, **kw):
    sweep = tiny_sweep(root, name="pgdash", **kw)
    return dataclasses.replace(sweep, storage=StorageSpec(run_dir=root, url=url))


def test_shared_study_with_single_point_params_grows_and_is_rewritten(postgres_url, tmp_path):
    fake = FakeTrial(tmp_path / "log")
    old = _on(postgres_url, tmp_path / "a", lrs=(0.5, 1.0))
    with RunStore.open(old) as store:  # trials as earlier versions wrote them
        storage, study_id = store.optuna_study()
        for spec in GridStrategy(old).propose(pd.DataFrame(columns=["trial_key"]), [], 10):
            result = fake(spec)
            attrs = {"trial_key": spec.trial_key, "status": "ok", "spec": spec.to_dict()}
            attrs["result"] = {k: v for k, v in result.to_dict().items() if k != "curve"}
            lr, width = spec.train.lr, spec.model.width
            frozen = optuna.trial.create_trial(
                value=result.val_loss,
                params={"lr": lr, "width": width},
                distributions={"lr": FloatDistribution(lr, lr), "width": IntDistribution(32, 32)},
                user_attrs=attrs,
            )
            storage.create_new_trial(study_id, template_trial=frozen)
    assert RunStore.load(old.run_dir).stale_trials() == 2

    grown = _on(postgres_url, tmp_path / "a", lrs=(0.25, 0.5, 1.0, 2.0))
    with RunStore.open(grown) as store:
        for spec in GridStrategy(grown).propose(store.results(), [], 10):
            store.commit(spec, fake(spec))
        assert len(store.results()) == 4 and store.stale_trials() == 0

    study = optuna.load_study(study_name="pgdash", storage=postgres_url)
    lr_dists = {t.distributions["lr"] for t in study.trials}
    assert lr_dists == {FloatDistribution(0.25, 2.0, log=True)}
    assert all(t.params["precision"] == "fp32" for t in study.trials)
