"""The Aleph-Alpha/scaling export against that codebase's documented names and maths.

The codebase is not installable here, so its formulas are transcribed below from
github.com/Aleph-Alpha/scaling at commit 737f8558e0af99aa1a9a04aadc31210c87a06afb (files named
at each function) and applied to the export's values; the results must equal our proxy's
residual scales and `lr_table`'s per-tensor learning rates and weight decays.
"""

from __future__ import annotations

import math
import re

import pytest

from umup_sweep.exports import aleph_alpha_scaling_export, two_branch_residual_mult
from umup_sweep.models import build_model, lr_table
from umup_sweep.spec import ModelSpec

# src/scaling/transformer/context/config.py, class UMuPConfig: every field.
UMUP_FIELDS = {
    "enable",
    "allow_non_umup_params",
    "normalize_depth_to_num_layers",
    "attn_mult",
    "act_mult",
    "residual_mult",
    "residual_attn_ratio",
    "loss_mult",
}
# Same file, TransformerArchitectureConfig: the fields the export sets, with their enum values.
ARCH_FIELDS = {
    "vocab_size", "hidden_size", "num_layers", "num_attention_heads", "attention_num_kv_heads",
    "sequence_length", "norm_type", "relative_position_embedding_type", "rotary_embedding_base",
    "mlp_type", "mlp_factor", "attention_bias", "mlp_bias", "weight_tying", "umup",
}  # fmt: skip
ENUMS = {
    "norm_type": {"layernorm", "rms"},
    "relative_position_embedding_type": {"none", "rotary", "rotary_complex"},
    "mlp_type": {"default", "swiglu"},
}
# TrainingGroupConfig, LearningRateSchedulerConfig, OptimizerConfig fields.
GROUP_FIELDS = {
    "group_name", "parameters_include", "parameters_exclude", "weight_decay",
    "independent_weight_decay", "learning_rate_scheduler",
}  # fmt: skip
SCHEDULER_FIELDS = {
    "learning_rate", "learning_rate_minimum", "learning_rate_decay_style",
    "learning_rate_decay_iters", "learning_rate_warmup_steps", "learning_rate_warmup_delay_steps",
}  # fmt: skip
OPTIMIZER_FIELDS = {
    "method", "beta1", "beta2", "eps", "gradient_clipping", "allreduce_bucket_size",
    "loss_scaler", "zero", "zero_save_static", "debug_log",
}  # fmt: skip

MULTS = {
    "residual_mult": 0.25,
    "residual_attn_ratio": 2.0,
    "attn_softmax_mult": 1.5,
    "ffn_act_mult": 0.7,
    "loss_softmax_mult": 3.0,
}
SPEC = ModelSpec(
    width=64, depth=5, head_dim=16, n_kv_heads=2, vocab_size=101, ffn_ratio=3.0, **MULTS
)
HPS = {"lr": 0.6, "weight_decay": 0.1, **MULTS}


def aa_depth(arch: dict) -> int:
    """src/scaling/transformer/model/model.py, init_model."""
    n = arch["num_layers"]
    return n if arch["umup"]["normalize_depth_to_num_layers"] else 2 * n


def aa_residual_mults(residual_mult: float, residual_attn_ratio: float, num_layers: int) -> list:
    """src/scaling/core/nn/umup.py, get_umup_transformer_residual_mults."""
    mlp = residual_mult * (2 / (1 + residual_attn_ratio**2)) ** 0.5
    return [residual_attn_ratio * mlp, mlp] * num_layers


def aa_residual_scales(mults: list, index: int, depth: int) -> tuple[float, float]:
    """src/scaling/core/nn/umup.py, get_umup_residual_scales (pre_norm=True)."""
    variances = [(r * depth**-0.5) ** 2 for r in mults]
    tau = variances[index] / (1 + sum(variances[:index]))
    return (tau / (tau + 1)) ** 0.5, (1 / (tau + 1)) ** 0.5


def aa_scales(arch: dict) -> list[tuple[float, float]]:
    """(branch, skip) of every residual branch (attn, mlp, attn, ...) the codebase would use."""
    u = arch["umup"]
    mults = aa_residual_mults(u["residual_mult"], u["residual_attn_ratio"], arch["num_layers"])
    return [aa_residual_scales(mults, k, aa_depth(arch)) for k in range(len(mults))]


def our_scales(spec: ModelSpec) -> list[tuple[float, float]]:
    """(branch, skip) of every residual branch of our built proxy."""
    out = []
    for block in build_model(spec).blocks:
        out += [(block.attn.branch_out, block.skip_attn), (block.ffn.branch_out, block.skip_ffn)]
    return out


def test_umup_block_has_exactly_the_codebase_fields_and_our_values() -> None:
    block = aleph_alpha_scaling_export(SPEC, HPS, {})
    arch = block["transformer_architecture"]
    assert set(arch["umup"]) == UMUP_FIELDS
    assert arch["umup"] == {
        "enable": True,
        "allow_non_umup_params": False,
        "normalize_depth_to_num_layers": True,
        "attn_mult": 1.5,
        "act_mult": 0.7,
        "residual_mult": 0.25,
        "residual_attn_ratio": 2.0,
        "loss_mult": 3.0,
    }
    assert set(arch) <= ARCH_FIELDS
    for key, values in ENUMS.items():
        assert arch[key] in values
    assert (arch["hidden_size"], arch["num_layers"], arch["num_attention_heads"]) == (64, 5, 4)
    assert arch["attention_num_kv_heads"] == 2
    assert arch["hidden_size"] * arch["mlp_factor"] == SPEC.ffn_hidden == 192
    assert (arch["weight_tying"], arch["attention_bias"], arch["mlp_bias"]) == (False,) * 3
    assert set(block["training_groups"][0]) <= GROUP_FIELDS
    assert set(block["training_groups"][0]["learning_rate_scheduler"]) <= SCHEDULER_FIELDS
    assert set(block["optimizer"]) <= OPTIMIZER_FIELDS
    assert block["source"]["commit"] == "737f8558e0af99aa1a9a04aadc31210c87a06afb"
    assert block["unsupported"] == []


def test_residual_scales_equal_ours_with_the_flag_set() -> None:
    arch = aleph_alpha_scaling_export(SPEC, HPS, {})["transformer_architecture"]
    for theirs, ours in zip(aa_scales(arch), our_scales(SPEC), strict=True):
        assert theirs == pytest.approx(ours, rel=1e-12)


def test_two_branch_depth_needs_sqrt2_residual_mult() -> None:
    """Without the flag (depth = 2·layers) our residual_mult 0.25 must become 0.25·√2; the
    unconverted value gives other scales, so the flag (or the conversion) matters."""
    assert two_branch_residual_mult(0.25) == pytest.approx(0.25 * math.sqrt(2))
    arch = aleph_alpha_scaling_export(SPEC, HPS, {})["transformer_architecture"]
    arch["umup"] = arch["umup"] | {"normalize_depth_to_num_layers": False}
    wrong = aa_scales(arch)
    arch["umup"]["residual_mult"] = two_branch_residual_mult(0.25)
    for theirs, ours in zip(aa_scales(arch), our_scales(SPEC), strict=True):
        assert theirs == pytest.approx(ours, rel=1e-12)
    assert wrong[0][0] != pytest.approx(our_scales(SPEC)[0][0], rel=1e-3)


def aa_lr_factor(weight_type: str, shape: tuple[int, int], on_residual: bool, depth: int) -> float:
    """src/scaling/core/nn/umup.py, get_parameter_multipliers: the lr factor (lr_gain)."""
    factor = {
        "INPUT_EMBEDDING": shape[1] ** -0.5,  # hidden_size
        "HIDDEN_WEIGHT": shape[1] ** -0.5,  # n_in
        "OUTPUT_WEIGHT": 1.0,
        "NORM": 1.0,
    }[weight_type]
    return factor * (depth**-0.5 if on_residual else 1.0)


def aa_tensors(arch: dict) -> list[tuple[str, str, tuple[int, int], bool]]:
    """(name, weight type, shape, on_residual) of the codebase's transformer (layer.py,
    attention.py, mlp.py, lm_head.py, embedding.py; swiglu: silu acts on dense_in)."""
    h, layers = arch["hidden_size"], arch["num_layers"]
    ffn = int(h * arch["mlp_factor"])
    kv = (
        (arch["attention_num_kv_heads"] or arch["num_attention_heads"])
        * h
        // arch["num_attention_heads"]
    )
    out = [("embedding.embedding.weight", "INPUT_EMBEDDING", (arch["vocab_size"], h), False)]
    for i in range(layers):
        p = f"layers.{i}."
        out += [
            (p + "input_layernorm.weight", "NORM", (h, h), True),
            (p + "self_attention.query_key_value.weight", "HIDDEN_WEIGHT", (h + 2 * kv, h), True),
            (p + "self_attention.dense.weight", "HIDDEN_WEIGHT", (h, h), True),
            (p + "post_attention_layernorm.weight", "NORM", (h, h), True),
            (p + "mlp.dense_in.weight", "HIDDEN_WEIGHT", (ffn, h), True),
            (p + "mlp.siglu_weight.weight", "HIDDEN_WEIGHT", (ffn, h), True),
            (p + "mlp.dense_out.weight", "HIDDEN_WEIGHT", (h, ffn), True),
        ]
    return out + [
        ("norm.norm.weight", "NORM", (h, h), False),
        ("lm_head.linear.weight", "OUTPUT_WEIGHT", (arch["vocab_size"], h), False),
    ]


# The codebase's tensor -> ours (its SwiGLU applies silu to dense_in: our gate).
TO_OURS = {
    "embedding.embedding.weight": "embedding.weight",
    "self_attention.query_key_value.weight": "attn.qkv.weight",
    "self_attention.dense.weight": "attn.out.weight",
    "mlp.dense_in.weight": "ffn.gate.weight",
    "mlp.siglu_weight.weight": "ffn.up.weight",
    "mlp.dense_out.weight": "ffn.down.weight",
    "lm_head.linear.weight": "readout.weight",
}


def _our_name(name: str) -> str:
    m = re.fullmatch(r"layers\.(\d+)\.(.*)", name)
    return f"blocks.{m.group(1)}.{TO_OURS[m.group(2)]}" if m else TO_OURS[name]


def test_per_tensor_lr_and_weight_decay_equal_ours() -> None:
    """The codebase's lr = lr_gain × learning_rate and, with independent_weight_decay, torch's
    weight decay = weight_decay / that lr (parameter_group.py), for every tensor the training
    group keeps (norm weights are excluded by regex, as our norms have no weights)."""
    block = aleph_alpha_scaling_export(SPEC, HPS, {})
    arch, group = block["transformer_architecture"], block["training_groups"][0]
    assert block["training"]["allow_missing_params_in_optimizer"] is True
    lr, wd = group["learning_rate_scheduler"]["learning_rate"], group["weight_decay"]
    assert group["independent_weight_decay"] is True
    depth = aa_depth(arch)
    ours = {r["name"]: r for r in lr_table(SPEC, lr=0.6, weight_decay=0.1)}
    trained = {}
    for name, kind, shape, on_residual in aa_tensors(arch):
        if any(re.search(rx, name) for rx in group["parameters_exclude"]):
            assert kind == "NORM", name  # only the norms are left out
            continue
        t_lr = aa_lr_factor(kind, shape, on_residual, depth) * lr
        trained[_our_name(name)] = (t_lr, wd / t_lr)
    assert trained.keys() == ours.keys()
    for name, (t_lr, t_wd) in trained.items():
        assert t_lr == pytest.approx(ours[name]["lr"], rel=1e-12), name
        assert t_wd == pytest.approx(ours[name]["weight_decay"], rel=1e-12), name


def test_optimizer_and_schedule_carry_the_training_settings() -> None:
    train = {"beta1": 0.85, "beta2": 0.99, "eps": 1e-6, "grad_clip": 0.5, "final_lr_frac": 0.2}
    block = aleph_alpha_scaling_export(SPEC, HPS, train | {"schedule": "linear"})
    assert block["optimizer"] == {
        "method": "adamw",
        "beta1": 0.85,
        "beta2": 0.99,
        "eps": 1e-6,
        "gradient_clipping": 0.5,
    }
    sched = block["training_groups"][0]["learning_rate_scheduler"]
    assert sched == {
        "learning_rate": 0.6,
        "learning_rate_minimum": pytest.approx(0.12),
        "learning_rate_decay_style": "linear",
    }
    assert aleph_alpha_scaling_export(SPEC, HPS, {})["optimizer"]["gradient_clipping"] == 0.0


def test_unsupported_lists_what_the_codebase_cannot_take() -> None:
    # 448 · (920/448) is 919.9999999999999 in floating point: the codebase's assert would fail
    odd = ModelSpec(width=448, head_dim=64, ffn_ratio=920 / 448)
    assert odd.ffn_hidden == 920 and 448 * (920 / 448) != 920
    assert [u.split(":")[0] for u in aleph_alpha_scaling_export(odd, {}, {})["unsupported"]] == [
        "ffn_hidden=920"
    ]
    exact = ModelSpec(width=4096, head_dim=128, ffn_hidden_size=11008, rope_theta=5e5)
    block = aleph_alpha_scaling_export(exact, {}, {})
    assert block["unsupported"] == []
    assert block["transformer_architecture"]["mlp_factor"] == 2.6875
    assert block["transformer_architecture"]["rotary_embedding_base"] == 500000
    fractional = aleph_alpha_scaling_export(ModelSpec(rope_theta=1e4 + 0.5), {}, {})
    assert [u.split(":")[0] for u in fractional["unsupported"]] == ["rope_theta=10000.5"]
    sgd = aleph_alpha_scaling_export(SPEC, HPS, {"optimizer": "sgd"})["unsupported"]
    assert [u.split(":")[0] for u in sgd] == ["optimizer=sgd"]
    with pytest.raises(ValueError, match="u-μP"):
        aleph_alpha_scaling_export(ModelSpec(parametrization="sp"), {}, {})
    with pytest.raises(ValueError, match="differs from the spec"):
        aleph_alpha_scaling_export(SPEC, HPS | {"residual_mult": 1.0}, {})
