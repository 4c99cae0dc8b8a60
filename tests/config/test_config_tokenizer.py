"""`data.tokenizer` in sweep and trial YAMLs: syntax, paths, one-line errors, the vocab rule."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from tokenizers import Tokenizer, models

from umup_sweep.config import load_sweep, load_trial, sweep_hash, sweep_to_dict
from umup_sweep.errors import ConfigError
from umup_sweep.spec import DataSpec


def _tokenizer(path: Path, vocab: int) -> Path:
    """A word-level tokenizer.json with `vocab` ids, written without training."""
    words = {f"w{i}": i for i in range(vocab)}
    Tokenizer(models.WordLevel(words, unk_token="w0")).save(str(path))
    return path


def _sweep(folder: Path, data: Any, vocab: int = 300, **extra: Any) -> Path:
    doc = {
        "name": "tok",
        "proxy": {"base": {"head_dim": 16, "vocab_size": vocab}, "widths": [32], "depths": [1]},
        "hyperparameters": {"lr": [0.5, 1.0]},
        "data": data,
        **extra,
    }
    path = folder / "sweep.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_tokenizer_path_is_relative_to_the_sweep_file(tmp_path: Path) -> None:
    (tmp_path / "tok").mkdir()
    tok = _tokenizer(tmp_path / "tok" / "tokenizer.json", 300)
    sweeps = tmp_path / "sweeps"
    sweeps.mkdir()
    sweep = load_sweep(_sweep(sweeps, {"source": "stdlib", "tokenizer": "../tok/tokenizer.json"}))
    assert sweep.data == DataSpec(tokenizer=str(tok))
    assert load_sweep(sweep_to_dict(sweep)) == sweep  # runs/<name>/sweep.yaml reads back
    assert sweep_to_dict(sweep)["data"]["tokenizer"] == str(tok)


def test_train_bpe_round_trips_and_changes_the_sweep_hash(tmp_path: Path) -> None:
    plain = load_sweep(_sweep(tmp_path, {"source": "stdlib"}, vocab=8192))
    bpe = load_sweep(_sweep(tmp_path, {"tokenizer": {"train_bpe": 8192}}, vocab=8192))
    assert bpe.data == DataSpec(train_bpe=8192)
    assert sweep_to_dict(bpe)["data"]["tokenizer"] == {"train_bpe": 8192}
    assert load_sweep(sweep_to_dict(bpe)) == bpe
    assert sweep_hash(bpe) != sweep_hash(plain)
    assert set(sweep_to_dict(plain)["data"]) == {"source", "val_fraction", "vocab_size"}
    allowed = load_sweep(
        _sweep(tmp_path, {"tokenizer": {"train_bpe": 8192}, "allow_vocab_mismatch": True}, 8192)
    )
    assert sweep_hash(allowed) == sweep_hash(bpe)  # a permission does not change the trials
    assert load_sweep(sweep_to_dict(allowed)).data.allow_vocab_mismatch


def test_allow_vocab_mismatch_lets_the_model_vocab_exceed_the_tokenizers(tmp_path: Path) -> None:
    data = {"tokenizer": {"train_bpe": 8192}, "allow_vocab_mismatch": True}
    assert load_sweep(_sweep(tmp_path, data, vocab=32000)).data.allow_vocab_mismatch
    with pytest.raises(ConfigError, match=r"is larger than the model's vocab_size \(4096\)"):
        load_sweep(_sweep(tmp_path, data, vocab=4096))


def test_model_section_sets_the_vocab_the_tokenizer_is_checked_against(tmp_path: Path) -> None:
    path = _sweep(tmp_path, {"tokenizer": {"train_bpe": 1024}}, vocab=300)
    assert load_sweep(path, overrides={"model.vocab_size": 1024}).data.train_bpe == 1024


_EXPECT_TOKENIZER = "expected a path to a local tokenizer.json or {train_bpe: VOCAB}"
_EXPECT_BPE = "expected an integer >= 257 (the 256 bytes plus at least one merge) and < 4294967296"


@pytest.mark.parametrize(
    ("data", "vocab", "message"),
    [
        (
            {"tokenizer": {"train_bpe": 100}},
            300,
            f"data.tokenizer.train_bpe: {_EXPECT_BPE}, got 100 (int)",
        ),
        (
            {"tokenizer": {"train_bpe": "8k"}},
            300,
            f"data.tokenizer.train_bpe: {_EXPECT_BPE}, got '8k' (str)",
        ),
        (
            {"tokenizer": {"train_bpe": True}},
            300,
            f"data.tokenizer.train_bpe: {_EXPECT_BPE}, got True (bool)",
        ),
        (
            {"tokenizer": {"vocab": 8192}},
            300,
            "data.tokenizer.vocab: unknown key (valid: train_bpe)",
        ),
        ({"tokenizer": {}}, 300, "data.tokenizer.train_bpe: missing: expected {train_bpe: VOCAB}"),
        ({"tokenizer": 5}, 300, f"data.tokenizer: {_EXPECT_TOKENIZER}, got 5 (int)"),
        ({"tokenizer": ""}, 300, f"data.tokenizer: {_EXPECT_TOKENIZER}, got '' (str)"),
        (
            {"tokenizer": "nope.json"},
            300,
            f"data.tokenizer: {{t}}/nope.json: no such file; {_EXPECT_TOKENIZER}",
        ),
        ({"tokenizer": "."}, 300, f"data.tokenizer: {{t}}: is a folder; {_EXPECT_TOKENIZER}"),
        (
            {"tokenizer": "broken.json"},
            300,
            "data.tokenizer: {t}/broken.json: expected a tokenizer.json the Hugging Face "
            "tokenizers library can load (expected ident at line 1 column 2)",
        ),
        (
            {"tokenizer": "tok.json", "vocab_size": 300},
            300,
            "data.vocab_size: leave it out: with data.tokenizer the vocabulary is the tokenizer's",
        ),
        (
            {"source": "ids.bin", "tokenizer": {"train_bpe": 300}},
            300,
            "data.tokenizer: applies to text sources only; data.source 'ids.bin' is a token file",
        ),
        (
            {"tokenizer": "tok.json"},
            256,
            "data.tokenizer: the tokenizer's vocabulary (300) is larger than the model's "
            "vocab_size (256): its ids would overflow the embedding; set vocab_size: 300 in the "
            "proxy or model section",
        ),
        (
            {"tokenizer": "tok.json"},
            512,
            "data.tokenizer: the tokenizer's vocabulary (300) differs from the model's "
            "vocab_size (512); set vocab_size: 300 in the proxy or model section, or "
            "data.allow_vocab_mismatch: true to keep the larger embedding",
        ),
        (
            {"tokenizer": "tok.json", "allow_vocab_mismatch": "yes"},
            512,
            "data.allow_vocab_mismatch: expected true or false, got 'yes' (str)",
        ),
        (
            {"train_bpe": 8192},
            300,
            "data.train_bpe: unknown key; write data.tokenizer: {train_bpe: VOCAB}",
        ),
    ],
)
def test_bad_data_tokenizer_is_one_line(
    tmp_path: Path, data: dict[str, Any], vocab: int, message: str
) -> None:
    _tokenizer(tmp_path / "tok.json", 300)
    (tmp_path / "broken.json").write_text("not json")
    path = _sweep(tmp_path, data, vocab=vocab)
    with pytest.raises(ConfigError) as err:
        load_sweep(path)
    assert str(err.value) == f"{path}: " + message.replace("{t}", str(tmp_path))
    assert "\n" not in str(err.value)


def test_trial_yaml_takes_the_tokenizer_relative_to_its_folder(tmp_path: Path) -> None:
    tok = _tokenizer(tmp_path / "tok.json", 300)
    path = tmp_path / "trial.yaml"
    path.write_text("model: {width: 32, vocab_size: 300}\ndata: {tokenizer: tok.json}\n")
    assert load_trial(path).data.tokenizer == str(tok)
    path.write_text("model: {width: 32}\ndata: {tokenizer: tok.json}\n")
    with pytest.raises(ConfigError, match=r"^.*trial.yaml: data.tokenizer: the tokenizer's vocab"):
        load_trial(path)
