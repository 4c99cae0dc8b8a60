"""Turn a `DataSpec.source` string into the concrete files to read, and sign them cheaply.

The signature (paths + sizes + mtimes) keys the on-disk cache: it changes whenever a file is
added, removed or edited, and costs only a directory walk and a `stat` per file.
"""

from __future__ import annotations

import glob
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from umup_sweep.data._stdlib import stdlib_files, stdlib_root
from umup_sweep.errors import DataError

TOKEN_SUFFIXES = (".bin", ".npy")
GLOB_CHARS = frozenset("*?[")
# Bump when the way tokens are built changes, so old cache entries are not reused.
BUILD_VERSION = 1


@dataclass(frozen=True)
class Source:
    """The files behind a data source.

    `kind` is `"text"` (files concatenated as bytes, vocab 256) or `"tokens"` (one `.bin`/`.npy`
    uint16 token file). `name` is what messages and `Corpus.name` call it.
    """

    kind: Literal["text", "tokens"]
    name: str
    files: tuple[Path, ...]

    def signature(self) -> str:
        """Short hash of the paths, sizes and mtimes of the files (cache key)."""
        digest = hashlib.sha256(f"v{BUILD_VERSION}:{self.kind}\n".encode())
        for path in self.files:
            try:
                st = os.stat(path)
            except OSError as err:
                raise DataError(f"data source {self.name!r}: cannot read {path}: {err}") from err
            digest.update(f"{os.path.abspath(path)}\t{st.st_size}\t{st.st_mtime_ns}\n".encode())
        return digest.hexdigest()[:24]


def is_glob(source: str) -> bool:
    """Whether `source` is a glob pattern rather than a plain path."""
    return any(ch in GLOB_CHARS for ch in source)


def resolve_source(source: str, stdlib: Path | None = None) -> Source:
    """The files a source string names, in the order they are concatenated.

    Args:
        source: `"stdlib"`, a text file, a folder, a glob (`**` recursive), or a `.bin`/`.npy`
            token file; `~` is expanded.
        stdlib: root used for `"stdlib"` (default: this interpreter's standard library).

    Raises:
        DataError: the path does not exist, the glob or folder holds no files, or token files
            are mixed into a text corpus.
    """
    if source == "stdlib":
        root = Path(stdlib) if stdlib is not None else stdlib_root()
        files = stdlib_files(root)
        if not files:
            raise DataError(f"data source 'stdlib': no .py files found under {root}")
        return Source("text", "stdlib", tuple(files))
    source = os.path.expanduser(source)
    if is_glob(source):
        matched = sorted(Path(p) for p in glob.glob(source, recursive=True) if Path(p).is_file())
        if not matched:
            raise DataError(f"data source {source!r}: glob matched no files")
        return _text_source(source, matched)
    path = Path(source)
    if path.is_dir():
        files = sorted(_folder_files(path), key=lambda p: p.relative_to(path).as_posix())
        if not files:
            raise DataError(f"data source {source!r}: folder contains no files")
        return _text_source(source, files)
    if path.is_file():
        kind: Literal["text", "tokens"] = (
            "tokens" if path.suffix.lower() in TOKEN_SUFFIXES else "text"
        )
        return Source(kind, source, (path,))
    raise DataError(f"data source {source!r}: no such file or directory")


def _text_source(source: str, files: list[Path]) -> Source:
    """A text source, refusing token files that would otherwise be read as raw bytes."""
    tokens = [p for p in files if p.suffix.lower() in TOKEN_SUFFIXES]
    if tokens:
        raise DataError(
            f"data source {source!r}: contains token file {tokens[0]}; give a .bin/.npy token "
            "file on its own, or only text files in a folder or glob"
        )
    return Source("text", source, tuple(files))


def _folder_files(root: Path) -> list[Path]:
    """Regular files under `root`, recursively, skipping hidden files and folders."""
    out: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".") and d != "__pycache__"]
        out.extend(Path(dirpath) / f for f in filenames if not f.startswith("."))
    return out
