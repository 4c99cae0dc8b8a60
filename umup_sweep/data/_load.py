"""`load_corpus` / `data_fingerprint`: DataSpec → Corpus, through two caches.

Every trial calls `load_corpus`, often in a fresh Ray worker, so it must be cheap: a one-entry
in-process LRU answers repeated calls in the same process, and the on-disk cache (see
`_cache`) turns a rebuild into a memory-mapped `np.load`. Both are keyed by the source's
signature (paths + sizes + mtimes), so editing the data invalidates them. Text with a tokenizer
(`DataSpec.tokenizer` / `train_bpe`, see `_tokenizer`) is first built byte-level as usual, then
encoded and cached again under a key of the bytes' sha256, the tokenizer's fingerprint and the
`tokenizers` version; its fingerprint includes the tokenizer's.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

from umup_sweep.data import _cache, _tokenizer
from umup_sweep.data._build import concat_text, open_text_file, open_token_file, token_sha256
from umup_sweep.data._corpus import Corpus, fingerprint, split_index
from umup_sweep.data._sources import BUILD_VERSION, Source, is_glob, resolve_source
from umup_sweep.errors import DataError
from umup_sweep.spec import DataSpec

TEXT_VOCAB = 256  # byte-level text

_lock = threading.Lock()
_last: tuple[Any, Corpus] | None = None  # the in-process LRU (one corpus)


def load_corpus(spec: DataSpec, *, stdlib_root: str | Path | None = None) -> Corpus:
    """The corpus `spec` names, split into train/val, from cache when possible.

    Args:
        spec: source, val_fraction, (for token files) vocab_size and (for text) the tokenizer:
            `tokenizer` (a tokenizer.json path) or `train_bpe` (a vocabulary to train).
        stdlib_root: folder used for `source="stdlib"` (default: this interpreter's standard
            library); tests point it at a small fake library.

    Raises:
        DataError: missing path, glob matching nothing, empty corpus, bad token file, a token id
            >= vocab_size, a val_fraction outside (0, 1), a missing or unloadable tokenizer, or
            a tokenizer on a token file.

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
    if spec.vocab_size is not None and (spec.tokenizer is not None or spec.train_bpe):
        raise DataError(
            f"data source {spec.source!r}: vocab_size is the tokenizer's; leave data.vocab_size "
            "out when data.tokenizer is given"
        )
    source = resolve_source(spec.source, Path(stdlib_root) if stdlib_root else None)
    key = (spec, source.signature(), _tokenizer_signature(spec, source))
    with _lock:
        if _last is not None and _last[0] == key:
            _cache.STATS.memory_hits += 1
            return _last[1]
        if spec.tokenizer is None and spec.train_bpe is None:
            tokens, meta = _materialise(source, key[1])
        else:
            tokens, meta = _materialise_tokenized(spec, source, key[1])
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


def check_vocab(corpus: Corpus, spec: DataSpec, model_vocab: int) -> None:
    """Raise `DataError` unless a model with `model_vocab` embeddings can train on `corpus`.

    Every id must fit (corpus vocab <= model vocab). With a tokenizer (`spec.tokenizer` or
    `spec.train_bpe`) the two must be equal, unless `spec.allow_vocab_mismatch` lets the model's
    be larger (the proxy should see the target's vocabulary, so a mismatch is a mistake unless
    asked for).

    Example:
        >>> corpus = load_corpus(DataSpec())
        >>> check_vocab(corpus, DataSpec(), 512)  # byte-level text: any vocab >= 256
        >>> check_vocab(corpus, DataSpec(), 128)
        Traceback (most recent call last):
        ...
        umup_sweep.errors.DataError: corpus stdlib has vocab 256 but the model's vocab_size is 128
    """
    tokenized = spec.tokenizer is not None or spec.train_bpe is not None
    if corpus.vocab_size > model_vocab and not tokenized:
        raise DataError(
            f"corpus {corpus.name} has vocab {corpus.vocab_size} but the model's vocab_size is "
            f"{model_vocab}"
        )
    if tokenized and corpus.vocab_size != model_vocab:
        if corpus.vocab_size > model_vocab:
            raise DataError(
                f"data source {corpus.name!r}: the tokenizer's vocabulary ({corpus.vocab_size}) "
                f"is larger than the model's vocab_size ({model_vocab}): its ids would overflow "
                f"the embedding; set the model's vocab_size to {corpus.vocab_size}"
            )
        if not spec.allow_vocab_mismatch:
            raise DataError(
                f"data source {corpus.name!r}: the model's vocab_size ({model_vocab}) differs "
                f"from the tokenizer's vocabulary ({corpus.vocab_size}); set vocab_size: "
                f"{corpus.vocab_size}, or data.allow_vocab_mismatch: true"
            )


def clear_memory_cache() -> None:
    """Forget the in-process corpus (the on-disk cache stays)."""
    global _last
    with _lock:
        _last = None


def resolve_data_spec(spec: DataSpec, base_dir: str | Path) -> DataSpec:
    """`spec` with a relative source (and tokenizer path) made absolute against `base_dir`.

    Ray workers run in their own working directory, so the driver should resolve paths (for
    instance against the sweep YAML's folder) before handing specs out. `"stdlib"` and
    absolute paths are returned unchanged.
    """
    src = os.path.expanduser(spec.source)
    if spec.source == "stdlib" or os.path.isabs(src):
        out = dataclasses.replace(spec, source=src) if src != spec.source else spec
    else:
        joined = os.path.join(os.path.abspath(base_dir), src)
        out = dataclasses.replace(spec, source=joined if is_glob(src) else os.path.normpath(joined))
    if spec.tokenizer is not None:
        tok = os.path.join(os.path.abspath(base_dir), os.path.expanduser(spec.tokenizer))
        out = dataclasses.replace(out, tokenizer=os.path.normpath(tok))
    return out


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
    meta = _token_meta(source.name, tokens, starts)
    _cache.write_entry(signature, meta, None if single else tokens)
    return tokens, meta


def _token_meta(name: str, tokens: np.ndarray, starts: list[int]) -> dict[str, Any]:
    """What the cache records of a built token array (its name, size, dtype, hash, largest
    id and document starts)."""
    return {
        "name": name,
        "n_tokens": int(len(tokens)),
        "dtype": tokens.dtype.str,
        "sha256": token_sha256(tokens),
        "max_id": int(tokens.max()),
        "doc_starts": starts,
    }


def _tokenizer_signature(spec: DataSpec, source: Source) -> str:
    """Size and mtime of the tokenizer file ("" without one): editing it in place changes the
    in-process cache key. Also refuses a tokenizer on a token-file source."""
    if spec.tokenizer is None and spec.train_bpe is None:
        return ""
    if source.kind != "text":
        raise DataError(
            f"data source {source.name!r}: is a token file; data.tokenizer applies to text "
            "sources only (a token file is already tokenised)"
        )
    if spec.tokenizer is None:
        return f"bpe:{spec.train_bpe}"
    try:
        st = os.stat(spec.tokenizer)
    except OSError as err:
        raise DataError(
            f"data source {source.name!r}: cannot read tokenizer {spec.tokenizer!r}: {err.strerror}"
        ) from None
    return f"{os.path.abspath(spec.tokenizer)}\t{st.st_size}\t{st.st_mtime_ns}"


def _materialise_tokenized(
    spec: DataSpec, source: Source, signature: str
) -> tuple[np.ndarray, dict[str, Any]]:
    """The text source encoded with its tokenizer (trained first for `train_bpe`), through the
    on-disk cache: keyed by the byte corpus's sha256 and document starts, the tokenizer's
    fingerprint and the `tokenizers` version."""
    text, text_meta = _materialise(source, signature)
    if spec.train_bpe is not None:
        tok = _tokenizer.cached_bpe(text, text_meta, spec.train_bpe, source.name)
    else:
        tok = _tokenizer.TokenizerFile.read(str(spec.tokenizer), source.name)
    parts = [BUILD_VERSION, text_meta["sha256"], text_meta["doc_starts"], tok.fingerprint]
    blob = json.dumps(["tokenized", *parts, tok.vocab_size, _tokenizer.tokenizers_version()])
    key = hashlib.sha256(blob.encode()).hexdigest()[:24]
    hit = _cache.read_entry(key, with_tokens=True)
    if hit is not None and hit[1] is not None and hit[0].get("tokenizer") == tok.fingerprint:
        _cache.STATS.hits += 1
        return hit[1], hit[0]
    _cache.STATS.encodings += 1
    docs = _tokenizer.documents(text, text_meta["doc_starts"])
    tokens, starts = _tokenizer.encode_documents(tok, docs)
    meta = _token_meta(source.name, tokens, starts)
    meta |= {"tokenizer": tok.fingerprint, "vocab_size": tok.vocab_size}
    _cache.write_entry(key, meta, tokens)
    return tokens, meta


def _make_corpus(
    spec: DataSpec, source: Source, tokens: np.ndarray, meta: dict[str, Any]
) -> Corpus:
    """Check the vocab against the largest id, split, and fingerprint."""
    max_id = int(meta["max_id"])
    default_vocab = TEXT_VOCAB if source.kind == "text" else max_id + 1
    default_vocab = int(meta.get("vocab_size", default_vocab))  # a tokenizer's vocabulary
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
    tok = str(meta.get("tokenizer", ""))
    return Corpus(tokens, split, vocab, fingerprint(meta["sha256"], vocab, split, tok), source.name)
