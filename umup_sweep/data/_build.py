"""Read a source's files into one 1-D token array, validating token files on the way.

Text is byte-level: each file's bytes are token ids 0..255, files concatenated in order with
nothing between them (their start offsets are kept as document boundaries). Token files follow
nanoGPT: `.bin` is raw little-endian uint16, `.npy` a 1-D unsigned-integer array.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from umup_sweep.errors import DataError

_HASH_CHUNK = 1 << 24  # tokens per hashlib.update call (bounded memory on huge memmaps)


def concat_text(files: Sequence[Path], name: str) -> tuple[np.ndarray, list[int]]:
    """All files' bytes in order as one uint8 array, plus each file's start offset.

    Empty files contribute nothing (and no document boundary).
    """
    parts: list[bytes] = []
    starts: list[int] = []
    offset = 0
    for path in files:
        try:
            blob = path.read_bytes()
        except OSError as err:
            raise DataError(f"data source {name!r}: cannot read {path}: {err}") from err
        if blob:
            parts.append(blob)
            starts.append(offset)
            offset += len(blob)
    if not offset:
        raise DataError(f"data source {name!r}: corpus is empty (0 bytes in {len(files)} files)")
    return np.frombuffer(b"".join(parts), dtype=np.uint8), starts


def open_text_file(path: Path, name: str) -> np.ndarray:
    """One text file's bytes as a read-only memory-mapped uint8 array."""
    if path.stat().st_size == 0:
        raise DataError(f"data source {name!r}: corpus is empty ({path} has 0 bytes)")
    return np.memmap(path, dtype=np.uint8, mode="r")


def open_token_file(path: Path, name: str) -> np.ndarray:
    """A `.bin` (raw uint16 LE) or `.npy` (1-D unsigned ints) token file, memory-mapped."""
    size = path.stat().st_size
    if path.suffix.lower() == ".bin":
        if size % 2:
            raise DataError(
                f"data source {name!r}: {path} has an odd byte count ({size}); "
                "expected raw uint16 tokens (2 bytes each)"
            )
        if size == 0:
            raise DataError(f"data source {name!r}: corpus is empty ({path} has 0 tokens)")
        return np.memmap(path, dtype="<u2", mode="r")
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise DataError(f"data source {name!r}: {path} is not a readable .npy file: {err}") from err
    if not isinstance(arr, np.ndarray) or arr.ndim != 1 or arr.dtype.kind != "u":
        shape = getattr(arr, "shape", "?")
        dtype = getattr(arr, "dtype", type(arr).__name__)
        raise DataError(
            f"data source {name!r}: {path} holds a {dtype} array of shape {shape}; "
            "expected a 1-D uint16 token array (uint8/uint32 also accepted)"
        )
    if arr.dtype.itemsize > 4:
        raise DataError(
            f"data source {name!r}: {path} holds {arr.dtype} tokens; expected uint16 "
            "(uint8/uint32 also accepted)"
        )
    if arr.size == 0:
        raise DataError(f"data source {name!r}: corpus is empty ({path} has 0 tokens)")
    if arr.dtype.byteorder == ">":  # canonical little-endian, so hashes match across machines
        arr = arr.astype(arr.dtype.newbyteorder("<"))
    return arr


def token_sha256(tokens: np.ndarray) -> str:
    """sha256 hex digest of the tokens' little-endian bytes, hashed in bounded chunks."""
    digest = hashlib.sha256(f"{tokens.dtype.str}:".encode())
    for start in range(0, len(tokens), _HASH_CHUNK):
        digest.update(np.ascontiguousarray(tokens[start : start + _HASH_CHUNK]).data)
    return digest.hexdigest()
