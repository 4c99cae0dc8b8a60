"""Corpora → batches.

The default corpus is the Python standard library's own source (byte-level, vocab 256, no
download); users can point `DataSpec.source` at a text file, a folder or glob of text files, or
a nanoGPT-style `.bin`/`.npy` uint16 (or `.npy` uint32) token file. Text is encoded byte by
byte unless `DataSpec.tokenizer` names a local Hugging Face `tokenizer.json` or
`DataSpec.train_bpe` asks for a byte-level BPE trained on the corpus itself. Built corpora
are cached on disk (`$UMUP_SWEEP_CACHE` or `~/.cache/umup_sweep`) so each trial loads its data
in milliseconds.

Example:
    >>> import torch
    >>> from umup_sweep.spec import DataSpec
    >>> corpus = load_corpus(DataSpec(source="stdlib"))
    >>> x, y = corpus.batch("train", 4, 32, torch.Generator().manual_seed(0))
    >>> bool((x[:, 1:] == y[:, :-1]).all())
    True
"""

from umup_sweep.data._cache import cache_dir
from umup_sweep.data._corpus import Corpus, split_index
from umup_sweep.data._load import (
    check_vocab,
    clear_memory_cache,
    data_fingerprint,
    load_corpus,
    resolve_data_spec,
)
from umup_sweep.data._stdlib import stdlib_files

__all__ = [
    "Corpus",
    "cache_dir",
    "check_vocab",
    "clear_memory_cache",
    "data_fingerprint",
    "load_corpus",
    "resolve_data_spec",
    "split_index",
    "stdlib_files",
]
