"""The experiment-tracker interface, and what every tracker logs about a trial.

A tracker (`BaseTracker`) writes one run per finished trial (`log_trial`: its HPs and proxy
shape as config, its loss curve as metrics by step, its final numbers) and one run per
analysed sweep (`log_summary`: the transfer verdicts, the recommendation, the figures). Each
backend module (`_wandb`, `_mlflow`, `_tensorboard`) declares its options (`OPTIONS`, with
defaults) and checks them (`parse_options`), as the search strategies do; its library is
imported only once a tracker is made, so this package imports without any of them.

Example:
    >>> from umup_sweep.spec import ModelSpec, TrainSpec, TrialResult, TrialSpec
    >>> spec = TrialSpec(ModelSpec(width=32, depth=1), TrainSpec(steps=5, lr=0.5))
    >>> info = SweepInfo("demo", Path("runs/demo"), Path("runs/demo/tracking"), "demo", ("lr",))
    >>> info.trial_name(spec)
    '32x1 lr=0.5 seed=0'
    >>> curve_metrics([(0, 3.5, None), (4, 3.0, 3.25)])
    [(0, {'train_loss': 3.5}), (4, {'train_loss': 3.0, 'val_loss': 3.25})]
    >>> final_metrics(TrialResult(spec.trial_key, "ok", 3.0, 3.25, wall_s=1.5))["final_val_loss"]
    3.25
"""

from __future__ import annotations

import abc
import importlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from umup_sweep.errors import UserError
from umup_sweep.spec import TrialResult, TrialSpec

if TYPE_CHECKING:  # config asks the trackers for their options: no runtime import back
    from umup_sweep.config import OptionContext

__all__ = [
    "TRACKING_DIR",
    "BaseTracker",
    "Curve",
    "SweepInfo",
    "SweepSummary",
    "TrackingError",
    "curve_metrics",
    "final_metrics",
    "trial_config",
]

# The trackers' folder in a run directory (the default `tracking.dir`), and its ledger.
TRACKING_DIR = "tracking"
INSTALL_HINT = "pip install 'umup-sweep[tracking]'"

Curve = Sequence[tuple[int, float, float | None]]


class TrackingError(UserError):
    """A tracker cannot be used (its package is missing): one line, before any trial runs."""


@dataclass(frozen=True)
class SweepInfo:
    """What a tracker knows about the sweep it logs.

    Attributes:
        name: the sweep name (the group of its runs).
        run_dir: the run directory (the store's).
        dir: the trackers' local files (`tracking.dir`, default ``<run_dir>/tracking``).
        project: W&B project / MLflow experiment (default: the sweep name).
        swept: the swept HP names (shown in run names).
        precisions: the sweep's precisions (a run name shows its own when there are several).
        train_axes: whether the sweep has train axes (a run name then shows steps × batch).
    """

    name: str
    run_dir: Path
    dir: Path
    project: str
    swept: tuple[str, ...] = ()
    precisions: tuple[str, ...] = ("fp32",)
    train_axes: bool = False

    def where(self, path: Path) -> str:
        """`path` in a tracker's `destination`: relative to the run directory when inside it
        (a moved run directory keeps what its trackers logged), else absolute.

        Example:
            >>> info = SweepInfo("x", Path("/r/x"), Path("/r/x/tracking"), "x")
            >>> info.where(Path("/r/x/tracking/tb")), info.where(Path("/elsewhere"))
            ('<run_dir>/tracking/tb', '/elsewhere')
        """
        path = path.resolve()
        try:
            return f"<run_dir>/{path.relative_to(self.run_dir.resolve()).as_posix()}"
        except ValueError:
            return str(path)

    def trial_name(self, spec: TrialSpec) -> str:
        """A readable run name: proxy shape, swept HPs, seed (and precision, steps × batch
        where the sweep varies them). The trial key, unique, is in the run's config."""
        parts = [f"{spec.model.width}x{spec.model.depth}"]
        hps = spec.hps
        parts += [f"{hp}={hps[hp]:.4g}" for hp in self.swept if hp in hps]
        parts.append(f"seed={spec.seed}")
        if len(self.precisions) > 1:
            parts.append(spec.train.precision)
        if self.train_axes:
            parts.append(f"{spec.train.steps}x{spec.train.batch_size}")
        if spec.model.parametrization != "umup":
            parts.append(spec.model.parametrization)
        return " ".join(parts)


@dataclass(frozen=True)
class SweepSummary:
    """What the end of an analysed sweep logs (read from the run directory).

    Attributes:
        verdicts: one row per HP × parametrization × axis: hp, parametrization, axis,
            drift (log2 per doubling), se, verdict, reason.
        recommendation: the recommended HP values (``recommended.yaml``), or None.
        figures: the PNG plots.
        files: transfer.json, report.md, recommended.yaml (those that exist).
        counts: stored trials by status.
        step: a number that grows with the sweep (its stored trials), for step-based logs.
    """

    verdicts: list[dict[str, Any]] = field(default_factory=list)
    recommendation: dict[str, float] | None = None
    figures: list[Path] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    step: int = 0

    def scalars(self) -> dict[str, float]:
        """The numbers: ``drift/<hp>/<parametrization>/<axis>`` and ``.../se``, the
        recommendation as ``recommended/<hp>``, the counts as ``trials/<status>``."""
        out: dict[str, float] = {}
        for row in self.verdicts:
            where = f"{row['hp']}/{row['parametrization']}/{row['axis']}"
            for key in ("drift", "se"):
                if _finite(row.get(key)):
                    out[f"{key}/{where}"] = float(row[key])
        for hp, value in (self.recommendation or {}).items():
            out[f"recommended/{hp}"] = float(value)
        out |= {f"trials/{k}": float(v) for k, v in self.counts.items()}
        return out

    def verdict_labels(self) -> dict[str, str]:
        """``verdict/<hp>/<parametrization>`` -> its verdict (one per HP × parametrization)."""
        return {f"verdict/{r['hp']}/{r['parametrization']}": r["verdict"] for r in self.verdicts}

    def markdown(self) -> str:
        """The verdicts (and the recommendation) as a Markdown table."""
        lines = [
            "| hp | parametrization | axis | drift | se | verdict |",
            "|---|---|---|---|---|---|",
        ]
        for r in self.verdicts:
            drift = f"{r['drift']:+.3f}" if _finite(r.get("drift")) else "-"
            se = f"{r['se']:.3f}" if _finite(r.get("se")) else "-"
            lines.append(
                f"| {r['hp']} | {r['parametrization']} | {r['axis']} | {drift} | {se} | "
                f"{r['verdict']} |"
            )
        if self.recommendation:
            rec = ", ".join(f"{k}={v:.4g}" for k, v in self.recommendation.items())
            lines += ["", f"Recommended: {rec}"]
        return "\n".join(lines)


def trial_config(spec: TrialSpec, result: TrialResult) -> dict[str, Any]:
    """A trial's run config: its HPs, proxy shape, training setting and identity.

    Example:
        >>> from umup_sweep.spec import ModelSpec, TrainSpec
        >>> spec = TrialSpec(ModelSpec(width=32, depth=1), TrainSpec(steps=5))
        >>> cfg = trial_config(spec, TrialResult(spec.trial_key, "ok", n_params=1000))
        >>> cfg["width"], cfg["steps"], cfg["lr"], cfg["n_params"]
        (32, 5, 1.0, 1000)
    """
    model, train = spec.model, spec.train
    return {
        **spec.hps,
        "width": model.width,
        "depth": model.depth,
        "head_dim": model.head_dim,
        "n_heads": model.n_heads,
        "n_kv_heads": model.kv_heads,
        "vocab_size": model.vocab_size,
        "seq_len": model.seq_len,
        "parametrization": model.parametrization,
        "seed": spec.seed,
        "precision": train.precision,
        "steps": train.steps,
        "batch_size": train.batch_size,
        "optimizer": train.optimizer,
        "schedule": train.schedule,
        "n_params": result.n_params,
        "stage": str(spec.labels.get("stage") or ""),
        "trial_key": spec.trial_key,
    }


def final_metrics(result: TrialResult) -> dict[str, float]:
    """A trial's final numbers (non-finite losses left out; `diverged` and `pruned` are 1.0
    or 0.0)."""
    out = {
        "final_val_loss": result.val_loss,
        "final_train_loss": result.final_train_loss,
        "tokens_per_s": result.tokens_per_s,
        "wall_s": result.wall_s,
        "tokens": result.tokens,
        "diverged": 1.0 if result.status == "diverged" else 0.0,
        "pruned": 1.0 if result.status == "pruned" else 0.0,
    }
    return {k: float(v) for k, v in out.items() if v is not None and _finite(v)}


def curve_metrics(curve: Curve) -> list[tuple[int, dict[str, float]]]:
    """A loss curve as (step, {train_loss, val_loss}) rows, non-finite values left out (a
    diverged trial's last losses): every tracker logs the same numbers."""
    rows = []
    for step, train_loss, val_loss in curve:
        values = {"train_loss": train_loss, "val_loss": val_loss}
        metrics = {k: float(v) for k, v in values.items() if v is not None and _finite(v)}
        if metrics:
            rows.append((int(step), metrics))
    return rows


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


class BaseTracker(abc.ABC):
    """One experiment tracker: a run per finished trial, a run per analysed sweep.

    Subclasses set `NAME` (the `tracking.backend` value), `PACKAGE` (the module their
    library imports as) and `OPTIONS` (their `tracking:` keys with defaults; names unique
    across trackers), and may check them in `parse_options`.

    Args:
        info: the sweep being logged.
        options: this tracker's options, as `parse_options` returned them.
    """

    NAME: ClassVar[str]
    PACKAGE: ClassVar[str]
    OPTIONS: ClassVar[dict[str, Any]] = {}

    def __init__(self, info: SweepInfo, options: Mapping[str, Any]) -> None:
        self.info = info
        self.options = {**self.OPTIONS, **options}

    @classmethod
    def parse_options(cls, options: dict[str, Any], ctx: OptionContext) -> dict[str, Any]:
        """`options` (every key of `OPTIONS`, defaults filled in) checked and resolved;
        errors through ``ctx.fail(option, expected, value)``."""
        return options

    @classmethod
    def check_installed(cls) -> None:
        """Import the tracker's library, or raise the one-line `TrackingError`."""
        try:
            importlib.import_module(cls.PACKAGE)
        except ModuleNotFoundError as exc:
            if exc.name is not None and exc.name.split(".")[0] != cls.PACKAGE:
                raise TrackingError(
                    f"tracking backend '{cls.NAME}' cannot import {cls.PACKAGE}: {exc} "
                    f"({INSTALL_HINT})"
                ) from None
            raise TrackingError(
                f"tracking backend '{cls.NAME}' needs the package {cls.PACKAGE} ({INSTALL_HINT})"
            ) from None
        except ImportError as exc:
            first = (str(exc).splitlines() or [""])[0]
            raise TrackingError(
                f"tracking backend '{cls.NAME}' cannot import {cls.PACKAGE}: {first} "
                f"({INSTALL_HINT})"
            ) from None

    @property
    @abc.abstractmethod
    def destination(self) -> str:
        """Where this tracker writes, in words (also the key of what it has logged)."""

    @abc.abstractmethod
    def log_trial(self, spec: TrialSpec, result: TrialResult, curve: Curve) -> None:
        """Log one finished trial as a run: config, curve by step, final metrics."""

    @abc.abstractmethod
    def log_summary(self, summary: SweepSummary) -> None:
        """Log the analysed sweep as one run: verdicts, recommendation, figures."""

    def scrub(self, text: str) -> str:
        """`text` (an error message) without any secret of this tracker's destination."""
        return text

    def close(self) -> None:  # noqa: B027 - optional: most trackers finish each run as they go
        """Release whatever the tracker holds (called once, at the end of the sweep)."""
