"""The config asks `umup_sweep.search.STRATEGIES` for strategy names and options; the trial YAML;
what the loader must not change (the sweep hash) or pull in (the search stack)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any, ClassVar

import pytest

from umup_sweep.config import (
    OptionContext,
    load_sweep,
    load_trial,
    sweep_hash,
    sweep_to_dict,
)
from umup_sweep.errors import ConfigError
from umup_sweep.search import STRATEGIES, GridStrategy

PROXY = {"base": {"head_dim": 16}, "widths": [32, 64], "depths": [1]}


def _sweep(strategy: str, **extra: Any) -> dict[str, Any]:
    d: dict[str, Any] = {
        "name": "s",
        "proxy": PROXY,
        "strategy": strategy,
        "hyperparameters": {"lr": [0.5, 1, 2], "residual_mult": [0.5, 1, 2]},
    }
    if strategy in STRATEGIES and STRATEGIES[strategy].SAMPLED:
        d["budget"] = 6
    return d | extra


@pytest.mark.parametrize("name", list(STRATEGIES))
def test_every_option_is_resolved_explicitly(name: str) -> None:
    s = load_sweep(_sweep(name))
    assert set(s.strategy_options) == set(STRATEGIES[name].OPTIONS)
    for derived in ("stage2", "n_startup_trials"):  # defaults computed from the sweep
        assert s.strategy_options.get(derived, "absent") is not None
    assert load_sweep(sweep_to_dict(s)) == s


class _EveryOther(GridStrategy):
    """A strategy registered from outside the config: `load_sweep` must know it at once."""

    OPTIONS: ClassVar[dict[str, Any]] = {"stride": 2}

    @classmethod
    def parse_options(cls, options: dict[str, Any], ctx: OptionContext) -> dict[str, Any]:
        stride = ctx.number(options["stride"], "stride", integer=True)
        if stride < 1:
            raise ctx.fail("stride", "expected >= 1", stride)
        return {"stride": stride}


def test_the_registry_is_the_only_list_of_strategies(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(STRATEGIES, "every_other", _EveryOther)
    s = load_sweep(_sweep("every_other", strategy_options={"stride": 3.0}))
    assert s.strategy == "every_other" and s.strategy_options == {"stride": 3}
    with pytest.raises(ConfigError) as err:
        load_sweep(_sweep("every_other", strategy_options={"stride": 0}))
    assert str(err.value) == "<inline>: strategy_options.stride: expected >= 1, got 0 (int)"
    with pytest.raises(ConfigError) as err:
        load_sweep(_sweep("every_othr"))
    assert err.value.key == "strategy" and "every_other" in err.value.expected


def test_tpe_startup_default_follows_the_budget() -> None:
    for budget, startup in [(3, 2), (12, 4), (100, 10)]:
        s = load_sweep(_sweep("tpe", budget=budget))
        assert s.strategy_options["n_startup_trials"] == startup
    with pytest.raises(ConfigError) as err:
        load_sweep(_sweep("tpe", strategy_options={"n_startup_trials": -1}))
    assert err.value.key == "strategy_options.n_startup_trials"


def test_hash_of_a_pinned_sweep_is_unchanged() -> None:
    """Run directories are resumed only under the same hash: a change here refuses old runs.
    (A grid sweep: the independent strategy's options are part of the hash on purpose, so a
    change to what that search does starts a new run instead of mixing two procedures.)"""
    d = {
        "name": "pin",
        "proxy": PROXY,
        "strategy": "grid",
        "seeds": [0, 1],
        "hyperparameters": {"lr": {"log2_range": [-2, 1]}, "residual_mult": [0.5, 1, 2]},
        "defaults": {"lr": 0.5, "weight_decay": 0.1},
        "train": {"steps": 20},
    }
    assert sweep_hash(load_sweep(d)) == "c146a1ec0f51cc2b"  # the same as version 0.1


def test_defaults_lr_is_stored_once() -> None:
    s = load_sweep(_sweep("grid", defaults={"lr": 0.5, "weight_decay": 0.1}))
    stored = sweep_to_dict(s)
    assert stored["defaults"]["lr"] == 0.5 and stored["defaults"]["weight_decay"] == 0.1
    assert "lr" not in stored["train"] and "weight_decay" not in stored["train"]


def test_loading_config_leaves_the_search_stack_unloaded() -> None:
    code = (
        "import sys, umup_sweep.config as c; c.build_section; "
        "print(sorted(m for m in ('optuna', 'pandas', 'umup_sweep.search') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_trial_yaml(tmp_path: Path) -> None:
    path = tmp_path / "trial.yaml"
    path.write_text("model: {width: 32, depth: 1}\ntrain: {lr: 0.25, steps: 5}\nseed: 4\n")
    spec = load_trial(path)
    assert (spec.model.width, spec.train.lr, spec.train.steps, spec.seed) == (32, 0.25, 5, 4)
    path.write_text("")
    assert load_trial(path).seed == 0
    for text, key in [("modle: {}\n", "modle"), ("seed: 1.5\n", "seed"), ("[1]\n", "")]:
        path.write_text(text)
        with pytest.raises(ConfigError) as err:
            load_trial(path)
        assert err.value.key == key and err.value.source == str(path)
