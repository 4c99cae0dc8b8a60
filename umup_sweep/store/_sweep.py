"""The sweep a run directory holds: `sweep.yaml` written from the validated `SweepSpec`, and
read back through the config loader (so readers get the same validated `SweepSpec`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from umup_sweep.config import UNHASHED_KEYS, SweepSpec, load_sweep, printable_url, sweep_to_dict
from umup_sweep.errors import ConfigError, StoreError, UnsetVariableError
from umup_sweep.store._files import atomic_write_text
from umup_sweep.store._layout import SWEEP_FILE

# Sweep keys that do not decide which trials run (they may change between reruns).
_NOT_IDENTITY = ("source", *UNHASHED_KEYS)


def write_sweep(run_dir: Path, sweep: SweepSpec) -> Path:
    """Write the resolved sweep to `<run_dir>/sweep.yaml` (atomically). Its storage URL is the
    printable form: ``${NAME}`` references as the sweep file wrote them, never a password."""
    path = run_dir / SWEEP_FILE
    data = sweep_to_dict(sweep)
    if data["storage"].get("url"):  # a loaded sweep's URL is printable already
        data["storage"]["url"] = printable_url(data["storage"]["url"])
    atomic_write_text(path, yaml.safe_dump(plain(data), sort_keys=False))
    return path


def read_sweep(run_dir: Path) -> SweepSpec:
    """The validated sweep of a run directory, from its `sweep.yaml`.

    Raises:
        StoreError: not a run directory (no sweep.yaml), or its sweep.yaml is damaged (one
            line naming the file, what is wrong and what to do).
        UnsetVariableError: its storage URL reads a variable the environment does not set.
    """
    path = run_dir / SWEEP_FILE
    if not path.is_file():
        raise StoreError(
            f"{run_dir} is not a run directory (no {SWEEP_FILE}); "
            "give the folder `umup-sweep run` wrote, e.g. runs/<sweep name>"
        )
    try:
        return load_sweep(path)
    except UnsetVariableError:
        raise  # the file is fine: the message names it, the key and the variable
    except ConfigError as exc:
        why = f"{exc.key}: {exc.expected}" if exc.key else exc.expected
        raise StoreError(damaged_sweep(path, why)) from None


def damaged_sweep(path: Path, why: str) -> str:
    """The one-line message for a damaged sweep.yaml."""
    return (
        f"{path} is damaged ({why}); the trials are intact in the trial database: rerun "
        "`umup-sweep run <the sweep file>` to rewrite it"
    )


def changed_keys(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Dotted keys whose values differ between two sweep dicts, those that decide which trials
    run first (execution, storage, analysis settings only when nothing else differs).

    Example:
        >>> changed_keys({"seeds": [0], "execution": {"executor": "ray"}},
        ...              {"seeds": [0, 1], "execution": {"executor": "serial"}})
        ['seeds']
        >>> changed_keys({"execution": {"executor": "ray"}}, {"execution": {"executor": "serial"}})
        ['execution.executor']
    """
    a, b = flatten(plain(old)), flatten(plain(new))
    keys = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k) and k != "source")
    identity = [k for k in keys if not any(k == p or k.startswith(p + ".") for p in _NOT_IDENTITY)]
    return identity or keys


def stored_sweep_dict(run_dir: Path) -> dict[str, Any] | None:
    """The resolved sweep a run directory's sweep.yaml holds, as plain data (None when it is
    missing or unreadable)."""
    try:
        old = yaml.safe_load((run_dir / SWEEP_FILE).read_text())
    except (OSError, yaml.YAMLError):
        return None
    return old if isinstance(old, dict) and old else None


def plain(obj: Any) -> Any:
    """Tuples to lists, Paths to str: something yaml.safe_dump and json accept."""
    if isinstance(obj, dict):
        return {str(k): plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj


def flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts to one dict of dotted keys (lists stay values)."""
    if not isinstance(d, dict):
        return {prefix: d}
    out: dict[str, Any] = {}
    for key, value in d.items():
        out.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return out
