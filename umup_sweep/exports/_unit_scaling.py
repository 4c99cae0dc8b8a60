"""Export for the reference u-μP library `unit-scaling` (graphcore-research, tested with 0.3.5).

Facts this relies on (read from unit_scaling 0.3.5's source, `_modules.py` and `optim.py`):

- `TransformerDecoder(hidden_size, vocab_size, layers, heads, dropout_p=0.0,
  residual_scaling=transformer_residual_scaling_rule())`: embedding → `TransformerStack` of
  `layers` pre-norm `TransformerLayer`s → `RMSNorm` (no weight) → `LinearReadout`. Its stack
  calls `residual_scaling(2*i, 2*layers)` / `(2*i+1, 2*layers)`: the same rule, with the same
  branch count, as `umup_sweep.core.rules.residual_taus`.
- `transformer_residual_scaling_rule(residual_mult, residual_attn_ratio)`: the u-μP
  multipliers under the same names and meaning as ours.
- `MHSA(hidden_size, heads, is_causal, dropout_p, mult)`: one fused `linear_qkv` of
  3·hidden_size rows (no grouped-query attention), logits × mult/d_head; `TransformerLayer`
  does not pass `mult`, but `MHSA.forward` reads `self.mult`, so it can be set afterwards.
- `MLP(hidden_size, expansion_factor=4)`: always SwiGLU, `silu_glu` without `mult`;
  `TransformerLayer` passes no expansion factor (intermediate size fixed at 4·hidden_size).
- No positional encoding at all (its docstring: it "lacks ... positional embeddings").
- `TransformerDecoder.loss` calls `cross_entropy` without `mult`; `functional.cross_entropy`
  takes `mult` (forward-only logit scale = our `loss_softmax_mult`).
- `optim.AdamW` / `optim.SGD` (readout_constraint=None): per-tensor lr = lr × depth^-½ (inside
  the stack) × fan_in^-½ for "weight" tensors (the embedding is a "weight" whose fan-in is
  hidden_size), × 1 for "output" (readout) and norms; `independent_weight_decay=True` gives
  torch weight_decay / tensor lr. Both are exactly `umup_sweep.core.optim`'s rules.

This module only writes names and numbers; it never imports `unit_scaling`.
"""

from __future__ import annotations

from typing import Any

from umup_sweep.exports._common import check_umup, resolve_hps, resolve_train
from umup_sweep.spec import ModelSpec

TESTED_VERSION = "0.3.5"
REFERENCE_FFN_EXPANSION = 4

NOTES = [
    "lr: unit_scaling.optim applies the same per-tensor u-μP rules as umup-sweep (hidden "
    "weights lr·fan_in^-½, embedding lr·hidden_size^-½, readout lr, × layers^-½ inside the "
    "TransformerStack), so the recommended global lr is passed unchanged.",
    "weight_decay: independent_weight_decay=True gives torch weight_decay / (tensor lr), so "
    "each tensor decays by weight_decay × the schedule factor per step, as in umup-sweep.",
    "depth: `layers` counts transformer blocks; TransformerStack applies the residual rule to "
    "2·layers branches and scales lr by layers^-½, as umup-sweep does: no conversion.",
    "attn_softmax_mult is no TransformerDecoder argument: set `mhsa.mult` on every layer after "
    "building (MHSA.forward reads it), as `set_attributes` says.",
    "loss_softmax_mult: TransformerDecoder.loss ignores it; compute the loss with "
    "unit_scaling.functional.cross_entropy(..., mult=loss_softmax_mult) (the snippet's loss_fn).",
]


def unsupported_features(spec: ModelSpec, hps: dict[str, float]) -> list[str]:
    """What the target has that `unit_scaling.TransformerDecoder` cannot build (empty if none).

    Example:
        >>> unsupported_features(ModelSpec(width=64, pos="none"), {})
        []
        >>> [u.split(":")[0] for u in unsupported_features(ModelSpec(width=64, n_kv_heads=1), {})]
        ['pos=rope', 'n_kv_heads=1']
    """
    h = resolve_hps(spec, hps)
    out = []
    if spec.pos == "rope":
        out.append("pos=rope: TransformerDecoder has no positional encoding; the block builds none")
    if spec.kv_heads != spec.n_heads:
        out.append(
            f"n_kv_heads={spec.kv_heads}: MHSA has no grouped-query attention (its fused qkv has "
            f"3·hidden_size rows); the block builds multi-head attention with {spec.n_heads} "
            "kv heads"
        )
    if spec.ffn != "swiglu":
        out.append(f"ffn={spec.ffn}: TransformerLayer's MLP is always SwiGLU")
    if spec.ffn_hidden != REFERENCE_FFN_EXPANSION * spec.width:
        out.append(
            f"ffn_hidden={spec.ffn_hidden}: the MLP's intermediate size is fixed at "
            f"{REFERENCE_FFN_EXPANSION}·hidden_size = {REFERENCE_FFN_EXPANSION * spec.width}"
        )
    if spec.norm != "rms":
        out.append(f"norm={spec.norm}: TransformerLayer always uses RMSNorm")
    if h["ffn_act_mult"] != 1.0:
        out.append(
            f"ffn_act_mult={h['ffn_act_mult']:g}: the MLP calls silu_glu without mult (always 1)"
        )
    return out


def _optimizer_block(h: dict[str, float], t: dict[str, Any]) -> dict[str, Any]:
    """`unit_scaling.optim.AdamW` (or SGD, momentum = beta1) with our global lr and decay."""
    if t["optimizer"] == "sgd":
        args: dict[str, Any] = {
            "lr": h["lr"],
            "momentum": t["beta1"],
            "weight_decay": h["weight_decay"],
            "independent_weight_decay": True,
            "readout_constraint": None,
        }
        return {"class": "unit_scaling.optim.SGD", "args": args}
    args = {
        "lr": h["lr"],
        "weight_decay": h["weight_decay"],
        "independent_weight_decay": True,
        "betas": [t["beta1"], t["beta2"]],
        "eps": t["eps"],
    }
    return {"class": "unit_scaling.optim.AdamW", "args": args}


def _snippet(model: dict[str, Any], optimizer: dict[str, Any], loss_mult: float) -> str:
    """Python that builds the block's model, optimizer and loss with `unit_scaling`."""
    args = ", ".join(f"{k}={v!r}" for k, v in model["args"].items())
    rule = ", ".join(f"{k}={v!r}" for k, v in model["residual_scaling"]["args"].items())
    opt_args = dict(optimizer["args"])
    if "betas" in opt_args:
        opt_args["betas"] = tuple(opt_args["betas"])
    opt_kw = ", ".join(f"{k}={v!r}" for k, v in opt_args.items())
    attn_mult = model["set_attributes"]["layers.*.mhsa.mult"]
    return (
        "import unit_scaling as uu\n"
        "import unit_scaling.functional as U\n"
        "import unit_scaling.optim\n\n"
        f"model = uu.TransformerDecoder(\n    {args},\n"
        f"    residual_scaling=uu.transformer_residual_scaling_rule({rule}),\n)\n"
        "for layer in model.layers:\n"
        f"    layer.mhsa.mult = {attn_mult!r}  # attn_softmax_mult\n"
        f"opt = {optimizer['class']}(model.parameters(), {opt_kw})\n\n\n"
        "def loss_fn(input_ids):\n"
        "    logits = model(input_ids).float()\n"
        "    return U.cross_entropy(\n"
        "        logits[..., :-1, :].flatten(end_dim=-2),\n"
        "        input_ids[..., 1:].flatten(),\n"
        f"        mult={loss_mult!r},  # loss_softmax_mult\n"
        "    )\n"
    )


def unit_scaling_export(
    spec: ModelSpec, hps: dict[str, float], train: dict[str, Any]
) -> dict[str, Any]:
    """A ready `unit_scaling` block: TransformerDecoder arguments, optimizer, loss, snippet.

    Args:
        spec: the u-μP target (ValueError for an SP one).
        hps: lr and weight_decay (multipliers, if given, must equal the spec's).
        train: optimizer settings (optimizer, beta1, beta2, eps; missing: TrainSpec defaults).

    Returns:
        {library, tested_version, model: {class, args, residual_scaling, set_attributes},
        loss, optimizer: {class, args}, unsupported, notes, snippet}.

    Example:
        >>> block = unit_scaling_export(ModelSpec(width=64, pos="none"), {"lr": 0.5}, {})
        >>> block["model"]["args"]
        {'hidden_size': 64, 'vocab_size': 256, 'layers': 2, 'heads': 2}
        >>> block["optimizer"]["class"], block["optimizer"]["args"]["lr"], block["unsupported"]
        ('unit_scaling.optim.AdamW', 0.5, [])
    """
    check_umup(spec)
    h, t = resolve_hps(spec, hps), resolve_train(train)
    model = {
        "class": "unit_scaling.TransformerDecoder",
        "args": {
            "hidden_size": spec.width,
            "vocab_size": spec.vocab_size,
            "layers": spec.depth,
            "heads": spec.n_heads,
        },
        "residual_scaling": {
            "function": "unit_scaling.transformer_residual_scaling_rule",
            "args": {
                "residual_mult": h["residual_mult"],
                "residual_attn_ratio": h["residual_attn_ratio"],
            },
        },
        "set_attributes": {"layers.*.mhsa.mult": h["attn_softmax_mult"]},
    }
    loss = {
        "function": "unit_scaling.functional.cross_entropy",
        "args": {"mult": h["loss_softmax_mult"]},
    }
    optimizer = _optimizer_block(h, t)
    return {
        "library": "unit-scaling",
        "tested_version": TESTED_VERSION,
        "model": model,
        "loss": loss,
        "optimizer": optimizer,
        "unsupported": unsupported_features(spec, h),
        "notes": list(NOTES),
        "snippet": _snippet(model, optimizer, h["loss_softmax_mult"]),
    }
