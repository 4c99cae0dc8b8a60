"""Hugging Face config.json targets: the public Llama-2-7B, Mistral-7B-v0.1 and Qwen2-7B
configs read exactly (or refused where they hold something the proxies do not model), and
every field we do not model is a one-line error naming it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from umup_sweep.config import TrainingPlan, load_target
from umup_sweep.errors import ConfigError

# As published on the Hugging Face Hub (meta-llama/Llama-2-7b-hf).
LLAMA2_7B: dict[str, Any] = {
    "_name_or_path": "meta-llama/Llama-2-7b-hf",
    "architectures": ["LlamaForCausalLM"],
    "bos_token_id": 1,
    "eos_token_id": 2,
    "hidden_act": "silu",
    "hidden_size": 4096,
    "initializer_range": 0.02,
    "intermediate_size": 11008,
    "max_position_embeddings": 4096,
    "model_type": "llama",
    "num_attention_heads": 32,
    "num_hidden_layers": 32,
    "num_key_value_heads": 32,
    "pretraining_tp": 1,
    "rms_norm_eps": 1e-05,
    "rope_scaling": None,
    "tie_word_embeddings": False,
    "torch_dtype": "float16",
    "transformers_version": "4.31.0.dev0",
    "use_cache": True,
    "vocab_size": 32000,
}
# mistralai/Mistral-7B-v0.1
MISTRAL_7B: dict[str, Any] = {
    "architectures": ["MistralForCausalLM"],
    "bos_token_id": 1,
    "eos_token_id": 2,
    "hidden_act": "silu",
    "hidden_size": 4096,
    "initializer_range": 0.02,
    "intermediate_size": 14336,
    "max_position_embeddings": 32768,
    "model_type": "mistral",
    "num_attention_heads": 32,
    "num_hidden_layers": 32,
    "num_key_value_heads": 8,
    "rms_norm_eps": 1e-05,
    "rope_theta": 10000.0,
    "sliding_window": 4096,
    "tie_word_embeddings": False,
    "torch_dtype": "bfloat16",
    "transformers_version": "4.34.0.dev0",
    "use_cache": True,
    "vocab_size": 32000,
}
# Qwen/Qwen2-7B
QWEN2_7B: dict[str, Any] = {
    "architectures": ["Qwen2ForCausalLM"],
    "attention_dropout": 0.0,
    "bos_token_id": 151643,
    "eos_token_id": 151643,
    "hidden_act": "silu",
    "hidden_size": 3584,
    "initializer_range": 0.02,
    "intermediate_size": 18944,
    "max_position_embeddings": 131072,
    "max_window_layers": 28,
    "model_type": "qwen2",
    "num_attention_heads": 28,
    "num_hidden_layers": 28,
    "num_key_value_heads": 4,
    "rms_norm_eps": 1e-06,
    "rope_theta": 1000000.0,
    "sliding_window": 131072,
    "tie_word_embeddings": False,
    "torch_dtype": "bfloat16",
    "transformers_version": "4.37.2",
    "use_cache": True,
    "use_sliding_window": False,
    "vocab_size": 152064,
}


def _write(tmp_path: Path, cfg: dict[str, Any], name: str = "config.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(cfg, indent=2))
    return path


def _shapes(path: Path) -> tuple[Any, ...]:
    m = load_target(path).model
    return (
        m.width,
        m.depth,
        m.n_heads,
        m.kv_heads,
        m.head_dim,
        m.ffn,
        m.ffn_hidden,
        m.vocab_size,
        m.seq_len,
        m.rope_base,
        m.norm,
        m.pos,
    )


def test_llama2_7b(tmp_path: Path) -> None:
    (tmp_path / "Llama-2-7b-hf").mkdir()
    path = _write(tmp_path / "Llama-2-7b-hf", LLAMA2_7B)
    assert _shapes(path) == (
        4096,
        32,
        32,
        32,
        128,
        "swiglu",
        11008,
        32000,
        4096,
        1e4,
        "rms",
        "rope",
    )
    t = load_target(path)
    assert t.model.n_kv_heads is None and t.model.ffn_hidden_size == 11008
    assert t.model.rope_theta is None  # 10000 is the default base
    assert (t.name, t.fmt, t.source, t.norm_eps, t.notes) == (
        "Llama-2-7b-hf",
        "hf-config",
        str(path),
        1e-5,
        (),
    )
    assert t.plan == TrainingPlan(seq_len=4096)


def test_mistral_7b_v01_is_refused_for_its_sliding_window(tmp_path: Path) -> None:
    path = _write(tmp_path, MISTRAL_7B, "mistral.json")
    with pytest.raises(ConfigError) as err:
        load_target(path)
    assert str(err.value) == (
        f"{path}: sliding_window: expected null (sliding-window attention is not modelled), "
        "got 4096 (int)"
    )


def test_mistral_7b_without_a_sliding_window(tmp_path: Path) -> None:
    path = _write(tmp_path, MISTRAL_7B | {"sliding_window": None}, "mistral.json")
    assert _shapes(path) == (
        4096,
        32,
        32,
        8,
        128,
        "swiglu",
        14336,
        32000,
        32768,
        1e4,
        "rms",
        "rope",
    )
    assert load_target(path).name == "mistral"


def test_qwen2_7b_with_its_biases_noted(tmp_path: Path) -> None:
    path = _write(tmp_path, QWEN2_7B)
    assert _shapes(path) == (
        3584,
        28,
        28,
        4,
        128,
        "swiglu",
        18944,
        152064,
        131072,
        1e6,
        "rms",
        "rope",
    )
    t = load_target(path)
    assert t.model.rope_theta == 1e6 and t.norm_eps == 1e-6
    assert len(t.notes) == 1 and "q/k/v projection biases" in t.notes[0]
    path = _write(tmp_path, QWEN2_7B | {"use_sliding_window": True})
    with pytest.raises(ConfigError, match="use_sliding_window: expected false"):
        load_target(path)


def test_newer_transformers_fields(tmp_path: Path) -> None:
    cfg = {k: v for k, v in LLAMA2_7B.items() if k not in ("rope_scaling", "torch_dtype")}
    cfg |= {"attention_bias": False, "mlp_bias": False, "head_dim": 128, "dtype": "bfloat16"}
    cfg |= {"rope_parameters": {"rope_type": "default", "rope_theta": 500000.0}}
    cfg |= {"layer_types": ["full_attention"] * 32, "num_key_value_heads": 8}
    t = load_target(_write(tmp_path, cfg))
    assert (t.model.rope_theta, t.model.kv_heads) == (5e5, 8)


def test_missing_optional_fields_take_the_transformers_defaults(tmp_path: Path) -> None:
    cfg = {k: LLAMA2_7B[k] for k in ("model_type", "hidden_size", "num_hidden_layers")}
    cfg |= {k: LLAMA2_7B[k] for k in ("num_attention_heads", "intermediate_size", "vocab_size")}
    cfg["max_position_embeddings"] = 2048
    t = load_target(_write(tmp_path, cfg))
    assert (t.model.kv_heads, t.model.rope_base, t.model.ffn, t.norm_eps) == (
        32,
        1e4,
        "swiglu",
        None,
    )


MOE = "(mixture-of-experts is not modelled)"


@pytest.mark.parametrize(
    ("change", "field", "expected"),
    [
        ({"num_local_experts": 8}, "num_local_experts", MOE),
        ({"num_experts": 60}, "num_experts", MOE),
        ({"n_routed_experts": 64}, "n_routed_experts", MOE),
        ({"sliding_window": 4096}, "sliding_window", "expected null"),
        ({"attention_bias": True}, "attention_bias", "expected false (attention biases"),
        ({"mlp_bias": True}, "mlp_bias", "expected false (MLP biases are not modelled)"),
        ({"tie_word_embeddings": True}, "tie_word_embeddings", "expected false (tied embedding"),
        ({"rope_scaling": {"type": "linear", "factor": 2.0}}, "rope_scaling", "expected null"),
        ({"attention_dropout": 0.1}, "attention_dropout", "expected 0 or 0.0 (dropout"),
        ({"pretraining_tp": 2}, "pretraining_tp", "expected 1 (tensor-parallel"),
        ({"hidden_act": "gelu"}, "hidden_act", "a gated GELU MLP is not modelled"),
        ({"hidden_act": "gelu_pytorch_tanh"}, "hidden_act", "expected silu"),
        ({"hidden_act": "relu"}, "hidden_act", "expected silu (activation not modelled)"),
        ({"model_type": "gemma"}, "model_type", "expected one of llama, mistral, qwen2"),
        ({"architectures": ["GemmaForCausalLM"]}, "architectures", "expected [LlamaForCausalLM"),
        ({"architectures": ["MistralForCausalLM"]}, "architectures", "LlamaForCausalLM"),
        ({"qk_layernorm": True}, "qk_layernorm", "field not modelled by umup-sweep"),
        ({"head_dim": 256}, "head_dim", "expected hidden_size / num_attention_heads = 128"),
        ({"num_key_value_heads": 5}, "num_key_value_heads", "expected a divisor of num_attention"),
        ({"num_attention_heads": 30}, "num_attention_heads", "expected a divisor of hidden_size"),
        ({"hidden_size": None}, "hidden_size", "missing: expected a positive integer"),
        ({"vocab_size": "32000"}, "vocab_size", "expected an integer"),
        ({"rms_norm_eps": 0}, "rms_norm_eps", "expected > 0"),
        ({"layer_types": ["sliding_attention"]}, "layer_types", 'only "full_attention"'),
        (
            {"rope_scaling": None, "rope_parameters": {"rope_type": "yarn", "factor": 4.0}},
            "rope_parameters",
            "expected {rope_type: default, rope_theta}",
        ),
        (
            {"rope_scaling": None, "rope_parameters": {"rope_type": "llama3"}},
            "rope_parameters.rope_type",
            "expected default (RoPE scaling is not modelled)",
        ),
    ],
)
def test_fields_we_do_not_model_are_one_line_errors(
    tmp_path: Path, change: dict[str, Any], field: str, expected: str
) -> None:
    cfg = {k: v for k, v in (LLAMA2_7B | change).items() if v is not None or k == "rope_scaling"}
    path = _write(tmp_path, cfg)
    with pytest.raises(ConfigError) as err:
        load_target(path)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: {field}: ") and expected in message


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found \\(a local config.json is needed\\)"):
        load_target(tmp_path / "meta-llama" / "config.json")
    path = tmp_path / "config.json"
    path.write_text('{"hidden_size": 4096,}')
    with pytest.raises(
        ConfigError, match="not valid JSON at line 1, column 22: Expecting property name"
    ):
        load_target(path)
    path.write_text('{"hidden_size": 4096, "hidden_size": 512}')
    with pytest.raises(ConfigError, match="config.json: hidden_size: duplicate field"):
        load_target(path)
    path.write_text("[1, 2]")
    with pytest.raises(ConfigError, match="expected a JSON object of config fields"):
        load_target(path)
