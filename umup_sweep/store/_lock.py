"""Exclusive, crash-safe locks: one driver per run directory, and one per study of a shared
database.

`fcntl.flock` is released by the kernel when the holder exits, even on `kill -9`, so a stale
lock file never blocks a rerun; the file holds the PID of the holder for the error message.
A shared database (PostgreSQL, MySQL) is locked on the server (`StudyLock`), so two drivers
with different run directories (or machines) cannot run the same study at once either.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from umup_sweep.config import only_references, printable_url
from umup_sweep.errors import StoreError
from umup_sweep.store._layout import LOCK_FILE


class RunLock:
    """Holds `<run_dir>/.lock` until `release()`.

    Args:
        run_dir: the run directory (must exist).

    Raises:
        StoreError: another live process holds the lock (its PID is named).

    Example:
        >>> import tempfile
        >>> lock = RunLock(Path(tempfile.mkdtemp()))
        >>> lock.release()
    """

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / LOCK_FILE
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise StoreError(
                f"{run_dir} is in use by another umup-sweep driver (pid {holder}); "
                "wait for it to finish or stop it, then rerun"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd: int | None = fd

    @property
    def held(self) -> bool:
        """Whether this object still holds the lock."""
        return self._fd is not None

    def release(self) -> None:
        """Release the lock (idempotent)."""
        if self._fd is not None:
            os.ftruncate(self._fd, 0)  # an empty file means "no driver"
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def lock_holder(run_dir: Path) -> int | None:
    """PID of the live driver holding `run_dir`'s lock, or None (read-only check).

    Example:
        >>> import tempfile
        >>> run_dir = Path(tempfile.mkdtemp())
        >>> lock = RunLock(run_dir)
        >>> lock_holder(run_dir) == os.getpid()
        True
        >>> lock.release()
        >>> lock_holder(run_dir) is None
        True
    """
    try:
        text = (Path(run_dir) / LOCK_FILE).read_text().strip()
        pid = int(text)
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid


def storage_label(url: str) -> str:
    """A storage URL safe to print: every password replaced by *** (``${NAME}`` references
    to environment variables kept).

    Example:
        >>> storage_label("postgresql://me:secret@db:5432/sweeps")
        'postgresql://me:***@db:5432/sweeps'
    """
    if only_references(url):  # e.g. ${DATABASE_URL}
        return url
    try:
        from sqlalchemy.engine import make_url

        make_url(url)
    except Exception:  # not a SQLAlchemy URL: show only the scheme
        scheme = url.split("://", 1)[0] if "://" in url else ""
        return f"{scheme}://..." if scheme.replace("+", "").isalnum() else "(not a storage URL)"
    return printable_url(url)


class StudyLock:
    """Holds a database-side lock on one study of a shared storage (one driver per study,
    whichever machine and run directory it runs from).

    PostgreSQL: a session-level `pg_try_advisory_lock`; MySQL: `GET_LOCK`. Both are released
    by the server when the holder's connection closes, so a killed driver never leaves a
    stale lock. Other storages (SQLite) get no database lock: the run directory's lock covers
    them, since their file lives in (or next to) one run directory.

    Args:
        url: the Optuna storage URL (SQLAlchemy form).
        study_name: the study (= sweep name).
        holder: called on refusal to say who holds the lock (e.g. "host x, pid 123").

    Raises:
        StoreError: another live driver holds the study (the message names the storage).
    """

    def __init__(
        self, url: str, study_name: str, holder: Callable[[], str | None] | None = None
    ) -> None:
        from sqlalchemy import create_engine, text
        from sqlalchemy.engine import make_url
        from sqlalchemy.pool import NullPool

        self._conn: Any = None  # the sqlalchemy Connection holding the lock
        self._unlock = ""
        self._params: dict[str, object] = {}
        backend = make_url(url).get_backend_name()
        name = f"umup-sweep:{study_name}"
        if backend == "postgresql":
            key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)
            acquire, self._unlock = (
                "SELECT pg_try_advisory_lock(:k)",
                "SELECT pg_advisory_unlock(:k)",
            )
            self._params = {"k": key}
        elif backend in ("mysql", "mariadb"):
            acquire, self._unlock = "SELECT GET_LOCK(:k, 0)", "SELECT RELEASE_LOCK(:k)"
            self._params = {"k": name[:64]}
        else:
            return
        engine = create_engine(url, poolclass=NullPool)
        conn = engine.connect()
        got = conn.execute(text(acquire), self._params).scalar()
        conn.commit()  # the lock is per session: no transaction is kept open while it is held
        if not got:
            conn.close()
            engine.dispose()
            who = (holder() if holder else None) or "unknown"
            raise StoreError(
                f"study {study_name!r} in {storage_label(url)} is in use by another umup-sweep "
                f"driver ({who}); wait for it to finish or stop it, then rerun"
            )
        self._conn, self._engine, self._text = conn, engine, text

    @property
    def held(self) -> bool:
        """Whether this object holds a database lock (False for storages without one)."""
        return self._conn is not None

    def release(self) -> None:
        """Release the lock and close its connection (idempotent)."""
        if self._conn is None:
            return
        conn, self._conn = self._conn, None
        try:
            conn.execute(self._text(self._unlock), self._params)
            conn.commit()
        except Exception:  # the server dropped us: it released the lock with the session
            pass
        finally:
            conn.close()
            self._engine.dispose()
