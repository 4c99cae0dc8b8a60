"""Scale constraints: how an op's forward and backward scales are tied together.

An op whose output feeds a non-differentiable path (or whose gradients must stay consistent
with its output, e.g. inside a residual branch) cannot have free forward and backward scales;
a constraint picks one shared scale. Names and semantics follow the unit-scaling paper
(arXiv 2303.11257, section 5.2) and its reference library.
"""

from __future__ import annotations

import math


def gmean(*scales: float) -> float:
    """Geometric mean of the scales (the unit-scaling paper's recommended compromise).

    Example:
        >>> gmean(1.0, 4.0)
        2.0
    """
    return math.prod(scales) ** (1 / len(scales))


def hmean(*scales: float) -> float:
    """Harmonic mean of the scales (the Xavier/Glorot compromise).

    Example:
        >>> hmean(1.0, 1.0)
        1.0
    """
    return len(scales) / sum(1 / s for s in scales)


def amean(*scales: float) -> float:
    """Arithmetic mean of the scales.

    Example:
        >>> amean(1.0, 3.0)
        2.0
    """
    return sum(scales) / len(scales)


def to_output_scale(output_scale: float, *grad_input_scales: float) -> float:
    """Use the output scale for the gradients too (keeps the forward pass exactly unit).

    Example:
        >>> to_output_scale(0.5, 0.25)
        0.5
    """
    return output_scale


def to_grad_input_scale(output_scale: float, grad_input_scale: float) -> float:
    """Use the input-gradient scale for the output too.

    Example:
        >>> to_grad_input_scale(0.5, 0.25)
        0.25
    """
    return grad_input_scale


def to_left_grad_scale(output_scale: float, left: float, right: float) -> float:
    """Use the left operand's gradient scale everywhere (binary ops).

    Example:
        >>> to_left_grad_scale(1.0, 2.0, 3.0)
        2.0
    """
    return left


def to_right_grad_scale(output_scale: float, left: float, right: float) -> float:
    """Use the right operand's gradient scale everywhere (binary ops).

    Example:
        >>> to_right_grad_scale(1.0, 2.0, 3.0)
        3.0
    """
    return right


_CONSTRAINTS = {
    f.__name__: f
    for f in (
        gmean,
        hmean,
        amean,
        to_output_scale,
        to_grad_input_scale,
        to_left_grad_scale,
        to_right_grad_scale,
    )
}


def apply_constraint(name: str | None, *scales: float) -> tuple[float, ...]:
    """Apply the named constraint to (output_scale, *grad_scales); None leaves them free.

    Example:
        >>> apply_constraint("to_output_scale", 0.5, 0.25)
        (0.5, 0.5)
        >>> apply_constraint(None, 0.5, 0.25)
        (0.5, 0.25)
    """
    if not name:
        return scales
    try:
        fn = _CONSTRAINTS[name]
    except KeyError:
        raise ValueError(
            f"unknown constraint {name!r}; expected one of {sorted(_CONSTRAINTS)}"
        ) from None
    s = fn(*scales)
    return tuple(s for _ in scales)
