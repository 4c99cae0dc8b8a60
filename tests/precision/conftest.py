"""Fixtures for the precision tests.

`precision_aware_core`: every matmul of the u-μP proxy is one `core.functional._ScaledLinear`
(the linears and the readout). Until that Function follows the active precision itself (the
lead adds four lines, see `umup_sweep/precision.py`), this fixture wraps its `apply` with
`precision_aware` for the duration of a test: the same casts, as separate autograd nodes.
Once the core does it, the fixture changes nothing.
"""

from __future__ import annotations

import pytest
import torch

from umup_sweep.core import functional as U
from umup_sweep.precision import precision_aware, use_precision


def core_is_precision_aware() -> bool:
    """Whether the core's scaled matmul rounds its operands under fp8_sim by itself."""
    x, w = torch.tensor([[0.3]]), torch.tensor([[1.0]])
    with use_precision("fp8_sim"):
        y = U._ScaledLinear.apply(x, w, None, 1.0, 1.0, 1.0)
    return bool(y.item() == 0.3125)


@pytest.fixture
def precision_aware_core(monkeypatch: pytest.MonkeyPatch) -> None:
    if not core_is_precision_aware():
        wrapped = precision_aware(U._ScaledLinear.apply)
        monkeypatch.setattr(U._ScaledLinear, "apply", staticmethod(wrapped))
