"""`execution.fuse: auto | off | K`: parsed from the sweep file (a bare YAML `off` included),
bad values are one line naming the file and key, and it changes neither the sweep's identity
nor, while off, the resolved sweep file."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from umup_sweep.config import load_sweep, sweep_hash, sweep_to_dict
from umup_sweep.errors import ConfigError

SWEEP = {
    "name": "fz",
    "proxy": {"base": {"head_dim": 16}, "widths": [32], "depths": [1]},
    "hyperparameters": {"lr": {"values": [0.5, 1.0]}},
}


def _load(tmp_path: Path, text: str):
    path = tmp_path / "fz.yaml"
    path.write_text(yaml.safe_dump(SWEEP) + text)
    return load_sweep(path), path


@pytest.mark.parametrize(
    ("text", "fuse"),
    [
        ("", "off"),
        ("execution: {fuse: off}\n", "off"),  # YAML 1.1: a bare off is false
        ("execution: {fuse: 'off'}\n", "off"),
        ("execution: {fuse: auto}\n", "auto"),
        ("execution: {fuse: 4}\n", 4),
        ("execution: {fuse: 1}\n", 1),
    ],
)
def test_fuse_values(tmp_path: Path, text: str, fuse: object) -> None:
    sweep, _ = _load(tmp_path, text)
    assert sweep.execution.fuse == fuse


@pytest.mark.parametrize("bad", ["sometimes", "0", "-2", "2.5", "true", "[2]", "{k: 2}"])
def test_bad_fuse_is_one_line_naming_file_and_key(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ConfigError) as err:
        _load(tmp_path, f"execution: {{executor: serial, fuse: {bad}}}\n")
    message = str(err.value)
    assert err.value.key == "execution.fuse" and "\n" not in message
    assert message.startswith(str(tmp_path / "fz.yaml"))
    assert "expected auto, off or a whole number of trials >= 1" in message


def test_other_execution_keys_still_checked(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        _load(tmp_path, "execution: {fuse: 2, max_concurent: 3}\n")
    assert err.value.key == "execution.max_concurent" and "max_concurrent" in str(err.value)


def test_fuse_is_not_identity_and_round_trips(tmp_path: Path) -> None:
    plain, _ = _load(tmp_path, "")
    fused, _ = _load(tmp_path, "execution: {fuse: 8}\n")
    assert sweep_hash(plain) == sweep_hash(fused)
    assert "fuse" not in sweep_to_dict(plain)["execution"]  # resolved files stay as they were
    for sweep in (plain, fused, _load(tmp_path, "execution: {fuse: auto}\n")[0]):
        out = tmp_path / "written.yaml"
        out.write_text(yaml.safe_dump(sweep_to_dict(sweep), sort_keys=False))
        assert load_sweep(out) == sweep
    # the overrides of `umup-sweep run --set` reach it too
    path = tmp_path / "fz.yaml"
    assert load_sweep(path, overrides={"execution.fuse": "auto"}).execution.fuse == "auto"
