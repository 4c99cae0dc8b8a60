"""Exports a person can train with: the recommended u-μP target for other trainers.

Pure functions of the target `ModelSpec`, the recommended HPs and the sweep's `train` section,
returning plain dicts (YAML-ready):

- `unit_scaling_export`: a `unit_scaling` (reference library) TransformerDecoder + optimizer
  block and a Python snippet;
- `aleph_alpha_scaling_export`: config sections for Aleph-Alpha's `scaling` codebase;
- `param_group_table`: per-tensor lr and weight decay by role and Llama name pattern.

Example:
    >>> from umup_sweep.spec import ModelSpec
    >>> spec = ModelSpec(width=64, depth=2)
    >>> sorted(param_group_table(spec, {"lr": 0.5})["param_groups"])[:3]
    ['attn_k', 'attn_out', 'attn_q']
"""

from umup_sweep.exports._aleph_alpha import aleph_alpha_scaling_export, two_branch_residual_mult
from umup_sweep.exports._table import param_group_table
from umup_sweep.exports._unit_scaling import unit_scaling_export, unsupported_features

__all__ = [
    "aleph_alpha_scaling_export",
    "param_group_table",
    "two_branch_residual_mult",
    "unit_scaling_export",
    "unsupported_features",
]
