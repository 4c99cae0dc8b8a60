"""Property-based tests of sweep YAML handling (hypothesis): generated documents (a valid sweep
with keys mutated or removed, random nested values, random text) either validate or raise a
one-line ConfigError naming the file; nothing else. YAML tags never execute code, names never
escape the runs folder, and through the real CLI bad input is one line on stderr, exit code
2, no traceback and no run directory.

CI runs a fixed (derandomized) set of examples so that it never flakes; hunt for new failures
with random ones: `UMUP_PROPERTY_EXAMPLES=5000 pytest tests/test_yaml_properties.py`.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from cli_helpers import cli
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from umup_sweep.config import AnalysisSpec, ExecutionSpec, StorageSpec, SweepSpec, load_sweep
from umup_sweep.errors import ConfigError
from umup_sweep.spec import HP_NAMES, DataSpec, ModelSpec, TrainSpec

REPO = Path(__file__).resolve().parents[1]

VALID: dict[str, Any] = {
    "name": "prop",
    "proxy": {"base": {"head_dim": 16, "seq_len": 32}, "widths": [32, 64], "depths": [1]},
    "seeds": [0, 1],
    "strategy": "grid",
    "hyperparameters": {"lr": {"values": [0.5, 1.0, 2.0]}, "residual_mult": [0.5, 1.0]},
    "defaults": {"ffn_act_mult": 1.0},
    "train": {"steps": 2, "batch_size": 2, "eval_batches": 1, "final_window": 1},
    "data": {"source": "stdlib"},
    "metric": "val_loss",
    "execution": {"executor": "serial", "max_concurrent": 1},
    "storage": {"run_dir": "runs"},
    "analysis": {"tolerance": 0.25},
}


def _field_names(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


# Every dotted key a sweep may hold, plus a few that it may not.
KEY_PATHS: list[tuple[str, ...]] = (
    [(k,) for k in VALID]
    + [(k,) for k in ("widths", "depths", "parametrization", "model", "budget", "description")]
    + [(k,) for k in ("strategy_options", "divergence", "method", "parameters", "bogus")]
    + [("proxy", k) for k in ("name", "base", "widths", "depths", "extra")]
    + [("proxy", "base", k) for k in _field_names(ModelSpec)]
    + [("model", k) for k in _field_names(ModelSpec)]
    + [("train", k) for k in _field_names(TrainSpec)]
    + [("data", k) for k in _field_names(DataSpec)]
    + [("execution", k) for k in _field_names(ExecutionSpec)]
    + [("storage", k) for k in _field_names(StorageSpec)]
    + [("analysis", k) for k in _field_names(AnalysisSpec)]
    + [("hyperparameters", k) for k in (*HP_NAMES, "learning_rate")]
    + [("hyperparameters", "lr", k) for k in ("values", "log2_range", "step", "distribution")]
    + [("hyperparameters", "lr", k) for k in ("min", "max")]
    + [("defaults", k) for k in HP_NAMES]
    + [("divergence", "max_loss"), ("metric", "name"), ("metric", "goal")]
    + [("strategy_options", k) for k in ("stage2", "noise_sd", "alpha", "sampler_seed")]
)

scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(10**12), 10**12)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
    | st.sampled_from(["grid", "tpe", "random", "ray", "serial", "umup", "sp", "1e-3", "../x"])
    | st.sampled_from(["x" * 300, "a/" * 200, "\x00", "\u2028"])
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=8) | st.integers(-3, 3), inner, max_size=4)
    ),
    max_leaves=8,
)


@st.composite
def mutated_sweeps(draw) -> dict[str, Any]:
    """The valid sweep with 1-3 keys set to random values (or removed)."""
    doc = copy.deepcopy(VALID)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(KEY_PATHS))
        node = doc
        for part in path[:-1]:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        if draw(st.booleans()) and path[-1] in node:
            del node[path[-1]]
        else:
            node[path[-1]] = draw(values)
    return doc


def _write(text: str) -> Path:
    fd, name = tempfile.mkstemp(suffix=".yaml", prefix="prop-")
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    return Path(name)


def check_outcome(path: Path) -> SweepSpec | ConfigError:
    """The property: a SweepSpec whose run dir stays under its runs folder, or a ConfigError
    whose message is one line naming the file. Any other exception fails the test."""
    try:
        sweep = load_sweep(path)
    except ConfigError as err:
        msg = str(err)
        assert "\n" not in msg and "\r" not in msg, msg
        assert msg.startswith(f"{path}: "), msg
        assert err.expected.strip(), msg
        return err
    finally:
        path.unlink()
    assert isinstance(sweep, SweepSpec)
    base = Path(sweep.storage.run_dir).resolve()
    assert sweep.run_dir.resolve().is_relative_to(base)
    assert "/" not in sweep.name and ".." not in sweep.name and sweep.name == sweep.run_dir.name
    return sweep


# More examples (and a random seed) when asked for: see the module docstring.
EXAMPLES = int(os.environ.get("UMUP_PROPERTY_EXAMPLES", "0"))
SETTINGS = settings(
    max_examples=EXAMPLES or 250,
    derandomize=not EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@SETTINGS
@given(mutated_sweeps())
def test_mutated_sweeps_validate_or_give_one_line_errors(doc):
    check_outcome(_write(yaml.safe_dump(doc, allow_unicode=True)))


@SETTINGS
@given(values)
def test_random_documents_validate_or_give_one_line_errors(doc):
    check_outcome(_write(yaml.safe_dump(doc, allow_unicode=True)))


@settings(SETTINGS, max_examples=EXAMPLES or 150)
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=200))
def test_random_text_validates_or_gives_one_line_errors(text):
    check_outcome(_write(text))


@settings(SETTINGS, max_examples=EXAMPLES or 150)
@given(st.text(max_size=40) | st.sampled_from(["../up", "/etc", "a/b", "..", ".hidden", "~x"]))
def test_run_names_never_escape_the_runs_folder(name):
    doc = copy.deepcopy(VALID) | {"name": name}
    outcome = check_outcome(_write(yaml.safe_dump(doc, allow_unicode=True)))
    if isinstance(outcome, ConfigError):
        assert outcome.key == "name"
    else:
        assert outcome.run_dir == (Path("runs") if name == "runs" else Path("runs") / name)


@pytest.mark.parametrize(
    "payload",
    [
        "!!python/object/apply:os.system ['touch {marker}']",
        "!!python/object/apply:subprocess.check_call [['touch', '{marker}']]",
        "!!python/name:os.system",
        "!!python/object/new:os.system ['touch {marker}']",
        "!!python/module:os",
    ],
)
def test_yaml_tags_never_execute_code(tmp_path, payload):
    marker = tmp_path / "pwned"
    for doc in (
        f"name: {payload.format(marker=marker)}\n",
        yaml.safe_dump(VALID) + f"description: {payload.format(marker=marker)}\n",
        f"{payload.format(marker=marker)}\n",
    ):
        err = check_outcome(_write(doc))
        assert isinstance(err, ConfigError) and "YAML" in str(err)
        assert not marker.exists()


# Inputs that once escaped as a traceback (TypeError/OSError in umup_sweep/config/):
# regression cases, each now a one-line ConfigError.
KNOWN_BUGS = {  # change to VALID -> the key the ConfigError must name
    "strategy-unhashable": ({"strategy": []}, "strategy"),  # was TypeError (unhashable)
    "strategy-dict": ({"strategy": {"a": 1}}, "strategy"),
    "stage2-unhashable": (
        {"strategy": "independent", "strategy_options": {"stage2": [[1]]}},
        "strategy_options.stage2[0]",
    ),
    "proxy-path-too-long": ({"proxy": "x" * 5000}, "proxy"),  # was OSError ENAMETOOLONG
}


@pytest.mark.parametrize(("change", "key"), list(KNOWN_BUGS.values()), ids=list(KNOWN_BUGS))
def test_known_config_bugs(change, key):
    err = check_outcome(_write(yaml.safe_dump(copy.deepcopy(VALID) | change)))
    assert isinstance(err, ConfigError) and err.key == key, err


BOMB_CHECK = """
import sys
from umup_sweep.config import load_sweep
from umup_sweep.errors import ConfigError
try:
    load_sweep(sys.argv[1], overrides={"storage.run_dir": "runs"})
except ConfigError as err:
    print(err)
"""


def test_yaml_alias_bomb_is_rejected_quickly(tmp_path):
    anchors = ["&a [" + ", ".join(["x"] * 10) + "]"]
    for i in range(1, 9):
        prev, cur = chr(ord("a") + i - 1), chr(ord("a") + i)
        anchors.append(f"&{cur} [" + ", ".join([f"*{prev}"] * 10) + "]")
    sweep_file = tmp_path / "bomb.yaml"
    sweep_file.write_text(yaml.safe_dump(VALID) + f"description: [{', '.join(anchors)}]\n")
    try:
        out = subprocess.run(
            [sys.executable, "-c", BOMB_CHECK, str(sweep_file)],
            env={**os.environ, "PYTHONPATH": str(REPO)},
            capture_output=True,
            text=True,
            timeout=8,
        )
    except subprocess.TimeoutExpired:
        pytest.fail("load_sweep did not reject the alias bomb within 8 s")
    assert out.stdout.startswith(f"{sweep_file}: description: expected a string"), out.stderr
    assert len(out.stdout.strip().splitlines()) == 1


@st.composite
def bad_sweeps(draw) -> str:
    """A mutated sweep that load_sweep rejects, as YAML text."""
    doc = draw(mutated_sweeps())
    text = yaml.safe_dump(doc, allow_unicode=True)
    path = _write(text)
    try:
        load_sweep(path, overrides={"storage.run_dir": "runs"})  # as the CLI's --run-dir does
        rejected = False
    except ConfigError:
        rejected = True
    finally:
        path.unlink()
    assume(rejected)
    return text


@settings(
    SETTINGS,
    max_examples=8,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(bad_sweeps())
def test_cli_rejects_bad_sweeps_with_one_line_exit_2_and_no_run_directory(text):
    with tempfile.TemporaryDirectory() as tmp:
        sweep_file = Path(tmp) / "bad.yaml"
        sweep_file.write_text(text)
        runs = Path(tmp) / "runs"
        out = cli("run", sweep_file, "--run-dir", runs, "--no-progress", cwd=tmp, timeout=120)
        assert out.returncode == 2, out.stderr
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"error: {sweep_file}: "), out.stderr
        assert "Traceback" not in out.stderr and out.stdout == ""
        assert not runs.exists() and sorted(os.listdir(tmp)) == ["bad.yaml"]
