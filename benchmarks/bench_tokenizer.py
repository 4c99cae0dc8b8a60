"""Real tokens for proxies: what a byte-level BPE on the stdlib corpus costs, per vocabulary.

For each vocabulary: BPE training time and encode time on the default corpus (the Python
standard library's source, ~12 MB), the token count, bytes per token, the token dtype, and
`load_corpus` end to end (cold: train + encode + cache; warm: from the on-disk cache, a fresh
in-process LRU). Wall-clock medians over `--repeats`. With `--step`, also the training-step time
of a width-128 depth-2 u-μP proxy (batch 16 × 128) at vocab 256 and each vocabulary (median
of 6 steps, interleaved), since the embedding and readout grow with the vocabulary.

    PYTHONPATH=. python benchmarks/bench_tokenizer.py [--vocabs 8192 32000] [--repeats 2]
        [--threads N] [--step]

`--threads` sets RAYON_NUM_THREADS (the `tokenizers` thread pool; default: all cores). The
trained tokenizer is the same whatever the thread count.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any


def _median(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    """Median wall seconds of `fn()` over `repeats` runs, and its last result."""
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def _step_ms(vocabs: list[int], rounds: int = 3, steps: int = 2) -> dict[int, float]:
    """Median ms of one u-μP training step (width 128, depth 2, batch 16 × 128) per vocab,
    the models interleaved round by round so machine noise hits them alike."""
    import torch

    from umup_sweep.models import build_model, make_optimizer
    from umup_sweep.spec import ModelSpec

    torch.manual_seed(0)
    runs = {}
    for vocab in vocabs:
        model = build_model(ModelSpec(width=128, depth=2, head_dim=32, vocab_size=vocab))
        x, y = torch.randint(vocab, (16, 128)), torch.randint(vocab, (16, 128))
        runs[vocab] = (model, make_optimizer(model, lr=1.0), x, y)
    times: dict[int, list[float]] = {v: [] for v in vocabs}
    for r in range(rounds + 1):  # round 0 warms up
        for vocab, (model, opt, x, y) in runs.items():
            for _ in range(steps):
                t0 = time.perf_counter()
                opt.zero_grad(set_to_none=True)
                model.compute_loss(model(x), y).backward()
                opt.step()
                if r:
                    times[vocab].append(time.perf_counter() - t0)
    return {v: 1000 * statistics.median(t) for v, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vocabs", type=int, nargs="+", default=[8192, 32000])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=0, help="RAYON_NUM_THREADS (0: all)")
    parser.add_argument("--step", action="store_true", help="also time a training step")
    args = parser.parse_args()
    if args.threads:
        os.environ["RAYON_NUM_THREADS"] = str(args.threads)  # before tokenizers starts its pool
    os.environ["UMUP_SWEEP_CACHE"] = tempfile.mkdtemp(prefix="bench_tokenizer_")

    import numpy as np

    from umup_sweep.data import _tokenizer, clear_memory_cache, load_corpus
    from umup_sweep.spec import DataSpec

    byte_corpus = load_corpus(DataSpec())
    text = np.asarray(byte_corpus.tokens)
    starts = _load_starts()
    n_bytes = len(text)
    print(f"stdlib corpus: {n_bytes:,} bytes in {len(starts)} files; tokenizers "
          f"{_tokenizer.tokenizers_version()}; cores {os.cpu_count()}; RAYON_NUM_THREADS "
          f"{os.environ.get('RAYON_NUM_THREADS', 'unset')}; repeats {args.repeats}")  # fmt: skip
    t_docs, docs = _median(lambda: list(_tokenizer.documents(text, starts)), args.repeats)
    print(f"decode files to str: {t_docs:.2f} s")
    print("vocab | train s | encode s | tokens | bytes/token | dtype | load cold s | warm ms")
    for vocab in args.vocabs:
        t_train, blob = _median(lambda v=vocab: _tokenizer.train_bpe(docs, v), args.repeats)
        tok = _tokenizer.TokenizerFile.parse(blob.encode(), "stdlib", vocab)
        t_enc, (ids, _) = _median(lambda t=tok: _tokenizer.encode_documents(t, docs), args.repeats)
        clear_memory_cache()
        t_cold, _ = _median(lambda v=vocab: _cold_load(v), 1)
        clear_memory_cache()
        t0 = time.perf_counter()
        load_corpus(DataSpec(train_bpe=vocab))
        t_warm = time.perf_counter() - t0
        row = (f"{vocab} | {t_train:.1f} | {t_enc:.1f} | {len(ids):,} | {n_bytes / len(ids):.2f} | "
               f"{ids.dtype} | {t_cold:.1f} | {1000 * t_warm:.0f}")  # fmt: skip
        print(row, flush=True)
    if args.step:
        step = _step_ms([256, *args.vocabs])
        print("training step, width 128 depth 2 batch 16x128 (ms): " + ", ".join(
            f"vocab {v}: {ms:.0f}" for v, ms in step.items()))  # fmt: skip


def _cold_load(vocab: int) -> None:
    """`load_corpus` with an empty cache for the BPE and its tokens (the byte corpus stays)."""
    from umup_sweep.data import _cache, load_corpus
    from umup_sweep.spec import DataSpec

    for meta in list(_cache.cache_dir().glob("*.json")):
        if meta.name.startswith("bpe-") or '"tokenizer"' in meta.read_text():
            meta.unlink()
            meta.with_suffix(".npy").unlink(missing_ok=True)
    load_corpus(DataSpec(train_bpe=vocab))


def _load_starts() -> list[int]:
    """The document starts of the cached byte-level stdlib corpus."""
    import json

    from umup_sweep.data import _cache

    for path in _cache.cache_dir().glob("*.json"):
        meta = json.loads(path.read_text())
        if meta.get("name") == "stdlib" and meta.get("dtype") == "|u1":
            return list(meta["doc_starts"])
    sys.exit("the byte-level stdlib corpus was not cached")


if __name__ == "__main__":
    main()
