"""The Optuna study behind a run directory: open it (SQLite `study.db` or a shared database),
lock it on a shared server, take a changed sweep into it, move it aside, and say in one line
why it cannot be used.

The URLs here are the sweep's printable form (`StorageSpec.url`: no literal password); each
connection takes `connect_url` of it, and every message shows `storage_label` of it, with any
password a driver error repeats replaced by ***.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import optuna

from umup_sweep.config import (
    MissingVariable,
    SweepSpec,
    connect_url,
    password_left_out,
    scrub,
    sweep_to_dict,
)
from umup_sweep.errors import StoreError
from umup_sweep.store._growth import classify_change, refusal
from umup_sweep.store._layout import STUDY_FILE
from umup_sweep.store._lock import StudyLock, storage_label
from umup_sweep.store._sweep import stored_sweep_dict


def storage_url(run_dir: Path, url: str | None) -> str:
    """The storage URL of a run: `url`, or the run directory's own `study.db`.

    Example:
        >>> storage_url(Path("/runs/demo"), None)
        'sqlite:////runs/demo/study.db'
    """
    return url if url else f"sqlite:///{(run_dir / STUDY_FILE).resolve()}"


def open_study(
    url: str, name: str, run_dir: Path, *, create: bool
) -> tuple[optuna.Study, optuna.storages.RDBStorage]:
    """The study, and its storage without Optuna's in-memory trial cache.

    Raises:
        StoreError: no such study (with `create=False`), a missing database driver, or a
            database that cannot be read or reached.
    """
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        storage = optuna.storages.RDBStorage(connection_url(url))
        if create:
            study = optuna.create_study(
                storage=storage, study_name=name, direction="minimize", load_if_exists=True
            )
        else:
            study = optuna.load_study(storage=storage, study_name=name)
        return study, storage
    except KeyError:
        where = run_dir if is_local(url, run_dir) else storage_label(url)
        raise StoreError(f"{where}: the trial database has no study named {name!r}") from None
    except StoreError:
        raise
    except ModuleNotFoundError as exc:
        raise StoreError(
            f"the trial database {storage_label(url)} needs the Python package {exc.name!r}, "
            "which is not installed (for PostgreSQL: pip install psycopg2-binary)"
        ) from None
    except Exception as exc:
        raise StoreError(unreadable(run_dir, exc, url)) from None


def lock_study(url: str, name: str, study: optuna.Study) -> StudyLock | None:
    """Take the server-side lock of a shared database's study (None for SQLite)."""

    def holder() -> str | None:
        try:
            return str(study.user_attrs.get("driver") or "") or None
        except Exception:
            return None

    try:
        lock = StudyLock(connection_url(url), name, holder=holder)
    except StoreError:
        raise
    except Exception as exc:
        raise StoreError(unreadable(Path("."), exc, url)) from None
    return lock if lock.held else None


def connection_url(url: str) -> str:
    """The URL to connect to `url` with (its password from memory or the environment).

    Raises:
        StoreError: it names an environment variable that is not set.
    """
    own = Path(url.removeprefix("sqlite:///")).parent
    if url.startswith("sqlite:///") and is_local(url, own):  # a path: no ${NAME} in it
        return url
    try:
        return connect_url(url)
    except MissingVariable as exc:
        raise StoreError(f"the trial database {storage_label(url)}: {exc.expected()}") from None


def is_local(url: str, run_dir: Path) -> bool:
    """Whether `url` is the run directory's own study.db."""
    return url == storage_url(run_dir, None)


def unreadable(run_dir: Path, exc: BaseException, url: str | None = None) -> str:
    """One line: the trial database cannot be used, and what to do about it."""
    first = (str(exc).strip().splitlines() or [""])[0]
    first = scrub(first, url)[:160] if url is not None else first[:160]
    if url is not None and not is_local(url, run_dir):
        return (
            f"cannot use the trial database {storage_label(url)} ({type(exc).__name__}: "
            f"{first}); {_what_to_check(url, first)}"
        )
    db = run_dir / STUDY_FILE
    return (
        f"{db} is not a readable trial database ({type(exc).__name__}: {first}); restore it "
        f"from a backup, or move it aside (mv {db} {db}.broken) and rerun to recompute its "
        "trials"
    )


def _what_to_check(url: str, error: str) -> str:
    """The advice of `unreadable` for a shared database."""
    if password_left_out(url) and "password" in error.lower():
        return (
            "the URL gives no password (a run directory's sweep.yaml never holds one): give "
            "it in the environment, PGPASSWORD or ~/.pgpass, or as ${NAME} in the sweep file's "
            "storage URL"
        )
    return "check that the server is running and the URL, user and password are right"


def remove_created(created: list[Path]) -> None:
    """Remove the run directory `open()` created, then the parents it created if empty."""
    if not created:
        return
    shutil.rmtree(created[0], ignore_errors=True)
    for parent in created[1:]:
        try:
            parent.rmdir()
        except OSError:
            break


def move_aside(run_dir: Path, name: str, url: str | None) -> Path:
    """Keep the old run: rename its directory (and copy a remote study) to `.bak-<time>`."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    backup = run_dir.with_name(f"{run_dir.name}.bak-{stamp}")
    if url:
        real = connection_url(url)
        optuna.copy_study(
            from_study_name=name,
            from_storage=real,
            to_storage=real,
            to_study_name=f"{name}.bak-{stamp}",
        )
        optuna.delete_study(study_name=name, storage=real)
    shutil.move(str(run_dir), str(backup))
    return backup


def take_change(
    study: optuna.Study,
    storage: optuna.storages.BaseStorage,
    sweep: SweepSpec,
    old_hash: str,
    new_hash: str,
) -> str | None:
    """A sweep that differs from the stored one: why it is refused (one line), or None after
    recording an accepted growth or shrink in the study (before the new sweep is written, so
    a crash at any point leaves a run the next open() takes the same way)."""
    run_dir = sweep.run_dir
    old = study.user_attrs.get("sweep") or stored_sweep_dict(run_dir)
    if not isinstance(old, dict):
        return (
            f"{run_dir} holds a different sweep (changed keys: unknown); use --force to start "
            "over (the old run is moved aside) or give a new name"
        )
    change = classify_change(old, sweep_to_dict(sweep))
    why = refusal(change, sweep.strategy, run_dir)
    if why is None and (change.grown or change.shrunk or change.retuned):  # none after a crash
        study_id = storage.get_study_id_from_name(study.study_name)
        record = {
            "from": old_hash,
            "to": new_hash,
            "grown": list(change.grown.values()),
            "shrunk": list(change.shrunk.values()),
            "retuned": list(change.retuned.values()),
            "mark": storage.get_n_trials(study_id),
        }
        if change.shrunk:  # sticky: from now on results() matches trials to the sweep
            study.set_user_attr("shrunk_once", True)
        study.set_user_attr("growth", record)
    return why
