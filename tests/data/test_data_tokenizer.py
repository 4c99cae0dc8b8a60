"""Real tokens for proxies: a local tokenizer.json, or a byte-level BPE trained on the corpus.

Every BPE here is tiny (vocab 300-320 on a few KB of text), so the file runs in seconds.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers

from umup_sweep.data import (
    _cache,
    check_vocab,
    clear_memory_cache,
    data_fingerprint,
    load_corpus,
    resolve_data_spec,
)
from umup_sweep.data._tokenizer import TokenizerFile, bpe_path, token_dtype, train_bpe
from umup_sweep.errors import DataError
from umup_sweep.spec import DataSpec, ModelSpec, TrainSpec, TrialSpec

DOCS = {
    "a.py": "def add(x, y):\n    return x + y\n\n" * 30,
    "b.py": "class Point:\n    def __init__(self, x):\n        self.x = x\n" * 25,
    "c.txt": "naïve café — ünïcödé text, repeated. " * 40,
    "d.py": "for i in range(10):\n    print(i, i * i)\n" * 30,
}


@pytest.fixture
def corpus_dir(tmp_path: Path) -> Path:
    """A folder of four small text files (one with non-ASCII text)."""
    root = tmp_path / "corpus"
    root.mkdir()
    for name, text in DOCS.items():
        (root / name).write_text(text, encoding="utf-8")
    return root


def _docs_in_order(root: Path) -> list[str]:
    return [(root / name).read_text(encoding="utf-8") for name in sorted(DOCS)]


def _save_tokenizer(path: Path, docs: list[str], vocab: int) -> Path:
    path.write_text(train_bpe(docs, vocab), encoding="utf-8")
    return path


def test_train_bpe_corpus_is_cached_and_not_retrained(corpus_dir: Path) -> None:
    spec = DataSpec(source=str(corpus_dir), train_bpe=300, val_fraction=0.2)
    first = load_corpus(spec)
    assert first.vocab_size == 300 and first.tokens.dtype == np.uint16
    assert (_cache.STATS.bpe_trainings, _cache.STATS.encodings) == (1, 1)
    bpe_files = list(_cache.cache_dir().glob("bpe-300-*.json"))
    assert len(bpe_files) == 1
    mtime = bpe_files[0].stat().st_mtime_ns
    clear_memory_cache()
    second = load_corpus(spec)
    assert (_cache.STATS.bpe_trainings, _cache.STATS.encodings) == (1, 1)  # both from disk
    assert bpe_files[0].stat().st_mtime_ns == mtime
    assert second.fingerprint == first.fingerprint
    assert np.array_equal(np.asarray(second.tokens), np.asarray(first.tokens))
    tok = Tokenizer.from_file(str(bpe_files[0]))
    assert tok.decode(np.asarray(first.tokens).tolist()) == "".join(_docs_in_order(corpus_dir))


_CHILD = """
import hashlib, json, sys
import numpy as np
from umup_sweep.data import _cache, load_corpus
from umup_sweep.spec import DataSpec
corpus = load_corpus(DataSpec(source=sys.argv[1], train_bpe=int(sys.argv[2])))
bpe = sorted(_cache.cache_dir().glob("bpe-*.json"))[0].read_bytes()
print(json.dumps({"bpe": hashlib.sha256(bpe).hexdigest(), "fp": corpus.fingerprint,
                  "ids": hashlib.sha256(np.asarray(corpus.tokens).tobytes()).hexdigest()}))
"""


def test_train_bpe_is_byte_identical_across_processes_and_thread_counts(
    corpus_dir: Path, tmp_path: Path
) -> None:
    outs = []
    for i, threads in enumerate(("1", "2")):
        env = dict(os.environ, RAYON_NUM_THREADS=threads)
        env[_cache.ENV_VAR] = str(tmp_path / f"cache{i}")  # each process trains from scratch
        proc = subprocess.run(
            [sys.executable, "-c", _CHILD, str(corpus_dir), "320"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        outs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    assert outs[0] == outs[1]


def test_tokenizer_json_ids_match_tokenizers_own_encode(corpus_dir: Path, tmp_path: Path) -> None:
    docs = _docs_in_order(corpus_dir)
    path = _save_tokenizer(tmp_path / "tokenizer.json", docs[:2], 310)
    corpus = load_corpus(DataSpec(source=str(corpus_dir), tokenizer=str(path), val_fraction=0.25))
    tok = Tokenizer.from_file(str(path))
    expected = [i for doc in docs for i in tok.encode(doc).ids]  # one document per file
    assert np.asarray(corpus.tokens).tolist() == expected
    # two files hold too few pairs for 310 tokens: the vocabulary is what training reached
    assert corpus.vocab_size == tok.get_vocab_size() < 310 and corpus.tokens.dtype == np.uint16
    assert _cache.STATS.bpe_trainings == 0
    lengths = [len(tok.encode(doc).ids) for doc in docs]
    assert corpus.split == sum(lengths[:-1])  # val: the last document (27%), cut at its start
    x, y = corpus.batch("train", 2, 8, torch.Generator().manual_seed(0))
    assert x.dtype == torch.int64 and int(x.max()) < corpus.vocab_size


def _wordlevel_tokenizer(path: Path, vocab: int) -> Path:
    """A word-level tokenizer.json of `vocab` ids, written without training: `w<i>` → i."""
    words = {f"w{i}": i for i in range(vocab - 1)} | {"[UNK]": vocab - 1}
    tok = Tokenizer(models.WordLevel(words, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.save(str(path))
    return path


def test_vocab_over_65535_is_stored_as_uint32(tmp_path: Path) -> None:
    path = _wordlevel_tokenizer(tmp_path / "big.json", 70_000)
    text = tmp_path / "text.txt"
    ids = [69_998, 5, 65_535, 65_536, 123, 69_000] * 20
    text.write_text(" ".join(f"w{i}" for i in ids) + " unknown")
    corpus = load_corpus(DataSpec(source=str(text), tokenizer=str(path), val_fraction=0.1))
    assert corpus.vocab_size == 70_000 and corpus.tokens.dtype == np.uint32
    assert np.asarray(corpus.tokens).tolist() == ids + [69_999]
    clear_memory_cache()  # the uint32 tokens come back from the cache's .npy as they went in
    again = load_corpus(DataSpec(source=str(text), tokenizer=str(path), val_fraction=0.1))
    assert again.tokens.dtype == np.uint32 and _cache.STATS.encodings == 1
    x, _ = again.batch("train", 4, 8, torch.Generator().manual_seed(0))
    assert int(x.max()) > 65_535 and x.dtype == torch.int64
    assert token_dtype(65_535) == np.uint16 and token_dtype(65_536) == np.uint32


def test_uint32_npy_token_file_loads(tmp_path: Path) -> None:
    path = tmp_path / "ids.npy"
    np.save(path, (np.arange(400, dtype=np.uint32) * 331) % 100_000)
    corpus = load_corpus(DataSpec(source=str(path)))
    assert corpus.tokens.dtype == np.uint32 and corpus.vocab_size == int(np.load(path).max()) + 1


def test_fingerprint_changes_with_the_tokenizer(corpus_dir: Path, tmp_path: Path) -> None:
    source = str(corpus_dir)
    path = _save_tokenizer(tmp_path / "tok.json", _docs_in_order(corpus_dir)[1:], 300)
    same_ids = tmp_path / "tok_copy.json"  # the same tokenizer, other bytes: same ids
    same_ids.write_text(path.read_text() + "\n")
    fps = [
        data_fingerprint(DataSpec(source=source)),
        data_fingerprint(DataSpec(source=source, train_bpe=300)),
        data_fingerprint(DataSpec(source=source, train_bpe=320)),
        data_fingerprint(DataSpec(source=source, tokenizer=str(path))),
        data_fingerprint(DataSpec(source=source, tokenizer=str(same_ids))),
    ]
    assert len(set(fps)) == len(fps)
    a = load_corpus(DataSpec(source=source, tokenizer=str(path)))
    b = load_corpus(DataSpec(source=source, tokenizer=str(same_ids)))
    assert np.array_equal(np.asarray(a.tokens), np.asarray(b.tokens))
    keys = {TrialSpec(ModelSpec(), TrainSpec(), data_fingerprint=fp).trial_key for fp in fps}
    assert len(keys) == len(fps)


def test_trial_keys_without_a_tokenizer_are_unchanged() -> None:
    model, train = ModelSpec(width=32, depth=1, head_dim=16), TrainSpec(steps=5)
    data = DataSpec(source="corpus/a.txt", val_fraction=0.1, vocab_size=300)
    spec = TrialSpec(model, train, data, seed=2, data_fingerprint="f00d")
    assert spec.trial_key == "d42b5bb334792940"  # computed before the tokenizer fields existed
    assert TrialSpec(ModelSpec(), TrainSpec()).trial_key == "0257407d48ce016c"
    old_record = spec.to_dict()
    for name in ("tokenizer", "train_bpe", "allow_vocab_mismatch"):
        del old_record["data"][name]  # a trial stored before the fields existed
    assert TrialSpec.from_dict(old_record).trial_key == spec.trial_key
    allowed = TrialSpec(model, train, DataSpec(allow_vocab_mismatch=True))
    assert allowed.trial_key == TrialSpec(model, train).trial_key  # a permission, not a result
    tokenized = {
        TrialSpec(model, train, DataSpec(train_bpe=8192)).trial_key,
        TrialSpec(model, train, DataSpec(tokenizer="/t/tokenizer.json")).trial_key,
        TrialSpec(model, train).trial_key,
    }
    assert len(tokenized) == 3
    bpe = TrialSpec(model, train, DataSpec(train_bpe=8192))
    assert TrialSpec.from_dict(bpe.to_dict()) == bpe and hash(bpe.data) == hash(bpe.data)


def test_check_vocab_requires_the_models_vocab_to_equal_the_tokenizers(corpus_dir: Path) -> None:
    spec = DataSpec(source=str(corpus_dir), train_bpe=300)
    corpus = load_corpus(spec)
    check_vocab(corpus, spec, 300)
    name = str(corpus_dir)
    with pytest.raises(DataError) as err:
        check_vocab(corpus, spec, 512)
    assert str(err.value) == (
        f"data source {name!r}: the model's vocab_size (512) differs from the tokenizer's "
        "vocabulary (300); set vocab_size: 300, or data.allow_vocab_mismatch: true"
    )
    allowed = DataSpec(source=str(corpus_dir), train_bpe=300, allow_vocab_mismatch=True)
    check_vocab(corpus, allowed, 512)
    with pytest.raises(DataError) as err:
        check_vocab(corpus, allowed, 256)
    assert str(err.value) == (
        f"data source {name!r}: the tokenizer's vocabulary (300) is larger than the model's "
        "vocab_size (256): its ids would overflow the embedding; set the model's vocab_size to 300"
    )


def test_a_trial_trains_on_bpe_tokens(corpus_dir: Path) -> None:
    from umup_sweep.train import run_trial

    data = DataSpec(source=str(corpus_dir), train_bpe=300, val_fraction=0.2)
    model = ModelSpec(width=32, depth=1, head_dim=16, vocab_size=300, seq_len=16)
    train = TrainSpec(steps=3, batch_size=2, eval_batches=1, final_window=1)
    result = run_trial(TrialSpec(model, train, data))
    assert result.status == "ok" and result.val_loss is not None
    mismatch = TrialSpec(ModelSpec(width=32, depth=1, head_dim=16, seq_len=16), train, data)
    with pytest.raises(DataError, match=r"vocab_size \(256\)"):
        run_trial(mismatch)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda t: DataSpec(source=f"{t}/corpus", tokenizer=f"{t}/missing.json"),
            "data source '{t}/corpus': cannot read tokenizer '{t}/missing.json': "
            "No such file or directory",
        ),
        (
            lambda t: DataSpec(source=f"{t}/corpus", tokenizer=f"{t}/broken.json"),
            "data source '{t}/corpus': the tokenizer is not a tokenizer.json that the Hugging "
            "Face tokenizers library can load (expected ident at line 1 column 2)",
        ),
        (
            lambda t: DataSpec(source=f"{t}/ids.npy", train_bpe=300),
            "data source '{t}/ids.npy': is a token file; data.tokenizer applies to text "
            "sources only (a token file is already tokenised)",
        ),
        (
            lambda t: DataSpec(source=f"{t}/corpus", train_bpe=300, vocab_size=300),
            "data source '{t}/corpus': vocab_size is the tokenizer's; leave data.vocab_size "
            "out when data.tokenizer is given",
        ),
    ],
)
def test_bad_tokenizer_specs_fail_in_one_line(
    corpus_dir: Path, tmp_path: Path, make: object, message: str
) -> None:
    (tmp_path / "broken.json").write_text("not json")
    np.save(tmp_path / "ids.npy", np.arange(10, dtype=np.uint16))
    with pytest.raises(DataError) as err:
        load_corpus(make(tmp_path))  # type: ignore[operator]
    assert str(err.value) == message.format(t=tmp_path)


def test_data_spec_refuses_both_tokenizers_and_tiny_bpe() -> None:
    with pytest.raises(ValueError, match="not both"):
        DataSpec(tokenizer="t.json", train_bpe=300)
    with pytest.raises(ValueError, match="train_bpe must be >= 257"):
        DataSpec(train_bpe=256)


def test_resolve_data_spec_makes_the_tokenizer_path_absolute(tmp_path: Path) -> None:
    spec = resolve_data_spec(DataSpec(tokenizer="tok/tokenizer.json"), tmp_path)
    assert spec.tokenizer == str(tmp_path / "tok" / "tokenizer.json")
    assert spec.source == "stdlib"


def test_bpe_path_is_where_the_trained_tokenizer_is_cached(corpus_dir: Path) -> None:
    load_corpus(DataSpec(source=str(corpus_dir), train_bpe=300))
    files = [p for p in _cache.cache_dir().glob("*.json") if not p.name.startswith("bpe-")]
    metas = [json.loads(p.read_text()) for p in files]
    meta = next(m for m in metas if m["dtype"] == "|u1")  # the byte corpus the BPE learnt from
    assert bpe_path(meta, 300).is_file()
    tok = TokenizerFile.read(bpe_path(meta, 300), "x")
    assert tok.vocab_size == 300
