"""Read a run directory (`sweep.yaml` + `trials.csv`) into a `RunData` for the analyses.

The run directory is the contract between the sweep driver and the analyses (see DESIGN.md);
this module is the only place that knows its file names.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from umup_sweep.errors import DataError, UserError
from umup_sweep.spec import HP_DEFAULTS, HP_NAMES, ModelSpec

TRIALS_FILE = "trials.csv"
SWEEP_FILE = "sweep.yaml"
TRANSFER_FILE = "transfer.json"
RECOMMENDED_FILE = "recommended.yaml"
REPORT_FILE = "report.md"
PLOTS_DIR = "plots"
DEFAULT_TOLERANCE = 0.25
DEFAULT_PRECISION = "fp32"  # trials.csv from before the precision axis: everything ran in fp32
# Highest precision first: the first one present is the reference the others are compared with.
PRECISION_ORDER = ("fp32", "bf16", "fp8_sim")
# |shift| of a low precision's optimum (log2) that still "holds", and the loss gap (in the
# metric's units, nats for val_loss) at the optimum beyond which a precision "degrades".
DEFAULT_PRECISION_TOLERANCE = 0.5
DEFAULT_PRECISION_LOSS_THRESHOLD = 0.05


def precision_rank(name: str) -> tuple[int, str]:
    """Sort key: fp32, bf16, fp8_sim, then any other name alphabetically.

    Example:
        >>> sorted(["fp8_sim", "fp32", "bf16"], key=precision_rank)
        ['fp32', 'bf16', 'fp8_sim']
    """
    order = PRECISION_ORDER.index(name) if name in PRECISION_ORDER else len(PRECISION_ORDER)
    return order, name


@dataclass
class RunData:
    """What the analyses need from one run directory.

    Attributes:
        path: the run directory.
        name: the sweep name (directory name if sweep.yaml has none).
        metric: the column the sweep minimised (`val_loss` by default).
        swept: the swept HP names, in declaration order.
        tolerance: the transfer tolerance (log2 per doubling) from `analysis.tolerance`.
        precision_tolerance: |shift| (log2) of a low precision's optimum that still holds
            (`analysis.precision_tolerance`).
        precision_loss_threshold: loss gap at the optimum beyond which a low precision
            degrades (`analysis.precision_loss_threshold`).
        trials: the trials table (every HP has a column; `status` ok|diverged|failed).
        sweep: the raw sweep.yaml mapping ({} when absent).
        base: the proxy family's base ModelSpec (None when sweep.yaml does not say).
    """

    path: Path
    name: str
    metric: str
    swept: tuple[str, ...]
    tolerance: float
    trials: pd.DataFrame
    sweep: dict[str, Any] = field(default_factory=dict)
    base: ModelSpec | None = None
    precision_tolerance: float = DEFAULT_PRECISION_TOLERANCE
    precision_loss_threshold: float = DEFAULT_PRECISION_LOSS_THRESHOLD

    @property
    def precisions(self) -> list[str]:
        """The precisions in the trials, highest first (`["fp32"]` for older runs)."""
        return sorted({str(p) for p in self.trials["precision"]}, key=precision_rank)


def _model_spec_from(mapping: Any) -> ModelSpec | None:
    """Build a ModelSpec from a mapping of ModelSpec keys (unknown keys ignored)."""
    if not isinstance(mapping, dict):
        return None
    names = {f.name for f in dataclasses.fields(ModelSpec)}
    kwargs = {k: v for k, v in mapping.items() if k in names}
    try:
        return ModelSpec(**kwargs)
    except (TypeError, ValueError):
        return None


def _load_spec(sweep_path: Path) -> Any:
    """The validated SweepSpec via `config_load.load_sweep`, or None if it does not load (the
    analysis then reads the few keys it needs from the raw YAML)."""
    try:
        from umup_sweep.config_load import load_sweep

        return load_sweep(sweep_path)
    except Exception:  # an old/hand-written sweep.yaml, or files it references are gone
        return None


def _find_base(sweep: dict[str, Any]) -> ModelSpec | None:
    """The proxy base spec from the raw YAML (`proxy:`/`family:` mapping with `base:`)."""
    for key in ("proxy", "family", "proxies", "model"):
        node = sweep.get(key)
        if isinstance(node, dict):
            spec = _model_spec_from(node.get("base", node))
            if spec is not None:
                return spec
    return None


def _metric_name(value: Any) -> str | None:
    """`metric: val_loss` or the W&B-style `metric: {name: val_loss, goal: minimize}`."""
    if isinstance(value, dict):
        value = value.get("name")
    return str(value) if value else None


def _swept_from_trials(trials: pd.DataFrame) -> tuple[str, ...]:
    """HPs that take more than one value in the table (fallback when sweep.yaml is absent)."""
    return tuple(h for h in HP_NAMES if h in trials and trials[h].nunique(dropna=True) > 1)


def load_trials(path: Path, metric: str = "val_loss") -> pd.DataFrame:
    """Read and normalise `trials.csv`: HP columns filled with defaults, numbers as floats, a
    `precision` column (fp32 where absent: runs from before the precision axis)."""
    try:
        df = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        df = pd.DataFrame()
    except (OSError, pd.errors.ParserError) as exc:
        raise DataError(f"{path}: cannot read trials table ({exc})") from exc
    missing = [c for c in ("width", "depth", "status") if c not in df.columns]
    if df.empty:
        return df
    if missing:
        raise DataError(f"{path}: missing column(s) {', '.join(missing)}")
    if metric not in df.columns:
        raise DataError(f"{path}: no metric column {metric!r} (columns: {', '.join(df.columns)})")
    for name in HP_NAMES:
        if name not in df.columns:
            df[name] = HP_DEFAULTS[name]
        df[name] = pd.to_numeric(df[name], errors="coerce").fillna(HP_DEFAULTS[name])
    if "parametrization" not in df.columns:
        df["parametrization"] = "umup"
    if "precision" not in df.columns:
        df["precision"] = DEFAULT_PRECISION
    df["precision"] = df["precision"].fillna(DEFAULT_PRECISION).astype(str)
    df.loc[df["precision"].str.strip() == "", "precision"] = DEFAULT_PRECISION
    if "seed" not in df.columns:
        df["seed"] = 0
    if "stage" not in df.columns:
        df["stage"] = "grid"
    df[metric] = pd.to_numeric(df[metric], errors="coerce")
    df["width"] = df["width"].astype(int)
    df["depth"] = df["depth"].astype(int)
    df["status"] = df["status"].astype(str)
    return df


def load_run(run_dir: str | Path, metric: str | None = None) -> RunData:
    """Load a run directory for analysis.

    Args:
        run_dir: `runs/<name>/`, holding `trials.csv` and (normally) `sweep.yaml`.
        metric: override the sweep's metric column.

    Raises:
        UserError: the directory does not exist or holds no trials yet.

    Example:
        >>> run = load_run("runs/lr_width")  # doctest: +SKIP
        >>> run.swept  # doctest: +SKIP
        ('lr',)
    """
    path = Path(run_dir)
    if not path.is_dir():
        raise UserError(f"{path} is not a run directory (it does not exist)")
    sweep_path = path / SWEEP_FILE
    sweep: dict[str, Any] = {}
    if sweep_path.exists():
        try:
            loaded = yaml.safe_load(sweep_path.read_text())
        except yaml.YAMLError as exc:
            raise DataError(f"{sweep_path}: not valid YAML ({exc})") from exc
        sweep = loaded if isinstance(loaded, dict) else {}
    spec = _load_spec(sweep_path) if sweep else None
    metric = metric or (spec.metric if spec else _metric_name(sweep.get("metric"))) or "val_loss"
    trials_path = path / TRIALS_FILE
    if not trials_path.exists():
        raise UserError(f"{path} has no trials yet: run `umup-sweep run <sweep.yaml>` first")
    trials = load_trials(trials_path, metric)
    if trials.empty:
        raise UserError(f"{path} has no trials yet: run `umup-sweep run <sweep.yaml>` first")
    if spec is not None:
        swept: tuple[str, ...] = tuple(h for h in spec.swept if h in HP_NAMES)
        tolerance, name, base = spec.analysis.tolerance, spec.name, spec.family.base
    else:
        hps = sweep.get("hyperparameters")
        swept = tuple(h for h in hps if h in HP_NAMES) if isinstance(hps, dict) else ()
        analysis = sweep.get("analysis") if isinstance(sweep.get("analysis"), dict) else {}
        tolerance = float((analysis or {}).get("tolerance", DEFAULT_TOLERANCE))
        name, base = str(sweep.get("name") or path.name), _find_base(sweep)
    shift_tol, loss_thr = _precision_settings(spec, sweep, sweep_path)
    return RunData(
        path=path,
        name=name,
        metric=metric,
        swept=swept or _swept_from_trials(trials),
        tolerance=float(tolerance),
        trials=trials,
        sweep=sweep,
        base=base,
        precision_tolerance=shift_tol,
        precision_loss_threshold=loss_thr,
    )


def _precision_settings(spec: Any, sweep: dict[str, Any], source: Path) -> tuple[float, float]:
    """`analysis.precision_tolerance` / `analysis.precision_loss_threshold`: from the validated
    spec (already checked by the sweep loader), else from the raw YAML, else the defaults."""
    if spec is not None:
        return spec.analysis.precision_tolerance, spec.analysis.precision_loss_threshold
    raw = sweep.get("analysis") if isinstance(sweep.get("analysis"), dict) else {}
    out = []
    for key, default in (
        ("precision_tolerance", DEFAULT_PRECISION_TOLERANCE),
        ("precision_loss_threshold", DEFAULT_PRECISION_LOSS_THRESHOLD),
    ):
        value = (raw or {}).get(key, default)
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise DataError(
                f"{source}: analysis.{key} must be a positive number, got {value!r}"
            ) from None
        if not value > 0:
            raise DataError(f"{source}: analysis.{key} must be a positive number, got {value}")
        out.append(value)
    return out[0], out[1]
