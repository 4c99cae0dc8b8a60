"""The target model, described once: our YAML (`target:`) or a Hugging Face config.json.

`load_target` reads either into a `TargetSpec`: the target's real shapes as a `ModelSpec`
(parametrization umup) plus its `TrainingPlan`. A path ending in ``.json`` is a Hugging Face
config (see `umup_sweep.config._hf_config` for what it accepts); anything else is YAML whose
top level is the target mapping (the same keys as a sweep's ``target:`` section).

Target keys (* required):
    name            a label (default: the file's stem, or "target")
    description     free text
    width*, depth*  hidden size and number of blocks
    head_dim | n_heads*  one of them (both only when head_dim × n_heads = width)
    n_kv_heads      key/value heads (grouped-query attention); must divide n_heads
                    (default: n_heads, plain multi-head attention)
    ffn             swiglu | gelu (default swiglu)
    ffn_hidden | ffn_ratio*  the FFN's exact hidden size, or its ratio to width (rounded up
                    to a multiple of 8); not both
    vocab_size*, seq_len*  vocabulary and training sequence length
    pos             rope | none (default rope); rope needs an even head_dim
    rope_theta      RoPE base (default 10000; only with pos: rope)
    norm            rms | layer (default rms)
    tokens          training tokens: an integer, 1.0e12, or with a suffix K/M/B/T (300B, 1T)
    batch_size      sequences per optimizer step
    weight_decay    u-μP's independent weight decay: the fraction of every weight removed
                    per step at the schedule's peak (>= 0, at most MAX_INDEPENDENT_WD)
    adamw_weight_decay, adamw_lr  instead of weight_decay: torch AdamW's lr-coupled λ and the
                    peak lr it goes with (Llama-2: 0.1 and 3e-4); the plan's decay is λ × lr
    hf_config       instead of the shape keys: a Hugging Face config.json (relative to this
                    file); then only name, description, seq_len (overrides the config's
                    max_position_embeddings) and the plan keys may be given with it

Example:
    >>> t = load_target({"width": 512, "depth": 4, "n_heads": 8, "n_kv_heads": 2,
    ...                  "ffn_hidden": 1376, "vocab_size": 32000, "seq_len": 1024,
    ...                  "tokens": "20B", "batch_size": 256})
    >>> t.model.head_dim, t.model.kv_heads, t.model.ffn_hidden, t.plan.tokens
    (64, 2, 1376, 20000000000)
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from umup_sweep.config._spec import TargetSpec, TrainingPlan
from umup_sweep.config._validate import as_mapping, check_keys, convert, fail, join, number
from umup_sweep.config._yaml import document, read_yaml
from umup_sweep.spec import FfnKind, ModelSpec, NormKind, PosEncoding

__all__ = ["TargetSpec", "TrainingPlan", "load_target", "sweep_target", "target_to_dict"]

_SHAPE_KEYS = (
    "width",
    "depth",
    "head_dim",
    "n_heads",
    "n_kv_heads",
    "ffn",
    "ffn_hidden",
    "ffn_ratio",
    "vocab_size",
    "seq_len",
    "pos",
    "rope_theta",
    "norm",
)
_PLAN_KEYS = ("tokens", "batch_size", "weight_decay", "adamw_weight_decay", "adamw_lr")
# Independent weight decay removes this fraction of every weight per step; more than 1% a
# step is almost surely torch's lr-coupled λ written where u-μP's per-step decay belongs
# (Llama-2's λ 0.1 at lr 3e-4 is 3e-5 a step).
MAX_INDEPENDENT_WD = 0.01
_TARGET_KEYS = ("name", "description") + _SHAPE_KEYS + _PLAN_KEYS + ("hf_config",)
_HF_WITH = ("name", "description", "hf_config", "seq_len") + _PLAN_KEYS
_REQUIRED = ("width", "depth", "vocab_size", "seq_len")
_SUFFIX = {"K": 10**3, "M": 10**6, "B": 10**9, "T": 10**12}
_COUNT_RE = re.compile(r"^\s*(\d+(?:\.\d*)?)\s*([KMBT])\s*$", re.IGNORECASE)


def load_target(
    path_or_mapping: str | Path | Mapping[str, Any],
    source: str = "<inline>",
    *,
    key: str = "",
) -> TargetSpec:
    """Read a target: a YAML file, a Hugging Face ``config.json``, or a parsed mapping.

    Args:
        path_or_mapping: a ``.json`` path (Hugging Face config), another path (our YAML), or
            the mapping itself (e.g. a sweep's ``target:`` section).
        source: the file named in errors when a mapping is given (and the folder that a
            relative ``hf_config`` is read from).
        key: dotted prefix of the mapping inside `source` (e.g. ``"target"``).

    Raises:
        ConfigError: one line naming the file, the key and what was expected.

    Example:
        >>> load_target({"width": 64, "depth": 2, "head_dim": 32, "vocab_size": 256,
        ...              "seq_len": 128, "ffn_ratio": 3, "n_kv_heads": 4})  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        umup_sweep.errors.ConfigError: <inline>: n_kv_heads: expected a divisor of n_heads 2, ...
    """
    if isinstance(path_or_mapping, (str, Path)):
        path = Path(path_or_mapping)
        if path.suffix.lower() == ".json":
            from umup_sweep.config._hf_config import load_hf_config

            return load_hf_config(path)
        source = str(path)
        data = document(read_yaml(path), source, "target")
        return _from_mapping(data, source, "", path.stem)
    data = as_mapping(path_or_mapping, source, key)
    return _from_mapping(data, source, key, "target")


def _from_mapping(data: dict[str, Any], source: str, key: str, default_name: str) -> TargetSpec:
    check_keys(data, _TARGET_KEYS, source, key)
    name = data.get("name", default_name)
    if not isinstance(name, str) or not name.strip():
        raise fail(source, join(key, "name"), "expected a non-empty string", name)
    if not isinstance(data.get("description", ""), str):
        raise fail(source, join(key, "description"), "expected a string", data["description"])
    plan = _plan(data, source, key)
    if "hf_config" in data:
        return _with_hf_config(data, source, key, name, plan)
    model = _model(data, source, key)
    plan = dataclasses.replace(plan, seq_len=model.seq_len)
    return TargetSpec(model, plan, source, "umup-sweep", name)


def _with_hf_config(
    data: dict[str, Any], source: str, key: str, name: str, plan: TrainingPlan
) -> TargetSpec:
    """``hf_config: file.json`` plus our name, plan and (optionally) seq_len."""
    from umup_sweep.config._hf_config import load_hf_config

    for k in data:
        if k not in _HF_WITH:
            raise fail(
                source,
                join(key, k),
                "not with hf_config (the shapes come from the config; allowed with it: "
                f"{', '.join(_HF_WITH)})",
            )
    ref = data["hf_config"]
    if not isinstance(ref, str) or not ref.lower().endswith(".json"):
        raise fail(source, join(key, "hf_config"), "expected a path to a config.json", ref)
    path = Path(ref).expanduser()
    if not path.is_absolute() and source != "<inline>":
        path = Path(source).parent / path
    hf = load_hf_config(path)
    model = hf.model
    if "seq_len" in data:
        seq_len = _positive_int(data["seq_len"], source, join(key, "seq_len"))
        model = dataclasses.replace(model, seq_len=seq_len)
    plan = dataclasses.replace(plan, seq_len=model.seq_len)
    return dataclasses.replace(hf, model=model, plan=plan, name=name)


def _positive_int(value: Any, source: str, key: str) -> int:
    out = number(value, source, key, integer=True)
    if out <= 0:
        raise fail(source, key, "expected > 0", value)
    return int(out)


def _count(value: Any, source: str, key: str) -> int:
    """A positive whole count: an integer, an integral float (1.0e12, also as a string), or
    a number with a K/M/B/T suffix.

    Example:
        >>> _count("1.5T", "t.yaml", "tokens"), _count("1.0e12", "t.yaml", "tokens")
        (1500000000000, 1000000000000)
    """
    expected = "expected a positive whole number (e.g. 1000000000000, 1.0e12 or 1T)"
    match = _COUNT_RE.match(value) if isinstance(value, str) else None
    if match:
        out = float(match.group(1)) * _SUFFIX[match.group(2).upper()]
    elif isinstance(value, (int, float, str)) and not isinstance(value, bool):
        try:
            out = float(value)
        except ValueError:
            raise fail(source, key, expected, value) from None
    else:
        raise fail(source, key, expected, value)
    if not (out > 0 and out.is_integer()):
        raise fail(source, key, expected, value)
    return int(out)


def _plan(data: Mapping[str, Any], source: str, key: str) -> TrainingPlan:
    tokens = _count(data["tokens"], source, join(key, "tokens")) if "tokens" in data else None
    batch = data.get("batch_size")
    batch = None if batch is None else _positive_int(batch, source, join(key, "batch_size"))
    wd = _plan_weight_decay(data, source, key)
    return TrainingPlan(tokens=tokens, batch_size=batch, weight_decay=wd)


def _plan_weight_decay(data: Mapping[str, Any], source: str, key: str) -> float | None:
    """The plan's independent weight decay (per step), from `weight_decay` or from torch
    AdamW's `adamw_weight_decay` (λ) × `adamw_lr`: SP AdamW removes lr·λ of every weight a
    step, which is what u-μP's independent decay counts."""
    coupled = [k for k in ("adamw_weight_decay", "adamw_lr") if k in data]
    if coupled and "weight_decay" in data:
        raise fail(
            source,
            join(key, coupled[0]),
            "give weight_decay or adamw_weight_decay with adamw_lr, not both",
        )
    if coupled:
        if len(coupled) == 1:
            other = ({"adamw_weight_decay", "adamw_lr"} - set(coupled)).pop()
            raise fail(
                source,
                join(key, other),
                f"expected with {coupled[0]} (λ × lr is the decay per step)",
            )
        lam = number(data["adamw_weight_decay"], source, join(key, "adamw_weight_decay"))
        lr = number(data["adamw_lr"], source, join(key, "adamw_lr"))
        if lam < 0:
            raise fail(source, join(key, "adamw_weight_decay"), "expected >= 0", lam)
        if not lr > 0:
            raise fail(source, join(key, "adamw_lr"), "expected > 0", lr)
        return lam * lr
    if data.get("weight_decay") is None:
        return None
    wd = number(data["weight_decay"], source, join(key, "weight_decay"))
    if not 0 <= wd <= MAX_INDEPENDENT_WD:
        raise fail(
            source,
            join(key, "weight_decay"),
            f"expected u-μP's independent weight decay, the fraction removed per step, in "
            f"[0, {MAX_INDEPENDENT_WD}] (for torch AdamW's λ give adamw_weight_decay and "
            "adamw_lr: λ 0.1 at lr 3e-4 is 3e-5)",
            data["weight_decay"],
        )
    return wd


def _model(data: Mapping[str, Any], source: str, key: str) -> ModelSpec:
    """The target's shapes: every key typed, then checked against the others."""
    for k in _REQUIRED:
        if k not in data:
            raise fail(source, join(key, k), f"missing: expected the target's {k}")
    ints = {
        k: _positive_int(data[k], source, join(key, k))
        for k in ("width", "depth", "head_dim", "n_heads", "n_kv_heads", "ffn_hidden")
        + ("vocab_size", "seq_len")
        if data.get(k) is not None
    }
    kinds = {
        k: convert(tp, data[k], source, join(key, k))
        for k, tp in (("ffn", FfnKind), ("pos", PosEncoding), ("norm", NormKind))
        if k in data
    }
    width = ints["width"]
    heads, head_dim = _heads(ints, source, key)
    n_kv = ints.get("n_kv_heads", heads)
    if heads % n_kv:
        raise fail(source, join(key, "n_kv_heads"), f"expected a divisor of n_heads {heads}", n_kv)
    pos = kinds.get("pos", "rope")
    if pos == "rope" and head_dim % 2:
        where = "head_dim" if "head_dim" in ints else "n_heads"
        raise fail(source, join(key, where), f"gives head_dim {head_dim}: rope needs it even")
    rope_theta = None
    if data.get("rope_theta") is not None:
        if pos != "rope":
            raise fail(source, join(key, "rope_theta"), "only with pos: rope")
        rope_theta = number(data["rope_theta"], source, join(key, "rope_theta"))
        if rope_theta <= 0:
            raise fail(source, join(key, "rope_theta"), "expected > 0", data["rope_theta"])
    ffn_hidden, ffn_ratio = _ffn(data, ints, source, key)
    return ModelSpec(
        width=width,
        depth=ints["depth"],
        n_heads=heads,
        n_kv_heads=None if n_kv == heads else n_kv,
        ffn=kinds.get("ffn", "swiglu"),
        ffn_ratio=ffn_ratio,
        ffn_hidden_size=ffn_hidden,
        vocab_size=ints["vocab_size"],
        seq_len=ints["seq_len"],
        pos=pos,
        norm=kinds.get("norm", "rms"),
        rope_theta=rope_theta,
    )


def _heads(ints: Mapping[str, int], source: str, key: str) -> tuple[int, int]:
    """(n_heads, head_dim) from whichever of them is given, checked against width."""
    width, head_dim, heads = ints["width"], ints.get("head_dim"), ints.get("n_heads")
    if head_dim is None and heads is None:
        raise fail(source, join(key, "head_dim"), "missing: expected head_dim or n_heads")
    if head_dim is not None and width % head_dim:
        raise fail(source, join(key, "head_dim"), f"expected a divisor of width {width}", head_dim)
    if heads is not None and width % heads:
        raise fail(source, join(key, "n_heads"), f"expected a divisor of width {width}", heads)
    if head_dim is not None and heads is not None and head_dim * heads != width:
        raise fail(
            source,
            join(key, "n_heads"),
            f"head_dim {head_dim} × n_heads must equal width {width} (or give only one)",
            heads,
        )
    if heads is None:
        heads = width // int(head_dim or 1)
    return heads, width // heads


def _ffn(
    data: Mapping[str, Any], ints: Mapping[str, int], source: str, key: str
) -> tuple[int | None, float]:
    """(ffn_hidden_size, ffn_ratio): the exact size with its ratio, or a ratio alone."""
    if "ffn_hidden" in ints and "ffn_ratio" in data:
        raise fail(source, join(key, "ffn_ratio"), "give ffn_hidden or ffn_ratio, not both")
    if "ffn_hidden" in ints:
        return ints["ffn_hidden"], ints["ffn_hidden"] / ints["width"]
    if data.get("ffn_ratio") is None:
        raise fail(source, join(key, "ffn_hidden"), "missing: expected ffn_hidden or ffn_ratio")
    ratio = number(data["ffn_ratio"], source, join(key, "ffn_ratio"))
    if ratio <= 0:
        raise fail(source, join(key, "ffn_ratio"), "expected > 0", data["ffn_ratio"])
    return None, ratio


def target_to_dict(target: TargetSpec) -> dict[str, Any]:
    """The target in our YAML format (what `runs/<name>/sweep.yaml` holds); `load_target` of
    it gives an equal `TargetSpec`.

    Example:
        >>> t = load_target({"width": 256, "depth": 2, "n_heads": 4, "ffn_hidden": 688,
        ...                  "vocab_size": 100, "seq_len": 64, "weight_decay": 1e-4})
        >>> load_target(target_to_dict(t)) == t
        True
    """
    m, plan = target.model, target.plan
    out: dict[str, Any] = {"name": target.name, "width": m.width, "depth": m.depth}
    out |= {"n_heads": m.n_heads, "n_kv_heads": m.kv_heads, "ffn": m.ffn}
    if m.ffn_hidden_size is not None:
        out["ffn_hidden"] = m.ffn_hidden_size
    else:
        out["ffn_ratio"] = m.ffn_ratio
    out |= {"vocab_size": m.vocab_size, "seq_len": m.seq_len, "pos": m.pos, "norm": m.norm}
    if m.pos == "rope":
        out["rope_theta"] = m.rope_base
    for k in ("tokens", "batch_size", "weight_decay"):  # adamw_* are read as weight_decay
        if getattr(plan, k) is not None:
            out[k] = getattr(plan, k)
    return out


def sweep_target(
    data: Mapping[str, Any], source: str, given: TargetSpec | str | Path | None = None
) -> TargetSpec | None:
    """The sweep's target: `given` (``--target``; a path is read from the CWD) when set, else
    its ``target:`` section, an inline mapping or a file path relative to the sweep file.

    Example:
        >>> sweep_target({"target": {"width": 64, "depth": 2, "head_dim": 32, "ffn_ratio": 4,
        ...                          "vocab_size": 256, "seq_len": 128}}, "<inline>").name
        'target'
    """
    if isinstance(given, TargetSpec):
        return given
    if given is not None:
        return load_target(given)
    ref = data.get("target")
    if ref is None:
        return None
    if isinstance(ref, Mapping):
        return load_target(ref, source, key="target")
    if not isinstance(ref, str) or not ref.strip():
        raise fail(source, "target", "expected a target mapping or a YAML/config.json path", ref)
    path = Path(ref).expanduser()
    if not path.is_absolute() and source != "<inline>":
        path = Path(source).parent / path
    try:
        found = path.is_file()
    except (OSError, ValueError):
        found = False
    if not found:
        raise fail(source, "target", f"target file not found (looked for {path})")
    return load_target(path)
