"""Files of a run directory written whole or not at all, and the per-trial curve files.

`atomic_write_text` writes a temporary file next to the target and renames it over the
target, so readers see the old or the new file, never half of one. Run directories are
private: files are created owner-only (`PRIVATE_FILE`, 0o600) and folders owner-only
(`PRIVATE_DIR`, 0o700), less whatever the process umask also removes (the kernel applies it).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import pandas as pd

from umup_sweep.errors import StoreError
from umup_sweep.store._layout import STUDY_FILE

CURVE_COLUMNS = ("step", "train_loss", "val_loss")
PRIVATE_FILE = 0o600  # a run's files: results, the trial database, maybe a database URL
PRIVATE_DIR = 0o700
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)


def _create_temp(path: Path) -> tuple[int, Path]:
    """A new, empty temporary file next to `path` (owner-only, less the umask)."""
    for _ in range(100):
        tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"
        try:
            return os.open(tmp, _CREATE, PRIVATE_FILE), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name next to {path}")


def atomic_write_text(path: Path, text: str) -> None:
    """Write `text` to `path` so readers see the old or the new file, never half of one.

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "note.txt"
        >>> atomic_write_text(path, "hello\\n")
        >>> path.read_text()
        'hello\\n'
    """
    fd, tmp = _create_temp(Path(path))
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_curve(path: Path, curve: list[tuple[int, float, float | None]]) -> None:
    """Write a loss curve (step, train_loss, val_loss) as CSV, atomically.

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "k.csv"
        >>> write_curve(path, [(1, 3.5, None), (2, 3.0, 3.25)])
        >>> read_curve(path)["val_loss"].tolist()
        [nan, 3.25]
    """
    lines = [",".join(CURVE_COLUMNS)]
    for step, train_loss, val_loss in curve:
        val = "" if val_loss is None else repr(float(val_loss))
        lines.append(f"{int(step)},{float(train_loss)!r},{val}")
    atomic_write_text(path, "\n".join(lines) + "\n")


def read_curve(path: Path) -> pd.DataFrame:
    """Read a curve written by `write_curve`.

    Raises:
        StoreError: the file is missing, truncated or not a curve file.
    """
    try:
        frame = pd.read_csv(path)
    except FileNotFoundError:
        raise StoreError(f"{path} is missing: rerun the sweep to recompute it") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise StoreError(_damaged(path, str(exc).splitlines()[0] if str(exc) else "")) from None
    if tuple(frame.columns) != CURVE_COLUMNS:
        raise StoreError(_damaged(path, f"expected columns {','.join(CURVE_COLUMNS)}"))
    steps = pd.to_numeric(frame["step"], errors="coerce")
    losses = pd.to_numeric(frame["train_loss"], errors="coerce")
    if steps.isna().any() or (losses.isna() & ~frame["train_loss"].isna()).any():
        raise StoreError(_damaged(path, "non-numeric step or train_loss"))
    return frame.astype({"step": int, "train_loss": float, "val_loss": float})


def _damaged(path: Path, why: str) -> str:
    return (
        f"{path} is damaged ({why}); the other trials are intact: delete this file to go on "
        f"without that curve (its trial's result stays in {STUDY_FILE})"
    )


def make_private(path: Path) -> None:
    """Take group and other permissions off a file another library created (the SQLite
    database): owner-only, never more than it had."""
    try:
        mode = path.stat().st_mode & 0o777
    except FileNotFoundError:
        return
    if mode & ~PRIVATE_FILE:
        os.chmod(path, mode & PRIVATE_FILE)
