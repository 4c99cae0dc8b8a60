"""One optimizer for K stacked trials: per-trial AdamW / SGD on (K, ...) parameter stacks.

Each trial's hyperparameters are read from the optimizer `run_trial` would build for it
(`make_trial_optimizer`), parameter by parameter, so the u-μP per-tensor LR rules, the
lr-independent (or lr-coupled) weight decay and the SP rules are exactly those of a trial run
alone; nothing here re-derives them. The update then follows torch's own single-tensor AdamW
and SGD code operation by operation, with each Python scalar replaced by a (K, 1, ...) float32
tensor holding the K trials' values (the same float32 numbers torch computes from its
scalars), in forms whose CPU kernels round as torch's scalar forms do (`addcmul_`/`addcdiv_`
for `add_(alpha=)`/`addcdiv_(value=)`): on CPU every trial's slice gets bit for bit the update
it would get alone (checked in tests/test_fused.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

# Optimizer settings the stacked step does not implement: a trial using any is not fused.
_UNSUPPORTED = {"amsgrad": False, "maximize": False, "nesterov": False, "dampening": 0}


@dataclass
class _Slot:
    """One stacked parameter: its per-trial base LR and weight decay (and betas/eps or
    momentum), as Python floats, one per trial in the stack's order."""

    lr: list[float]
    weight_decay: list[float]
    beta1: list[float]
    beta2: list[float]
    eps: list[float]


def _group_settings(optimizer: torch.optim.Optimizer, param: Tensor) -> dict[str, object]:
    for group in optimizer.param_groups:
        if any(p is param for p in group["params"]):
            return group
    raise ValueError("parameter not found in its trial's optimizer")


class StackedOptimizer:
    """AdamW or SGD over stacked parameters, trial k's slice updated with trial k's settings.

    Args:
        params: name → stacked leaf tensor (K, ...), in the models' parameter order.
        models: the K per-trial models the stacks were built from (same names).
        optimizers: the K optimizers `make_trial_optimizer` built for those models.

    Raises:
        ValueError: an optimizer is neither torch AdamW nor SGD, or uses a setting the
            stacked step does not implement (amsgrad, maximize, nesterov, dampening).
    """

    def __init__(
        self,
        params: dict[str, Tensor],
        models: Sequence[torch.nn.Module],
        optimizers: Sequence[torch.optim.Optimizer],
    ) -> None:
        adamw = all(isinstance(opt, torch.optim.AdamW) for opt in optimizers)
        sgd = all(isinstance(opt, torch.optim.SGD) for opt in optimizers)
        if not (adamw or sgd) or not optimizers:
            raise ValueError("fused trials need all-AdamW or all-SGD optimizers")
        self.kind = "adamw" if adamw else "sgd"
        self.params = params
        self.slots: dict[str, _Slot] = {}
        for name in params:
            groups = [
                _group_settings(opt, dict(model.named_parameters())[name])
                for model, opt in zip(models, optimizers, strict=True)
            ]
            for group in groups:
                for key, value in _UNSUPPORTED.items():
                    if group.get(key, value) != value:
                        raise ValueError(f"fused trials do not implement {key}={group[key]}")
            self.slots[name] = _Slot(
                lr=[float(g["lr"]) for g in groups],  # type: ignore[arg-type]
                weight_decay=[float(g["weight_decay"]) for g in groups],  # type: ignore[arg-type]
                beta1=[float(g["betas"][0] if adamw else g["momentum"]) for g in groups],  # type: ignore[index,arg-type]
                beta2=[float(g["betas"][1]) if adamw else 0.0 for g in groups],  # type: ignore[index]
                eps=[float(g["eps"]) if adamw else 0.0 for g in groups],  # type: ignore[arg-type]
            )
        self.state: dict[str, list[Tensor]] = {}
        self.steps = 0
        self._constants: dict[tuple[object, ...], Tensor] = {}

    def keep(self, index: Sequence[int], params: dict[str, Tensor]) -> None:
        """Keep only the trials at `index` (in that order): `params` are the new stacks."""
        self.params = params
        for slot in self.slots.values():
            for field in ("lr", "weight_decay", "beta1", "beta2", "eps"):
                values = getattr(slot, field)
                setattr(slot, field, [values[i] for i in index])
        self.state = {n: [s[list(index)] for s in st] for n, st in self.state.items()}

    def zero_grad(self) -> None:
        for p in self.params.values():
            p.grad = None

    @torch.no_grad()
    def step(self, factor: float) -> None:
        """One update with every trial's LR × `factor` (the schedule), like torch's step."""
        self.steps += 1
        for name, p in self.params.items():
            if p.grad is None:
                continue
            if self.kind == "adamw":
                self._adamw(name, p, p.grad, factor)
            else:
                self._sgd(name, p, p.grad, factor)

    def _per_trial(self, values: Sequence[float], like: Tensor) -> Tensor:
        """(K, 1, ...) tensor of `values` in `like`'s dtype (torch's scalar → float32
        conversion); the constant ones (betas, eps, decay) are made once."""
        key = (tuple(values), like.dim(), like.dtype, like.device)
        tensor = self._constants.get(key)
        if tensor is None:
            if len(self._constants) > 512:  # the step-dependent values: do not pile up
                self._constants.clear()
            shape = (len(values),) + (1,) * (like.dim() - 1)
            tensor = torch.tensor(values, dtype=like.dtype, device=like.device).view(shape)
            self._constants[key] = tensor
        return tensor

    def _adamw(self, name: str, p: Tensor, grad: Tensor, factor: float) -> None:
        # torch.optim.adam._single_tensor_adam (decoupled weight decay), per trial.
        slot = self.slots[name]
        lrs = [lr * factor for lr in slot.lr]
        if name not in self.state:
            self.state[name] = [torch.zeros_like(p), torch.zeros_like(p)]
        exp_avg, exp_avg_sq = self.state[name]
        if any(slot.weight_decay):
            decay = [1 - lr * wd for lr, wd in zip(lrs, slot.weight_decay, strict=True)]
            p.mul_(self._per_trial(decay, p))
        exp_avg.lerp_(grad, self._per_trial([1 - b for b in slot.beta1], p))
        exp_avg_sq.mul_(self._per_trial(slot.beta2, p))
        exp_avg_sq.addcmul_(self._per_trial([1 - b for b in slot.beta2], p) * grad, grad)
        step_size = [-(lr / (1 - b1**self.steps)) for lr, b1 in zip(lrs, slot.beta1, strict=True)]
        bc2_sqrt = [(1 - b2**self.steps) ** 0.5 for b2 in slot.beta2]
        denom = (exp_avg_sq.sqrt() / self._per_trial(bc2_sqrt, p)).add_(
            self._per_trial(slot.eps, p)
        )
        p.addcdiv_(self._per_trial(step_size, p) * exp_avg, denom)

    def _sgd(self, name: str, p: Tensor, grad: Tensor, factor: float) -> None:
        # torch.optim.sgd._single_tensor_sgd (L2 weight decay, heavy-ball momentum), per trial.
        slot = self.slots[name]
        if any(slot.weight_decay):
            grad = grad.addcmul(self._per_trial(slot.weight_decay, p), p)
        if any(slot.beta1):
            if name not in self.state:
                self.state[name] = [grad.clone().detach()]
            else:
                buf = self.state[name][0]
                buf.mul_(self._per_trial(slot.beta1, p)).add_(grad)
            grad = self.state[name][0]
        p.addcmul_(self._per_trial([-lr * factor for lr in slot.lr], p), grad)


def clip_grad_norms(params: Sequence[Tensor], max_norm: float) -> None:
    """`torch.nn.utils.clip_grad_norm_` for each trial of the stacks separately."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    norms = torch.stack([torch.linalg.vector_norm(g.flatten(1), 2, dim=1) for g in grads], 1)
    total = torch.linalg.vector_norm(norms, 2, dim=1)
    coef = torch.clamp(max_norm / (total + 1e-6), max=1.0)
    for g in grads:
        g.mul_(coef.view((-1,) + (1,) * (g.dim() - 1)))
