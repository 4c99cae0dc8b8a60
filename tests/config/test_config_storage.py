"""`storage:` accepts a bare Optuna storage URL string as well as the {run_dir, url} mapping."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from umup_sweep.config import load_sweep, sweep_to_dict
from umup_sweep.errors import ConfigError

URL = "postgresql://optuna@db.example:5432/sweeps"  # passwords: test_config_storage_env.py
SWEEP = {
    "name": "st",
    "proxy": {"base": {"head_dim": 16}, "widths": [32, 64], "depths": [1]},
    "hyperparameters": {"lr": {"values": [0.5, 1.0]}},
}


def _load(tmp_path: Path, storage: object, **kw: object):
    path = tmp_path / "st.yaml"
    path.write_text(yaml.safe_dump({**SWEEP, "storage": storage}))
    return load_sweep(path, **kw)


def test_bare_url_equals_mapping_form(tmp_path: Path) -> None:
    bare = _load(tmp_path, URL)
    assert bare.storage.url == URL and bare.storage.run_dir == Path("runs")
    assert bare == _load(tmp_path, {"url": URL})


def test_bare_url_takes_run_dir_override(tmp_path: Path) -> None:
    s = _load(tmp_path, URL, overrides={"storage.run_dir": "elsewhere"})
    assert s.storage.url == URL and s.storage.run_dir == Path("elsewhere")


def test_bare_url_round_trips(tmp_path: Path) -> None:
    s = _load(tmp_path, URL)
    written = sweep_to_dict(s)
    assert written["storage"] == {"run_dir": "runs", "url": URL}  # written in mapping form
    out = tmp_path / "written.yaml"
    out.write_text(yaml.safe_dump(written, sort_keys=False))
    assert load_sweep(out) == s


@pytest.mark.parametrize("bad", [["x"], 3, ""])
def test_other_storage_values_are_rejected(tmp_path: Path, bad: object) -> None:
    with pytest.raises(ConfigError) as err:
        _load(tmp_path, bad)
    assert err.value.key == "storage" and "expected a mapping" in str(err.value)
