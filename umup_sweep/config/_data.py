"""The `data:` section of a sweep or trial YAML → `DataSpec`, with its tokenizer.

    data:
      source: stdlib                      # or a text file / folder / glob, or a .bin/.npy file
      tokenizer: tokenizers/tok.json      # a local Hugging Face tokenizer.json (relative to the
                                          # YAML's folder), or {train_bpe: 8192}: a byte-level
                                          # BPE of that vocabulary trained on the corpus itself
      allow_vocab_mismatch: false         # true: the model's vocab_size may exceed the tokenizer's

With a tokenizer, the model's `vocab_size` must equal the tokenizer's vocabulary (one more than
its largest id, added tokens included; for `train_bpe`, the number given): a larger tokenizer
is always an error (its ids would overflow the embedding), a smaller one only without
`allow_vocab_mismatch`. The tokenizer file is read here with the `tokenizers` library (never
the network), so a missing or broken file fails when the sweep loads, not in a trial.

Example:
    >>> spec = data_section({"tokenizer": {"train_bpe": 8192}}, "s.yaml", model_vocab=8192)
    >>> spec.train_bpe, data_to_dict(spec)["tokenizer"]
    (8192, {'train_bpe': 8192})
    >>> from umup_sweep.errors import ConfigError
    >>> try:
    ...     data_section({"tokenizer": {"train_bpe": 8192}}, "s.yaml", model_vocab=256)
    ... except ConfigError as err:
    ...     print(err.key, "|", err.expected[:50])
    data.tokenizer | the tokenizer's vocabulary (8192) is larger than t
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

from umup_sweep.config._validate import as_mapping, build_section, check_keys, convert, fail
from umup_sweep.spec import MIN_BPE_VOCAB, DataSpec

__all__ = ["DATA_KEYS", "data_section", "data_to_dict"]

DATA_KEYS = ("source", "val_fraction", "vocab_size", "tokenizer", "allow_vocab_mismatch")
_TOKEN_SUFFIXES = (".bin", ".npy")  # as umup_sweep.data reads them (kept torch-free here)
_MAX_VOCAB = 2**32  # token ids are stored as uint32 at most
_TOKENIZER = "a path to a local tokenizer.json or {train_bpe: VOCAB}"


def data_section(
    value: Any, source: str, model_vocab: int | None = None, target_vocab: int | None = None
) -> DataSpec:
    """The validated `DataSpec` of a `data:` mapping (None: the default corpus).

    Args:
        value: the parsed `data:` value.
        source: the YAML file (or ``<inline>``): relative tokenizer paths are taken from its
            folder (the working directory for ``<inline>``) and made absolute.
        model_vocab: the model's vocab_size, checked against the tokenizer's when given.
        target_vocab: the target's vocab_size, checked against the proxies' (`_check_target`)
            when given.

    Raises:
        ConfigError: one line naming the file, the `data.*` key and what was expected.
    """
    mapping = as_mapping(value, source, "data")
    if "train_bpe" in mapping:  # a DataSpec field, but the YAML nests it under tokenizer
        raise fail(
            source, "data.train_bpe", "unknown key; write data.tokenizer: {train_bpe: VOCAB}"
        )
    check_keys(mapping, DATA_KEYS, source, "data")
    raw_tokenizer = mapping.pop("tokenizer", None)
    allow = convert(
        bool, mapping.pop("allow_vocab_mismatch", False), source, "data.allow_vocab_mismatch"
    )
    spec = build_section(DataSpec, mapping, source, "data")
    spec = dataclasses.replace(spec, allow_vocab_mismatch=allow)
    if raw_tokenizer is None:
        if target_vocab is not None:
            token_file = Path(spec.source).suffix.lower() in _TOKEN_SUFFIXES
            vocab, what = (
                (spec.vocab_size, f"the token file's data.vocab_size {spec.vocab_size}")
                if token_file
                else (256, "byte-level text")
            )
            _check_target(vocab, what, target_vocab, allow, source)
        return spec
    if spec.vocab_size is not None:
        raise fail(
            source,
            "data.vocab_size",
            "leave it out: with data.tokenizer the vocabulary is the tokenizer's",
        )
    if Path(spec.source).suffix.lower() in _TOKEN_SUFFIXES:
        raise fail(
            source,
            "data.tokenizer",
            f"applies to text sources only; data.source {spec.source!r} is a token file",
        )
    if isinstance(raw_tokenizer, dict):
        vocab = _train_bpe(raw_tokenizer, source)
        spec = dataclasses.replace(spec, train_bpe=vocab)
        what = f"a BPE of {vocab}"
    else:
        path, vocab = _tokenizer_file(raw_tokenizer, source)
        spec = dataclasses.replace(spec, tokenizer=path)
        what = f"the tokenizer {path}"
    if model_vocab is not None:
        _check_vocab(vocab, model_vocab, allow, source)
    if target_vocab is not None:
        _check_target(vocab, what, target_vocab, allow, source)
    return spec


def data_to_dict(spec: DataSpec) -> dict[str, Any]:
    """`spec` as a `data:` mapping that `data_section` reads back: the tokenizer in the YAML's
    form, and nothing of it when unset (so sweeps without one write and hash as before).

    Example:
        >>> data_to_dict(DataSpec())
        {'source': 'stdlib', 'val_fraction': 0.05, 'vocab_size': None}
    """
    out = dataclasses.asdict(spec)
    for name in ("tokenizer", "train_bpe", "allow_vocab_mismatch"):
        out.pop(name)
    if spec.tokenizer is not None:
        out["tokenizer"] = spec.tokenizer
    elif spec.train_bpe is not None:
        out["tokenizer"] = {"train_bpe": spec.train_bpe}
    if spec.allow_vocab_mismatch:
        out["allow_vocab_mismatch"] = True
    return out


def _train_bpe(value: dict[str, Any], source: str) -> int:
    """The vocabulary of ``tokenizer: {train_bpe: VOCAB}``."""
    mapping = as_mapping(value, source, "data.tokenizer")
    check_keys(mapping, ("train_bpe",), source, "data.tokenizer")
    if "train_bpe" not in mapping:
        raise fail(source, "data.tokenizer.train_bpe", "missing: expected {train_bpe: VOCAB}")
    vocab = mapping["train_bpe"]
    expected = (
        f"expected an integer >= {MIN_BPE_VOCAB} (the 256 bytes plus at least one merge) "
        f"and < {_MAX_VOCAB}"
    )
    if isinstance(vocab, float) and vocab.is_integer():
        vocab = int(vocab)
    if isinstance(vocab, bool) or not isinstance(vocab, int):
        raise fail(source, "data.tokenizer.train_bpe", expected, vocab)
    if not MIN_BPE_VOCAB <= vocab < _MAX_VOCAB:
        raise fail(source, "data.tokenizer.train_bpe", expected, vocab)
    return vocab


def _tokenizer_file(value: Any, source: str) -> tuple[str, int]:
    """The absolute path of ``tokenizer: PATH`` and the vocabulary of the file there."""
    if not isinstance(value, str) or not value.strip():
        raise fail(source, "data.tokenizer", f"expected {_TOKENIZER}", value)
    base = Path(source).parent if source != "<inline>" else Path.cwd()
    path = os.path.normpath(os.path.join(os.path.abspath(base), os.path.expanduser(value)))
    if not os.path.isfile(path):
        what = "is a folder" if os.path.isdir(path) else "no such file"
        raise fail(source, "data.tokenizer", f"{path}: {what}; expected {_TOKENIZER}")
    from tokenizers import Tokenizer  # here, not at import: reading YAML needs no tokenizer

    try:
        tok = Tokenizer.from_file(path)
    except Exception as err:  # tokenizers raises plain Exception for any bad file
        first = (str(err).splitlines() or [type(err).__name__])[0]
        raise fail(
            source,
            "data.tokenizer",
            f"{path}: expected a tokenizer.json the Hugging Face tokenizers library can load "
            f"({first})",
        ) from None
    ids = tok.get_vocab(with_added_tokens=True).values()
    return path, max(ids, default=-1) + 1


def _check_vocab(tokenizer_vocab: int, model_vocab: int, allow: bool, source: str) -> None:
    """The model's vocab_size against the tokenizer's (the same rule as
    `umup_sweep.data.check_vocab`, which applies it again when a trial loads its data)."""
    if tokenizer_vocab > model_vocab:
        raise fail(
            source,
            "data.tokenizer",
            f"the tokenizer's vocabulary ({tokenizer_vocab}) is larger than the model's "
            f"vocab_size ({model_vocab}): its ids would overflow the embedding; set "
            f"vocab_size: {tokenizer_vocab} in the proxy or model section",
        )
    if tokenizer_vocab < model_vocab and not allow:
        raise fail(
            source,
            "data.tokenizer",
            f"the tokenizer's vocabulary ({tokenizer_vocab}) differs from the model's "
            f"vocab_size ({model_vocab}); set vocab_size: {tokenizer_vocab} in the proxy or "
            "model section, or data.allow_vocab_mismatch: true to keep the larger embedding",
        )


def _check_target(
    vocab: int | None, what: str, target_vocab: int, allow: bool, source: str
) -> None:
    """The proxies' vocabulary (``vocab``, ``what`` it is in words) must equal the target's
    (a different vocabulary changes what the embedding and readout learn) unless
    ``data.allow_vocab_mismatch: true``.

    Example:
        >>> _check_target(32000, "a BPE of 32000", 32000, False, "s.yaml")
        >>> try:
        ...     data_section(None, "s.yaml", target_vocab=32000)
        ... except Exception as err:
        ...     print(str(err)[:86])
        s.yaml: data.tokenizer: the proxies' vocabulary (256, byte-level text) differs from th
    """
    if vocab is None or vocab == target_vocab or allow:
        return
    raise fail(
        source,
        "data.tokenizer",
        f"the proxies' vocabulary ({vocab}, {what}) differs from the target's vocab_size "
        f"({target_vocab}); train one of the target's size (data.tokenizer: {{train_bpe: "
        f"{target_vocab}}}) or give its tokenizer.json, or set data.allow_vocab_mismatch: true",
    )
