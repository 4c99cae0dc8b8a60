"""Text → token ids with a real tokenizer: a local Hugging Face `tokenizer.json`, or a
byte-level BPE trained on the corpus itself (`DataSpec.train_bpe`).

Training is offline and deterministic: the same documents and vocabulary give a byte-identical
`tokenizer.json` in every process, whatever the number of threads (`tokenizers` counts pairs in
parallel but sums and breaks ties deterministically). The trained file is cached as
`bpe-<vocab>-<key>.json` beside the corpus cache (`cache_dir()`), keyed by the byte corpus's
sha256 and document boundaries, the vocabulary, the `tokenizers` version and `BPE_VERSION`, and
written atomically, so concurrent trials never see half a file. Special tokens: none; documents
are concatenated with nothing between them, as on the byte-level path.

Every document (file) is decoded as UTF-8 (invalid bytes become U+FFFD) and encoded on its own
with the tokenizer's own `encode` (so a tokenizer whose post-processor adds e.g. `<s>` adds it
per document). Ids are stored as uint16 when the vocabulary is at most 65,535, else uint32.

Example:
    >>> docs = ["def f(x):\\n    return x\\n" * 20, "class A:\\n    pass\\n" * 20]
    >>> tok = TokenizerFile.parse(train_bpe(docs, 300).encode(), "demo", 300)
    >>> ids, starts = encode_documents(tok, docs)
    >>> ids.dtype, starts, tok.tokenizer().decode(ids[: starts[1]].tolist()) == docs[0]
    (dtype('uint16'), [0, 180], True)
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from umup_sweep.data import _cache
from umup_sweep.errors import DataError

if TYPE_CHECKING:
    from tokenizers import Tokenizer

# Bump when the way a BPE is trained changes, so old cached tokenizers are not reused.
BPE_VERSION = 1
# Vocabularies up to this size are stored as uint16 token ids, larger ones as uint32.
UINT16_MAX_VOCAB = 65_535
# Characters of text handed to one `encode_batch` call (bounds the memory of the id lists).
_ENCODE_CHARS = 1 << 25


def token_dtype(vocab_size: int) -> np.dtype[Any]:
    """The dtype token ids are stored in: uint16 up to 65,535 tokens, uint32 above.

    Example:
        >>> token_dtype(50_257), token_dtype(128_256)
        (dtype('uint16'), dtype('uint32'))
    """
    return np.dtype(np.uint16 if vocab_size <= UINT16_MAX_VOCAB else np.uint32)


def tokenizers_version() -> str:
    """The installed `tokenizers` version (part of every cache key built with it)."""
    import tokenizers

    return str(tokenizers.__version__)


@dataclass(frozen=True)
class TokenizerFile:
    """A tokenizer as its `tokenizer.json` bytes, with their fingerprint and the vocabulary.

    `fingerprint` is the sha256 of the bytes (16 hex digits); `vocab_size` is one more than
    the largest id the tokenizer can emit (added tokens included), or the requested size of a
    trained BPE (which a tiny corpus may not fill).
    """

    blob: bytes
    name: str
    vocab_size: int
    fingerprint: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "fingerprint", hashlib.sha256(self.blob).hexdigest()[:16])

    @classmethod
    def read(cls, path: str | Path, name: str) -> TokenizerFile:
        """Read and check a local `tokenizer.json` (never the network)."""
        try:
            blob = Path(path).read_bytes()
        except OSError as err:
            raise DataError(
                f"data source {name!r}: cannot read tokenizer {str(path)!r}: {err.strerror}"
            ) from None
        return cls.parse(blob, name)

    @classmethod
    def parse(cls, blob: bytes, name: str, vocab_size: int | None = None) -> TokenizerFile:
        """Check that `tokenizers` loads `blob`; `vocab_size` None: the tokenizer's own."""
        tok = _load(blob, name)
        return cls(blob, name, vocab_size if vocab_size is not None else vocab_of(tok))

    def tokenizer(self) -> Tokenizer:
        """A fresh `tokenizers.Tokenizer` built from the bytes."""
        return _load(self.blob, self.name)


def _load(blob: bytes, name: str) -> Tokenizer:
    from tokenizers import Tokenizer

    try:
        return Tokenizer.from_str(blob.decode("utf-8"))
    except Exception as err:  # tokenizers raises plain Exception for any bad JSON
        first = (str(err).splitlines() or [type(err).__name__])[0]
        raise DataError(
            f"data source {name!r}: the tokenizer is not a tokenizer.json that the Hugging Face "
            f"tokenizers library can load ({first})"
        ) from None


def vocab_of(tok: Tokenizer) -> int:
    """One more than the largest id `tok` can emit (added tokens included): the embedding size
    a model needs for its ids.

    Example:
        >>> from tokenizers import Tokenizer, models
        >>> vocab_of(Tokenizer(models.WordLevel({"a": 0, "b": 7}, unk_token="a")))
        8
    """
    ids = tok.get_vocab(with_added_tokens=True).values()
    return max(ids, default=-1) + 1


def train_bpe(docs: Iterable[str], vocab_size: int, length: int | None = None) -> str:
    """Train a byte-level BPE of `vocab_size` tokens on `docs`; its `tokenizer.json` text.

    GPT-2 style: the ByteLevel pre-tokenizer (GPT-2's split regex, no prefix space) and
    decoder, all 256 byte symbols in the initial alphabet (so any text encodes, no unknown
    token), no special tokens, no normalizer. Deterministic: same documents and size, same
    text.

    Example:
        >>> json_text = train_bpe(["low lower lowest " * 50], 260)
        >>> from tokenizers import Tokenizer
        >>> Tokenizer.from_str(json_text).get_vocab_size()
        260
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=[],
        show_progress=False,
    )
    tok.train_from_iterator(docs, trainer=trainer, length=length)
    return str(tok.to_str())


def documents(text: np.ndarray, starts: Sequence[int]) -> Iterator[str]:
    """The documents of a byte corpus (uint8 array, document start offsets) as strings.

    Example:
        >>> list(documents(np.frombuffer(b"abcd\\xff", dtype=np.uint8), [0, 2]))
        ['ab', 'cd\ufffd']
    """
    ends = [*starts[1:], len(text)]
    for start, end in zip(starts, ends, strict=True):
        yield bytes(text[start:end]).decode("utf-8", errors="replace")


def bpe_key(corpus_sha: str, doc_starts: Sequence[int], vocab_size: int) -> str:
    """Cache key of a BPE trained on a byte corpus (its sha256 and document starts)."""
    blob = json.dumps(
        ["bpe", BPE_VERSION, vocab_size, tokenizers_version(), corpus_sha, list(doc_starts)]
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def cached_bpe(text: np.ndarray, meta: dict[str, Any], vocab_size: int, name: str) -> TokenizerFile:
    """The BPE of `vocab_size` trained on the byte corpus (`text`, its cache `meta`): read
    from the cache, or trained and cached (`_cache.STATS.bpe_trainings` counts trainings)."""
    starts = list(meta["doc_starts"])
    file_name = bpe_path(meta, vocab_size).name
    blob = _cache.read_blob(file_name)
    if blob is not None:  # written atomically, so whole; parsed only if tokens must be encoded
        return TokenizerFile(blob, name, vocab_size)
    _cache.STATS.bpe_trainings += 1
    blob = train_bpe(documents(text, starts), vocab_size, length=len(starts)).encode()
    _cache.write_blob(file_name, blob)
    return TokenizerFile(blob, name, vocab_size)


def bpe_path(text_meta: dict[str, Any], vocab_size: int) -> Path:
    """Where `cached_bpe` keeps the BPE trained on the corpus with cache metadata `text_meta`."""
    key = bpe_key(str(text_meta["sha256"]), list(text_meta["doc_starts"]), vocab_size)
    return _cache.cache_dir() / f"bpe-{vocab_size}-{key}.json"


def encode_documents(tok: TokenizerFile, docs: Iterable[str]) -> tuple[np.ndarray, list[int]]:
    """All documents encoded with `tok` and concatenated, plus each one's start offset.

    Documents that encode to no token contribute no boundary. Ids are stored in
    `token_dtype(tok.vocab_size)`; an id the vocabulary does not hold is a `DataError`.
    """
    tokenizer = tok.tokenizer()
    encode = getattr(tokenizer, "encode_batch_fast", tokenizer.encode_batch)  # fast: >= 0.20
    dtype = token_dtype(tok.vocab_size)
    parts: list[np.ndarray] = []
    starts: list[int] = []
    offset = 0
    for batch in _batches(docs):
        for enc in encode(batch):
            ids = np.asarray(enc.ids, dtype=np.int64)
            if not len(ids):
                continue
            if int(ids.max()) >= tok.vocab_size:
                raise DataError(
                    f"data source {tok.name!r}: the tokenizer emitted id {int(ids.max())} >= its "
                    f"vocabulary size {tok.vocab_size}"
                )
            parts.append(ids.astype(dtype))
            starts.append(offset)
            offset += len(ids)
    if not offset:
        raise DataError(f"data source {tok.name!r}: the corpus encodes to 0 tokens")
    return np.concatenate(parts), starts


def _batches(docs: Iterable[str]) -> Iterator[list[str]]:
    """Documents grouped into lists of about `_ENCODE_CHARS` characters."""
    batch: list[str] = []
    size = 0
    for doc in docs:
        batch.append(doc)
        size += len(doc)
        if size >= _ENCODE_CHARS:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch
