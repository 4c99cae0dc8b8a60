"""The embedded default corpus: the Python standard library's own `.py` source.

Every machine with Python has it, so the default sweep needs no download. Test suites,
installed third-party packages and machine-specific build configuration are left out, so the
same Python version gives the same tokens on every node of a cluster.
"""

from __future__ import annotations

import os
import sysconfig
from pathlib import Path

# Directories never descended into: test suites (`test/`, `tests/`, `idlelib/idle_test`,
# `lib2to3/tests`, `ctypes/test`, ...), third-party packages and bytecode caches.
SKIP_DIRS = frozenset(
    {"test", "tests", "idle_test", "site-packages", "dist-packages", "__pycache__"}
)
# Machine-specific files: `config-3.X-<platform>/` (build config) and `_sysconfigdata_*.py`
# (the paths and flags this interpreter was built with).
SKIP_DIR_PREFIXES = ("config-", ".")
SKIP_FILE_PREFIXES = ("_sysconfigdata_", ".")


def stdlib_root() -> Path:
    """The standard library directory of the running interpreter."""
    return Path(sysconfig.get_paths()["stdlib"])


def stdlib_files(root: Path | None = None) -> list[Path]:
    """The `.py` files of the standard library under `root`, tests excluded, sorted by path.

    Args:
        root: the library folder; default `sysconfig.get_paths()["stdlib"]`. Tests pass a small
            fake folder here.

    Example:
        >>> files = stdlib_files()
        >>> any(p.name == "argparse.py" for p in files)
        True
    """
    root = Path(root) if root is not None else stdlib_root()
    found: list[tuple[str, Path]] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [
            d for d in dirnames if d not in SKIP_DIRS and not d.startswith(SKIP_DIR_PREFIXES)
        ]
        for name in filenames:
            if name.endswith(".py") and not name.startswith(SKIP_FILE_PREFIXES):
                path = Path(dirpath) / name
                found.append((path.relative_to(root).as_posix(), path))
    found.sort(key=lambda item: item[0])
    return [path for _, path in found]
