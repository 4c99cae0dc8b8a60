"""A plain per-tensor table (lr and weight decay by role and name pattern) for any u-μP trainer.

Rows are keyed by role and carry a glob and an anchored regex over Hugging Face Llama names
(`model.layers.*.self_attn.q_proj.weight`, ...; `*` is the layer index), the target's real
shape, and the lr and weight decay u-μP gives that tensor. The values come from `lr_table`
(our optimizer on the target built on the meta device). Our model fuses q, k and v into one
`qkv` tensor; the u-μP lr rule is per op fan-in (`core.optim.lr_scale_adam`: hidden weights
lr·fan_in^-½ × depth^-½, fan_in = the tensor's last dim = width for every row of qkv), so
q, k and v each get that rule applied to their own shape, which is the fused tensor's lr
(checked). Norms: our proxies' norms have no weight, so HF's norm weights are marked
`trainable: false` (keep them at 1), with the lr u-μP would give them if trained.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from typing import Any

from umup_sweep.core import fan_in, independent_weight_decay, lr_scale_adam
from umup_sweep.exports._common import check_umup, resolve_hps
from umup_sweep.spec import ModelSpec

NOTE = (
    "These learning rates and weight decays assume a unit-scaled (u-μP) model: weights "
    "initialised N(0, 1) with the scales in the ops (u-μP, arXiv 2407.17465). They are wrong "
    "for a standard-parametrized model (e.g. a stock Hugging Face Llama): do not apply them "
    "to one."
)
CONVENTIONS = {
    "optimizer": "AdamW (the same rules hold for SGD with an unconstrained readout)",
    "lr": "per-tensor peak lr; follow it with your schedule (warmup, decay) like the global lr",
    "weight_decay": "torch's (lr-coupled) value for the group: decay_per_step / lr",
    "decay_per_step": "the independent decay each step at the peak lr (times the schedule "
    "factor): the recommended weight_decay, the same for every tensor",
    "depth_scale": "number of transformer blocks for tensors inside the residual stack "
    "(lr × depth^-½), null outside it",
    "glob": "Hugging Face Llama names; * is the layer index",
    "regex": "the glob as an anchored regular expression (re.fullmatch)",
}
# role -> (HF Llama glob, our parameter name with layer indices as *, slice of qkv or None)
ROLES: dict[str, tuple[str, str, str | None]] = {
    "embedding": ("model.embed_tokens.weight", "embedding.weight", None),
    "attn_q": ("model.layers.*.self_attn.q_proj.weight", "blocks.*.attn.qkv.weight", "q"),
    "attn_k": ("model.layers.*.self_attn.k_proj.weight", "blocks.*.attn.qkv.weight", "k"),
    "attn_v": ("model.layers.*.self_attn.v_proj.weight", "blocks.*.attn.qkv.weight", "v"),
    "attn_out": ("model.layers.*.self_attn.o_proj.weight", "blocks.*.attn.out.weight", None),
    "ffn_gate": ("model.layers.*.mlp.gate_proj.weight", "blocks.*.ffn.gate.weight", None),
    "ffn_up": ("model.layers.*.mlp.up_proj.weight", "blocks.*.ffn.up.weight", None),
    "ffn_down": ("model.layers.*.mlp.down_proj.weight", "blocks.*.ffn.down.weight", None),
    "readout": ("lm_head.weight", "readout.weight", None),
}
NORMS: dict[str, tuple[str, bool]] = {  # role -> (glob, inside the residual stack)
    "norm": ("model.layers.*.*_layernorm.weight", True),
    "final_norm": ("model.norm.weight", False),
}


def glob_to_regex(glob: str) -> str:
    """An anchored regex for a name glob whose `*` is one dotted component (a layer index or
    a name part).

    Example:
        >>> glob_to_regex("model.layers.*.mlp.up_proj.weight")
        '^model\\\\.layers\\\\.([^.]+)\\\\.mlp\\\\.up_proj\\\\.weight$'
    """
    return "^" + re.escape(glob).replace(r"\*", "([^.]+)") + "$"


def _layer_pattern(name: str) -> str:
    """`blocks.3.attn.qkv.weight` → `blocks.*.attn.qkv.weight`."""
    return re.sub(r"\.\d+(?=\.|$)", ".*", name)


def _qkv_rows(spec: ModelSpec) -> dict[str, tuple[int, int]]:
    """Row range of q, k and v in the fused qkv weight: [q heads | k heads | v heads]."""
    q, kv = int(spec.n_heads or 0) * spec.head_dim, spec.kv_heads * spec.head_dim
    return {"q": (0, q), "k": (q, q + kv), "v": (q + kv, q + 2 * kv)}


def _row(
    glob: str, ours: str, shape: tuple[int, ...], tensors: int, depth: int | None, role: str
) -> dict[str, Any]:
    return {
        "glob": glob,
        "regex": glob_to_regex(glob),
        "ours": ours,
        "shape": list(shape),
        "tensors": tensors,
        "fan_in": fan_in(shape),
        "depth_scale": depth,
        "lr_scale": lr_scale_adam(role, fan_in(shape), depth),  # type: ignore[arg-type]
    }


def _weight_rows(spec: ModelSpec, h: dict[str, float]) -> dict[str, dict[str, Any]]:
    """The table's rows for the target's trainable tensors (from `lr_table`)."""
    from umup_sweep.models import lr_table

    rows = lr_table(spec, lr=h["lr"], weight_decay=h["weight_decay"])
    by_pattern = {_layer_pattern(r["name"]): r for r in rows}
    counts = Counter(_layer_pattern(r["name"]) for r in rows)
    out: dict[str, dict[str, Any]] = {}
    for role, (glob, ours, part) in ROLES.items():
        if ours not in by_pattern:
            continue  # e.g. no gate in a GELU FFN
        src = by_pattern[ours]
        shape = tuple(src["shape"])
        label = ours
        if part is not None:
            lo, hi = _qkv_rows(spec)[part]
            shape, label = (hi - lo, shape[1]), f"{ours} rows {lo}:{hi}"
        row = _row(glob, label, shape, counts[ours], src["depth"], src["role"])
        row["lr"] = h["lr"] * row["lr_scale"]
        if not math.isclose(row["lr"], src["lr"], rel_tol=1e-12):
            raise AssertionError(
                f"{role}: per-op rule gives {row['lr']}, the optimizer {src['lr']}"
            )
        row["weight_decay"] = independent_weight_decay(h["weight_decay"], row["lr"])
        row["decay_per_step"] = h["weight_decay"]
        out[role] = row
    return out


def param_group_table(spec: ModelSpec, hps: dict[str, float]) -> dict[str, Any]:
    """Per-tensor lr and weight decay of the u-μP target, by role and HF Llama name pattern.

    Args:
        spec: the u-μP target (ValueError for an SP one).
        hps: its `lr` and `weight_decay` (the multipliers do not change any lr).

    Returns:
        {note, lr, weight_decay, conventions, param_groups: {role: {glob, regex, ours, shape,
        tensors, fan_in, depth_scale, lr_scale, lr, weight_decay, decay_per_step, ...}}}.

    Example:
        >>> t = param_group_table(ModelSpec(width=64, depth=4, head_dim=16, n_kv_heads=2), {})
        >>> t["param_groups"]["attn_k"]["shape"], t["param_groups"]["attn_k"]["lr"]
        ([32, 64], 0.0625)
        >>> t["param_groups"]["final_norm"]["trainable"]
        False
    """
    check_umup(spec)
    h = resolve_hps(spec, hps)
    groups = _weight_rows(spec, h)
    for role, (glob, in_stack) in NORMS.items():
        depth = spec.depth if in_stack else None
        tensors = 2 * spec.depth if in_stack else 1
        row = _row(glob, "(none: non-parametric norm)", (spec.width,), tensors, depth, "norm")
        if_trained = h["lr"] * row.pop("lr_scale")
        row |= {"trainable": False, "lr": 0.0, "weight_decay": 0.0, "decay_per_step": 0.0}
        row["lr_if_trained"] = if_trained
        groups[role] = row
    return {
        "note": NOTE,
        "lr": h["lr"],
        "weight_decay": h["weight_decay"],
        "conventions": dict(CONVENTIONS),
        "param_groups": groups,
    }
