"""The built-in unit-scaling core: scale primitives, unit-scaled ops and layers, u-μP LR rules.

Our own implementation of u-μP (arXiv 2407.17465); the `unit-scaling` reference library is
used only as a test oracle. Knows nothing of sweeps, and imports nothing of the application:
low-precision simulation reaches the core's linear through one hook, `use_matmul_cast`.

Example:
    >>> import torch
    >>> from umup_sweep import core
    >>> lin = core.Linear(64, 32)
    >>> round(lin(torch.randn(4096, 64)).std().item(), 1)
    1.0
"""

from umup_sweep.core import functional, rules
from umup_sweep.core._precision_hook import MatmulCast, matmul_cast, use_matmul_cast
from umup_sweep.core._scale import scale, scale_bwd, scale_fwd
from umup_sweep.core.constraints import (
    amean,
    apply_constraint,
    gmean,
    hmean,
    to_grad_input_scale,
    to_left_grad_scale,
    to_output_scale,
    to_right_grad_scale,
)
from umup_sweep.core.layers import (
    GELU,
    CrossEntropyLoss,
    DepthStack,
    Embedding,
    LayerNorm,
    Linear,
    LinearReadout,
    RMSNorm,
    SiLU,
    Softmax,
)
from umup_sweep.core.optim import (
    SGD,
    AdamW,
    fan_in,
    independent_weight_decay,
    lr_scale_adam,
    lr_scale_for_depth,
    lr_scale_sgd,
    param_lr_scale,
    scaled_param_groups,
)
from umup_sweep.core.parameter import (
    ROLES,
    Role,
    ScaledParameter,
    has_role,
    param_tags,
    restore_tags,
    tag_depth,
)
from umup_sweep.core.rules import residual_taus, transformer_residual_scaling_rule

__all__ = [
    "AdamW",
    "CrossEntropyLoss",
    "DepthStack",
    "Embedding",
    "GELU",
    "LayerNorm",
    "Linear",
    "LinearReadout",
    "MatmulCast",
    "RMSNorm",
    "ROLES",
    "Role",
    "SGD",
    "ScaledParameter",
    "SiLU",
    "Softmax",
    "amean",
    "apply_constraint",
    "fan_in",
    "functional",
    "gmean",
    "has_role",
    "hmean",
    "independent_weight_decay",
    "lr_scale_adam",
    "lr_scale_for_depth",
    "lr_scale_sgd",
    "matmul_cast",
    "param_lr_scale",
    "param_tags",
    "residual_taus",
    "restore_tags",
    "rules",
    "scale",
    "scale_bwd",
    "scale_fwd",
    "scaled_param_groups",
    "tag_depth",
    "to_grad_input_scale",
    "to_left_grad_scale",
    "to_output_scale",
    "to_right_grad_scale",
    "transformer_residual_scaling_rule",
    "use_matmul_cast",
]
