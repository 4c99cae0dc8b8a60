"""Malformed sweeps: each raises one ConfigError naming the file, the exact key and what was
expected, on one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from umup_sweep.config import load_proxy_family, load_sweep
from umup_sweep.errors import ConfigError

OK_PROXY = "name: tiny\nbase: {head_dim: 16, seq_len: 32}\nwidths: [32, 64]\ndepths: [1]\n"
HEAD = "name: bad\nproxy: tiny.yaml\n"
LR = "hyperparameters:\n  lr: {values: [0.5, 1.0]}\n"

# (id, sweep text, key named, text the message must contain)
CASES = [
    ("unknown-top", HEAD + LR + "seed: [0]\n", "seed", "did you mean 'seeds'?"),
    ("unknown-train", HEAD + LR + "train: {stpes: 10}\n", "train.stpes", "did you mean 'steps'?"),
    (
        "unknown-exec",
        HEAD + LR + "execution: {max_concurent: 2}\n",
        "execution.max_concurent",
        "did you mean 'max_concurrent'?",
    ),
    (
        "unknown-hp",
        HEAD + "hyperparameters:\n  residul_mult: [1, 2]\n",
        "hyperparameters.residul_mult",
        "did you mean 'residual_mult'?",
    ),
    (
        "hp-space-key",
        HEAD + "hyperparameters:\n  lr: {value: [1, 2]}\n",
        "hyperparameters.lr.value",
        "did you mean 'values'?",
    ),
    (
        "type-steps",
        HEAD + LR + "train: {steps: many}\n",
        "train.steps",
        "expected an integer, got 'many'",
    ),
    (
        "bool-batch",
        HEAD + LR + "train: {batch_size: true}\n",
        "train.batch_size",
        "expected an integer",
    ),
    ("neg-steps", HEAD + LR + "train: {steps: -5}\n", "train.steps", "expected > 0"),
    ("neg-width", HEAD + LR + "widths: [32, -64]\n", "widths[1]", "expected > 0"),
    ("width-head", HEAD + LR + "widths: [32, 40]\n", "widths[1]", "multiple of head_dim 16"),
    (
        "lr-zero",
        HEAD + "hyperparameters:\n  lr: {values: [0.5, 0]}\n",
        "hyperparameters.lr.values[1]",
        "lr must be > 0",
    ),
    (
        "wd-negative",
        HEAD + LR + "defaults: {weight_decay: -0.1}\n",
        "defaults.weight_decay",
        ">= 0",
    ),
    (
        "empty-values",
        HEAD + "hyperparameters:\n  lr: {values: []}\n",
        "hyperparameters.lr.values",
        "non-empty list",
    ),
    (
        "dup-values",
        HEAD + "hyperparameters:\n  lr: [1, 1.0]\n",
        "hyperparameters.lr.values",
        "distinct",
    ),
    ("random-no-budget", HEAD + LR + "strategy: random\n", "budget", "needs a trial budget"),
    ("grid-budget", HEAD + LR + "budget: 5\n", "budget", "only random/tpe"),
    (
        "grid-distribution",
        HEAD + "hyperparameters:\n  lr: {distribution: log_uniform_values, min: 0.1, max: 2}\n",
        "hyperparameters.lr",
        "needs grid points",
    ),
    (
        "log-min-zero",
        HEAD + "strategy: tpe\nbudget: 3\nhyperparameters:\n"
        "  weight_decay: {distribution: log_uniform_values, min: 0, max: 1}\n",
        "hyperparameters.weight_decay.min",
        "min > 0",
    ),
    (
        "min-max",
        HEAD + "strategy: tpe\nbudget: 3\nhyperparameters:\n"
        "  lr: {distribution: uniform, min: 2, max: 1}\n",
        "hyperparameters.lr.max",
        "max > min",
    ),
    ("bad-strategy", HEAD + LR + "strategy: gird\n", "strategy", "did you mean 'grid'?"),
    (
        "bad-metric",
        HEAD + LR + "metric: {name: accuracy, goal: minimize}\n",
        "metric.name",
        "val_loss or final_train_loss",
    ),
    (
        "metric-goal",
        HEAD + LR + "metric: {name: val_loss, goal: maximize}\n",
        "metric.goal",
        "minimize",
    ),
    ("name-escape", "name: ../etc\nproxy: tiny.yaml\n" + LR, "name", "no path separators"),
    ("name-slash", "name: a/b\nproxy: tiny.yaml\n" + LR, "name", "no path separators"),
    ("missing-proxy", "name: x\nproxy: nowhere.yaml\n" + LR, "proxy", "proxy file not found"),
    ("no-proxy", "name: x\n" + LR, "proxy", "missing"),
    ("no-hps", HEAD, "hyperparameters", "missing"),
    ("seeds-type", HEAD + LR + "seeds: [0, one]\n", "seeds[1]", "expected an integer"),
    (
        "executor",
        HEAD + LR + "execution: {executor: slurm}\n",
        "execution.executor",
        "expected one of ray, serial",
    ),
    ("train-lr", HEAD + LR + "train: {lr: 0.1}\n", "train.lr", "set defaults.lr"),
    (
        "log2-range",
        HEAD + "hyperparameters:\n  lr: {log2_range: [1, -3]}\n",
        "hyperparameters.lr.log2_range",
        "low <= high",
    ),
    (
        "step-alone",
        HEAD + "hyperparameters:\n  lr: {values: [1, 2], step: 1}\n",
        "hyperparameters.lr.step",
        "only goes with log2_range",
    ),
    ("section-type", HEAD + LR + "train: [1, 2]\n", "train", "expected a mapping"),
    (
        "stage2-option",
        HEAD + LR + "strategy: independent\nstrategy_options: {stage2: [lr]}\n",
        "strategy_options.stage2[0]",
        "other than lr",
    ),
    (
        "select-width",
        HEAD + LR + "strategy: independent\nstrategy_options: {select_width: 48}\n",
        "strategy_options.select_width",
        "one of the widths",
    ),
    (
        "grid-option",
        HEAD + LR + "strategy_options: {noise_sd: 0.1}\n",
        "strategy_options.noise_sd",
        "unknown key",
    ),
    (
        "div-conflict",
        HEAD + LR + "train: {diverge_loss: 5}\ndivergence: {max_loss: 6}\n",
        "divergence.max_loss",
        "conflicts",
    ),
    ("alias-both", HEAD + LR + "method: grid\nstrategy: grid\n", "method", "not both"),
    (
        "parametrization",
        HEAD + LR + "parametrization: mup2\n",
        "parametrization",
        "expected one of umup, sp",
    ),
]


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "tiny.yaml").write_text(OK_PROXY)
    return tmp_path


def _error(path: Path) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_sweep(path)
    return info.value


@pytest.mark.parametrize(
    ("text", "key", "needle"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_malformed_sweep_names_key(folder: Path, text: str, key: str, needle: str) -> None:
    path = folder / "sweep.yaml"
    path.write_text(text)
    err = _error(path)
    msg = str(err)
    assert err.key == key, msg
    assert err.source == str(path)
    assert msg.startswith(f"{path}: {key}: "), msg
    assert needle in msg, msg
    assert "\n" not in msg


def test_yaml_syntax_error_gives_line(folder: Path) -> None:
    path = folder / "sweep.yaml"
    path.write_text("name: x\nproxy: tiny.yaml\nhyperparameters:\n  lr: [1, 2\ntrain: {}\n")
    msg = str(_error(path))
    assert msg.startswith(f"{path}: YAML syntax error at line ") and "\n" not in msg
    line = int(msg.split("at line ")[1].split(",")[0])
    assert line in (4, 5)  # the unclosed list, or where the parser noticed it


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("- a\n- b\n", "expected a mapping of sweep keys"),
        ("", "empty document"),
        ("# only a comment\n", "empty document"),
    ],
)
def test_non_mapping_document(folder: Path, text: str, needle: str) -> None:
    path = folder / "sweep.yaml"
    path.write_text(text)
    err = _error(path)
    assert err.key == "" and needle in str(err) and "\n" not in str(err)


def test_missing_sweep_file(tmp_path: Path) -> None:
    err = _error(tmp_path / "nope.yaml")
    assert str(err) == f"{tmp_path / 'nope.yaml'}: file not found"


def test_yaml_tags_are_not_executed(folder: Path) -> None:
    path = folder / "sweep.yaml"
    path.write_text('name: !!python/object/apply:os.system ["echo hi"]\n')
    assert "YAML syntax error" in str(_error(path))  # safe_load refuses python tags


def test_errors_inside_proxy_file_name_that_file(folder: Path) -> None:
    (folder / "bad_proxy.yaml").write_text(
        "base: {head_dim: 16, ffn: relu}\nwidths: [32]\ndepths: [1]\n"
    )
    path = folder / "sweep.yaml"
    path.write_text("name: x\nproxy: bad_proxy.yaml\n" + LR)
    err = _error(path)
    assert err.source == str(folder / "bad_proxy.yaml") and err.key == "base.ffn"
    assert "expected one of swiglu, gelu" in str(err)


def test_inline_proxy_errors_are_prefixed(folder: Path) -> None:
    path = folder / "sweep.yaml"
    path.write_text("name: x\nproxy: {base: {head_dim: 16}, widths: [32], depth: [1]}\n" + LR)
    err = _error(path)
    assert err.key == "proxy.depth" and "did you mean 'depths'?" in str(err)


def test_proxy_family_head_dim_mismatch(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_proxy_family({"base": {"head_dim": 24}, "widths": [48, 64], "depths": [1]})
    assert info.value.key == "widths[1]" and "multiple of head_dim 24" in str(info.value)


def test_model_override_keeps_widths_valid(folder: Path) -> None:
    path = folder / "sweep.yaml"
    path.write_text(HEAD + LR + "model: {head_dim: 64}\n")
    err = _error(path)
    assert err.key == "model.head_dim" and "not a multiple of head_dim 64" in str(err)
    path.write_text(HEAD + LR + "model: {head_dim: 32}\nwidths: [32, 96]\n")
    assert load_sweep(path).family.widths == (32, 96)  # head_dim changes, widths fit
    path.write_text(HEAD + LR + "model: {head_dim: 32}\nwidths: [32, 48]\n")
    err = _error(path)
    assert err.key == "widths[1]" and "multiple of head_dim 32" in str(err)


def test_duplicate_keys_are_refused(folder: Path) -> None:
    path = folder / "sweep.yaml"
    path.write_text(HEAD + LR + "train: {steps: 10}\nseeds: [0]\ntrain: {steps: 20}\n")
    msg = str(_error(path))
    assert msg.startswith(f"{path}: YAML syntax error at line 7") and "duplicate key 'train'" in msg
