"""Fixtures for the data tests: an isolated cache per test and a small fake standard library."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from umup_sweep.data import _cache, clear_memory_cache, load_corpus
from umup_sweep.data._corpus import Corpus
from umup_sweep.spec import DataSpec

# Files of the fake standard library: path -> content. The ones marked False must be skipped.
FAKE_STDLIB: dict[str, tuple[str, bool]] = {
    "abc.py": ("class ABC:\n    pass\n" * 40, True),
    "zzz_last.py": ("LAST = 1\n" * 30, True),
    "argparse.py": ("import sys\n" * 50, True),
    "email/__init__.py": ("# email package\n" * 20, True),
    "email/parser.py": ("def parse(s):\n    return s\n" * 25, True),
    "email/_empty.py": ("", True),
    "idlelib/editor.py": ("EDITOR = True\n" * 20, True),
    "idlelib/idle_test/test_editor.py": ("import unittest\n", False),
    "test/test_abc.py": ("import unittest\n", False),
    "test/support/__init__.py": ("SUPPORT = 1\n", False),
    "lib2to3/fixer.py": ("FIX = 1\n" * 20, True),
    "lib2to3/tests/data/bom.py": ("x = 1\n", False),
    "ctypes/test/test_x.py": ("x = 1\n", False),
    "site-packages/numpy/__init__.py": ("x = 1\n", False),
    "__pycache__/abc.cpython-311.py": ("x = 1\n", False),
    "config-3.11-x86_64-linux-gnu/python-config.py": ("x = 1\n", False),
    "_sysconfigdata__linux_x86_64-linux-gnu.py": ("build_time_vars = {}\n", False),
    "README.txt": ("not python\n", False),
    "abc.pyc": ("not source\n", False),
}


def expected_stdlib_files() -> list[str]:
    """The kept files of FAKE_STDLIB in the order the corpus must concatenate them."""
    return sorted(path for path, (_, keep) in FAKE_STDLIB.items() if keep)


@pytest.fixture
def fake_stdlib_layout() -> dict[str, tuple[str, bool]]:
    """FAKE_STDLIB: relative path -> (content, whether the corpus must include it)."""
    return FAKE_STDLIB


@pytest.fixture
def fake_stdlib_kept() -> list[str]:
    """The kept fake files in corpus order."""
    return expected_stdlib_files()


@pytest.fixture
def fake_stdlib(tmp_path: Path) -> Path:
    """A small folder laid out like a standard library, with test dirs and junk to skip."""
    root = tmp_path / "fake_stdlib"
    for rel, (content, _) in FAKE_STDLIB.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    return root


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Each test gets an empty on-disk cache, an empty in-process LRU and zeroed counters."""
    cache = tmp_path / "cache"
    monkeypatch.setenv(_cache.ENV_VAR, str(cache))
    monkeypatch.setattr(_cache, "STATS", _cache.CacheStats())
    clear_memory_cache()
    yield cache
    clear_memory_cache()


@pytest.fixture(scope="session")
def stdlib_corpus(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    """The real standard-library corpus, built once per session into a private cache."""
    mp = pytest.MonkeyPatch()
    mp.setenv(_cache.ENV_VAR, str(tmp_path_factory.mktemp("stdlib_cache")))
    try:
        clear_memory_cache()
        return load_corpus(DataSpec())
    finally:
        mp.undo()
        clear_memory_cache()
