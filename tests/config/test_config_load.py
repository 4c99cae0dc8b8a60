"""`load_sweep` on valid sweeps: resolution, aliases, overrides, round trip, hash, shipped files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from umup_sweep.config import load_proxy_family, load_sweep, sweep_hash, sweep_to_dict
from umup_sweep.errors import ConfigError
from umup_sweep.search import make_trial

REPO = Path(__file__).resolve().parents[2]

PROXY = """
name: tiny
base: {head_dim: 16, seq_len: 32, ffn_ratio: 2.0, residual_mult: 0.5}
widths: [32, 64]
depths: [1, 2]
"""

SWEEP = """
name: demo
proxy: proxies/tiny.yaml
widths: [64, 32, 128]
depths: [1]
seeds: [0, 1]
strategy: grid
hyperparameters:
  lr: {log2_range: [-3, 1], step: 1}
  loss_softmax_mult: {values: [2, 0.5, 1]}
defaults: {attn_softmax_mult: 2.0, weight_decay: 0.1}
train: {steps: 20, batch_size: 4, warmup_frac: 0.2, eps: 1e-6}
divergence: {max_loss: 7.5}
metric: {name: final_train_loss, goal: minimize}
execution: {executor: serial, max_concurrent: 1}
storage: {run_dir: out}
analysis: {tolerance: 0.5}
"""


@pytest.fixture
def sweep_file(tmp_path: Path) -> Path:
    (tmp_path / "proxies").mkdir()
    (tmp_path / "proxies" / "tiny.yaml").write_text(PROXY)
    (tmp_path / "sweeps").mkdir()
    path = tmp_path / "sweeps" / "demo.yaml"
    path.write_text(SWEEP)
    return path


def test_resolves_every_section(sweep_file: Path) -> None:
    s = load_sweep(sweep_file)
    assert s.name == "demo" and s.source == str(sweep_file)
    # proxy found one folder above the sweep file; the sweep's widths replace the family's
    assert s.family.name == "tiny"
    assert s.family.widths == (32, 64, 128) and s.family.depths == (1,)
    assert [(m.width, m.n_heads, m.head_dim) for m in s.family.specs()] == [
        (32, 2, 16),
        (64, 4, 16),
        (128, 8, 16),
    ]
    assert s.hyperparameters["lr"].values == (0.125, 0.25, 0.5, 1.0, 2.0)
    assert (s.hyperparameters["lr"].low, s.hyperparameters["lr"].high) == (0.125, 2.0)
    assert s.hyperparameters["loss_softmax_mult"].values == (0.5, 1.0, 2.0)
    # defaults: built-in < proxy base (residual_mult 0.5) < sweep defaults
    assert s.defaults == {
        "lr": 1.0,
        "residual_mult": 0.5,
        "residual_attn_ratio": 1.0,
        "attn_softmax_mult": 2.0,
        "ffn_act_mult": 1.0,
        "loss_softmax_mult": 1.0,
        "weight_decay": 0.1,
    }
    assert s.train.steps == 20 and s.train.eps == 1e-6 and s.train.diverge_loss == 7.5
    # lr and weight_decay are stored once, in defaults: trials take them from there
    trial = make_trial(s, s.family.specs()[0], {}, 0, stage="x")
    assert trial.train.weight_decay == 0.1 and trial.train.lr == 1.0
    assert not {"lr", "weight_decay"} & set(sweep_to_dict(s)["train"])
    assert s.metric == "final_train_loss" and s.seeds == (0, 1)
    assert s.execution.executor == "serial" and s.analysis.tolerance == 0.5
    assert s.run_dir == Path("out/demo")


def test_wandb_aliases_and_distribution(tmp_path: Path) -> None:
    path = tmp_path / "w.yaml"
    path.write_text(
        """
proxy: {base: {head_dim: 16}, widths: [32], depths: [1]}
method: tpe
budget: 12
metric: val_loss
parameters:
  lr: {distribution: log_uniform_values, min: 0.01, max: 4}
  weight_decay: {distribution: uniform, min: 0, max: 0.2}
"""
    )
    s = load_sweep(path)
    assert s.name == "w"  # defaults to the file stem
    assert s.strategy == "tpe" and s.budget == 12
    lr, wd = s.hyperparameters["lr"], s.hyperparameters["weight_decay"]
    assert (lr.low, lr.high, lr.log, lr.values) == (0.01, 4.0, True, ())
    assert (wd.low, wd.high, wd.log) == (0.0, 0.2, False)
    assert s.strategy_options == {"sampler_seed": 0, "n_startup_trials": 4}


def test_random_derives_range_from_values(tmp_path: Path) -> None:
    s = load_sweep(
        {
            "name": "r",
            "proxy": {"base": {"head_dim": 16}, "widths": [32], "depths": [1]},
            "strategy": "random",
            "budget": 3,
            "hyperparameters": {"lr": [0.5, 4, 1]},
        }
    )
    assert (s.hyperparameters["lr"].low, s.hyperparameters["lr"].high) == (0.5, 4.0)


def test_overrides_dotted_and_nested(sweep_file: Path) -> None:
    s = load_sweep(
        sweep_file,
        overrides={"train.steps": 7, "execution": {"max_concurrent": 3}, "method": "grid"},
    )
    assert s.train.steps == 7 and s.train.batch_size == 4
    assert s.execution.max_concurrent == 3 and s.execution.executor == "serial"
    with pytest.raises(ConfigError) as err:
        load_sweep(sweep_file, overrides={"train.stpes": 7})
    assert err.value.key == "train.stpes" and "did you mean 'steps'" in str(err.value)


def test_round_trip_through_written_file(sweep_file: Path, tmp_path: Path) -> None:
    s = load_sweep(sweep_file)
    out = tmp_path / "elsewhere" / "sweep.yaml"
    out.parent.mkdir()
    out.write_text(yaml.safe_dump(sweep_to_dict(s), sort_keys=False))
    cwd = os.getcwd()
    os.chdir(out.parent)  # the resolved file needs nothing else, wherever it is read
    try:
        again = load_sweep(out)
    finally:
        os.chdir(cwd)
    assert again == s
    assert sweep_hash(again) == sweep_hash(s)
    assert yaml.safe_load(out.read_text()) == sweep_to_dict(again)


@pytest.mark.parametrize("strategy", ["independent", "random", "tpe"])
def test_round_trip_other_strategies(tmp_path: Path, strategy: str) -> None:
    d = {
        "name": "rt",
        "proxy": {"base": {"head_dim": 16}, "widths": [32, 64], "depths": [1]},
        "strategy": strategy,
        "hyperparameters": {"lr": {"log2_range": [-2, 1]}, "residual_mult": [0.5, 1, 2]},
    }
    if strategy != "independent":
        d["budget"] = 5
    s = load_sweep(d)
    out = tmp_path / "sweep.yaml"
    out.write_text(yaml.safe_dump(sweep_to_dict(s)))
    assert load_sweep(out) == s


def test_hash_tracks_what_decides_the_trials(sweep_file: Path) -> None:
    s = load_sweep(sweep_file)
    h = sweep_hash(s)
    same = [
        {"execution.max_concurrent": 5, "execution.executor": "ray"},
        {"execution.address": "ray://head:10001", "storage.run_dir": "elsewhere"},
        {"name": "renamed", "analysis.tolerance": 0.1, "train.threads": 2},
    ]
    for over in same:
        assert sweep_hash(load_sweep(sweep_file, overrides=over)) == h, over
    different = [
        {"train.steps": 21},
        {"seeds": [0]},
        {"widths": [32, 64]},
        {"hyperparameters.lr": {"values": [0.5, 1.0]}},
        {"defaults.residual_mult": 1.0},
        {"metric": "val_loss"},
        {"data.val_fraction": 0.1},
    ]
    hashes = {sweep_hash(load_sweep(sweep_file, overrides=over)) for over in different}
    assert h not in hashes and len(hashes) == len(different)


def test_proxy_family_from_file_and_mapping(tmp_path: Path) -> None:
    path = tmp_path / "fam.yaml"
    path.write_text(PROXY)
    fam = load_proxy_family(path)
    assert fam.name == "tiny" and fam.widths == (32, 64) and fam.depths == (1, 2)
    assert fam.base.residual_mult == 0.5 and fam.base.seq_len == 32
    assert len(fam.specs()) == 4
    inline = load_proxy_family(yaml.safe_load(PROXY), "x.yaml", key="proxy")
    assert inline == fam


SHIPPED = sorted((REPO / "sweeps").glob("*.yaml"))


def test_sweeps_are_shipped() -> None:
    assert len(SHIPPED) >= 5  # the parametrized test below must not silently run on nothing


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_shipped_sweeps_load_and_round_trip(path: Path, tmp_path: Path) -> None:
    s = load_sweep(path)
    assert s.name == path.stem
    out = tmp_path / "sweep.yaml"
    out.write_text(yaml.safe_dump(sweep_to_dict(s)))
    assert load_sweep(out) == s


def test_parse_overrides_feeds_load_sweep(sweep_file: Path) -> None:
    from umup_sweep.config import parse_overrides

    over = parse_overrides(["train.steps=50", "widths=[32, 64]", "storage.url=null", "name=x2"])
    assert over == {"train.steps": 50, "widths": [32, 64], "storage.url": None, "name": "x2"}
    s = load_sweep(sweep_file, overrides=over)
    assert s.train.steps == 50 and s.family.widths == (32, 64) and s.name == "x2"
    for bad, key in [("train.steps", "train.steps"), ("=3", "=3"), ("a..b=1", "a..b=1")]:
        with pytest.raises(ConfigError) as err:
            parse_overrides([bad])
        assert err.value.key == key and "dotted.key=value" in str(err.value)
    with pytest.raises(ConfigError) as err:
        parse_overrides(["widths=[32, 64"])
    assert err.value.key == "widths" and "not valid YAML" in str(err.value)
