"""`Corpus`: a token array split into train/val, and the batches a trial trains on."""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch

from umup_sweep.errors import DataError

Split = Literal["train", "val"]

# A document boundary is used for the split only if it moves the val size by at most this
# fraction of the requested val size; otherwise the split is at the exact token position.
BOUNDARY_SLACK = 0.25


def split_index(n_tokens: int, doc_starts: Sequence[int], val_fraction: float) -> int:
    """Where train ends and val begins: contiguous, val is the tail of the corpus.

    The cut is the document boundary nearest to `(1 - val_fraction) * n_tokens` when one lies
    within `BOUNDARY_SLACK` of the requested val size, else exactly at that position.

    Example:
        >>> split_index(1000, [0, 400, 940], 0.05)  # val 60 tokens instead of 50: accepted
        940
        >>> split_index(1000, [0, 400, 930], 0.05)  # val 70 tokens: too far, cut at 950
        950
    """
    target = min(max(round(n_tokens * (1.0 - val_fraction)), 1), n_tokens - 1)
    slack = BOUNDARY_SLACK * (n_tokens - target)
    i = bisect.bisect_left(doc_starts, target)
    candidates = [s for s in doc_starts[max(i - 1, 0) : i + 1] if 0 < s < n_tokens]
    if candidates:
        best = min(candidates, key=lambda s: (abs(s - target), s))
        if abs(best - target) <= slack:
            return best
    return target


def fingerprint(token_sha: str, vocab_size: int, split: int, tokenizer: str = "") -> str:
    """Short hex id of the data: the token bytes' sha256, the vocab, the split point and, for
    text encoded with a tokenizer, that tokenizer's fingerprint (byte-level text and token
    files hash as they did before tokenizers existed).

    Example:
        >>> fingerprint("ab", 256, 10) == fingerprint("ab", 256, 10, tokenizer="")
        True
        >>> fingerprint("ab", 256, 10) == fingerprint("ab", 256, 10, tokenizer="f00d")
        False
    """
    tail = f":tokenizer={tokenizer}" if tokenizer else ""
    return hashlib.sha256(f"{token_sha}:{vocab_size}:{split}{tail}".encode()).hexdigest()[:16]


class Corpus:
    """A tokenised corpus, split into a train head and a val tail.

    `train` and `val` are read-only 1-D numpy arrays (uint8 for byte-level text, uint16 or
    uint32 for text encoded with a tokenizer, the file's unsigned dtype for token files), often
    memory-mapped: cheap to hold, never copied whole.
    Batches come out as torch int64.

    Args:
        tokens: all token ids, 1-D.
        split: index where val starts (0 < split < len(tokens)).
        vocab_size: ids are < vocab_size.
        fingerprint: short hex id of (tokens, vocab, split).
        name: the source it came from (for messages).

    Example:
        >>> import numpy as np, torch
        >>> c = Corpus(np.arange(100, dtype=np.uint8) % 7, 90, 256, "demo", "demo")
        >>> x, y = c.batch("train", 4, 8, torch.Generator().manual_seed(0))
        >>> x.shape, bool((x[:, 1:] == y[:, :-1]).all())
        (torch.Size([4, 8]), True)
    """

    def __init__(
        self, tokens: np.ndarray, split: int, vocab_size: int, fingerprint: str, name: str
    ) -> None:
        if not 0 < split < len(tokens):
            raise ValueError(f"split {split} outside (0, {len(tokens)})")
        self.tokens = tokens
        self.split = split
        self.vocab_size = vocab_size
        self.fingerprint = fingerprint
        self.name = name

    @property
    def train(self) -> np.ndarray:
        """Training tokens (the head of the corpus)."""
        return self.tokens[: self.split]

    @property
    def val(self) -> np.ndarray:
        """Validation tokens (the tail of the corpus)."""
        return self.tokens[self.split :]

    def __repr__(self) -> str:
        return (
            f"Corpus(name={self.name!r}, train={len(self.train)}, val={len(self.val)}, "
            f"vocab_size={self.vocab_size}, fingerprint={self.fingerprint!r})"
        )

    def require(self, seq_len: int, batch_size: int = 1) -> None:
        """Raise `DataError` unless both splits hold at least one window of `seq_len + 1`.

        Call it before building a model, so a too-small corpus fails fast with a clear message.
        """
        self._checked("train", batch_size, seq_len)
        self._checked("val", batch_size, seq_len)

    def batch(
        self, split: Split, batch_size: int, seq_len: int, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """`batch_size` random windows of `split`: x int64 [B, T] and y = x shifted by one.

        Window starts are drawn uniformly from `generator` (one `torch.randint` call), so the
        same generator state gives the same batch.
        """
        data = self._checked(split, batch_size, seq_len)
        high = len(data) - seq_len  # starts 0..len-seq_len-1 leave room for seq_len+1 tokens
        starts = torch.randint(high, (batch_size,), generator=generator, device=generator.device)
        return _windows(data, starts.cpu().numpy(), seq_len)

    def val_batches(
        self, batch_size: int, seq_len: int, n: int
    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """A fixed set of `n` validation batches: windows evenly spaced over the val split.

        Needs no generator, so every trial (whatever its seed) is scored on the same tokens.
        """
        data = self._checked("val", batch_size, seq_len)
        if n <= 0:
            raise ValueError(f"n must be positive, got {n}")
        last = len(data) - seq_len - 1
        starts = np.linspace(0, last, n * batch_size).round().astype(np.int64)
        return [
            _windows(data, starts[i * batch_size : (i + 1) * batch_size], seq_len) for i in range(n)
        ]

    def _checked(self, split: str, batch_size: int, seq_len: int) -> np.ndarray:
        """The split's tokens, after checking a batch of `seq_len + 1` windows fits in it."""
        if split not in ("train", "val"):
            raise ValueError(f"split must be 'train' or 'val', got {split!r}")
        if batch_size <= 0 or seq_len <= 0:
            raise ValueError(f"batch_size and seq_len must be positive: {batch_size}, {seq_len}")
        data = self.train if split == "train" else self.val
        if len(data) < seq_len + 1:
            raise DataError(
                f"data source {self.name!r}: {split} split has {len(data)} tokens, fewer than "
                f"one sequence of seq_len+1 = {seq_len + 1}; use more data or a shorter seq_len"
            )
        return data


def _windows(
    data: np.ndarray, starts: np.ndarray, seq_len: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gather windows of `seq_len + 1` tokens at `starts`; return contiguous (x, y) int64."""
    idx = starts[:, None] + np.arange(seq_len + 1)
    chunk = torch.from_numpy(data[idx].astype(np.int64))
    return chunk[:, :-1].contiguous(), chunk[:, 1:].contiguous()
