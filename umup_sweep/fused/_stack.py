"""K copies of one proxy as a single stacked model: (K, ...) weights, one vmapped forward.

The K models are built exactly as `run_trial` builds them (each under its own seed), then
their parameters are stacked (`torch.func.stack_module_state`) and the model's own forward and
loss run under `torch.vmap` over the stacks with `torch.func.functional_call`. So the fused
forward is the same code as a trial alone, every matmul batched over the K trials; the
unit-scaled core's autograd Functions carry generated vmap rules for this.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator, Sequence

import torch
from torch import Tensor
from torch.func import functional_call, stack_module_state

from umup_sweep.models import ProxyModel
from umup_sweep.precision import PrecisionPolicy, use_precision

Batch = tuple[Tensor, Tensor]


@contextlib.contextmanager
def _quiet_fallbacks() -> Iterator[None]:
    """Silence torch's note that an op (CPU attention) has no vmap batching rule and runs
    once per trial: expected here, and measured in benchmarks/bench_fused.py."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="There is a performance drop because")
        yield


class FusedStack:
    """The stacked parameters of K same-shaped proxies and their vmapped loss.

    Args:
        models: K proxies of one `ModelSpec` shape (their parameters are copied into the
            stacks; the first model's modules run the forward, on the stacks).

    Example:
        >>> from umup_sweep.models import build_model
        >>> from umup_sweep.spec import ModelSpec
        >>> stack = FusedStack([build_model(ModelSpec(width=32, depth=1)) for _ in range(3)])
        >>> ids = torch.zeros(3, 2, 8, dtype=torch.long)
        >>> stack.losses(ids, ids).shape
        torch.Size([3])
    """

    def __init__(self, models: Sequence[ProxyModel]) -> None:
        params, _buffers = stack_module_state(list(models))  # type: ignore[arg-type]
        if _buffers:
            raise ValueError("fused trials need proxies without buffers")
        self.params: dict[str, Tensor] = params
        self.base = models[0]
        base = self.base

        def loss(p: dict[str, Tensor], x: Tensor, y: Tensor) -> Tensor:
            return base.compute_loss(functional_call(base, p, (x,)), y)

        self._train_loss: Callable[..., Tensor] = torch.vmap(loss)
        self._eval_loss: Callable[..., Tensor] = torch.vmap(loss, in_dims=(0, None, None))

    @property
    def size(self) -> int:
        """Number of trials in the stack."""
        return int(next(iter(self.params.values())).shape[0])

    def losses(self, x: Tensor, y: Tensor) -> Tensor:
        """Per-trial training losses (K,) of per-trial batches x, y (K, B, T)."""
        self.base.train()
        with _quiet_fallbacks():
            return self._train_loss(self.params, x, y)

    @torch.no_grad()
    def evaluate(self, batches: Sequence[Batch], policy: PrecisionPolicy) -> list[float]:
        """Each trial's mean loss over the shared validation batches, as `train.evaluate`
        computes it (per batch a float, summed in the same order)."""
        self.base.eval()
        totals = [0.0] * self.size
        for x, y in batches:
            with use_precision(policy, x.device), _quiet_fallbacks():
                values = self._eval_loss(self.params, x, y).tolist()
            totals = [t + v for t, v in zip(totals, values, strict=True)]
        self.base.train()
        return [t / max(1, len(batches)) for t in totals]

    def keep(self, index: Sequence[int]) -> dict[str, Tensor]:
        """Drop every trial not in `index` from the stacks (new leaf tensors); returns them."""
        rows = torch.tensor(list(index), dtype=torch.long, device=self._device)
        self.params = {
            name: p.detach().index_select(0, rows).requires_grad_(True)
            for name, p in self.params.items()
        }
        return self.params

    @property
    def _device(self) -> torch.device:
        return next(iter(self.params.values())).device
