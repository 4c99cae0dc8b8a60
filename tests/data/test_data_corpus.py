"""Corpus: the train/val split, random training batches and the fixed validation batches."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from umup_sweep.data import Corpus, split_index
from umup_sweep.data._corpus import Split, fingerprint
from umup_sweep.errors import DataError

N, SPLIT = 2000, 1800


def ramp_corpus(n: int = N, split: int = SPLIT) -> Corpus:
    """Tokens 0..n-1, so every window names its own start and a shift is +1."""
    tokens = np.arange(n, dtype=np.uint16)
    return Corpus(tokens, split, n, fingerprint("sha", n, split), "ramp")


@pytest.mark.parametrize(
    ("n", "starts", "frac", "expected"),
    [
        (1000, [0, 400, 940], 0.05, 940),  # nearest boundary, val 60 vs 50: within 25% slack
        (1000, [0, 400, 960, 990], 0.05, 960),
        (1000, [0, 400, 930], 0.05, 950),  # val would be 70, 40% too big: exact cut
        (100, [0], 0.05, 95),  # one document: exact cut
        (1000, [0, 890, 910], 0.1, 890),  # tie between 890 and 910 goes to the earlier one
        (10, [0], 0.001, 9),  # never an empty val split
        (10, [0], 0.999, 1),  # never an empty train split
    ],
)
def test_split_index(n: int, starts: list[int], frac: float, expected: int) -> None:
    assert split_index(n, starts, frac) == expected


def test_train_and_val_are_the_disjoint_head_and_tail() -> None:
    c = ramp_corpus()
    assert c.train.tolist() == list(range(SPLIT))
    assert c.val.tolist() == list(range(SPLIT, N))


def test_batch_shape_dtype_and_shift() -> None:
    c = ramp_corpus()
    x, y = c.batch("train", 8, 16, torch.Generator().manual_seed(0))
    assert x.shape == y.shape == (8, 16)
    assert x.dtype == y.dtype == torch.int64
    assert x.is_contiguous() and y.is_contiguous()
    assert torch.equal(y, x + 1)  # next token of the ramp
    assert torch.equal(x - x[:, :1], torch.arange(16).expand(8, 16))  # contiguous windows
    assert int(y.max()) <= SPLIT - 1  # never reads into val


def test_training_windows_cover_the_whole_train_split() -> None:
    c = ramp_corpus(n=40, split=30)
    g = torch.Generator().manual_seed(1)
    firsts = {int(v) for _ in range(200) for v in c.batch("train", 4, 5, g)[0][:, 0]}
    assert firsts == set(range(30 - 5))  # every legal start 0..24, nothing beyond


def test_same_seed_same_batches_different_seed_different() -> None:
    c = ramp_corpus()

    def draws(seed: int) -> list[torch.Tensor]:
        g = torch.Generator().manual_seed(seed)
        return [c.batch("train", 4, 8, g)[0] for _ in range(3)]

    a, b, other = draws(7), draws(7), draws(8)
    assert all(torch.equal(p, q) for p, q in zip(a, b, strict=True))
    assert not all(torch.equal(p, q) for p, q in zip(a, other, strict=True))
    assert not torch.equal(a[0], a[1])  # the generator advances between batches


def test_val_batches_are_fixed_evenly_spaced_and_inside_val() -> None:
    c = ramp_corpus()
    torch.manual_seed(0)
    first = c.val_batches(4, 10, 3)
    torch.manual_seed(123)  # global RNG state must not matter
    second = c.val_batches(4, 10, 3)
    assert len(first) == 3
    for (x1, y1), (x2, y2) in zip(first, second, strict=True):
        assert torch.equal(x1, x2) and torch.equal(y1, y2)
        assert x1.shape == (4, 10) and x1.dtype == torch.int64
        assert torch.equal(y1, x1 + 1)
    starts = torch.cat([x[:, 0] for x, _ in first]).tolist()
    # 12 windows evenly spaced from the first to the last legal start of val (1800..1989).
    assert starts == np.linspace(SPLIT, N - 11, 12).round().astype(int).tolist()
    assert min(starts) == SPLIT and max(int(y.max()) for _, y in first) == N - 1


@pytest.mark.parametrize(
    ("split_name", "n", "split", "seq_len", "message"),
    [
        ("train", 40, 10, 10, "'ramp': train split has 10 tokens, fewer than one sequence"),
        ("val", 40, 35, 5, "'ramp': val split has 5 tokens, fewer than one sequence"),
    ],
)
def test_a_split_too_small_for_one_sequence_is_a_data_error(
    split_name: Split, n: int, split: int, seq_len: int, message: str
) -> None:
    c = ramp_corpus(n, split)
    with pytest.raises(DataError, match=message):
        c.batch(split_name, 2, seq_len, torch.Generator())
    with pytest.raises(DataError, match=message):
        c.require(seq_len)
    c.batch(split_name, 2, seq_len - 1, torch.Generator())  # one token shorter fits exactly


def test_fingerprint_depends_on_tokens_vocab_and_split() -> None:
    base = fingerprint("abc", 256, 100)
    assert base == fingerprint("abc", 256, 100) and len(base) == 16
    assert (
        len(
            {
                base,
                fingerprint("abd", 256, 100),
                fingerprint("abc", 257, 100),
                fingerprint("abc", 256, 101),
            }
        )
        == 4
    )
