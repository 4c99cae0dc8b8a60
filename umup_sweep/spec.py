"""The value objects every part of umup-sweep passes around.

`ModelSpec` says which proxy to build, `TrainSpec` how to train it, `DataSpec` on what,
`TrialSpec` bundles the three with a seed (and names the trial by a hash of all of it), and
`TrialResult` is what a finished trial reports. They are frozen dataclasses of plain values so
they pickle to Ray workers, serialise to YAML/JSON and hash stably.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

Parametrization = Literal["umup", "sp"]
FfnKind = Literal["swiglu", "gelu"]
PosEncoding = Literal["rope", "none"]
NormKind = Literal["rms", "layer"]
Status = Literal["ok", "diverged", "pruned", "failed"]
STATUSES: tuple[str, ...] = get_args(Status)  # in the order counts are shown
# Statuses of trials that stopped without a final loss (a value with one is never the best).
STOPPED: tuple[str, ...] = ("diverged", "pruned")
Precision = Literal["fp32", "bf16", "fp8_sim"]

# The u-μP hyperparameters that live in the model (all default 1.0, see u-μP paper Table 3).
MODEL_HPS = (
    "residual_mult",
    "residual_attn_ratio",
    "attn_softmax_mult",
    "ffn_act_mult",
    "loss_softmax_mult",
)
# The hyperparameters that live in the optimizer.
OPTIMIZER_HPS = ("lr", "weight_decay")
HP_NAMES = ("lr",) + MODEL_HPS + ("weight_decay",)
HP_DEFAULTS: dict[str, float] = {name: 1.0 for name in ("lr",) + MODEL_HPS} | {"weight_decay": 0.0}
# The RoPE base when `ModelSpec.rope_theta` is None (RoFormer's and Llama's 10000).
DEFAULT_ROPE_THETA = 10000.0
# ModelSpec fields added after runs existed: part of `trial_key` only when not None.
_KEYED_WHEN_SET = ("n_kv_heads", "ffn_hidden_size", "rope_theta")


@dataclass(frozen=True)
class ModelSpec:
    """Shape and parametrization of a decoder-only transformer proxy.

    `n_heads` is derived from `head_dim` (width // head_dim) unless given. `n_kv_heads` sets
    grouped-query attention: that many key/value heads, each shared by n_heads // n_kv_heads
    query heads (None: one per query head, plain multi-head attention). The five u-μP
    multipliers default to 1.0 and are ignored by the `sp` parametrization.

    The FFN's hidden size is `ffn_ratio` × width rounded up to a multiple of 8, or exactly
    `ffn_hidden_size` when that is set (a target model's real size, e.g. Llama-2's 11008).
    `rope_theta` is the RoPE base (None: `DEFAULT_ROPE_THETA`, 10000; a value equal to it is
    stored as None, so the same model has one spec and one trial key).

    Example:
        >>> spec = ModelSpec(width=256, head_dim=32, n_kv_heads=2)
        >>> spec.n_heads, spec.kv_heads
        (8, 2)
        >>> ModelSpec(width=4096, head_dim=128, ffn_hidden_size=11008).ffn_hidden
        11008
        >>> ModelSpec(rope_theta=10000.0) == ModelSpec(), ModelSpec(rope_theta=5e5).rope_base
        (True, 500000.0)
    """

    width: int = 64
    depth: int = 2
    head_dim: int = 32
    n_heads: int | None = None
    ffn: FfnKind = "swiglu"
    ffn_ratio: float = 4.0
    vocab_size: int = 256
    seq_len: int = 128
    pos: PosEncoding = "rope"
    norm: NormKind = "rms"
    parametrization: Parametrization = "umup"
    residual_mult: float = 1.0
    residual_attn_ratio: float = 1.0
    attn_softmax_mult: float = 1.0
    ffn_act_mult: float = 1.0
    loss_softmax_mult: float = 1.0
    # Left out of `trial_key` while None, so the specs from before them keep their keys.
    n_kv_heads: int | None = None
    ffn_hidden_size: int | None = None
    rope_theta: float | None = None

    def __post_init__(self) -> None:
        if self.width <= 0 or self.depth <= 0:
            raise ValueError(f"width and depth must be positive, got {self.width}, {self.depth}")
        if self.n_heads is None:
            if self.width % self.head_dim:
                raise ValueError(
                    f"width {self.width} is not a multiple of head_dim {self.head_dim}"
                )
            object.__setattr__(self, "n_heads", self.width // self.head_dim)
        elif self.width % self.n_heads:
            raise ValueError(f"width {self.width} is not a multiple of n_heads {self.n_heads}")
        else:
            object.__setattr__(self, "head_dim", self.width // self.n_heads)
        heads = self.n_heads or 0
        if self.n_kv_heads is not None and (self.n_kv_heads < 1 or heads % self.n_kv_heads):
            raise ValueError(
                f"n_kv_heads {self.n_kv_heads} must be >= 1 and divide n_heads {self.n_heads}"
            )
        for name in MODEL_HPS:
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.ffn_hidden_size is not None and self.ffn_hidden_size < 1:
            raise ValueError(f"ffn_hidden_size must be >= 1, got {self.ffn_hidden_size}")
        if self.rope_theta is not None:
            if not self.rope_theta > 0:
                raise ValueError(f"rope_theta must be > 0, got {self.rope_theta}")
            if self.rope_theta == DEFAULT_ROPE_THETA:
                object.__setattr__(self, "rope_theta", None)

    @property
    def rope_base(self) -> float:
        """The RoPE base the model uses: `rope_theta`, or `DEFAULT_ROPE_THETA` when None."""
        return DEFAULT_ROPE_THETA if self.rope_theta is None else float(self.rope_theta)

    @property
    def kv_heads(self) -> int:
        """Number of key/value heads: `n_kv_heads`, or `n_heads` when it is None."""
        return self.n_kv_heads or self.n_heads or 0

    @property
    def ffn_hidden(self) -> int:
        """Hidden size of the feed-forward block: `ffn_hidden_size` when set, else
        width × `ffn_ratio` rounded up to a multiple of 8."""
        if self.ffn_hidden_size is not None:
            return self.ffn_hidden_size
        hidden = int(self.width * self.ffn_ratio)
        return max(8, (hidden + 7) // 8 * 8)


# The smallest `DataSpec.train_bpe`: the 256 byte tokens plus one merge.
MIN_BPE_VOCAB = 257
# DataSpec fields added after runs existed: part of `trial_key` only when not None.
_DATA_KEYED_WHEN_SET = ("tokenizer", "train_bpe")


@dataclass(frozen=True)
class DataSpec:
    """Where the tokens come from, and how text becomes tokens.

    `source` is `"stdlib"` (the Python standard library's own source, no download), a text
    file, a folder or glob of text files, or a `.bin`/`.npy` uint16/uint32 token file. Text is
    byte-level (vocab 256) unless `tokenizer` names a Hugging Face `tokenizer.json` to encode
    it with, or `train_bpe` asks for a byte-level BPE of that vocabulary trained on the corpus
    itself (offline, deterministic, cached); at most one of the two. The model's vocab_size
    must then equal the tokenizer's vocabulary, or (with `allow_vocab_mismatch`) exceed it.

    Example:
        >>> DataSpec(train_bpe=8192).train_bpe, DataSpec().tokenizer
        (8192, None)
    """

    source: str = "stdlib"
    val_fraction: float = 0.05
    vocab_size: int | None = None  # for token files; text: 256 bytes, or the tokenizer's
    # Left out of `trial_key` while None, so the specs from before them keep their keys.
    tokenizer: str | None = None  # path of a tokenizer.json
    train_bpe: int | None = None  # vocabulary of a byte-level BPE trained on the corpus
    allow_vocab_mismatch: bool = False  # a permission, not part of any trial key

    def __post_init__(self) -> None:
        if self.tokenizer is not None and self.train_bpe is not None:
            raise ValueError("give a tokenizer or train_bpe, not both")
        if self.train_bpe is not None and not MIN_BPE_VOCAB <= self.train_bpe < 2**32:
            raise ValueError(
                f"train_bpe must be >= {MIN_BPE_VOCAB} (256 bytes + 1 merge), got {self.train_bpe}"
            )


@dataclass(frozen=True)
class TrainSpec:
    """How one proxy is trained: optimizer HPs, schedule, batch, divergence rule, threads."""

    steps: int = 300
    batch_size: int = 16
    lr: float = 1.0
    weight_decay: float = 0.0
    optimizer: Literal["adamw", "sgd"] = "adamw"
    beta1: float = 0.9
    beta2: float = 0.95
    eps: float = 1e-8
    warmup_frac: float = 0.1
    schedule: Literal["cosine", "linear", "constant"] = "cosine"
    final_lr_frac: float = 0.1
    grad_clip: float | None = None
    final_window: int = 20  # final_train_loss = mean of the last `final_window` steps
    eval_batches: int = 8
    eval_every: int = 0  # 0: evaluate only at the end
    diverge_loss: float = 10.0  # loss above this (or NaN/inf; at least ln(vocab)+2) diverges
    threads: int = 1
    device: str = "cpu"  # cpu | cuda | cuda:N | auto (resolved before the trial starts)
    precision: Precision = "fp32"
    compile: bool = False  # torch.compile the model (worth it for long GPU trials)
    # The decay per step is lr × weight_decay (a sweep's `weight_decay: {coupled: lr}`), not
    # weight_decay itself; part of `trial_key` only when True.
    weight_decay_coupled: bool = False


@dataclass(frozen=True)
class PruneBound:
    """When a running trial is stopped early as hopeless (a sweep's `pruning:` section).

    At checkpoint ``j`` (after step ``(j + 1) * every``), the mean train loss of the last
    ``every`` steps must not exceed ``best[j] + margin[j]``: the leading stored trial of the
    same proxy at that checkpoint, plus the largest catch-up seen between stored trials from
    there to the end (times a safety factor; `umup_sweep.pruning` computes it). An infinite
    margin means "no check there".

    Example:
        >>> bound = PruneBound(every=2, best=(3.0, 2.5), margin=(0.5, 0.2))
        >>> curve = [(0, 3.4, None), (1, 3.5, None), (2, 2.9, None), (3, 2.9, None)]
        >>> bound.reason(curve[:2]) is None, bound.reason(curve)
        (True, 'dominated at step 4: loss 2.9000 > best 2.5000 + margin 0.2000')
    """

    every: int
    best: tuple[float, ...]
    margin: tuple[float, ...]

    def reason(self, curve: list[tuple[int, float, float | None]]) -> str | None:
        """Why the trial whose curve so far is ``curve`` stops now, or None: checked when the
        curve ends at a checkpoint (its length a multiple of `every`)."""
        n = len(curve)
        j = n // self.every - 1
        if n == 0 or n % self.every or j >= len(self.best) or not math.isfinite(self.margin[j]):
            return None
        mean = sum(row[1] for row in curve[-self.every :]) / self.every
        limit = self.best[j] + self.margin[j]
        if mean > limit:
            return (
                f"dominated at step {n}: loss {mean:.4f} > best {self.best[j]:.4f} "
                f"+ margin {self.margin[j]:.4f}"
            )
        return None


@dataclass(frozen=True)
class TrialSpec:
    """Everything that determines one trial's result, plus bookkeeping labels.

    `labels` (e.g. the search stage) are not part of `trial_key`: the same model, training,
    data and seed give the same key whichever stage asked for it. Nor is `prune`, the bound
    under which the trial stops early (set by the driver when the sweep prunes): a pruned
    trial's curve is the start of the same trial's full curve.
    """

    model: ModelSpec
    train: TrainSpec
    data: DataSpec = field(default_factory=DataSpec)
    seed: int = 0
    data_fingerprint: str = ""
    labels: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    prune: PruneBound | None = field(default=None, compare=False, hash=False)

    @property
    def hps(self) -> dict[str, float]:
        """The six u-μP HPs plus weight decay, as this trial uses them."""
        values = {name: float(getattr(self.model, name)) for name in MODEL_HPS}
        return {
            "lr": float(self.train.lr),
            **values,
            "weight_decay": float(self.train.weight_decay),
        }

    @functools.cached_property
    def trial_key(self) -> str:
        """Hash of everything that determines the result (not the labels); computed once per
        spec (the spec is frozen).

        `model.n_kv_heads`, `model.ffn_hidden_size` and `model.rope_theta` enter the hash only
        when set: None hashes as the specs from before those fields existed did, so their runs
        still resume. So do `data.tokenizer` and `data.train_bpe` (the tokenizer's content
        enters through `data_fingerprint`); `data.allow_vocab_mismatch` never does.
        """
        model = _plain(self.model)
        for name in _KEYED_WHEN_SET:
            if model[name] is None:
                del model[name]
        data = _plain(self.data)
        del data["allow_vocab_mismatch"]  # a permission: it changes no result
        for name in _DATA_KEYED_WHEN_SET:
            if data[name] is None:
                del data[name]
        payload = {
            "model": model,
            "train": {
                k: v
                for k, v in _plain(self.train).items()
                if k != "threads" and (k != "weight_decay_coupled" or v)
            },
            "data": data,
            "data_fingerprint": self.data_fingerprint,
            "seed": self.seed,
        }
        blob = json.dumps(payload, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def with_hps(self, **hps: float) -> TrialSpec:
        """A copy with some HPs replaced (model multipliers or lr/weight_decay)."""
        unknown = set(hps) - set(HP_NAMES)
        if unknown:
            raise ValueError(f"unknown hyperparameter(s): {sorted(unknown)}")
        model_kw: dict[str, Any] = {k: v for k, v in hps.items() if k in MODEL_HPS}
        train_kw: dict[str, Any] = {k: v for k, v in hps.items() if k in OPTIMIZER_HPS}
        return dataclasses.replace(
            self,
            model=dataclasses.replace(self.model, **model_kw),
            train=dataclasses.replace(self.train, **train_kw),
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (for YAML/JSON)."""
        return {
            "model": dataclasses.asdict(self.model),
            "train": dataclasses.asdict(self.train),
            "data": dataclasses.asdict(self.data),
            "seed": self.seed,
            "data_fingerprint": self.data_fingerprint,
            "labels": dict(self.labels),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrialSpec:
        """Inverse of `to_dict`."""
        return cls(
            model=ModelSpec(**d["model"]),
            train=TrainSpec(**d["train"]),
            data=DataSpec(**d.get("data", {})),
            seed=int(d.get("seed", 0)),
            data_fingerprint=d.get("data_fingerprint", ""),
            labels=dict(d.get("labels", {})),
        )


@dataclass
class TrialResult:
    """What a finished trial reports. `curve` rows are (step, train_loss, val_loss or None);
    `started_at` is when its training loop started (Unix time; None from before it existed),
    which with `wall_s` dates the trial in the study. `note` says why a "pruned" trial
    stopped (its losses are then None: it never reached the end)."""

    trial_key: str
    status: Status
    final_train_loss: float | None = None
    val_loss: float | None = None
    steps: int = 0
    tokens: int = 0
    wall_s: float = 0.0
    tokens_per_s: float = 0.0
    n_params: int = 0
    peak_rss_mb: float | None = None
    node_id: str | None = None
    error: str | None = None
    curve: list[tuple[int, float, float | None]] = field(default_factory=list)
    started_at: float | None = None
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (curve included)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrialResult:
        """Inverse of `to_dict`."""
        d = dict(d)
        d["curve"] = [tuple(row) for row in d.get("curve", [])]
        return cls(**d)


_LEAVES = (int, float, str, bool, type(None))


def _plain(obj: Any) -> Any:
    """`dataclasses.asdict` without its deep copies (the specs hold plain, immutable values):
    the same output, several times faster, which matters because strategies hash thousands
    of trial keys.

    Example:
        >>> _plain(DataSpec()) == dataclasses.asdict(DataSpec())
        True
    """
    if type(obj) in _LEAVES:
        return obj
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: _plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_plain(v) for v in obj)
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    return obj
