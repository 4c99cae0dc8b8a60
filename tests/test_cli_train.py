"""`umup-sweep train` and the CLI's error contract (one line, exit code 2, no traceback)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_helpers import cli


def test_help_lists_the_commands() -> None:
    out = cli("--help")
    assert out.returncode == 0
    for command in ("train", "run", "status", "plot", "recommend", "coord-check"):
        assert command in out.stdout


def test_train_from_flags_prints_a_json_result(tmp_path: Path) -> None:
    curve = tmp_path / "curve.csv"
    out = cli(
        "train",
        "--width",
        "32",
        "--depth",
        "1",
        "--steps",
        "6",
        "--batch-size",
        "4",
        "--seq-len",
        "32",
        "--lr",
        "0.5",
        "--json",
        "--curve",
        str(curve),
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["status"] == "ok" and result["steps"] == 6
    assert result["spec"]["model"]["width"] == 32
    rows = curve.read_text().splitlines()
    assert rows[0] == "step,train_loss,val_loss" and len(rows) == 7
    assert float(rows[-1].split(",")[2]) == pytest.approx(result["val_loss"])


def test_train_from_yaml_with_flag_override(tmp_path: Path) -> None:
    config = tmp_path / "trial.yaml"
    config.write_text(
        "model: {width: 64, depth: 1, seq_len: 32, parametrization: sp}\n"
        "train: {steps: 3, batch_size: 2, eval_batches: 1, lr: 0.001}\nseed: 5\n"
    )
    out = cli("train", str(config), "--width", "32", "--json")
    assert out.returncode == 0, out.stderr
    spec = json.loads(out.stdout)["spec"]
    assert spec["model"]["width"] == 32 and spec["model"]["parametrization"] == "sp"
    assert spec["seed"] == 5 and spec["train"]["steps"] == 3


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("model: {widht: 64}\n", "model.widht: unknown key; did you mean 'width'?"),
        ("model: {width: sixty}\n", "model.width: expected an integer"),
        ("model: {width: 100}\n", "not a multiple of head_dim"),
        ("train: {schedule: exp}\n", "train.schedule: expected one of"),
        ("optimiser: {}\n", "optimiser: unknown key"),
        ("seed: [1]\n", "seed: expected an integer"),
        ("model: {width: 64\n", "YAML syntax error at line 2"),
        ("- 1\n- 2\n", "expected a mapping"),
    ],
)
def test_bad_trial_yaml_gives_one_line_and_exit_code_2(
    tmp_path: Path, text: str, expected: str
) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text(text)
    out = cli("train", str(config))
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith(f"error: {config}")
    assert expected in lines[0]
    assert "Traceback" not in out.stderr


def test_missing_data_path_is_a_one_line_error(tmp_path: Path) -> None:
    out = cli(
        "train",
        "--width",
        "32",
        "--depth",
        "1",
        "--steps",
        "2",
        "--data",
        str(tmp_path / "nope.txt"),
    )
    assert out.returncode == 2
    assert len(out.stderr.strip().splitlines()) == 1 and "nope.txt" in out.stderr
