"""Numeric precision of a trial: fp32, bf16 autocast, or simulated FP8 matmuls.

`fp8_sim` rounds the inputs of every linear layer to FP8 (E4M3 for activations and weights)
and the gradient arriving at its output to FP8 (E5M2), as in the u-μP paper (arXiv
2407.17465) and the reference library's `transforms.simulate_fp8`. The arithmetic stays
in the tensors' own dtype, so the *numerical* effect of FP8 can be studied on any machine
(no speed-up is expected). No per-tensor scaling is applied: a plain cast only works when
the tensors already have RMS ≈ 1, which is what unit scaling provides and what an SP proxy
lacks. That contrast is the point of the mode.

Casts round to nearest (ties to even, torch's own conversion) and *saturate*: finite values
beyond the format's largest value and ±inf become ±max (NVIDIA's `satfinite` conversion),
NaN stays NaN. Attention's own matmuls (q·kᵀ, softmax·v) stay in full precision, as in
Transformer Engine's FP8 recipes.

How ops find out: the active policy is context-scoped, like `torch.autocast`. A trial runs
its forward passes inside `use_precision(policy, device)`. Under fp8_sim that block also
installs the policy as the unit-scaled core's matmul cast (`umup_sweep.core.use_matmul_cast`),
so the core's autograd linear rounds with `policy.round_forward` / `round_backward`; ops
decorated with `@precision_aware` ask `current_policy()` and get the same casts as autograd
nodes, and plain `nn.Linear` layers go through `precision.linear` after
`make_precision_aware(model)`. Outside fp8_sim each costs one context-variable lookup.

Example:
    >>> import torch
    >>> from umup_sweep.precision import fp8_cast, make_precision_aware, use_precision
    >>> fp8_cast(torch.tensor([0.3, 1000.0]), "e4m3").tolist()
    [0.3125, 448.0]
    >>> layer = make_precision_aware(torch.nn.Linear(1, 1, bias=False))
    >>> _ = layer.weight.data.fill_(0.3)
    >>> with use_precision("fp8_sim"):
    ...     layer(torch.ones(1, 1)).item()
    0.3125
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from umup_sweep.core import use_matmul_cast
from umup_sweep.errors import UserError

Precision = Literal["fp32", "bf16", "fp8_sim"]
PRECISIONS: tuple[str, ...] = ("fp32", "bf16", "fp8_sim")

# The two FP8 formats of the OCP FP8 spec (Micikevicius et al. 2022), as torch dtypes:
# E4M3 (max 448, no inf) for the forward pass, E5M2 (max 57344) for gradients.
E4M3 = torch.float8_e4m3fn
E5M2 = torch.float8_e5m2
FP8_FORMATS: dict[str, torch.dtype] = {"e4m3": E4M3, "e5m2": E5M2}

Fp8Format = torch.dtype | str


def fp8_dtype(fmt: Fp8Format) -> torch.dtype:
    """The torch float8 dtype for `fmt` ("e4m3", "e5m2" or the dtype itself).

    Example:
        >>> fp8_dtype("e5m2")
        torch.float8_e5m2
    """
    if isinstance(fmt, torch.dtype):
        if fmt not in (E4M3, E5M2):
            raise ValueError(f"FP8 format must be float8_e4m3fn or float8_e5m2, got {fmt}")
        return fmt
    try:
        return FP8_FORMATS[fmt.lower()]
    except KeyError:
        raise ValueError(f"FP8 format must be 'e4m3' or 'e5m2', got {fmt!r}") from None


def fp8_max(fmt: Fp8Format) -> float:
    """Largest finite value of an FP8 format (448 for E4M3, 57344 for E5M2).

    Example:
        >>> fp8_max("e4m3"), fp8_max("e5m2")
        (448.0, 57344.0)
    """
    return float(torch.finfo(fp8_dtype(fmt)).max)


def fp8_cast(x: Tensor, fmt: Fp8Format = E4M3) -> Tensor:
    """Round `x` to the FP8 grid (nearest, ties to even) and return it in `x`'s dtype.

    Out-of-range values and ±inf saturate to ±max (torch's own conversion would give inf for
    E5M2); NaN stays NaN. Values on the grid are unchanged, so the cast is idempotent.

    Args:
        x: any floating tensor.
        fmt: "e4m3" / "e5m2" or `torch.float8_e4m3fn` / `torch.float8_e5m2`.

    Example:
        >>> fp8_cast(torch.tensor([1.0, 1.07, 1e9]), "e5m2").tolist()
        [1.0, 1.0, 57344.0]
    """
    dtype = fp8_dtype(fmt)
    limit = float(torch.finfo(dtype).max)
    return x.clamp(-limit, limit).to(dtype).to(x.dtype)


class Fp8Quantize(torch.autograd.Function):
    """Cast the forward value to `fwd` and the backward gradient to `bwd` (None: pass through).

    Straight-through: the gradient is not multiplied by the cast's derivative (which is zero
    almost everywhere), only rounded itself, as an FP8 matmul's backward would see it.
    In the `setup_context` form with a generated vmap rule, so fused trials (`torch.vmap`)
    can run it.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(x: Tensor, fwd: torch.dtype | None, bwd: torch.dtype | None) -> Tensor:
        # A view, not `x` itself: an autograd Function must not return its input unchanged.
        return x.view_as(x) if fwd is None else fp8_cast(x, fwd)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Any, ...], output: Tensor) -> None:
        ctx.bwd = inputs[2]

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None, None]:
        return (grad if ctx.bwd is None else fp8_cast(grad, ctx.bwd)), None, None


def fp8_quantize(x: Tensor, fwd: Fp8Format | None = E4M3, bwd: Fp8Format | None = E5M2) -> Tensor:
    """Differentiable cast: value rounded to `fwd`, incoming gradient rounded to `bwd`.

    Example:
        >>> x = torch.tensor([0.3], requires_grad=True)
        >>> y = fp8_quantize(x)
        >>> y.backward(torch.tensor([0.3])); y.item(), x.grad.item()
        (0.3125, 0.3125)
    """
    return Fp8Quantize.apply(  # type: ignore[no-any-return]
        x, None if fwd is None else fp8_dtype(fwd), None if bwd is None else fp8_dtype(bwd)
    )


def quantize_fwd(x: Tensor, fmt: Fp8Format = E4M3) -> Tensor:
    """Round the value to `fmt`; the gradient passes through unchanged (a matmul input).

    Example:
        >>> quantize_fwd(torch.tensor([0.3])).item()
        0.3125
    """
    return fp8_quantize(x, fwd=fmt, bwd=None)


def quantize_bwd(x: Tensor, fmt: Fp8Format = E5M2) -> Tensor:
    """Identity forward; round the incoming gradient to `fmt` (a matmul's output gradient).

    Example:
        >>> x = torch.ones(1, requires_grad=True)
        >>> quantize_bwd(x).backward(torch.tensor([0.3])); x.grad.item()
        0.3125
    """
    return fp8_quantize(x, fwd=None, bwd=fmt)


def quantize_matmul_inputs(a: Tensor, b: Tensor, fmt: Fp8Format = E4M3) -> tuple[Tensor, Tensor]:
    """Both operands of a matmul rounded to `fmt` (gradients pass through to the originals).

    Example:
        >>> a, b = quantize_matmul_inputs(torch.tensor([0.3]), torch.tensor([3.3]))
        >>> a.item(), b.item()
        (0.3125, 3.25)
    """
    return quantize_fwd(a, fmt), quantize_fwd(b, fmt)


def fp8_matmul(
    fn: Callable[..., Tensor], a: Tensor, b: Tensor, *args: Any, **kwargs: Any
) -> Tensor:
    """Run the matmul-like `fn(a, b, *args)` as an FP8 op: E4M3 operands, E5M2 output gradient.

    Scales an op applies after (or folded into) the matmul stay in full precision, which is
    how a unit-scaled op runs on FP8 hardware: the cast sees the unit-scaled operands.

    Example:
        >>> import torch.nn.functional as F
        >>> fp8_matmul(F.linear, torch.tensor([[0.3]]), torch.tensor([[3.3]])).item()
        1.015625
    """
    a, b = quantize_matmul_inputs(a, b)
    return quantize_bwd(fn(a, b, *args, **kwargs))


def _check_name(name: str) -> None:
    if name not in PRECISIONS:
        raise UserError(f"precision must be one of {', '.join(PRECISIONS)}, got {name!r}")


@dataclass(frozen=True)
class PrecisionPolicy:
    """What a trial's `precision` setting means for its ops.

    Args:
        name: "fp32" (nothing changes), "bf16" (`torch.autocast` to bfloat16), or "fp8_sim"
            (matmul operands rounded to `fwd_format`, their output gradients to `bwd_format`).
        fwd_format, bwd_format: the FP8 formats of `fp8_sim`.

    Example:
        >>> policy = PrecisionPolicy("fp8_sim")
        >>> policy.fp8, policy.cast_input(torch.tensor([0.3])).item()
        (True, 0.3125)
        >>> x = torch.tensor([0.3])
        >>> PrecisionPolicy("fp32").cast_input(x) is x
        True
    """

    name: str = "fp32"
    fwd_format: torch.dtype = E4M3
    bwd_format: torch.dtype = E5M2

    def __post_init__(self) -> None:
        _check_name(self.name)
        fp8_dtype(self.fwd_format), fp8_dtype(self.bwd_format)

    @property
    def fp8(self) -> bool:
        """Whether matmul operands and output gradients are cast to FP8."""
        return self.name == "fp8_sim"

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        """The dtype `torch.autocast` runs in, or None for no autocast."""
        return torch.bfloat16 if self.name == "bf16" else None

    def cast_input(self, x: Tensor) -> Tensor:
        """An activation entering a matmul (E4M3 under fp8_sim; else unchanged)."""
        return quantize_fwd(x, self.fwd_format) if self.fp8 else x

    def cast_weight(self, w: Tensor) -> Tensor:
        """A weight entering a matmul (E4M3 under fp8_sim; else unchanged)."""
        return quantize_fwd(w, self.fwd_format) if self.fp8 else w

    def cast_output_grad(self, y: Tensor) -> Tensor:
        """A matmul's output: its gradient is rounded to E5M2 under fp8_sim."""
        return quantize_bwd(y, self.bwd_format) if self.fp8 else y

    def round_forward(self, t: Tensor) -> Tensor:
        """Plain (non-autograd) E4M3 rounding under fp8_sim, for use inside an autograd
        Function's forward (its own backward decides what the gradient does)."""
        return fp8_cast(t, self.fwd_format) if self.fp8 else t

    def round_backward(self, grad: Tensor) -> Tensor:
        """Plain E5M2 rounding of a gradient under fp8_sim, for an autograd Function's
        backward: round the incoming output gradient before its two matmuls."""
        return fp8_cast(grad, self.bwd_format) if self.fp8 else grad

    def autocast(self, device: torch.device | str = "cpu") -> AbstractContextManager[Any]:
        """Context for the forward pass and loss: bf16 autocast, or a no-op."""
        return autocast_context(self.name, device)


FP32 = PrecisionPolicy("fp32")
_ACTIVE: ContextVar[PrecisionPolicy] = ContextVar("umup_sweep_precision", default=FP32)


def current_policy() -> PrecisionPolicy:
    """The policy of the enclosing `use_precision` block (fp32 outside any).

    Example:
        >>> current_policy().name
        'fp32'
    """
    return _ACTIVE.get()


def fp8_active() -> bool:
    """Whether matmuls should simulate FP8 right now (one context-variable lookup).

    Example:
        >>> with use_precision("fp8_sim"):
        ...     fp8_active()
        True
    """
    return _ACTIVE.get().fp8


@contextlib.contextmanager
def use_precision(
    policy: PrecisionPolicy | str, device: torch.device | str | None = None
) -> Iterator[PrecisionPolicy]:
    """Run the enclosed forward passes under `policy`: fp8_sim casts, bf16 autocast on `device`.

    Wrap the forward pass and the loss; `backward()` may run inside or outside (the casts of
    the backward pass are recorded in the graph during the forward pass). Nests and restores.
    Under fp8_sim the policy is also the core's matmul cast for the block; under fp32 and
    bf16 no cast is installed (an enclosing fp8_sim block's cast is suspended).

    Example:
        >>> with use_precision("bf16", "cpu") as policy:
        ...     policy.name, (torch.ones(2, 2) @ torch.ones(2, 2)).dtype
        ('bf16', torch.bfloat16)
    """
    if isinstance(policy, str):
        policy = PrecisionPolicy(policy)
    token = _ACTIVE.set(policy)
    try:
        with use_matmul_cast(policy if policy.fp8 else None):
            with policy.autocast("cpu" if device is None else device):
                yield policy
    finally:
        _ACTIVE.reset(token)


def autocast_context(
    precision: str, device: torch.device | str = "cpu"
) -> AbstractContextManager[Any]:
    """`torch.autocast(device, bfloat16)` for "bf16"; a no-op for "fp32" and "fp8_sim".

    Example:
        >>> with autocast_context("bf16", "cpu"):
        ...     (torch.ones(2, 2) @ torch.ones(2, 2)).dtype
        torch.bfloat16
    """
    _check_name(precision)
    if precision != "bf16":
        return contextlib.nullcontext()
    device_type = torch.device(device).type
    return torch.autocast(device_type=device_type, dtype=torch.bfloat16)


MatmulFn = TypeVar("MatmulFn", bound=Callable[..., Tensor])


def precision_aware(fn: MatmulFn) -> MatmulFn:
    """Decorate a matmul-like op `fn(a, b, ...)` so it simulates FP8 when fp8_sim is active.

    Under fp8_sim the first two (positional) arguments are cast to E4M3 and the output's
    gradient to E5M2; any scales `fn` applies run in full precision, so for a unit-scaled op
    the cast sees unit-scaled operands, as on FP8 hardware. Otherwise `fn` runs unchanged.

    Example:
        >>> mm = precision_aware(torch.matmul)
        >>> with use_precision("fp8_sim"):
        ...     mm(torch.tensor([[0.3]]), torch.tensor([[3.3]])).item()
        1.015625
    """

    @functools.wraps(fn)
    def wrapper(a: Tensor, b: Tensor, *args: Any, **kwargs: Any) -> Tensor:
        policy = _ACTIVE.get()
        if not policy.fp8:
            return fn(a, b, *args, **kwargs)
        out = fn(policy.cast_input(a), policy.cast_weight(b), *args, **kwargs)
        return policy.cast_output_grad(out)

    wrapper.precision_aware = True  # type: ignore[attr-defined]
    return wrapper  # type: ignore[return-value]


@precision_aware
def linear(input: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """`F.linear` that follows the active precision (the bias is added in full precision).

    Example:
        >>> with use_precision("fp8_sim"):
        ...     linear(torch.tensor([[0.3]]), torch.tensor([[1.0]])).item()
        0.3125
    """
    return F.linear(input, weight, bias)


class PrecisionAwareLinear(nn.Linear):
    """`nn.Linear` whose forward is `precision.linear` (what `make_precision_aware` swaps in)."""

    def forward(self, input: Tensor) -> Tensor:
        return linear(input, self.weight, self.bias)


def make_precision_aware(model: nn.Module) -> nn.Module:
    """Route every plain `nn.Linear` of `model` through `precision.linear`, in place.

    For models built from torch layers (the SP proxy); the unit-scaled core's ops are
    precision-aware themselves. Only the layers' class changes (to `PrecisionAwareLinear`,
    a subclass): parameters, names, state dict, deep copies and pickling are unaffected.

    Example:
        >>> net = make_precision_aware(nn.Sequential(nn.Linear(2, 2), nn.ReLU()))
        >>> type(net[0]).__name__
        'PrecisionAwareLinear'
    """
    for _, module in linear_modules(model):
        if type(module) is nn.Linear:
            module.__class__ = PrecisionAwareLinear
    return model


def linear_modules(model: nn.Module) -> Iterator[tuple[str, nn.Linear]]:
    """The plain `nn.Linear` layers of `model`, with their names.

    Example:
        >>> [name for name, _ in linear_modules(nn.Sequential(nn.ReLU(), nn.Linear(2, 2)))]
        ['1']
    """
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            yield name, module
