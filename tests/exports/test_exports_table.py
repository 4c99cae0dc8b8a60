"""The per-tensor table for a 7B-like GQA target against u-μP's lr rules written out here from
the paper (arXiv 2407.17465, Table 3; the reference library's Adam rule): hidden weights
η·fan_in^-½·depth^-½, embedding η·width^-½, readout η; independent weight decay. And its name
patterns against the parameter names of a Hugging Face Llama."""

from __future__ import annotations

import fnmatch
import math
import re

import pytest
import yaml

from umup_sweep.core import rules
from umup_sweep.exports import aleph_alpha_scaling_export, param_group_table, unit_scaling_export
from umup_sweep.models import lr_table
from umup_sweep.spec import ModelSpec

# Llama-2-7B-like with grouped-query attention.
W, L, HEAD_DIM, KV, FFN, V = 4096, 32, 128, 8, 11008, 32000
SPEC = ModelSpec(
    width=W, depth=L, head_dim=HEAD_DIM, n_kv_heads=KV, ffn_hidden_size=FFN, vocab_size=V
)
ETA, WD = 0.75, 0.1


def hf_llama_shapes(depth: int = L) -> dict[str, tuple[int, ...]]:
    """Parameter name -> shape of a Hugging Face LlamaForCausalLM with this config (untied)."""
    heads = W // HEAD_DIM
    shapes: dict[str, tuple[int, ...]] = {"model.embed_tokens.weight": (V, W)}
    for i in range(depth):
        p = f"model.layers.{i}."
        shapes |= {
            p + "self_attn.q_proj.weight": (heads * HEAD_DIM, W),
            p + "self_attn.k_proj.weight": (KV * HEAD_DIM, W),
            p + "self_attn.v_proj.weight": (KV * HEAD_DIM, W),
            p + "self_attn.o_proj.weight": (W, heads * HEAD_DIM),
            p + "mlp.gate_proj.weight": (FFN, W),
            p + "mlp.up_proj.weight": (FFN, W),
            p + "mlp.down_proj.weight": (W, FFN),
            p + "input_layernorm.weight": (W,),
            p + "post_attention_layernorm.weight": (W,),
        }
    return shapes | {"model.norm.weight": (W,), "lm_head.weight": (V, W)}


def test_spec_is_the_7b_like_target() -> None:
    assert (SPEC.n_heads, SPEC.kv_heads, SPEC.ffn_hidden) == (32, 8, FFN)


def test_per_tensor_lr_follows_the_u_mup_rules() -> None:
    table = param_group_table(SPEC, {"lr": ETA, "weight_decay": WD})
    hidden = ETA / math.sqrt(W) / math.sqrt(L)  # fan-in = width, inside the residual stack
    expected = {
        "embedding": ([V, W], ETA / math.sqrt(W)),  # table row size is its fan-in; no depth
        "attn_q": ([32 * HEAD_DIM, W], hidden),
        "attn_k": ([KV * HEAD_DIM, W], hidden),
        "attn_v": ([KV * HEAD_DIM, W], hidden),
        "attn_out": ([W, W], hidden),
        "ffn_gate": ([FFN, W], hidden),
        "ffn_up": ([FFN, W], hidden),
        "ffn_down": ([W, FFN], ETA / math.sqrt(FFN) / math.sqrt(L)),
        "readout": ([V, W], ETA),  # μP readout: the plain lr
    }
    groups = table["param_groups"]
    assert set(groups) == set(expected) | {"norm", "final_norm"}
    for role, (shape, lr) in expected.items():
        row = groups[role]
        assert row["shape"] == shape, role
        assert row["lr"] == pytest.approx(lr, rel=1e-12), role
        # independent weight decay: torch's coupled value times the lr is WD for every tensor
        assert row["weight_decay"] == pytest.approx(WD / lr, rel=1e-12), role
        assert row["decay_per_step"] == WD
    assert groups["attn_q"]["lr"] == pytest.approx(0.75 / 64 / math.sqrt(32))  # 0.002071...
    for role in ("norm", "final_norm"):
        assert groups[role]["trainable"] is False and groups[role]["lr"] == 0.0
    assert groups["norm"]["lr_if_trained"] == pytest.approx(ETA / math.sqrt(L))
    assert groups["final_norm"]["lr_if_trained"] == pytest.approx(ETA)


def test_q_k_v_share_the_fused_qkv_lr() -> None:
    """Our qkv is one op with fan-in = width; split into q, k, v, each op keeps fan-in = width,
    so each keeps the output scale (rules.linear_scales) and the lr of the fused tensor."""
    fused = next(r for r in lr_table(SPEC, ETA) if r["name"] == "blocks.0.attn.qkv.weight")
    assert fused["shape"] == (32 * HEAD_DIM + 2 * KV * HEAD_DIM, W)
    groups = param_group_table(SPEC, {"lr": ETA})["param_groups"]
    rows = 0
    for role in ("attn_q", "attn_k", "attn_v"):
        out_features, fan_in = groups[role]["shape"]
        assert fan_in == groups[role]["fan_in"] == W
        assert (
            rules.linear_scales(fan_in, out_features, 1)[0]
            == rules.linear_scales(W, fused["shape"][0], 1)[0]
        )
        assert groups[role]["lr"] == pytest.approx(fused["lr"], rel=1e-12)
        rows += out_features
    assert rows == fused["shape"][0]
    assert groups["attn_k"]["ours"] == "blocks.*.attn.qkv.weight rows 4096:5120"


def test_name_patterns_cover_a_hf_llama_one_role_per_tensor() -> None:
    groups = param_group_table(SPEC, {"lr": ETA})["param_groups"]
    matched: dict[str, list[str]] = {role: [] for role in groups}
    for name, shape in hf_llama_shapes().items():
        by_regex = [r for r, g in groups.items() if re.fullmatch(g["regex"], name)]
        by_glob = [r for r, g in groups.items() if fnmatch.fnmatchcase(name, g["glob"])]
        assert by_regex == by_glob and len(by_regex) == 1, (name, by_regex, by_glob)
        assert list(shape) == groups[by_regex[0]]["shape"], name
        matched[by_regex[0]].append(name)
    for role, names in matched.items():
        assert len(names) == groups[role]["tensors"], role


def test_note_says_u_mup_only_and_gelu_has_no_gate() -> None:
    table = param_group_table(SPEC, {})
    assert "u-μP" in table["note"] and "standard-parametrized" in table["note"]
    assert "wrong" in table["note"]
    gelu = param_group_table(ModelSpec(width=64, ffn="gelu"), {})["param_groups"]
    assert "ffn_gate" not in gelu and {"ffn_up", "ffn_down"} <= set(gelu)
    with pytest.raises(ValueError, match="u-μP"):
        param_group_table(ModelSpec(parametrization="sp"), {})


def test_every_export_is_plain_yaml() -> None:
    hps, train = {"lr": ETA, "weight_decay": WD}, {"beta1": 0.9, "grad_clip": 1.0}
    for export in (
        param_group_table(SPEC, hps),
        unit_scaling_export(SPEC, hps, train),
        aleph_alpha_scaling_export(SPEC, hps, train),
    ):
        assert yaml.safe_load(yaml.safe_dump(export, sort_keys=False)) == export
