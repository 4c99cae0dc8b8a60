"""On-disk cache of built corpora, so a fresh worker process loads one in milliseconds.

Each entry is `<key>.json` (metadata: token count, sha256, max id, document starts) and, for
corpora built by concatenating files or encoding text with a tokenizer, `<key>.npy` (the
tokens, uint8/uint16/uint32, loaded memory-mapped). Byte-level BPE tokenizers trained on a
corpus are kept beside them as `bpe-<vocab>-<key>.json`. Every file is written to a temporary
file and moved into place with `os.replace`, so processes racing to build the same corpus
never see a half-written entry. A cache that cannot be written (read-only
home, full disk) is skipped, never an error.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ENV_VAR = "UMUP_SWEEP_CACHE"


@dataclass
class CacheStats:
    """Counters for tests and diagnostics: how often a corpus was built vs read from cache."""

    builds: int = 0  # corpora read from their source files
    hits: int = 0  # corpora served from the on-disk cache
    memory_hits: int = 0  # corpora served from the in-process LRU
    bpe_trainings: int = 0  # byte-level BPE tokenizers trained (not read from the cache)
    encodings: int = 0  # corpora encoded with a tokenizer (not read from the cache)


STATS = CacheStats()


def cache_dir() -> Path:
    """`$UMUP_SWEEP_CACHE/corpora` or `~/.cache/umup_sweep/corpora` (not created here)."""
    base = os.environ.get(ENV_VAR) or os.path.join(os.path.expanduser("~"), ".cache", "umup_sweep")
    return Path(base) / "corpora"


def read_entry(key: str, with_tokens: bool) -> tuple[dict[str, Any], np.ndarray | None] | None:
    """The cached metadata (and memory-mapped tokens) for `key`, or None if absent or broken."""
    folder = cache_dir()
    try:
        meta = json.loads((folder / f"{key}.json").read_text())
        if not with_tokens:
            return meta, None
        tokens = np.load(folder / f"{key}.npy", mmap_mode="r")
    except (OSError, ValueError):
        return None
    if tokens.ndim != 1 or len(tokens) != meta.get("n_tokens"):
        return None
    return meta, tokens


def write_entry(key: str, meta: dict[str, Any], tokens: np.ndarray | None) -> bool:
    """Atomically store `meta` (and `tokens`) under `key`; False if the cache is not writable.

    The tokens go first and the metadata last, so a reader that finds the metadata also finds
    complete tokens.
    """
    folder = cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if tokens is not None:
            _atomic_write(folder / f"{key}.npy", lambda f: np.save(f, tokens, allow_pickle=False))
        blob = json.dumps(meta).encode()
        _atomic_write(folder / f"{key}.json", lambda f: f.write(blob))
    except OSError:
        return False
    return True


def read_blob(name: str) -> bytes | None:
    """The bytes of cache file `name` (e.g. a trained tokenizer), or None if absent."""
    try:
        return (cache_dir() / name).read_bytes()
    except OSError:
        return None


def write_blob(name: str, blob: bytes) -> bool:
    """Atomically store `blob` as cache file `name`; False if the cache is not writable."""
    folder = cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        _atomic_write(folder / name, lambda f: f.write(blob))
    except OSError:
        return False
    return True


def _atomic_write(path: Path, write: Any) -> None:
    """Write through `write(fileobj)` into a temp file beside `path`, then `os.replace` it."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.chmod(tmp, 0o644)  # mkstemp makes it 0600; a shared cache should be readable
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
