"""The `precisions:` axis and the device keys of a sweep YAML: defaults, round trip, hash,
one-line errors naming the key, and agreement with `umup_sweep.precision` / `device`."""

from __future__ import annotations

from pathlib import Path

import pytest

from umup_sweep.config import load_sweep, precision_names, sweep_hash, sweep_to_dict
from umup_sweep.device import check_gpus_per_trial, parse_device
from umup_sweep.errors import ConfigError, UserError
from umup_sweep.precision import PRECISIONS

PROXY = {"base": {"head_dim": 16, "seq_len": 32}, "widths": [32, 64], "depths": [1]}


def sweep(**extra):
    return load_sweep({"name": "p", "proxy": PROXY, "hyperparameters": {"lr": [0.5, 1]}, **extra})


def error(tmp_path: Path, text: str) -> ConfigError:
    path = tmp_path / "bad.yaml"
    base = (
        "name: p\nproxy: {base: {head_dim: 16}, widths: [32], depths: [1]}\n"
        "hyperparameters: {lr: [0.5, 1]}\n"
    )
    path.write_text(base + text)
    with pytest.raises(ConfigError) as err:
        load_sweep(path)
    assert "\n" not in str(err.value)
    assert str(err.value).startswith(f"{path}: {err.value.key}: ")
    return err.value


def test_precision_names_are_the_precision_modules() -> None:
    assert precision_names() == PRECISIONS


def test_default_is_train_precision() -> None:
    assert sweep().precisions == ("fp32",) and sweep().train.precision == "fp32"
    bf16 = sweep(train={"precision": "bf16"})
    assert bf16.precisions == ("bf16",) and bf16.train.precision == "bf16"


def test_axis_sets_train_precision_to_its_first_entry() -> None:
    s = sweep(precisions=["fp8_sim", "fp32"])
    assert s.precisions == ("fp8_sim", "fp32") and s.train.precision == "fp8_sim"
    assert sweep(precisions="fp8_sim").precisions == ("fp8_sim",)  # a bare string is one entry
    # train.precision may name one of the axis's entries
    assert sweep(precisions=["fp32", "fp8_sim"], train={"precision": "fp8_sim"}).precisions == (
        "fp32",
        "fp8_sim",
    )


def test_round_trip_and_hash() -> None:
    two = sweep(precisions=["fp32", "fp8_sim"])
    written = sweep_to_dict(two)
    assert written["precisions"] == ["fp32", "fp8_sim"] and written["train"]["precision"] == "fp32"
    assert load_sweep(written) == two
    # A one-precision sweep hashes as before the axis existed: with or without the key.
    assert sweep_hash(sweep()) == sweep_hash(sweep(precisions=["fp32"]))
    hashes = {
        sweep_hash(s)
        for s in (
            sweep(),
            two,
            sweep(precisions=["fp8_sim"]),
            sweep(precisions=["fp8_sim", "fp32"]),
        )
    }
    assert len(hashes) == 4


@pytest.mark.parametrize(
    ("text", "key", "fragment"),
    [
        ("precisions: [fp32, fp16]\n", "precisions[1]", "expected one of fp32, bf16, fp8_sim"),
        ("precisions: [fp8]\n", "precisions[0]", "did you mean 'fp8_sim'?, got 'fp8'"),
        ("precisions: []\n", "precisions", "expected a non-empty list of fp32, bf16, fp8_sim"),
        ("precisions: {a: 1}\n", "precisions", "expected a non-empty list"),
        ("precisions: [fp32, fp32]\n", "precisions", "expected distinct precisions"),
        (
            "precisions: [fp32, fp8_sim]\ntrain: {precision: bf16}\n",
            "train.precision",
            "expected one of precisions (fp32, fp8_sim), or leave it out, got 'bf16'",
        ),
        ("train: {precision: fp16}\n", "train.precision", "expected one of fp32, bf16, fp8_sim"),
        ("precison: [fp32]\n", "precison", "did you mean 'precisions'?"),
        ("train: {device: gpu}\n", "train.device", "one of auto, cpu, cuda or cuda:N, got 'gpu'"),
        ("train: {device: 'cuda:'}\n", "train.device", "one of auto, cpu, cuda or cuda:N"),
        ("train: {device: 0}\n", "train.device", "expected a string"),
        ("execution: {gpus_per_trial: 1.5}\n", "execution.gpus_per_trial", "whole number"),
        ("execution: {gpus_per_trial: -0.5}\n", "execution.gpus_per_trial", "got -0.5"),
    ],
)
def test_bad_values_are_one_line_naming_the_key(
    tmp_path: Path, text: str, key: str, fragment: str
) -> None:
    err = error(tmp_path, text)
    assert err.key == key
    assert fragment in str(err), str(err)


@pytest.mark.parametrize(
    "device", ["auto", "cpu", "cuda", "cuda:0", "cuda:12", " CUDA:1 ", "gpu", "cuda:", "mps", ""]
)
def test_device_key_accepts_what_the_device_module_accepts(device: str) -> None:
    try:
        expected: str | None = parse_device(device)
    except UserError:
        expected = None
    try:
        got: str | None = sweep(train={"device": device}).train.device
    except ConfigError as err:
        assert err.key == "train.device"
        got = None
    assert got == expected  # accepted and normalised alike, or refused alike


@pytest.mark.parametrize("gpus", [0, 0.25, 0.5, 1, 2, 8, 1.5, 2.5, -1])
def test_gpus_per_trial_accepts_what_ray_accepts(gpus: float) -> None:
    try:
        expected: float | None = check_gpus_per_trial(gpus)
    except ConfigError:
        expected = None
    try:
        got: float | None = sweep(execution={"gpus_per_trial": gpus}).execution.gpus_per_trial
    except ConfigError as err:
        assert err.key == "execution.gpus_per_trial"
        got = None
    assert got == expected
