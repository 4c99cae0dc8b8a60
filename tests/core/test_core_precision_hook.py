"""The core's precision hook: what an installed matmul cast sees, that nothing is cast without
one, scoping, and that the core imports nothing of the application."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import Tensor

from umup_sweep.core import functional as U
from umup_sweep.core import matmul_cast, use_matmul_cast

CORE = Path(U.__file__).resolve().parent


class Recorder:
    """A matmul cast that records what it is given and returns value + offset (forward) or
    value × grad_factor (backward), so its effect on the result is easy to predict."""

    def __init__(self, offset: float = 0.0, grad_factor: float = 1.0) -> None:
        self.offset, self.grad_factor = offset, grad_factor
        self.forward: list[Tensor] = []
        self.backward: list[Tensor] = []

    def round_forward(self, t: Tensor) -> Tensor:
        self.forward.append(t.detach().clone())
        return t + self.offset

    def round_backward(self, grad: Tensor) -> Tensor:
        self.backward.append(grad.detach().clone())
        return grad * self.grad_factor


def test_an_installed_cast_sees_the_input_the_weight_and_the_output_gradient() -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(8, 16, generator=gen, requires_grad=True)
    w = torch.randn(4, 16, generator=gen, requires_grad=True)
    dy = torch.randn(8, 4, generator=gen)
    cast = Recorder(offset=0.5, grad_factor=2.0)
    with use_matmul_cast(cast):
        y = U.linear(x, w)
    y.backward(dy)  # outside the block: the cast is the one of the forward pass
    assert [t.shape for t in cast.forward] == [x.shape, w.shape]
    assert torch.equal(cast.forward[0], x.detach()) and torch.equal(cast.forward[1], w.detach())
    assert len(cast.backward) == 1 and torch.equal(cast.backward[0], dy)
    # Oracle: the same op on the cast values, no cast installed.
    xr, wr = (x.detach() + 0.5).requires_grad_(), (w.detach() + 0.5).requires_grad_()
    yr = U.linear(xr, wr)
    yr.backward(dy * 2.0)
    assert x.grad is not None and w.grad is not None
    assert xr.grad is not None and wr.grad is not None
    assert torch.equal(y, yr) and torch.equal(x.grad, xr.grad) and torch.equal(w.grad, wr.grad)


def test_without_a_cast_nothing_is_cast() -> None:
    cast = Recorder(offset=1.0)
    with use_matmul_cast(cast):
        pass
    assert matmul_cast() is None
    x = torch.randn(4, 8, requires_grad=True)
    w = torch.randn(3, 8)
    with use_matmul_cast(None):
        y = U.linear(x, w)
    y.sum().backward()
    assert cast.forward == [] and cast.backward == []
    assert torch.equal(y, U.linear(x.detach(), w))


def test_the_cast_is_scoped_nested_and_restored_after_errors() -> None:
    outer, inner = Recorder(), Recorder()
    with use_matmul_cast(outer) as installed:
        assert installed is outer and matmul_cast() is outer
        with use_matmul_cast(inner):
            assert matmul_cast() is inner
        with use_matmul_cast(None):
            assert matmul_cast() is None
        with pytest.raises(RuntimeError), use_matmul_cast(inner):
            raise RuntimeError("boom")
        assert matmul_cast() is outer
    assert matmul_cast() is None


def _imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_the_core_imports_nothing_of_the_application() -> None:
    outside = {
        f"{path.name}: {name}"
        for path in sorted(CORE.glob("*.py"))
        for name in _imported_modules(path)
        if name.split(".")[0] == "umup_sweep" and not name.startswith("umup_sweep.core")
    }
    assert not outside
    # And at runtime: importing the core loads no module of the package beyond what the
    # package's own `__init__` loads.
    code = (
        "import sys, umup_sweep; before = set(sys.modules); import umup_sweep.core; "
        "print(sorted(m for m in set(sys.modules) - before if m.startswith('umup_sweep.') "
        "and not m.startswith('umup_sweep.core')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
