"""Coordinate check (as in μP, Yang et al. 2022, Fig. 5): RMS of every layer's activations and
every parameter's gradient across widths, at init and after a few training steps, for u-μP and
SP side by side. Under u-μP the RMS stays flat in width (and ≈ 1 at init); a layer whose
log2 RMS grows with log2 width faster than `threshold` is flagged.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, FuncFormatter

from umup_sweep.config import ProxyFamily
from umup_sweep.spec import DataSpec, ModelSpec

SLOPE_THRESHOLD = 0.25  # log2 RMS per width doubling that counts as "grows with width"
DEFAULT_LR = {"umup": 1.0, "sp": 2.0**-7, "mup": 2.0**-7}  # the width-64 optima measured here
PHASES = ("init", "trained")
KINDS = ("activations", "gradients")


@dataclass
class CoordCheck:
    """RMS per (parametrization, phase, kind, layer) across widths, and the growth flags.

    `rms[param][phase][kind][layer]` is a list aligned with `widths`; `slopes` has the same keys
    and holds the least-squares slope of log2 RMS against log2 width.
    """

    family: str
    widths: list[int]
    steps: int
    lr: dict[str, float]
    threshold: float
    rms: dict[str, dict[str, dict[str, dict[str, list[float]]]]]
    slopes: dict[str, dict[str, dict[str, dict[str, float]]]]
    flags: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (non-finite numbers as null)."""

        def clean(o: Any) -> Any:
            if isinstance(o, float):
                return o if math.isfinite(o) else None
            if isinstance(o, dict):
                return {k: clean(v) for k, v in o.items()}
            if isinstance(o, list):
                return [clean(v) for v in o]
            return o

        return clean(dataclasses.asdict(self))  # type: ignore[no-any-return]


def _rms(t: Any) -> float:
    t = t.detach().float()
    return float(t.pow(2).mean().sqrt())


def _slope(widths: list[int], values: list[float]) -> float:
    """Least-squares slope of log2(value) on log2(width) (NaN if any value is not positive)."""
    v = np.asarray(values, dtype=float)
    if len(v) < 2 or not np.all(np.isfinite(v)) or np.any(v <= 0):
        return math.nan
    return float(np.polyfit(np.log2(widths), np.log2(v), 1)[0])


def _grad_rms(model: Any) -> dict[str, float]:
    return {n: _rms(p.grad) for n, p in model.named_parameters() if p.grad is not None}


def measure(
    spec: ModelSpec, batches: list[tuple[Any, Any]], steps: int, lr: float, seed: int = 0
) -> dict[str, dict[str, dict[str, float]]]:
    """RMS of activations and gradients of one model at init and after ``steps`` AdamW steps.

    Args:
        spec: the proxy to build.
        batches: ``steps + 1`` (input, target) batches; the first is the probe batch.
        steps: training steps between the two measurements.
        lr: peak learning rate (constant, no warmup: the check is about scale, not quality).
        seed: torch seed for the initialisation.
    """
    import torch

    from umup_sweep.models import activation_rms, build_model, make_optimizer

    torch.manual_seed(seed)
    model: Any = build_model(spec)
    opt = make_optimizer(model, lr=lr)
    probe_x, probe_y = batches[0]
    out: dict[str, dict[str, dict[str, float]]] = {}

    def snapshot() -> dict[str, dict[str, float]]:
        model.zero_grad(set_to_none=True)
        acts = {k: float(v) for k, v in activation_rms(model, probe_x).items()}
        logits = model(probe_x)
        acts.setdefault("logits", _rms(logits))
        model.compute_loss(logits, probe_y).backward()
        grads = _grad_rms(model)
        model.zero_grad(set_to_none=True)
        return {"activations": acts, "gradients": grads}

    out["init"] = snapshot()
    for x, y in batches[1 : steps + 1]:
        opt.zero_grad(set_to_none=True)
        model.compute_loss(model(x), y).backward()
        opt.step()
    out["trained"] = snapshot()
    return out


def _batches(
    data: DataSpec | None, n: int, batch_size: int, seq_len: int, vocab: int, seed: int
) -> list[tuple[Any, Any]]:
    """``n`` batches from the corpus (or uniform random tokens when ``data`` is None)."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    if data is None:
        toks = torch.randint(0, vocab, (n, batch_size, seq_len + 1), generator=gen)
        return [(t[:, :-1], t[:, 1:]) for t in toks]
    from umup_sweep.data import load_corpus

    corpus = load_corpus(data)
    return [corpus.batch("train", batch_size, seq_len, gen) for _ in range(n)]


def coord_check(
    family: ProxyFamily,
    widths: list[int] | None = None,
    steps: int = 3,
    parametrizations: tuple[str, ...] = ("umup", "sp"),
    lr: dict[str, float] | None = None,
    batch_size: int = 8,
    data: DataSpec | None = None,
    threshold: float = SLOPE_THRESHOLD,
    seed: int = 0,
) -> CoordCheck:
    """Run the coordinate check for a proxy family.

    Args:
        family: the proxy family (its base spec; depth = its first depth).
        widths: widths to compare (default: the family's, at least 3 recommended).
        steps: AdamW steps between the "init" and "trained" measurements.
        parametrizations: which to compare (each builds its own models).
        lr: learning rate per parametrization (default: 1.0 for u-μP, 2^-7 for SP).
        batch_size: sequences per batch.
        data: corpus to draw batches from (None: uniform random tokens).
        threshold: flag a layer when log2 RMS grows faster than this per width doubling.
        seed: seed for init and batches.

    Example:
        >>> from umup_sweep.config import load_proxy_family  # doctest: +SKIP
        >>> cc = coord_check(load_proxy_family("proxies/tiny.yaml"), [32, 64, 128], steps=2)
        ... # doctest: +SKIP
        >>> [f["layer"] for f in cc.flags if f["parametrization"] == "umup"]  # doctest: +SKIP
        []
    """
    widths = sorted(widths or list(family.widths))
    lrs = DEFAULT_LR | (lr or {})
    specs = [family.spec(w, family.depths[0]) for w in widths]  # the family's heads rule
    base = specs[0]
    batches = _batches(data, steps + 1, batch_size, base.seq_len, base.vocab_size, seed)
    rms = {
        param: _rms_across_widths(specs, param, batches, steps, lrs[param], seed)
        for param in parametrizations
    }
    slopes = {
        param: {
            phase: {
                kind: {n: _slope(widths, v) for n, v in layers.items()}
                for kind, layers in kinds.items()
            }
            for phase, kinds in phases.items()
        }
        for param, phases in rms.items()
    }
    return CoordCheck(
        family=family.name,
        widths=widths,
        steps=steps,
        lr={p: lrs[p] for p in parametrizations},
        threshold=threshold,
        rms=rms,
        slopes=slopes,
        flags=_flags(slopes, threshold),
    )


def _rms_across_widths(
    specs: list[ModelSpec],
    param: str,
    batches: list[tuple[Any, Any]],
    steps: int,
    lr: float,
    seed: int,
) -> dict[str, dict[str, dict[str, list[float]]]]:
    """`measure` at every width: ``[phase][kind][layer]`` -> RMS per width (NaN where a
    layer is missing at some width)."""
    per_width = []
    for width_spec in specs:
        spec = dataclasses.replace(width_spec, parametrization=param)  # type: ignore[arg-type]
        per_width.append(measure(spec, batches, steps, lr, seed))
    return {
        phase: {
            kind: {
                name: [pw[phase][kind].get(name, math.nan) for pw in per_width]
                for name in per_width[0][phase][kind]
            }
            for kind in KINDS
        }
        for phase in PHASES
    }


def _flags(
    slopes: dict[str, dict[str, dict[str, dict[str, float]]]], threshold: float
) -> list[dict[str, Any]]:
    """Every layer whose log2 RMS grows faster than ``threshold`` per width doubling."""
    return [
        {"parametrization": param, "phase": phase, "kind": kind, "layer": name, "slope": s}
        for param, phases in slopes.items()
        for phase, kinds in phases.items()
        for kind, layers in kinds.items()
        for name, s in layers.items()
        if math.isfinite(s) and s > threshold
    ]


def _layer_colour(name: str) -> str:
    """One colour per kind of layer so lines of the same kind read as a family."""
    for pattern, colour in (
        (r"emb", "tab:blue"),
        (r"attn.*(logit|score)", "tab:purple"),
        (r"attn", "tab:orange"),
        (r"(ffn|mlp)", "tab:green"),
        (r"norm", "tab:gray"),
        (r"(head|readout|logit|lm)", "tab:red"),
        (r"block", "tab:brown"),
    ):
        if re.search(pattern, name):
            return colour
    return "black"


def _coord_panel(ax: Axes, cc: CoordCheck, param: str, phase: str, kind: str) -> None:
    """log2 RMS against log2 width for every layer of one (parametrization, phase, kind); the
    layers that grow faster than the threshold drawn bold."""
    lx = np.log2(cc.widths)
    layers = cc.rms[param][phase][kind]
    for name, values in layers.items():
        v = np.asarray(values, dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            y = np.log2(v)
        slope = cc.slopes[param][phase][kind][name]
        flagged = math.isfinite(slope) and slope > cc.threshold
        ax.plot(
            lx,
            y,
            "-o" if flagged else "-",
            color=_layer_colour(name),
            lw=2.2 if flagged else 0.9,
            ms=3,
            alpha=1.0 if flagged else 0.6,
            label=f"{name} ↑" if flagged else name,
        )
    ax.axhline(0.0, color="black", lw=0.6, ls=":")
    n_flag = sum(
        1 for f in cc.flags if (f["parametrization"], f["phase"], f["kind"]) == (param, phase, kind)
    )
    when = "at init" if phase == "init" else f"after {cc.steps} steps (lr {cc.lr[param]:g})"
    label = {"umup": "u-μP", "sp": "SP"}.get(param, param)
    ax.set_title(
        f"{label} {kind} {when}\n{n_flag} of {len(layers)} grow faster than "
        f"{cc.threshold:g} log2/doubling",
        fontsize=10,
    )
    ax.xaxis.set_major_locator(FixedLocator(list(lx)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _p: f"{2**v:.0f}"))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _p: f"$2^{{{v:g}}}$"))
    ax.set_xlabel("width (log2 axis)")
    ax.set_ylabel(f"RMS of {kind}")
    ax.grid(alpha=0.3)
    if len(layers) <= 16:
        ax.legend(
            fontsize=6.5,
            loc="best",
            ncol=2 if len(layers) > 8 else 1,
            title="↑ grows with width",
            title_fontsize=6.5,
        )


def plot_coord_check(
    cc: CoordCheck, out_dir: str | Path, formats: tuple[str, ...] = ("png", "svg")
) -> list[Path]:
    """Write `coord_check_<kind>.png/.svg`: rows init/trained, one column per parametrization."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    params = list(cc.rms)
    for kind in KINDS:
        fig = Figure(figsize=(6.2 * len(params), 8))
        FigureCanvasAgg(fig)  # its own canvas: no pyplot, no global backend
        axes = fig.subplots(2, len(params), squeeze=False, sharex=True)
        for j, param in enumerate(params):
            for i, phase in enumerate(PHASES):
                _coord_panel(axes[i, j], cc, param, phase, kind)
        fig.tight_layout()
        for fmt in formats:
            path = out / f"coord_check_{kind}.{fmt}"
            fig.savefig(path, dpi=100)
            written.append(path)
    return written


def write_coord_check(cc: CoordCheck, out_dir: str | Path) -> Path:
    """Write `coord_check.json` (RMS per layer and width, slopes, flags)."""
    path = Path(out_dir) / "coord_check.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(cc.to_dict(), indent=2) + "\n")
    return path
