"""Calling the core's autograd Functions without `Function.apply`'s per-call signature binding.

A Function with a ``setup_context`` (the form `torch.vmap` needs, so fused trials can run the
core) pays for ``inspect.signature(forward).bind(...)`` on every ``apply``: about 60 µs in
torch 2.13, more than the matmul of a width-32 proxy's linear, and a training step makes
dozens of such calls (`benchmarks/bench_step.py`). The binding only fills in defaults; when
every argument of ``forward`` is given positionally it changes nothing, and outside functorch
transforms ``apply`` then hands the same arguments to the C++ apply. `apply` does that
directly. Under a transform (vmap, grad), while `torch.compile` traces, or where torch lacks
these internals, it is the plain ``fn.apply``.
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["apply"]

try:  # private torch internals, present since torch 2.0; fall back to fn.apply without them
    from torch._functorch.utils import unwrap_dead_wrappers as _unwrap

    _transforms_active = torch._C._are_functorch_transforms_active
    _base_apply = torch._C._FunctionBase.__dict__["apply"]
except (ImportError, AttributeError, KeyError):  # pragma: no cover - older or newer torch
    _base_apply = None


def apply(fn: type[torch.autograd.Function], *args: Any) -> Any:
    """``fn.apply(*args)``, every argument of ``fn.forward`` given positionally, without the
    signature binding outside functorch transforms.

    Example:
        >>> from umup_sweep.core._scale import _Scale
        >>> x = torch.ones(2, requires_grad=True)
        >>> apply(_Scale, x, 3.0, 0.5).sum().backward()
        >>> x.grad.tolist()
        [0.5, 0.5]
    """
    if _base_apply is None or torch.compiler.is_compiling() or _transforms_active():
        return fn.apply(*args)
    return _base_apply.__get__(None, fn)(*_unwrap(args))
