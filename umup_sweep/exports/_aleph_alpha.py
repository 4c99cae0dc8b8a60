"""Export for Aleph-Alpha's `scaling` training codebase (the one behind its u-μP 1B/3B/7B models).

Facts this relies on, read from github.com/Aleph-Alpha/scaling at commit
737f8558e0af99aa1a9a04aadc31210c87a06afb (2024-10-30):

- `src/scaling/transformer/context/config.py`, `UMuPConfig` (under
  `transformer_architecture.umup`), fields and defaults: `enable` False,
  `allow_non_umup_params` False, `normalize_depth_to_num_layers` False, `attn_mult` 1.0
  ("attention softmax temperature"), `act_mult` 1.0 ("temperature for mlp nonlinearity"),
  `residual_mult` 1.0, `residual_attn_ratio` 1.0, `loss_mult` 1.0 ("cross-entropy softmax
  temperature"). Same file: `TransformerArchitectureConfig` (`vocab_size`, `hidden_size`,
  `num_layers`, `num_attention_heads`, `attention_num_kv_heads`, `sequence_length`,
  `norm_type` layernorm|rms, `relative_position_embedding_type` none|rotary|rotary_complex,
  `mlp_type` default|swiglu, `mlp_factor` (a float; `mlp.py` asserts hidden_size × it is an
  integer), `rotary_embedding_base` (an int, default 10000), `attention_bias` True,
  `mlp_bias` True, `weight_tying` True) and `TrainingGroupConfig` (`group_name`,
  `parameters_include`, `parameters_exclude` (regexes, `re.search`), `weight_decay`,
  `independent_weight_decay` False, `learning_rate_scheduler`).
- `src/scaling/transformer/model/model.py`, `init_model`: depth = `num_layers` if
  `normalize_depth_to_num_layers` else 2·`num_layers`.
- `src/scaling/core/nn/umup.py`: per-tensor lr factor (`lr_gain`): embedding hidden_size^-½,
  hidden weights fan_in^-½, output weight and norms 1, × depth^-½ for tensors `on_residual`
  (every block tensor; not the embedding, final norm or LM head). Residual branch/skip scales:
  with r_k = the k-th entry of [attn, mlp]·num_layers (attn = ratio·mlp, mlp =
  residual_mult·√(2/(1+ratio²))), v_k = r_k²/depth, t = v_k/(1 + Σ_{j<k} v_j), branch =
  √(t/(1+t)), skip = √(1/(1+t)) (pre-norm). Attention logits × attn_mult/head_dim; the
  attention output scale uses `sequence_length`; SwiGLU: silu(act_mult·x)·gate/act_mult;
  cross-entropy: logits × loss_mult forward, V/√(V-1) backward.
- `src/scaling/core/optimizer/parameter_group.py`: one torch AdamW group per `lr_gain`, with
  lr = lr_gain × `learning_rate` (and × `learning_rate_minimum`); with
  `independent_weight_decay` torch gets weight_decay / that lr. So the codebase applies the
  u-μP lr rules itself: it takes the global lr. `optimizer_config.py`: `method` adamw only,
  `beta1`, `beta2`, `eps`, `gradient_clipping` (default 1.0; 0 disables).
- `src/scaling/core/nn/norm/rms_norm.py`: the norms have a trainable weight (lr factor 1,
  × depth^-½ in the blocks); `tests/transformer/test_umup_regression.py` excludes them
  (`parameters_exclude: ["norm"]`, `allow_missing_params_in_optimizer: true`) to match the
  non-parametric norms of unit-scaling, as umup-sweep's proxies have.

Depth: with depth = num_layers the residual scales above are exactly
`umup_sweep.core.rules.residual_taus` (t = tau²) and the lr factor is our depth^-½, so the
export sets `normalize_depth_to_num_layers: true` and passes every multiplier unchanged.
"""

from __future__ import annotations

import math
from typing import Any

from umup_sweep.exports._common import check_umup, resolve_hps, resolve_train
from umup_sweep.spec import ModelSpec

SOURCE = {
    "repository": "Aleph-Alpha/scaling",
    "commit": "737f8558e0af99aa1a9a04aadc31210c87a06afb",
    "file": "src/scaling/transformer/context/config.py",
    "class": "UMuPConfig",
}
# Our HP name -> UMuPConfig's field.
UMUP_NAMES = {
    "attn_softmax_mult": "attn_mult",
    "ffn_act_mult": "act_mult",
    "residual_mult": "residual_mult",
    "residual_attn_ratio": "residual_attn_ratio",
    "loss_softmax_mult": "loss_mult",
}

NOTES = [
    "depth: umup-sweep counts transformer blocks; the codebase's default "
    "(normalize_depth_to_num_layers: false) counts 2 residual branches per layer. The block "
    "sets it true, so its residual scales and its depth^-½ lr factor equal ours and "
    "residual_mult passes unchanged. Keeping it false would need residual_mult × √2 (see "
    "`two_branch_residual_mult`) AND every block tensor's lr × √2, which no global lr gives.",
    "lr: the codebase multiplies learning_rate by each tensor's u-μP lr factor itself "
    "(lr_gain: embedding hidden_size^-½, hidden weights fan_in^-½ × depth^-½, LM head 1): give "
    "it the global lr, not per-tensor values.",
    "weight_decay: independent_weight_decay: true makes the decay per step weight_decay × the "
    "schedule factor, whatever the tensor's lr, as in umup-sweep.",
    "norms: umup-sweep's norms have no weights; the training group excludes the codebase's "
    "norm weights (parameters_exclude: [norm], kept at 1) as its own u-μP regression test does.",
    "schedule: set learning_rate_warmup_steps (= warmup_frac × your steps) and "
    "learning_rate_decay_iters (= your steps) for the target run.",
    "sequence_length is the spec's seq_len: set your run's. The codebase's attention output "
    "scale uses sequence_length, umup-sweep's the batch's length: train at the full length.",
]


def two_branch_residual_mult(residual_mult: float) -> float:
    """The codebase's `residual_mult` that gives our residual scales when depth = 2·layers.

    Each branch's variance there is r²/(2·layers) against ours α²/layers, and r, α are both
    linear in residual_mult (same ratio formula), so r = √2·α. (The lr's depth^-½ then
    differs by √2 too, which is why the export sets `normalize_depth_to_num_layers`.)

    Example:
        >>> round(two_branch_residual_mult(0.25), 6)
        0.353553
    """
    return math.sqrt(2.0) * residual_mult


def _architecture(spec: ModelSpec, h: dict[str, float]) -> dict[str, Any]:
    """`transformer_architecture` keys for the target (AA's names), with its `umup` block."""
    arch: dict[str, Any] = {
        "vocab_size": spec.vocab_size,
        "hidden_size": spec.width,
        "num_layers": spec.depth,
        "num_attention_heads": spec.n_heads,
        "attention_num_kv_heads": spec.kv_heads if spec.kv_heads != spec.n_heads else None,
        "sequence_length": spec.seq_len,
        "norm_type": "rms" if spec.norm == "rms" else "layernorm",
        "relative_position_embedding_type": "rotary" if spec.pos == "rope" else "none",
        "rotary_embedding_base": int(spec.rope_base),
        "mlp_type": "swiglu" if spec.ffn == "swiglu" else "default",
        "mlp_factor": spec.ffn_hidden / spec.width,
        "attention_bias": False,
        "mlp_bias": False,
        "weight_tying": False,
    }
    arch["umup"] = {
        "enable": True,
        "allow_non_umup_params": False,
        "normalize_depth_to_num_layers": True,
        **{theirs: h[ours] for ours, theirs in UMUP_NAMES.items()},
    }
    return arch


def _unsupported(spec: ModelSpec, t: dict[str, Any]) -> list[str]:
    """What the codebase cannot reproduce for this target (empty if nothing)."""
    out = []
    factor = spec.ffn_hidden / spec.width
    if spec.width * factor != spec.ffn_hidden:  # mlp.py asserts int(h·f) == h·f
        out.append(
            f"ffn_hidden={spec.ffn_hidden}: mlp_factor {factor!r} × hidden_size is not exactly "
            "that integer in floating point; the codebase asserts it is"
        )
    if spec.pos == "rope" and spec.rope_base != int(spec.rope_base):
        out.append(
            f"rope_theta={spec.rope_base!r}: rotary_embedding_base is an int; the block rounds "
            f"it down to {int(spec.rope_base)}"
        )
    if t["optimizer"] != "adamw":
        out.append(
            f"optimizer={t['optimizer']}: the codebase only has adamw; the HPs were tuned "
            "with another optimizer"
        )
    return out


def aleph_alpha_scaling_export(
    spec: ModelSpec, hps: dict[str, float], train: dict[str, Any]
) -> dict[str, Any]:
    """Config blocks for Aleph-Alpha/scaling: architecture + `umup`, optimizer, training group.

    Args:
        spec: the u-μP target (ValueError for an SP one).
        hps: lr and weight_decay (multipliers, if given, must equal the spec's).
        train: optimizer/schedule settings (missing: TrainSpec defaults).

    Returns:
        {source, transformer_architecture (with umup), optimizer, training, training_groups,
        unsupported, notes}: merge the config sections into the codebase's YAML.

    Example:
        >>> block = aleph_alpha_scaling_export(ModelSpec(width=64, residual_mult=0.25), {}, {})
        >>> umup = block["transformer_architecture"]["umup"]
        >>> umup["normalize_depth_to_num_layers"], umup["residual_mult"], umup["attn_mult"]
        (True, 0.25, 1.0)
        >>> block["training_groups"][0]["learning_rate_scheduler"]["learning_rate"]
        1.0
    """
    check_umup(spec)
    h, t = resolve_hps(spec, hps), resolve_train(train)
    schedule = {
        "learning_rate": h["lr"],
        "learning_rate_minimum": h["lr"]
        * (t["final_lr_frac"] if t["schedule"] != "constant" else 1),
        "learning_rate_decay_style": t["schedule"],
    }
    group = {
        "group_name": "umup",
        "parameters_exclude": ["norm"],
        "weight_decay": h["weight_decay"],
        "independent_weight_decay": True,
        "learning_rate_scheduler": schedule,
    }
    optimizer = {
        "method": "adamw",
        "beta1": t["beta1"],
        "beta2": t["beta2"],
        "eps": t["eps"],
        "gradient_clipping": float(t["grad_clip"] or 0.0),
    }
    return {
        "source": dict(SOURCE),
        "transformer_architecture": _architecture(spec, h),
        "optimizer": optimizer,
        "training": {"allow_missing_params_in_optimizer": True},
        "training_groups": [group],
        "unsupported": _unsupported(spec, t),
        "notes": list(NOTES),
    }
