"""An exclusive, crash-safe lock on a run directory (one driver per run).

`fcntl.flock` is released by the kernel when the holder exits, even on `kill -9`, so a stale
lock file never blocks a rerun; the file holds the PID of the holder for the error message.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from umup_sweep.errors import StoreError

LOCK_NAME = ".lock"


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
        self.path = Path(run_dir) / LOCK_NAME
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
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
    """PID of the live driver holding `run_dir`'s lock, or None (read-only check)."""
    try:
        text = (Path(run_dir) / LOCK_NAME).read_text().strip()
        pid = int(text)
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid
