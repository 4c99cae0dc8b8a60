"""`load_corpus` / `data_fingerprint`: DataSpec → Corpus, through two caches.

Every trial calls `load_corpus`, often in a fresh Ray worker, so it must be cheap: a one-entry
in-process LRU answers repeated calls in the same process, and the on-disk cache (see
`_cache`) turns a rebuild into a memory-mapped `np.load`. Both are keyed by the source's
signature (paths + sizes + mtimes), so editing the data invalidates them.
"""

from __future__ import annotations

import dataclasses
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

from umup_sweep.data import _cache
from umup_sweep.data._build import concat_text, open_text_file, open_token_file, token_sha256
from umup_sweep.data._corpus import Corpus, fingerprint, split_index
from umup_sweep.data._sources import Source, is_glob, resolve_source
from umup_sweep.errors import DataError
from umup_sweep.spec import DataSpec

TEXT_VOCAB = 256  # byte-level text

_lock = threading.Lock()
_last: tuple[Any, Corpus] | None = None  # the in-process LRU (one corpus)


def load_corpus(spec: DataSpec, *, stdlib_root: str | Path | None = None) -> Corpus:
    """The corpus `spec` names, split into train/val, from cache when possible.

    Args:
        spec: source, val_fraction and (for token files) vocab_size.
        stdlib_root: folder used for `source="stdlib"` (default: this interpreter's standard
            library); tests point it at a small fake library.

    Raises:
        DataError: missing path, glob matching nothing, empty corpus, bad token file, a token id
            >= vocab_size, or a val_fraction outside (0, 1).

    Example:
        >>> import torch
        >>> corpus = load_corpus(DataSpec())  # the Python standard library, byte-level
        >>> corpus.vocab_size
        256
        >>> x, y = corpus.batch("train", 2, 16, torch.Generator().manual_seed(0))
        >>> x.shape
        torch.Size([2, 16])
    """
    global _last
    if not 0.0 < spec.val_fraction < 1.0:
        raise DataError(
            f"data source {spec.source!r}: val_fraction must be in (0, 1), got {spec.val_fraction}"
        )
    if spec.vocab_size is not None and spec.vocab_size <= 0:
        raise DataError(
            f"data source {spec.source!r}: vocab_size must be positive, got {spec.vocab_size}"
        )
    source = resolve_source(spec.source, Path(stdlib_root) if stdlib_root else None)
    key = (spec, source.signature())
    with _lock:
        if _last is not None and _last[0] == key:
            _cache.STATS.memory_hits += 1
            return _last[1]
        tokens, meta = _materialise(source, key[1])
        corpus = _make_corpus(spec, source, tokens, meta)
        _last = (key, corpus)
        return corpus


def data_fingerprint(spec: DataSpec, *, stdlib_root: str | Path | None = None) -> str:
    """Short hex id of the data `spec` yields (tokens, vocab, split); cheap once cached.

    Example:
        >>> len(data_fingerprint(DataSpec()))
        16
    """
    return load_corpus(spec, stdlib_root=stdlib_root).fingerprint


def clear_memory_cache() -> None:
    """Forget the in-process corpus (the on-disk cache stays)."""
    global _last
    with _lock:
        _last = None


def resolve_data_spec(spec: DataSpec, base_dir: str | Path) -> DataSpec:
    """`spec` with a relative source made absolute against `base_dir`.

    Ray workers run in their own working directory, so the driver should resolve paths (for
    instance against the sweep YAML's folder) before handing specs out. `"stdlib"` and
    absolute paths are returned unchanged.
    """
    src = os.path.expanduser(spec.source)
    if spec.source == "stdlib" or os.path.isabs(src):
        return dataclasses.replace(spec, source=src) if src != spec.source else spec
    joined = os.path.join(os.path.abspath(base_dir), src)
    return dataclasses.replace(spec, source=joined if is_glob(src) else os.path.normpath(joined))


def _materialise(source: Source, signature: str) -> tuple[np.ndarray, dict[str, Any]]:
    """The source's tokens and metadata (n_tokens, sha256, max_id, doc_starts)."""
    single = len(source.files) == 1
    if single:  # the file itself is the token array: cache only the metadata
        path = source.files[0]
        if source.kind == "tokens":
            tokens = open_token_file(path, source.name)
        else:
            tokens = open_text_file(path, source.name)
        hit = _cache.read_entry(signature, with_tokens=False)
        if hit is not None and hit[0].get("n_tokens") == len(tokens):
            _cache.STATS.hits += 1
            return tokens, hit[0]
        starts = [0]
    else:
        hit = _cache.read_entry(signature, with_tokens=True)
        if hit is not None and hit[1] is not None:
            _cache.STATS.hits += 1
            return hit[1], hit[0]
        tokens, starts = concat_text(source.files, source.name)
    _cache.STATS.builds += 1
    meta = {
        "name": source.name,
        "n_tokens": int(len(tokens)),
        "dtype": tokens.dtype.str,
        "sha256": token_sha256(tokens),
        "max_id": int(tokens.max()),
        "doc_starts": starts,
    }
    _cache.write_entry(signature, meta, None if single else tokens)
    return tokens, meta


def _make_corpus(
    spec: DataSpec, source: Source, tokens: np.ndarray, meta: dict[str, Any]
) -> Corpus:
    """Check the vocab against the largest id, split, and fingerprint."""
    max_id = int(meta["max_id"])
    default_vocab = TEXT_VOCAB if source.kind == "text" else max_id + 1
    vocab = spec.vocab_size if spec.vocab_size is not None else default_vocab
    if max_id >= vocab:
        raise DataError(
            f"data source {source.name!r}: token id {max_id} >= vocab_size {vocab}; "
            f"set data.vocab_size to at least {max_id + 1}"
        )
    if len(tokens) < 2:
        raise DataError(
            f"data source {source.name!r}: corpus has {len(tokens)} token(s); need at least 2 "
            "to split into train and val"
        )
    split = split_index(len(tokens), meta["doc_starts"], spec.val_fraction)
    return Corpus(tokens, split, vocab, fingerprint(meta["sha256"], vocab, split), source.name)
