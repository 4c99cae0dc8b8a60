"""The u-μP multipliers in an SP sweep: SP has none of them (its model ignores the values), so
sweeping one, or setting one off 1.0 in `defaults:` or `model:`, is a one-line ConfigError
naming the file and the key; lr and weight_decay stay sweepable, and u-μP sweeps are untouched."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_helpers import cli

from umup_sweep.config import load_sweep
from umup_sweep.errors import ConfigError
from umup_sweep.spec import MODEL_HPS

PROXY = "name: tiny\nbase: {head_dim: 16, seq_len: 32}\nwidths: [32]\ndepths: [1]\n"
SP_PROXY = "name: tinysp\nbase: {head_dim: 16, seq_len: 32, parametrization: sp}\n"
SP_PROXY += "widths: [32]\ndepths: [1]\n"
HEAD = "name: bad\nproxy: tiny.yaml\nparametrization: sp\n"
SWEPT = "is a u-μP multiplier that SP (parametrization: sp) does not have; sweep only lr"
SET = "is a u-μP multiplier that SP (parametrization: sp) does not have; leave it at 1.0"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "tiny.yaml").write_text(PROXY)
    (tmp_path / "tinysp.yaml").write_text(SP_PROXY)
    return tmp_path


def _error(folder: Path, text: str) -> tuple[Path, ConfigError]:
    path = folder / "sweep.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_sweep(path)
    return path, info.value


@pytest.mark.parametrize("hp", MODEL_HPS)
def test_sweeping_a_multiplier_under_sp_names_the_key(folder: Path, hp: str) -> None:
    text = HEAD + f"hyperparameters:\n  lr: [0.001, 0.01]\n  {hp}: {{log2_range: [-1, 1]}}\n"
    path, err = _error(folder, text)
    assert err.source == str(path) and err.key == f"hyperparameters.{hp}"
    assert str(err) == (f"{path}: hyperparameters.{hp}: {hp} {SWEPT} (and weight_decay) for SP")


@pytest.mark.parametrize(
    ("strategy", "space"),
    [
        ("random\nbudget: 4", "{distribution: log_uniform_values, min: 0.5, max: 2}"),
        ("tpe\nbudget: 4", "[0.5, 2]"),
        ("independent", "[1]"),  # a single value at the default is still a sweep of it
    ],
)
def test_every_strategy_refuses(folder: Path, strategy: str, space: str) -> None:
    text = HEAD + f"strategy: {strategy}\nhyperparameters:\n  lr: [0.001, 0.01]\n"
    _, err = _error(folder, text + f"  ffn_act_mult: {space}\n")
    assert err.key == "hyperparameters.ffn_act_mult" and SWEPT in str(err)


def test_parametrization_from_the_proxy_file_counts(folder: Path) -> None:
    text = "name: bad\nproxy: tinysp.yaml\nhyperparameters:\n  residual_attn_ratio: [0.5, 2]\n"
    path, err = _error(folder, text)
    assert err.source == str(path) and err.key == "hyperparameters.residual_attn_ratio"


def test_override_to_sp_is_checked(folder: Path) -> None:
    path = folder / "sweep.yaml"
    path.write_text("name: ok\nproxy: tiny.yaml\nhyperparameters:\n  residual_mult: [0.5, 2]\n")
    assert load_sweep(path).swept == ("residual_mult",)  # fine under u-μP
    with pytest.raises(ConfigError) as info:
        load_sweep(path, overrides={"parametrization": "sp"})
    assert info.value.key == "hyperparameters.residual_mult"


@pytest.mark.parametrize(
    ("section", "value"),
    [("defaults", "{lr: 0.01, attn_softmax_mult: 2}"), ("model", "{attn_softmax_mult: 2}")],
)
def test_multiplier_set_off_default_under_sp(folder: Path, section: str, value: str) -> None:
    text = HEAD + "hyperparameters:\n  lr: [0.001, 0.01]\n" + f"{section}: {value}\n"
    path, err = _error(folder, text)
    assert err.key == f"{section}.attn_softmax_mult"
    assert str(err) == (
        f"{path}: {section}.attn_softmax_mult: attn_softmax_mult {SET} or remove it, got 2 (int)"
    )


def test_sp_sweeps_lr_and_weight_decay_with_multipliers_at_default(folder: Path) -> None:
    path = folder / "sweep.yaml"
    path.write_text(
        HEAD
        + "hyperparameters:\n  lr: [0.001, 0.01]\n  weight_decay: [0, 0.1]\n"
        + "defaults: {residual_mult: 1, loss_softmax_mult: 1.0}\nmodel: {ffn_act_mult: 1}\n"
    )
    sweep = load_sweep(path)
    assert sweep.parametrization == "sp" and sweep.swept == ("lr", "weight_decay")
    assert all(sweep.defaults[hp] == 1.0 for hp in MODEL_HPS)


def test_umup_may_set_multipliers_anywhere(folder: Path) -> None:
    path = folder / "sweep.yaml"
    path.write_text(
        "name: ok\nproxy: tiny.yaml\nhyperparameters:\n  lr: [0.5, 1]\n  ffn_act_mult: [0.5, 2]\n"
        "defaults: {residual_mult: 2}\nmodel: {attn_softmax_mult: 0.5}\n"
    )
    sweep = load_sweep(path)
    assert sweep.defaults["residual_mult"] == 2.0 and sweep.family.base.attn_softmax_mult == 0.5


def test_cli_run_is_one_line_exit_2_and_makes_no_run_dir(folder: Path) -> None:
    path = folder / "bad.yaml"
    path.write_text(HEAD + "hyperparameters:\n  lr: [0.001, 0.01]\n  residual_mult: [0.5, 2]\n")
    out = cli("run", path, cwd=folder)
    assert out.returncode == 2, out.stderr
    assert out.stderr.strip().splitlines() == [
        f"error: {path}: hyperparameters.residual_mult: residual_mult {SWEPT} "
        "(and weight_decay) for SP"
    ]
    assert "Traceback" not in out.stderr and not (folder / "runs").exists()
