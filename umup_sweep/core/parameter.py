"""u-μP metadata on parameters: the role (which LR rule applies) and the residual depth.

Layers tag the parameters they own; the optimizer reads the tags. Tags are plain attributes
of a `torch.nn.Parameter` subclass, so they survive `copy.deepcopy`, pickling and
`state_dict` round trips (values only), and cost nothing in the forward pass.
"""

from __future__ import annotations

from typing import Any, Literal, get_args

import torch
from torch import Tensor, nn

Role = Literal["weight", "bias", "norm", "readout", "embedding"]
ROLES: tuple[str, ...] = get_args(Role)


def _rebuild(data: Tensor, requires_grad: bool, state: dict[str, Any]) -> ScaledParameter:
    p = ScaledParameter(data, role=state.get("role", "weight"), requires_grad=requires_grad)
    p.__dict__.update(state)
    return p


class ScaledParameter(nn.Parameter):
    """An `nn.Parameter` that carries `role` and `depth_scale` (residual depth or None).

    Example:
        >>> p = ScaledParameter(torch.zeros(4, 8), role="weight")
        >>> p.role, p.depth_scale, isinstance(p, torch.nn.Parameter)
        ('weight', None, True)
    """

    role: Role
    depth_scale: int | None

    def __new__(
        cls,
        data: Tensor | None = None,
        role: Role = "weight",
        depth_scale: int | None = None,
        requires_grad: bool = True,
    ) -> ScaledParameter:
        if role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}, got {role!r}")
        p = super().__new__(cls, data, requires_grad)  # type: ignore[call-arg]
        p.role = role
        p.depth_scale = depth_scale
        return p  # type: ignore[return-value]

    def __deepcopy__(self, memo: dict[int, Any]) -> ScaledParameter:
        if id(self) in memo:
            return memo[id(self)]  # type: ignore[no-any-return]
        result = _rebuild(
            self.data.clone(memory_format=torch.preserve_format),
            self.requires_grad,
            dict(self.__dict__),
        )
        memo[id(self)] = result
        return result

    def __reduce_ex__(self, protocol: Any) -> Any:
        return (_rebuild, (self.data, self.requires_grad, dict(self.__dict__)))

    def __repr__(self, *args: Any, **kwargs: Any) -> str:  # type: ignore[override]
        return f"ScaledParameter(role={self.role}, depth_scale={self.depth_scale}):\n" + repr(
            self.data
        )


def has_role(param: Tensor) -> bool:
    """True when `param` carries a u-μP role tag.

    Example:
        >>> has_role(torch.nn.Parameter(torch.zeros(1)))
        False
    """
    return getattr(param, "role", None) in ROLES


def tag_depth(module: nn.Module, depth: int) -> None:
    """Mark every tagged parameter under `module` as living in a residual stack of `depth` blocks.

    Raises ValueError on an untagged parameter (it would silently get the wrong LR) or one
    already given a depth.

    Example:
        >>> from umup_sweep.core.layers import Linear
        >>> lin = Linear(4, 4)
        >>> tag_depth(lin, 3); lin.weight.depth_scale
        3
    """
    for name, p in module.named_parameters():
        if not has_role(p):
            raise ValueError(f"parameter {name!r} has no u-μP role; build it from core layers")
        if p.depth_scale is not None:  # type: ignore[attr-defined]
            raise ValueError(f"parameter {name!r} already has depth {p.depth_scale}")  # type: ignore[attr-defined]
        p.depth_scale = depth  # type: ignore[attr-defined]


def param_tags(module: nn.Module) -> dict[str, tuple[Role, int | None]]:
    """{parameter name: (role, depth_scale)} for every tagged parameter under `module`.

    Example:
        >>> from umup_sweep.core.layers import Linear
        >>> param_tags(Linear(4, 2))
        {'weight': ('weight', None)}
    """
    return {
        name: (p.role, p.depth_scale)  # type: ignore[attr-defined]
        for name, p in module.named_parameters()
        if has_role(p)
    }


def restore_tags(module: nn.Module, tags: dict[str, tuple[Role, int | None]]) -> None:
    """Re-wrap parameters that lost their tags (e.g. `to_empty` from the meta device).

    Example:
        >>> from umup_sweep.core.layers import Linear
        >>> with torch.device("meta"):
        ...     lin = Linear(4, 2)
        >>> tags = param_tags(lin)
        >>> _ = lin.to_empty(device="cpu"); restore_tags(lin, tags); lin.weight.role
        'weight'
    """
    for mod_name, mod in module.named_modules():
        for key, p in list(mod._parameters.items()):
            name = f"{mod_name}.{key}" if mod_name else key
            if p is None or has_role(p) or name not in tags:
                continue
            role, depth = tags[name]
            mod._parameters[key] = ScaledParameter(p.data, role, depth, p.requires_grad)
