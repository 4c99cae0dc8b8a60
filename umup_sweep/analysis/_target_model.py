"""The model `recommend` recommends for, and the warnings about it as a whole.

The target is, in order: the `TargetSpec` given (``--target FILE``), else the sweep's own
``target:`` section, else the sweep's base proxy at ``--width``/``--depth`` (every other shape
— vocabulary, sequence length, head size — copied from the proxy, with a warning that says
so). ``--width``/``--depth`` given together with a target resize it, keeping its head size
and its query heads per key/value head. The chosen u-μP multipliers and the parametrization
are set on it.
"""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING, Any

from umup_sweep.analysis._axes import untested_axis_warnings
from umup_sweep.config import proxy_spec_from_target
from umup_sweep.errors import UserError
from umup_sweep.spec import MODEL_HPS, ModelSpec

if TYPE_CHECKING:
    from umup_sweep.analysis._analyze import TransferReport
    from umup_sweep.analysis._run import RunData

MAX_EXTRAPOLATION_DOUBLINGS = 4  # beyond this the drift line is a guess, not a measurement


@dataclasses.dataclass
class ResolvedTarget:
    """The target model, its training plan (None: not given), where it came from, and the
    warnings about how it was made."""

    spec: ModelSpec
    plan: Any
    origin: str
    warnings: list[str]


def _resize(spec: ModelSpec, width: int | None, depth: int | None) -> ModelSpec:
    """``spec`` at another width/depth: same head size, same query heads per kv head, same
    FFN ratio (the proxy-family rule, `proxy_spec_from_target` with ``head_dim: keep``)."""
    if width is None or width == spec.width:
        return dataclasses.replace(spec, depth=depth or spec.depth)
    resized = proxy_spec_from_target(spec, width, depth or spec.depth, "keep", spec.seq_len)
    keep: dict[str, Any] = {h: getattr(spec, h) for h in MODEL_HPS}
    return dataclasses.replace(resized, parametrization=spec.parametrization, **keep)


def resolve_target(
    run: RunData,
    param: str,
    hps: dict[str, float],
    width: int | None,
    depth: int | None,
    target: Any = None,
) -> ResolvedTarget:
    """The target model with the chosen multipliers (see the module docstring).

    Raises:
        UserError: no target at all, a non-positive size, or a size the shapes cannot take.
    """
    for name, v in (("--width", width), ("--depth", depth)):
        if v is not None and v <= 0:
            raise UserError(f"{name} must be positive, got {v}")
    warnings: list[str] = []
    if target is None and run.spec is not None:
        target = getattr(run.spec, "target", None)
    changes: dict[str, Any] = {"parametrization": param, **{h: hps[h] for h in MODEL_HPS}}
    try:
        if target is not None:
            spec = _resize(dataclasses.replace(target.model, **changes), width, depth)
            notes = [f"target: {n}" for n in getattr(target, "notes", ())]
            return ResolvedTarget(spec, target.plan, str(target.source), notes)
        if width is None or depth is None:
            raise UserError(
                "no target: give --target FILE (a target YAML or a config.json), or "
                "--width and --depth, or a `target:` section in the sweep"
            )
        if run.spec is not None:
            spec = dataclasses.replace(run.spec.family.spec(width, depth), **changes)
        else:
            base = run.base or ModelSpec(**changes)
            spec = dataclasses.replace(base, width=width, depth=depth, n_heads=None, **changes)
    except ValueError as exc:
        raise UserError(f"target width {width}: {exc}") from None
    warnings.append(
        f"target shapes other than width and depth are the proxy's (vocab {spec.vocab_size}, "
        f"seq_len {spec.seq_len}, head_dim {spec.head_dim}, {spec.n_heads} heads): give "
        "--target FILE with your model's shapes"
    )
    return ResolvedTarget(spec, None, "--width/--depth", warnings)


def plan_weight_decay(
    target: ResolvedTarget, hps: dict[str, float], swept: tuple[str, ...] | list[str]
) -> str | None:
    """Apply the target plan's weight decay when the sweep did not tune it; returns a note
    (a warning when the sweep tuned a different value, which then wins), else None."""
    planned = getattr(target.plan, "weight_decay", None)
    if planned is None or float(planned) == hps["weight_decay"]:
        return None
    if "weight_decay" in swept:
        return (
            f"weight_decay: the sweep tuned {hps['weight_decay']:.4g}, the target plan says "
            f"{float(planned):.4g}; recommending the tuned value"
        )
    proxy_wd, hps["weight_decay"] = hps["weight_decay"], float(planned)
    return (
        f"weight_decay {float(planned):.4g} is the target plan's; the sweep did not tune it "
        f"and its proxies trained with {proxy_wd:.4g}, so the lr was tuned at that decay"
    )


def couple_weight_decay(run: RunData, hps: dict[str, float], evidence: dict[str, Any]) -> list[str]:
    """For a sweep of weight decay coupled to lr (``weight_decay: {..., coupled: lr}``) the
    tuned value λ is a factor of the lr: the target's weight decay (the decay per step our
    optimizer is given, u-μP's independent weight decay) is λ × its recommended lr. Sets it
    in ``hps``, records both in ``evidence["weight_decay"]`` and returns a note; [] for any
    other sweep."""
    if run.spec is None or not run.spec.train.weight_decay_coupled:
        return []
    lam = hps["weight_decay"]
    hps["weight_decay"] = lam * hps["lr"]
    evidence.setdefault("weight_decay", {})["coupled"] = {"lambda": lam, "lr": hps["lr"]}
    if lam == 0:
        return []
    return [
        f"weight_decay {hps['weight_decay']:.4g} = the tuned λ {lam:.4g} × lr {hps['lr']:.4g} "
        "(the sweep coupled weight decay to lr: the decay per step is lr × λ)"
    ]


def scope_warnings(
    run: RunData,
    report: TransferReport,
    param: str,
    target: ResolvedTarget,
    warnings: list[str],
    curvature: float | None,
    source: dict[str, Any] | None = None,
) -> list[str]:
    """Warnings about the target as a whole (given those about single HPs so far): SP's LR,
    a target far beyond the largest proxy, a depth the sweep did not test, and every axis
    where proxies and target differ untested (`_axes.py`; the proxies' steps and batch size
    are the ``source`` proxy's when the sweep has train axes)."""
    out = list(target.warnings)
    spec = target.spec
    if param == "sp" and not any("does NOT transfer" in w for w in warnings):
        out.append(
            "SP: the optimal LR does NOT transfer across width; the recommended lr is "
            "the proxy's and is likely too large for the target"
        )
    for axis in ("width", "depth"):
        big, tgt = int(run.trials[axis].max()), int(getattr(spec, axis))
        if tgt > big and math.log2(tgt / big) > MAX_EXTRAPOLATION_DOUBLINGS:
            out.append(
                f"target {axis} {tgt} is {math.log2(tgt / big):.1f} doublings beyond the largest "
                f"proxy ({big}); more than {MAX_EXTRAPOLATION_DOUBLINGS} is an extrapolation: "
                f"add a {'wider' if axis == 'width' else 'deeper'} proxy"
            )
    tested_axes = {a for r in report.results.values() for x in r.values() for a in x.drift}
    depths = set(run.trials["depth"])
    if "depth" not in tested_axes and spec.depth not in depths:
        out.append(
            f"depth transfer was not tested (proxies at depth {sorted(depths)}, "
            f"target {spec.depth}); relying on u-μP's depth scaling rules"
        )
    if run.base is not None:
        train = run.sweep.get("train") if isinstance(run.sweep.get("train"), dict) else {}
        train = dict(train or {})
        if source is not None and "steps" in source and "batch" in source:
            train |= {"steps": source["steps"], "batch_size": source["batch"]}
        out += untested_axis_warnings(run.base, train, spec, target.plan, tested_axes, curvature)
    return out
