"""load_corpus on user data: text, folders, globs, token files, errors, fingerprints, caches."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from umup_sweep.data import (
    _build,
    _cache,
    clear_memory_cache,
    data_fingerprint,
    load_corpus,
    resolve_data_spec,
)
from umup_sweep.errors import DataError
from umup_sweep.spec import DataSpec

TEXT = "def f(x):\n    return x * 2\n" * 40  # 1080 bytes
REPO = Path(__file__).resolve().parents[2]


def write(path: Path, content: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def fresh_load(spec: DataSpec) -> object:
    """Load bypassing the in-process LRU (the on-disk cache still applies)."""
    clear_memory_cache()
    return load_corpus(spec)


# --- text sources ---------------------------------------------------------------------------


def test_text_file_is_its_bytes_split_at_the_exact_fraction(tmp_path: Path) -> None:
    path = write(tmp_path / "a.txt", TEXT)
    corpus = load_corpus(DataSpec(source=str(path), val_fraction=0.1))
    assert bytes(corpus.tokens) == TEXT.encode()
    assert corpus.split == 972  # round(1080 * 0.9): one document, so no boundary to snap to
    assert corpus.vocab_size == 256 and corpus.name == str(path)


def test_home_relative_source_is_expanded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path / "home" / "a.txt", TEXT)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert bytes(load_corpus(DataSpec(source="~/a.txt")).tokens) == TEXT.encode()


def test_folder_and_glob_concatenate_files_in_sorted_order(tmp_path: Path) -> None:
    write(tmp_path / "d" / "b.txt", "BBBB")
    write(tmp_path / "d" / "a.txt", "AAAA")
    write(tmp_path / "d" / "sub" / "c.txt", "CCCC")
    write(tmp_path / "d" / ".hidden", "HHHH")
    write(tmp_path / "d" / ".git" / "x.txt", "GGGG")
    folder = load_corpus(DataSpec(source=str(tmp_path / "d"), val_fraction=0.3))
    assert bytes(folder.tokens) == b"AAAABBBBCCCC"
    assert folder.split == 8  # document boundary nearest to 12 * 0.7 = 8.4
    glob = load_corpus(DataSpec(source=str(tmp_path / "d" / "**" / "*.txt"), val_fraction=0.3))
    assert bytes(glob.tokens) == b"AAAABBBBCCCC"
    assert glob.fingerprint == folder.fingerprint  # same tokens, same split: same data


def test_fingerprint_identifies_the_data_not_the_path(tmp_path: Path) -> None:
    a = write(tmp_path / "a.txt", TEXT)
    b = write(tmp_path / "elsewhere" / "b.txt", TEXT)
    c = write(tmp_path / "c.txt", TEXT.replace("2", "3"))
    fa = data_fingerprint(DataSpec(source=str(a)))
    assert fa == fresh_load(DataSpec(source=str(a))).fingerprint  # type: ignore[attr-defined]
    assert fa == data_fingerprint(DataSpec(source=str(b)))
    assert fa != data_fingerprint(DataSpec(source=str(c)))
    assert fa != data_fingerprint(DataSpec(source=str(a), val_fraction=0.2))
    assert fa != data_fingerprint(DataSpec(source=str(a), vocab_size=300))


def test_fingerprint_is_stable_across_cache_dirs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path / "d" / "a.txt", TEXT)
    write(tmp_path / "d" / "b.txt", TEXT[::-1])
    spec = DataSpec(source=str(tmp_path / "d"))
    first = data_fingerprint(spec)
    monkeypatch.setenv(_cache.ENV_VAR, str(tmp_path / "other_cache"))
    clear_memory_cache()
    assert data_fingerprint(spec) == first
    assert _cache.STATS.builds == 2  # really rebuilt, not served from the first cache


# --- token files ----------------------------------------------------------------------------


def test_bin_and_npy_token_files_round_trip(tmp_path: Path) -> None:
    ids = (np.arange(3000) * 7919 % 1001).astype(np.uint16)  # ids 0..1000, max 1000
    bin_path = tmp_path / "tok.bin"
    ids.astype("<u2").tofile(bin_path)
    npy_path = tmp_path / "tok.npy"
    np.save(npy_path, ids)
    from_bin = load_corpus(DataSpec(source=str(bin_path)))
    from_npy = load_corpus(DataSpec(source=str(npy_path)))
    for corpus in (from_bin, from_npy):
        np.testing.assert_array_equal(np.asarray(corpus.tokens), ids)
        assert corpus.tokens.dtype == np.uint16
        assert corpus.vocab_size == 1001  # default: max id + 1
        assert corpus.split == 2850
    assert from_bin.fingerprint == from_npy.fingerprint
    wide = load_corpus(DataSpec(source=str(bin_path), vocab_size=2048))
    assert wide.vocab_size == 2048 and wide.fingerprint != from_bin.fingerprint
    # Big-endian .npy holds the same ids: same data, same fingerprint.
    np.save(tmp_path / "be.npy", ids.astype(">u2"))
    assert data_fingerprint(DataSpec(source=str(tmp_path / "be.npy"))) == from_bin.fingerprint


# --- errors ---------------------------------------------------------------------------------


def _cases(tmp: Path) -> list[tuple[DataSpec, str]]:
    write(tmp / "empty.txt", "")
    write(tmp / "empty_dir" / ".keep", "")  # hidden: the folder has no usable files
    write(tmp / "blank_files" / "a.txt", "")
    write(tmp / "blank_files" / "b.txt", "")
    write(tmp / "odd.bin", b"\x01\x00\x02")
    np.save(tmp / "float.npy", np.ones(10, dtype=np.float32))
    np.save(tmp / "signed.npy", np.ones(10, dtype=np.int64))
    np.save(tmp / "matrix.npy", np.ones((4, 4), dtype=np.uint16))
    np.save(tmp / "wide.npy", np.ones(10, dtype=np.uint64))
    np.save(tmp / "empty.npy", np.zeros(0, dtype=np.uint16))
    write(tmp / "junk.npy", b"this is not numpy")
    np.arange(1000, dtype=np.uint16).tofile(tmp / "ids.bin")
    write(tmp / "mixed" / "a.txt", "text")
    np.arange(10, dtype=np.uint16).tofile(tmp / "mixed" / "b.bin")
    write(tmp / "high.txt", "caf\u00e9")  # UTF-8 bytes above 127
    write(tmp / "one.txt", "x")
    t = str(tmp)
    return [
        (DataSpec(source=f"{t}/nope.txt"), f"'{t}/nope.txt': no such file or directory"),
        (DataSpec(source=f"{t}/*.nothing"), f"'{t}/\\*.nothing': glob matched no files"),
        (DataSpec(source=f"{t}/empty.txt"), f"corpus is empty \\({t}/empty.txt has 0 bytes\\)"),
        (DataSpec(source=f"{t}/empty_dir"), f"'{t}/empty_dir': folder contains no files"),
        (DataSpec(source=f"{t}/blank_files"), "corpus is empty \\(0 bytes in 2 files\\)"),
        (DataSpec(source=f"{t}/odd.bin"), f"{t}/odd.bin has an odd byte count \\(3\\)"),
        (DataSpec(source=f"{t}/float.npy"), "holds a float32 array of shape \\(10,\\); expected"),
        (DataSpec(source=f"{t}/signed.npy"), "holds a int64 array .* expected a 1-D uint16"),
        (DataSpec(source=f"{t}/matrix.npy"), "shape \\(4, 4\\); expected a 1-D uint16"),
        (DataSpec(source=f"{t}/wide.npy"), "holds uint64 tokens; expected uint16"),
        (DataSpec(source=f"{t}/empty.npy"), f"corpus is empty \\({t}/empty.npy has 0 tokens\\)"),
        (DataSpec(source=f"{t}/junk.npy"), f"{t}/junk.npy is not a readable .npy file"),
        (
            DataSpec(source=f"{t}/ids.bin", vocab_size=500),
            f"'{t}/ids.bin': token id 999 >= vocab_size 500; set data.vocab_size to at least 1000",
        ),
        (DataSpec(source=f"{t}/high.txt", vocab_size=128), "token id 195 >= vocab_size 128"),
        (DataSpec(source=f"{t}/mixed"), f"contains token file {t}/mixed/b.bin"),
        (DataSpec(source=f"{t}/one.txt"), "corpus has 1 token\\(s\\); need at least 2"),
        (DataSpec(source=f"{t}/high.txt", val_fraction=0.0), "val_fraction must be in \\(0, 1\\)"),
        (DataSpec(source=f"{t}/high.txt", val_fraction=1.0), "val_fraction must be in \\(0, 1\\)"),
        (DataSpec(source=f"{t}/high.txt", vocab_size=0), "vocab_size must be positive, got 0"),
    ]


def test_each_bad_source_is_a_one_line_data_error(tmp_path: Path) -> None:
    for spec, message in _cases(tmp_path):
        with pytest.raises(DataError, match=message) as info:
            load_corpus(spec)
        assert "\n" not in str(info.value), str(info.value)
        assert str(info.value).startswith("data source "), str(info.value)


def test_a_corpus_too_small_for_a_sequence_fails_on_use(tmp_path: Path) -> None:
    corpus = load_corpus(DataSpec(source=str(write(tmp_path / "s.txt", "x" * 100))))
    with pytest.raises(DataError, match="val split has 5 tokens, fewer than one sequence"):
        corpus.require(seq_len=8)
    corpus.require(seq_len=4)


# --- caches ---------------------------------------------------------------------------------


def test_second_load_uses_the_lru_then_the_disk_cache(
    tmp_path: Path, fake_stdlib: Path, isolated_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = DataSpec()
    first = load_corpus(spec, stdlib_root=fake_stdlib)
    assert (_cache.STATS.builds, _cache.STATS.hits) == (1, 0)
    assert load_corpus(spec, stdlib_root=fake_stdlib) is first  # in-process LRU
    assert _cache.STATS.memory_hits == 1
    entries = sorted(p.name for p in (isolated_cache / "corpora").iterdir())
    assert len(entries) == 2 and entries[0].endswith(".json") and entries[1].endswith(".npy")

    # A new process (simulated: LRU cleared) must not read the source files again.
    def no_reading(*args: object, **kwargs: object) -> None:
        raise AssertionError("source files were read despite the cache")

    monkeypatch.setattr("umup_sweep.data._load.concat_text", no_reading)
    clear_memory_cache()
    second = load_corpus(spec, stdlib_root=fake_stdlib)
    assert (_cache.STATS.builds, _cache.STATS.hits) == (1, 1)
    assert isinstance(second.tokens, np.memmap)
    assert second.fingerprint == first.fingerprint
    np.testing.assert_array_equal(second.tokens, first.tokens)


def test_editing_the_source_invalidates_both_caches(tmp_path: Path, fake_stdlib: Path) -> None:
    spec = DataSpec()
    before = load_corpus(spec, stdlib_root=fake_stdlib)
    path = fake_stdlib / "argparse.py"
    path.write_text(path.read_text() + "extra = 1\n")
    after = load_corpus(spec, stdlib_root=fake_stdlib)
    assert after is not before and after.fingerprint != before.fingerprint
    assert bytes(after.tokens).count(b"extra = 1\n") == 1
    assert _cache.STATS.builds == 2


def test_single_files_cache_only_metadata(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ids = np.arange(500, dtype=np.uint16)
    ids.tofile(tmp_path / "t.bin")
    spec = DataSpec(source=str(tmp_path / "t.bin"))
    fp = load_corpus(spec).fingerprint
    monkeypatch.setattr(_build, "token_sha256", lambda t: pytest.fail("re-hashed"))
    monkeypatch.setattr("umup_sweep.data._load.token_sha256", lambda t: pytest.fail("re-hashed"))
    assert fresh_load(spec).fingerprint == fp  # type: ignore[attr-defined]
    assert (_cache.STATS.builds, _cache.STATS.hits) == (1, 1)
    assert not list((tmp_path / "cache" / "corpora").glob("*.npy"))


def test_an_unwritable_cache_is_skipped_not_an_error(
    tmp_path: Path, fake_stdlib: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = write(tmp_path / "not_a_dir", "x")
    monkeypatch.setenv(_cache.ENV_VAR, str(blocker))
    fp = load_corpus(DataSpec(), stdlib_root=fake_stdlib).fingerprint
    clear_memory_cache()
    assert load_corpus(DataSpec(), stdlib_root=fake_stdlib).fingerprint == fp
    assert _cache.STATS.builds == 2


_WORKER = """
import sys
from umup_sweep.data import _cache, load_corpus
from umup_sweep.spec import DataSpec
c = load_corpus(DataSpec(), stdlib_root=sys.argv[1])
print(c.fingerprint, _cache.STATS.builds, _cache.STATS.hits)
"""


def test_processes_racing_on_an_empty_cache_agree_and_leave_a_valid_entry(
    fake_stdlib: Path, isolated_cache: Path
) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO), _cache.ENV_VAR: str(isolated_cache)}
    cmd = [sys.executable, "-c", _WORKER, str(fake_stdlib)]
    racers = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=120)[0].split() for p in racers]
    assert all(p.returncode == 0 for p in racers)
    expected = load_corpus(DataSpec(), stdlib_root=fake_stdlib).fingerprint
    assert {out[0] for out in outs} == {expected}
    assert not [p for p in (isolated_cache / "corpora").iterdir() if p.name.endswith(".tmp")]
    late = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True, timeout=120)
    assert late.stdout.split() == [expected, "0", "1"]  # a later worker only reads the cache


def test_resolve_data_spec_makes_relative_sources_absolute(tmp_path: Path) -> None:
    base = tmp_path / "sweeps"
    assert resolve_data_spec(DataSpec(), base) == DataSpec()
    rel = resolve_data_spec(DataSpec(source="../corpus/a.txt", val_fraction=0.1), base)
    assert rel == DataSpec(source=str(tmp_path / "corpus" / "a.txt"), val_fraction=0.1)
    pattern = resolve_data_spec(DataSpec(source="data/*.txt"), base)
    assert pattern.source == str(base / "data" / "*.txt")
    absolute = DataSpec(source=str(tmp_path / "x.bin"))
    assert resolve_data_spec(absolute, base) == absolute
