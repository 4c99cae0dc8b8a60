"""A Hugging Face ``config.json`` of a Llama, Mistral or Qwen2 model → `TargetSpec`.

Only a local file is read (download the config first). Every field must be one this module
knows, so nothing the proxies do not model is approximated silently; anything else is a
one-line `ConfigError` naming the field.

Mapped onto the target's `ModelSpec`:
    hidden_size → width, num_hidden_layers → depth, num_attention_heads → n_heads,
    num_key_value_heads → n_kv_heads (default: num_attention_heads), intermediate_size →
    the exact FFN hidden size, vocab_size, max_position_embeddings → seq_len, rope_theta
    (default 10000) or rope_parameters {rope_type: default, rope_theta}, hidden_act (silu →
    swiglu; default silu), head_dim (optional; must equal hidden_size / num_attention_heads),
    rms_norm_eps → norm rms (the value is recorded as `TargetSpec.norm_eps`; the proxies use
    u-μP's non-parametric norms, so neither the eps nor the norms' gains enter the spec),
    model_type / architectures (llama, mistral, qwen2; LlamaForCausalLM, ...).
Accepted only at the value the proxies model (any other value is an error):
    tie_word_embeddings false (we never tie the embedding and readout), rope_scaling null,
    attention_bias false, mlp_bias false, attention_dropout 0, pretraining_tp 1,
    sliding_window null, or any value when use_sliding_window is false (Qwen2's default),
    use_sliding_window false, max_window_layers (only used by a sliding window),
    layer_types all "full_attention", and mixture-of-experts fields (num_local_experts,
    num_experts, n_routed_experts, ...) absent, null or 0.
Bookkeeping, ignored:
    _name_or_path, bos_token_id, eos_token_id, pad_token_id, torch_dtype, dtype,
    transformers_version, initializer_range (u-μP sets its own init), use_cache.

Recorded as a note (`TargetSpec.notes`, printed by the CLI): Qwen2's q/k/v projections have
biases, which the proxies leave out.

Example:
    >>> import json, tempfile, os
    >>> cfg = {"model_type": "llama", "hidden_size": 512, "num_hidden_layers": 4,
    ...        "num_attention_heads": 8, "num_key_value_heads": 2, "intermediate_size": 1376,
    ...        "vocab_size": 32000, "max_position_embeddings": 2048, "rms_norm_eps": 1e-5}
    >>> path = os.path.join(tempfile.mkdtemp(), "config.json")
    >>> with open(path, "w") as f:
    ...     json.dump(cfg, f)
    >>> t = load_hf_config(path)
    >>> t.model.head_dim, t.model.kv_heads, t.model.ffn_hidden, t.norm_eps, t.fmt
    (64, 2, 1376, 1e-05, 'hf-config')
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from umup_sweep.config._spec import TargetSpec, TrainingPlan
from umup_sweep.config._validate import fail, number
from umup_sweep.errors import ConfigError
from umup_sweep.spec import ModelSpec

__all__ = ["load_hf_config"]

_ARCHITECTURES = {
    "llama": "LlamaForCausalLM",
    "mistral": "MistralForCausalLM",
    "qwen2": "Qwen2ForCausalLM",
}
_REQUIRED = (
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "vocab_size",
    "max_position_embeddings",
)
_MAPPED = _REQUIRED + (
    "num_key_value_heads",
    "rope_theta",
    "rope_parameters",
    "hidden_act",
    "head_dim",
    "rms_norm_eps",
    "model_type",
    "architectures",
)
_BOOKKEEPING = (
    "_name_or_path",
    "bos_token_id",
    "eos_token_id",
    "pad_token_id",
    "torch_dtype",
    "dtype",
    "transformers_version",
    "initializer_range",
    "use_cache",
)
# Field → (the values we model, what the error says is not modelled).
_FIXED: dict[str, tuple[tuple[Any, ...], str]] = {
    "tie_word_embeddings": ((False,), "tied embedding and readout weights are not modelled"),
    "rope_scaling": ((None,), "RoPE scaling is not modelled"),
    "attention_bias": ((False,), "attention biases are not modelled"),
    "mlp_bias": ((False,), "MLP biases are not modelled"),
    "attention_dropout": ((0, 0.0), "dropout is not modelled"),
    "pretraining_tp": ((1,), "tensor-parallel pretraining emulation is not modelled"),
    "use_sliding_window": ((False,), "sliding-window attention is not modelled"),
}
_MOE = (
    "num_local_experts",
    "num_experts",
    "n_routed_experts",
    "num_experts_per_tok",
    "n_shared_experts",
    "moe_intermediate_size",
    "shared_expert_intermediate_size",
    "decoder_sparse_step",
    "moe_layer_freq",
    "first_k_dense_replace",
    "router_aux_loss_coef",
    "output_router_logits",
)
_OTHER = ("sliding_window", "max_window_layers", "layer_types") + _MOE
_KNOWN = frozenset(_MAPPED + _BOOKKEEPING + tuple(_FIXED) + _OTHER)
_GELUS = ("gelu", "gelu_new", "gelu_fast", "gelu_pytorch_tanh", "gelu_python", "gelu_accurate")


def _read_json(path: Path) -> dict[str, Any]:
    """The file's JSON object (duplicate keys refused); errors as one line."""
    source = str(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(source, "", "file not found (a local config.json is needed)") from None
    except OSError as exc:
        raise ConfigError(source, "", f"cannot read file: {exc.strerror}") from None

    def unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in pairs:
            if k in out:
                raise ConfigError(source, k, "duplicate field")
            out[k] = v
        return out

    try:
        data = json.loads(text, object_pairs_hook=unique)
    except json.JSONDecodeError as exc:
        msg = f"not valid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
        raise ConfigError(source, "", msg) from None
    if not isinstance(data, dict):
        raise fail(source, "", "expected a JSON object of config fields", data)
    return data


def load_hf_config(path: str | Path) -> TargetSpec:
    """Read a local Hugging Face ``config.json`` (Llama, Mistral or Qwen2 family).

    Raises:
        ConfigError: one line naming the file, the field and what is expected, for a field
            the proxies do not model (MoE, a sliding window, biases, tied embeddings, RoPE
            scaling, an unknown activation or model type, an unknown field).
    """
    path = Path(path).expanduser()
    source = str(path)
    cfg = _read_json(path)
    model_type = _model_type(cfg, source)
    for k in cfg:
        if k not in _KNOWN:
            raise fail(source, k, f"field not modelled by umup-sweep for {model_type} configs")
    _check_fixed(cfg, source, model_type)
    model = _model(cfg, source)
    eps = cfg.get("rms_norm_eps")
    if eps is not None:
        eps = number(eps, source, "rms_norm_eps")
        if eps <= 0:
            raise fail(source, "rms_norm_eps", "expected > 0", cfg["rms_norm_eps"])
    notes: tuple[str, ...] = ()
    if model_type == "qwen2":
        notes = ("qwen2: the q/k/v projection biases of the config's model are left out",)
    name = path.parent.name if path.name == "config.json" and path.parent.name else path.stem
    plan = TrainingPlan(seq_len=model.seq_len)
    return TargetSpec(model, plan, source, "hf-config", name or "target", eps, notes)


def _model_type(cfg: Mapping[str, Any], source: str) -> str:
    """The config's model_type (or the one its architectures name), if we accept it."""
    choices = ", ".join(_ARCHITECTURES)
    archs = cfg.get("architectures")
    if archs is not None:
        known = {v: k for k, v in _ARCHITECTURES.items()}
        if not isinstance(archs, list) or len(archs) != 1 or archs[0] not in known:
            raise fail(
                source, "architectures", f"expected [{', '.join(known)}] (one of them)", archs
            )
        from_arch = known[archs[0]]
    else:
        from_arch = None
    model_type = cfg.get("model_type", from_arch)
    if model_type is None:
        raise fail(source, "model_type", f"missing: expected one of {choices}")
    if model_type not in _ARCHITECTURES:
        raise fail(source, "model_type", f"expected one of {choices} (not modelled)", model_type)
    if from_arch is not None and from_arch != model_type:
        raise fail(source, "architectures", f"expected {_ARCHITECTURES[model_type]}", archs)
    return str(model_type)


def _check_fixed(cfg: Mapping[str, Any], source: str, model_type: str) -> None:
    """Fields accepted only at the value the proxies model."""
    for k, (ok, what) in _FIXED.items():
        if k in cfg and not any(
            cfg[k] is v or (cfg[k] == v and type(cfg[k]) is type(v)) for v in ok
        ):
            shown = " or ".join(json.dumps(v) for v in ok)
            raise fail(source, k, f"expected {shown} ({what})", cfg[k])
    for k in _MOE:
        if cfg.get(k) not in (None, 0, False, []):
            raise fail(
                source, k, "expected absent, null or 0 (mixture-of-experts is not modelled)", cfg[k]
            )
    # Qwen2 reads sliding_window only when use_sliding_window is true (its default: false);
    # Llama and Mistral always apply a sliding_window that is not null.
    sliding_used = model_type != "qwen2" or cfg.get("use_sliding_window", False)
    if cfg.get("sliding_window") is not None and sliding_used:
        raise fail(
            source,
            "sliding_window",
            "expected null (sliding-window attention is not modelled)",
            cfg["sliding_window"],
        )
    layer_types = cfg.get("layer_types")
    if layer_types is not None and (
        not isinstance(layer_types, list) or any(t != "full_attention" for t in layer_types)
    ):
        raise fail(source, "layer_types", 'expected only "full_attention" layers', layer_types)


def _int(cfg: Mapping[str, Any], source: str, key: str) -> int:
    if key not in cfg:
        raise fail(source, key, "missing: expected a positive integer")
    value = number(cfg[key], source, key, integer=True)
    if value <= 0:
        raise fail(source, key, "expected > 0", value)
    return int(value)


def _rope_theta(cfg: Mapping[str, Any], source: str) -> float | None:
    """rope_theta, or rope_parameters' (transformers 5) with rope_type default."""
    params = cfg.get("rope_parameters")
    if params is not None:
        if "rope_theta" in cfg:
            raise fail(source, "rope_parameters", "give rope_theta or rope_parameters, not both")
        if not isinstance(params, dict) or set(params) - {"rope_type", "rope_theta"}:
            raise fail(
                source, "rope_parameters", "expected {rope_type: default, rope_theta}", params
            )
        if params.get("rope_type", "default") != "default":
            raise fail(
                source,
                "rope_parameters.rope_type",
                "expected default (RoPE scaling is not modelled)",
                params["rope_type"],
            )
        theta = params.get("rope_theta")
        key = "rope_parameters.rope_theta"
    else:
        theta, key = cfg.get("rope_theta"), "rope_theta"
    if theta is None:
        return None
    value = number(theta, source, key)
    if value <= 0:
        raise fail(source, key, "expected > 0", theta)
    return float(value)


def _model(cfg: Mapping[str, Any], source: str) -> ModelSpec:
    """The config's shapes as a ModelSpec, each checked against the others."""
    width, heads = _int(cfg, source, "hidden_size"), _int(cfg, source, "num_attention_heads")
    if width % heads:
        raise fail(
            source, "num_attention_heads", f"expected a divisor of hidden_size {width}", heads
        )
    kv = _int(cfg, source, "num_key_value_heads") if "num_key_value_heads" in cfg else heads
    if heads % kv:
        raise fail(
            source, "num_key_value_heads", f"expected a divisor of num_attention_heads {heads}", kv
        )
    if cfg.get("head_dim") is not None and _int(cfg, source, "head_dim") != width // heads:
        raise fail(
            source,
            "head_dim",
            f"expected hidden_size / num_attention_heads = {width // heads} (a head_dim "
            "independent of the width is not modelled)",
            cfg["head_dim"],
        )
    if (width // heads) % 2:
        raise fail(
            source, "num_attention_heads", f"gives head_dim {width // heads}: RoPE needs it even"
        )
    act = cfg.get("hidden_act", "silu")
    if act in _GELUS:
        raise fail(
            source,
            "hidden_act",
            "expected silu (a gated GELU MLP is not modelled: umup-sweep's gelu FFN has no gate)",
            act,
        )
    if act != "silu":
        raise fail(source, "hidden_act", "expected silu (activation not modelled)", act)
    ffn_hidden = _int(cfg, source, "intermediate_size")
    return ModelSpec(
        width=width,
        depth=_int(cfg, source, "num_hidden_layers"),
        n_heads=heads,
        n_kv_heads=None if kv == heads else kv,
        ffn="swiglu",
        ffn_ratio=ffn_hidden / width,
        ffn_hidden_size=ffn_hidden,
        vocab_size=_int(cfg, source, "vocab_size"),
        seq_len=_int(cfg, source, "max_position_embeddings"),
        pos="rope",
        norm="rms",
        rope_theta=_rope_theta(cfg, source),
    )
