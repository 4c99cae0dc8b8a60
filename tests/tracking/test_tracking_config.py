"""The `tracking:` section: what it accepts, its one-line errors, `--track`, and that it is
not part of the sweep's identity."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from umup_sweep.config import load_sweep, sweep_hash, sweep_to_dict
from umup_sweep.errors import ConfigError
from umup_sweep.tracking import TRACKERS, MLflowTracker, option_owners, sweep_info

PROXY = {"base": {"head_dim": 16}, "widths": [32, 64], "depths": [1]}


def _sweep(tracking=None, **overrides):
    data = {"name": "t", "proxy": PROXY, "hyperparameters": {"lr": [0.5, 1, 2]}}
    if tracking is not None:
        data["tracking"] = tracking
    return load_sweep(data, overrides=overrides or None)


def test_defaults_and_aliases():
    spec = _sweep({"backend": "wandb"}).tracking
    assert spec.backends == ("wandb",) and spec.dir is None and spec.project is None
    assert spec.options == {"mode": "offline", "entity": None, "tags": []}
    spec = _sweep({"backend": ["mlflow", "tensorboard"], "experiment": "e", "dir": "x"}).tracking
    assert spec.backends == ("mlflow", "tensorboard") and spec.project == "e"
    assert spec.dir == Path("x") and spec.options == {"tracking_uri": None}
    assert _sweep({"backend": "wandb, tensorboard"}).tracking.backends == (
        "wandb",
        "tensorboard",
    )


@pytest.mark.parametrize("off", [[], "none", None])
def test_no_backend_is_no_tracking(off):
    assert _sweep({"backend": off, "mode": "online"}).tracking is None
    assert _sweep().tracking is None


def test_options_of_trackers_not_chosen_are_checked_and_dropped():
    spec = _sweep({"backend": "tensorboard", "mode": "online"}).tracking
    assert spec.options == {}
    with pytest.raises(ConfigError, match="tracking.mode"):
        _sweep({"backend": "tensorboard", "mode": "sometimes"})


def test_tracking_is_not_part_of_the_sweep_identity():
    plain = _sweep()
    tracked = _sweep({"backend": ["wandb", "mlflow"], "project": "p", "mode": "online"})
    assert sweep_hash(plain) == sweep_hash(tracked)
    assert "tracking" not in sweep_to_dict(plain)
    assert sweep_to_dict(tracked)["tracking"] == {
        "backend": ["wandb", "mlflow"],
        "dir": None,
        "project": "p",
        "mode": "online",
        "entity": None,
        "tags": [],
        "tracking_uri": None,
    }
    assert load_sweep(sweep_to_dict(tracked)) == tracked  # sweep.yaml reads back the same


def test_track_override_replaces_the_backends_and_keeps_the_rest():
    tracked = _sweep({"backend": "wandb", "project": "p"}, **{"tracking.backend": ["mlflow"]})
    assert tracked.tracking.backends == ("mlflow",) and tracked.tracking.project == "p"
    assert _sweep(**{"tracking.backend": ["tensorboard"]}).tracking.backends == ("tensorboard",)
    assert _sweep({"backend": "wandb"}, **{"tracking.backend": []}).tracking is None


def test_mlflow_uri_keeps_references_and_hides_passwords(monkeypatch):
    monkeypatch.setenv("MLFLOW_HOST_X", "mlflow.local")
    spec = _sweep({"backend": "mlflow", "tracking_uri": "http://${MLFLOW_HOST_X}:5000"}).tracking
    assert spec.options["tracking_uri"] == "http://${MLFLOW_HOST_X}:5000"
    sweep = _sweep({"backend": "mlflow", "tracking_uri": "http://u:secret@h:5000"})
    assert sweep.tracking.options["tracking_uri"] == "http://u:***@h:5000"
    assert "secret" not in str(sweep_to_dict(sweep))  # what sweep.yaml and the study keep


@pytest.mark.parametrize(
    "tracking, message",
    [
        ("wandb", "tracking: expected a mapping, got 'wandb' (str)"),
        ({"mode": "offline"}, "tracking.backend: missing: expected one of wandb, mlflow, "),
        (
            {"backend": "wandbb"},
            "tracking.backend: expected one of wandb, mlflow, tensorboard; "
            "did you mean 'wandb'?, got 'wandbb' (str)",
        ),
        ({"backend": ["mlflow", "neptune"]}, "tracking.backend[1]: expected one of wandb, "),
        ({"backend": ["mlflow", "mlflow"]}, "tracking.backend: expected distinct trackers"),
        ({"backend": 3}, "tracking.backend: expected one of wandb, mlflow, tensorboard or a "),
        ({"backend": "wandb", "mdoe": "online"}, "tracking.mdoe: unknown key; did you mean"),
        ({"backend": "wandb", "mode": "cloud"}, "tracking.mode: expected offline or online"),
        ({"backend": "wandb", "tags": [1]}, "tracking.tags: expected a list of tags"),
        ({"backend": "wandb", "entity": ""}, "tracking.entity: expected a W&B team or user"),
        ({"backend": "mlflow", "tracking_uri": 5}, "tracking.tracking_uri: expected an MLflow"),
        ({"backend": "mlflow", "tracking_uri": "http://${NO_SUCH_VAR_TRK}"}, "NO_SUCH_VAR_TRK"),
        ({"backend": "tensorboard", "dir": ""}, "tracking.dir: expected a folder"),
        ({"backend": "tensorboard", "project": " "}, "tracking.project: expected a project"),
        ({"backend": "wandb", "project": "a", "experiment": "b"}, "tracking.experiment: give "),
    ],
)
def test_bad_tracking_is_one_line_naming_file_and_key(tmp_path, tracking, message):
    import yaml

    path = tmp_path / "s.yaml"
    data = {"name": "t", "proxy": PROXY, "hyperparameters": {"lr": [1]}, "tracking": tracking}
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as err:
        load_sweep(path)
    text = str(err.value)
    assert text.startswith(f"{path}: ") and message in text and "\n" not in text


def test_tracker_options_have_unique_names_and_every_tracker_is_documented():
    owners = option_owners()
    assert set(owners.values()) <= set(TRACKERS)
    for name, cls in TRACKERS.items():
        assert cls.NAME == name and cls.PACKAGE and cls.__doc__
        module_doc = sys.modules[cls.__module__].__doc__ or ""
        assert "Example:" in module_doc
        for option in cls.OPTIONS:
            assert f"    {option} " in module_doc  # each option is described


def test_a_tracker_error_never_shows_the_mlflow_password():
    sweep = _sweep({"backend": "mlflow", "tracking_uri": "http://u:secret@h:5000"})
    tracker = MLflowTracker(sweep_info(sweep), sweep.tracking.options)
    text = tracker.scrub("cannot reach http://u:secret@h:5000/api/2.0")
    assert "secret" not in text and "h:5000" in text
    assert "secret" not in tracker.destination
