"""What every export reads the same way: the target's HPs and optimizer settings.

The exports take the target `ModelSpec` (which carries the five model multipliers), the
recommended `hps` (lr, weight_decay, and optionally the multipliers again, which must then
agree with the spec) and the sweep's `train` section (beta1, beta2, eps, ...). Optimizer keys
missing from `train` fall back to `TrainSpec`'s defaults, the ones the proxies trained with.
"""

from __future__ import annotations

from typing import Any

from umup_sweep.spec import HP_DEFAULTS, MODEL_HPS, ModelSpec, TrainSpec

U_MUP_ONLY = "exports describe a u-μP (unit-scaled) model; this target is {}"


def check_umup(spec: ModelSpec) -> None:
    """Raise ValueError unless the target is u-μP (an SP model has no u-μP export).

    Example:
        >>> check_umup(ModelSpec(parametrization="sp"))
        Traceback (most recent call last):
        ...
        ValueError: exports describe a u-μP (unit-scaled) model; this target is sp
    """
    if spec.parametrization != "umup":
        raise ValueError(U_MUP_ONLY.format(spec.parametrization))


def resolve_hps(spec: ModelSpec, hps: dict[str, float]) -> dict[str, float]:
    """lr, weight_decay (`hps`, else defaults) and the five multipliers (the spec's).

    A multiplier in `hps` must equal the spec's: the spec is the model the numbers describe,
    so a disagreement is an error, not a silent choice.

    Example:
        >>> resolve_hps(ModelSpec(residual_mult=0.5), {"lr": 0.25})["residual_mult"]
        0.5
        >>> resolve_hps(ModelSpec(), {"residual_mult": 0.5})
        Traceback (most recent call last):
        ...
        ValueError: hps residual_mult=0.5 differs from the spec's 1.0
    """
    out = {name: float(getattr(spec, name)) for name in MODEL_HPS}
    for name in MODEL_HPS:
        if name in hps and float(hps[name]) != out[name]:
            raise ValueError(f"hps {name}={hps[name]!r} differs from the spec's {out[name]!r}")
    for name in ("lr", "weight_decay"):
        out[name] = float(hps.get(name, HP_DEFAULTS[name]))
    return out


def resolve_train(train: dict[str, Any]) -> dict[str, Any]:
    """Optimizer and schedule settings: `train` over `TrainSpec`'s defaults.

    Example:
        >>> t = resolve_train({"beta2": 0.99})
        >>> t["optimizer"], t["beta1"], t["beta2"], t["eps"]
        ('adamw', 0.9, 0.99, 1e-08)
    """
    d = TrainSpec()
    keys = ("optimizer", "beta1", "beta2", "eps", "schedule", "final_lr_frac", "warmup_frac")
    out: dict[str, Any] = {k: train.get(k, getattr(d, k)) for k in keys}
    out["grad_clip"] = train.get("grad_clip", d.grad_clip)
    for k in ("beta1", "beta2", "eps", "final_lr_frac", "warmup_frac"):
        out[k] = float(out[k])
    if out["optimizer"] not in ("adamw", "sgd"):
        raise ValueError(f"optimizer must be 'adamw' or 'sgd', got {out['optimizer']!r}")
    return out
