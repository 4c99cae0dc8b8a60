"""The core's precision hook: how its fused linear rounds its operands and gradient.

The core knows nothing of precision policies. An application that simulates low-precision
matmuls installs a `MatmulCast` for a block of code with `use_matmul_cast`; the core's
`functional.linear` then rounds its input and weight with `cast.round_forward` and the
gradient arriving at its output with `cast.round_backward` (before the backward matmuls).
With no cast installed nothing is rounded, at the cost of one context-variable lookup.

The hook is context-scoped (a `ContextVar`, like `torch.autocast`): it nests, is restored on
exit (also after an error) and does not leak into other threads' contexts.

Example:
    >>> import torch
    >>> from umup_sweep.core import functional as U
    >>> class Halve:  # any object with the two methods
    ...     def round_forward(self, t): return t / 2
    ...     def round_backward(self, grad): return grad
    >>> x, w = torch.ones(1, 1), torch.ones(1, 1)
    >>> with use_matmul_cast(Halve()):
    ...     U.linear(x, w).item()
    0.25
    >>> U.linear(x, w).item(), matmul_cast() is None
    (1.0, True)
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Protocol

from torch import Tensor


class MatmulCast(Protocol):
    """What the core's linear asks of an installed cast (both return a new or the same tensor).

    `round_forward` is applied to the input and the weight inside the forward pass;
    `round_backward` to the incoming output gradient inside the backward pass. Both are
    plain tensor functions (no autograd): the core's own backward decides the gradients.
    """

    def round_forward(self, t: Tensor) -> Tensor:
        """The value a matmul operand (activation or weight) is computed with."""
        ...

    def round_backward(self, grad: Tensor) -> Tensor:
        """The value an output gradient is computed with."""
        ...


_MATMUL_CAST: ContextVar[MatmulCast | None] = ContextVar(
    "umup_sweep_core_matmul_cast", default=None
)


def matmul_cast() -> MatmulCast | None:
    """The cast installed by the enclosing `use_matmul_cast` block (None outside any).

    Example:
        >>> matmul_cast() is None
        True
    """
    return _MATMUL_CAST.get()


@contextlib.contextmanager
def use_matmul_cast(cast: MatmulCast | None) -> Iterator[MatmulCast | None]:
    """Install `cast` for the enclosed forward passes (None: no rounding); nests and restores.

    The backward pass uses the cast that was installed when its forward pass ran, so
    `backward()` may run inside or outside the block.

    Example:
        >>> with use_matmul_cast(None) as cast:
        ...     cast is None and matmul_cast() is None
        True
    """
    token = _MATMUL_CAST.set(cast)
    try:
        yield cast
    finally:
        _MATMUL_CAST.reset(token)
