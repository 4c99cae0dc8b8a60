"""A sweep's `tracking:` section: the experiment trackers its trials are also logged to.

    tracking:
      backend: wandb | mlflow | tensorboard, or a list of them ([] or none: no tracking)
      dir: the trackers' local files (default <run_dir>/tracking)
      project: W&B project / MLflow experiment (alias: experiment; default: the sweep name)
      <tracker options>: each tracker's own (`umup_sweep.tracking`), e.g. mode (wandb),
                         tracking_uri (mlflow); option names are unique across trackers

The trackers declare and check their options (`OPTIONS`, `parse_options`), as strategies do;
the tracking package loads only once a sweep with this section is read. Tracking is not part
of the sweep's identity: changing it never changes which trials run.

Example:
    >>> spec = sweep_tracking({"backend": "wandb,tensorboard", "experiment": "lr"}, "s.yaml")
    >>> spec.backends, spec.project, spec.options
    (('wandb', 'tensorboard'), 'lr', {'mode': 'offline', 'entity': None, 'tags': []})
    >>> tracking_to_dict(spec)["backend"]
    ['wandb', 'tensorboard']
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from umup_sweep.config._options import OptionContext
from umup_sweep.config._spec import TrackingSpec
from umup_sweep.config._validate import as_mapping, check_keys, did_you_mean, fail, join

__all__ = ["sweep_tracking", "tracking_to_dict"]

_KEYS = ("backend", "dir", "project")
_OFF = ("none", "off")


def sweep_tracking(value: Any, source: str) -> TrackingSpec | None:
    """`tracking:` validated (None: no section, or no backend).

    Raises:
        ConfigError: an unknown key or backend, a bad value (one line: file, key, what).
    """
    from umup_sweep.tracking._registry import TRACKERS, option_owners

    if value is None:
        return None
    data = as_mapping(value, source, "tracking")
    if "experiment" in data:
        if "project" in data:
            raise fail(source, "tracking.experiment", "give either project or experiment")
        data["project"] = data.pop("experiment")
    check_keys(data, (*_KEYS, *option_owners()), source, "tracking")
    if "backend" not in data:
        names = ", ".join(TRACKERS)
        raise fail(source, "tracking.backend", f"missing: expected one of {names} (or a list)")
    backends = _backends(data["backend"], source, tuple(TRACKERS))
    ctx = OptionContext(source, prefix="tracking")
    options: dict[str, Any] = {}
    for name, cls in TRACKERS.items():  # every option checked, kept for the chosen trackers
        given = {k: data[k] for k in cls.OPTIONS if k in data}
        parsed = cls.parse_options({**cls.OPTIONS, **given}, ctx)
        if name in backends:
            options |= parsed
    if not backends:
        return None
    return TrackingSpec(
        backends=backends,
        dir=_dir(data.get("dir"), source),
        project=_project(data.get("project"), source),
        options=options,
    )


def tracking_to_dict(spec: TrackingSpec) -> dict[str, Any]:
    """The resolved section, as `sweep_tracking` reads it back."""
    return {
        "backend": list(spec.backends),
        "dir": None if spec.dir is None else str(spec.dir),
        "project": spec.project,
        **spec.options,
    }


def _backends(value: Any, source: str, names: tuple[str, ...]) -> tuple[str, ...]:
    """`backend`: a name, a comma list, or a list of names; none/[] for no tracking."""
    key = "tracking.backend"
    one = isinstance(value, str) and "," not in value  # errors name the key, not key[0]
    if isinstance(value, str):
        value = [] if value.strip().lower() in _OFF else [v.strip() for v in value.split(",")]
    if value is None:
        value = []
    if not isinstance(value, (list, tuple)):
        raise fail(source, key, f"expected one of {', '.join(names)} or a list of them", value)
    for i, name in enumerate(value):
        if name not in names:
            hint = did_you_mean(str(name), names)
            where = key if one else join(key, i)
            raise fail(source, where, f"expected one of {', '.join(names)}{hint}", name)
    if len(set(value)) != len(value):
        raise fail(source, key, "expected distinct trackers", value)
    return tuple(value)


def _dir(value: Any, source: str) -> Path | None:
    if value is None:
        return None
    if not isinstance(value, (str, Path)) or not str(value):
        raise fail(source, "tracking.dir", "expected a folder (a path)", value)
    return Path(value).expanduser()


def _project(value: Any, source: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise fail(source, "tracking.project", "expected a project / experiment name", value)
    return value
