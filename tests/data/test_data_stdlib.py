"""The embedded default corpus: which files, in which order, and the real thing once."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from umup_sweep.data import load_corpus, stdlib_files
from umup_sweep.data._corpus import Corpus
from umup_sweep.spec import DataSpec


def test_stdlib_files_skip_tests_site_packages_and_build_config(
    fake_stdlib: Path, fake_stdlib_kept: list[str]
) -> None:
    found = [p.relative_to(fake_stdlib).as_posix() for p in stdlib_files(fake_stdlib)]
    assert found == fake_stdlib_kept
    assert "abc.py" in found and "test/test_abc.py" not in found


def test_stdlib_corpus_is_the_kept_files_concatenated_in_sorted_order(
    fake_stdlib: Path, fake_stdlib_layout: dict[str, tuple[str, bool]], fake_stdlib_kept: list[str]
) -> None:
    corpus = load_corpus(DataSpec(val_fraction=0.2), stdlib_root=fake_stdlib)
    expected = b"".join(fake_stdlib_layout[rel][0].encode() for rel in fake_stdlib_kept)
    assert bytes(corpus.tokens) == expected
    assert bytes(corpus.train) + bytes(corpus.val) == expected
    assert corpus.vocab_size == 256 and corpus.name == "stdlib"
    assert corpus.tokens.dtype == np.uint8
    # Split at a file boundary: val starts exactly where some kept file starts.
    starts, offset = set(), 0
    for rel in fake_stdlib_kept:
        starts.add(offset)
        offset += len(fake_stdlib_layout[rel][0])
    assert corpus.split in starts
    assert abs(len(corpus.val) - 0.2 * len(expected)) <= 0.25 * 0.2 * len(expected)


def test_real_stdlib_corpus(stdlib_corpus: Corpus) -> None:
    files = stdlib_files()
    rel = [p.as_posix() for p in files]
    assert not any(f"/{d}/" in p for p in rel for d in ("test", "tests", "idle_test"))
    assert not any("site-packages" in p for p in rel)
    assert rel == sorted(rel, key=lambda p: p)  # same root, so absolute order == relative order
    total = sum(p.stat().st_size for p in files)
    assert len(stdlib_corpus.tokens) == total > 5_000_000
    assert stdlib_corpus.vocab_size == 256
    assert len(stdlib_corpus.val) / total == pytest.approx(0.05, rel=0.25)
    # The corpus starts with the first file's source.
    assert bytes(stdlib_corpus.tokens[:200]) == files[0].read_bytes()[:200]
    assert len(stdlib_corpus.fingerprint) == 16
    int(stdlib_corpus.fingerprint, 16)
