"""The proxy-model factory: `ModelSpec` → u-μP or SP decoder-only transformer.

Example:
    >>> import torch
    >>> from umup_sweep.models import build_model, make_optimizer, count_params
    >>> from umup_sweep.spec import ModelSpec
    >>> model = build_model(ModelSpec(width=64, depth=2))
    >>> opt = make_optimizer(model, lr=0.5)
    >>> ids = torch.randint(0, 256, (4, 32))
    >>> loss = model.compute_loss(model(ids[:, :-1]), ids[:, 1:])
    >>> loss.backward(); opt.step()
"""

from umup_sweep.models._base import ProxyModel
from umup_sweep.models._factory import build_model, count_params, lr_table, make_optimizer
from umup_sweep.models._probe import activation_rms
from umup_sweep.models._sp import SPTransformer
from umup_sweep.models._umup import UmupTransformer

__all__ = [
    "ProxyModel",
    "SPTransformer",
    "UmupTransformer",
    "activation_rms",
    "build_model",
    "count_params",
    "lr_table",
    "make_optimizer",
]
