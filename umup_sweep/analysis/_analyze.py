"""Analyse a finished run and write what it gets: `transfer.json` (`analyze_run`), the plots
(`plot_runs`), `report.md` (`write_report`), or all three (`finalize_run`). The one place of
the analysis that writes files; the fits, comparisons, figures and report text it calls are
pure.

Example (a noise-free bowl at log2 lr = −1 at both widths, nothing written):
    >>> import pandas as pd
    >>> from umup_sweep.spec import HP_DEFAULTS
    >>> rows = [HP_DEFAULTS | {"lr": 2.0**x, "width": w, "depth": 2, "seed": s, "status": "ok",
    ...                        "parametrization": "umup", "precision": "fp32",
    ...                        "val_loss": 3 + 0.05 * (x + 1) ** 2 + 0.001 * (-1) ** (s + x)}
    ...         for w in (64, 128) for s in (0, 1) for x in range(-4, 3)]
    >>> run = RunData(Path("runs/demo"), "demo", "val_loss", ("lr",), 0.25, pd.DataFrame(rows))
    >>> report = analyze_run(run, write=False)
    >>> [(row["parametrization"], row["verdict"]) for row in report.rows()]
    [('umup', 'transfers')]
    >>> import tempfile
    >>> out = Path(tempfile.mkdtemp())
    >>> [p.name for p in plot_runs([report], out, formats=("png",))]
    ['lr.png']
    >>> write_report(report, [out / "lr.png"], out / "report.md").read_text().splitlines()[0]
    '# Transfer report: demo'
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from umup_sweep.analysis._compare import COMPARE_FILE, Comparison
from umup_sweep.analysis._conditional import conditional_records
from umup_sweep.analysis._conditional_plot import conditional_figure
from umup_sweep.analysis._plots import transfer_figure
from umup_sweep.analysis._points import json_ready
from umup_sweep.analysis._precision import PrecisionReport, compare_precisions
from umup_sweep.analysis._report import report_markdown
from umup_sweep.analysis._report_hp import cost_text, holds_from
from umup_sweep.analysis._run import DEFAULT_PRECISION, RunData, load_run, precision_rank
from umup_sweep.analysis._search import search_record
from umup_sweep.analysis._transfer import HPTransfer, analyze_trials, result_key
from umup_sweep.fitting import FIT_WINDOW
from umup_sweep.store import (
    PLOTS_DIR,
    RECOMMENDED_FILE,
    REPORT_FILE,
    TRANSFER_FILE,
    status_counts,
)


@dataclass
class TransferReport:
    """Everything `analyze_run` found; `to_dict()` is the `transfer.json` content.

    `results[hp][key]` holds one `HPTransfer` per parametrization and precision (key from
    `result_key`); `precision` compares each lower precision's optima with the reference's.
    """

    run: str
    run_dir: str
    metric: str
    tolerance: float
    counts: dict[str, int]
    results: dict[str, dict[str, HPTransfer]]
    precisions: list[str] = field(default_factory=lambda: [DEFAULT_PRECISION])
    precision: PrecisionReport | None = None
    search: dict[str, Any] | None = None  # what an independent search decided, per precision
    # lr optimum per value of each other HP swept with it, per result key (`_conditional`)
    conditional: dict[str, Any] | None = None

    def get(
        self, hp: str, parametrization: str, precision: str = DEFAULT_PRECISION
    ) -> HPTransfer | None:
        """The analysis of ``hp`` under one parametrization and precision (None: not swept)."""
        return self.results.get(hp, {}).get(result_key(parametrization, precision))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (NaN written as null; no `search` or `conditional` key unless the
        run had one)."""
        out = json_ready(asdict(self))
        for key in ("search", "conditional"):  # only for runs that have them
            if out.get(key) is None:
                out.pop(key, None)
        return out

    def write(self, path: str | Path | None = None) -> Path:
        """Write `transfer.json` (into the run directory unless ``path`` is given)."""
        out = Path(path) if path is not None else Path(self.run_dir) / TRANSFER_FILE
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return out

    def rows(self) -> list[dict[str, Any]]:
        """One summary row per (HP, parametrization, precision): for tables in the CLI and
        report (`parametrization` is the result key, e.g. `umup@fp8_sim`, so rows differ)."""
        rows = []
        for hp, by_param in self.results.items():
            for param, res in by_param.items():
                drift = "; ".join(
                    f"{d.slope:+.2f} ± {d.se:.2f} /{a}×2" for a, d in res.drift.items()
                )
                rows.append(
                    {
                        "hp": hp,
                        "parametrization": param,
                        "precision": res.precision,
                        "proxies": ", ".join(p.name for p in res.per_proxy),
                        "optima_log2": ", ".join(_fmt(p.fit_optimum_log2) for p in res.per_proxy),
                        "drift": drift or "-",
                        "verdict": res.verdict,
                        "regret": _fmt(res.regret.get("fit", res.regret.get("grid")), 4),
                        "cost": cost_text(res),
                        "holds_from": holds_from(res),
                    }
                )
        return rows


def _fmt(v: float | None, digits: int = 2) -> str:
    return "-" if v is None or not math.isfinite(v) else f"{v:.{digits}f}"


def analyze_run(
    run_dir: str | Path | RunData,
    tolerance: float | None = None,
    window: int = FIT_WINDOW,
    write: bool = True,
    precision_tolerance: float | None = None,
    precision_loss_threshold: float | None = None,
) -> TransferReport:
    """Analyse a run and (by default) write its `transfer.json`.

    Args:
        run_dir: `runs/<name>/` (or an already loaded `RunData`).
        tolerance: |drift| (log2 per doubling) that still transfers; default from the sweep's
            `analysis.tolerance`, else 0.25.
        window: grid points either side of each proxy's argmin used in the fits.
        write: write `transfer.json` into the run directory.
        precision_tolerance: |shift| (log2) of a low precision's optimum from fp32's that still
            holds; default the sweep's `analysis.precision_tolerance`, else 0.5.
        precision_loss_threshold: loss gap at the optimum beyond which a low precision
            degrades; default the sweep's `analysis.precision_loss_threshold`, else 0.05.

    The module docstring has an example.
    """
    run = run_dir if isinstance(run_dir, RunData) else load_run(run_dir)
    tol = float(tolerance if tolerance is not None else run.tolerance)
    counts = status_counts(run.trials["status"])
    results = analyze_trials(run.trials, run.swept, run.metric, tol, window)
    precision = compare_precisions(
        run.trials,
        results,
        run.metric,
        float(precision_tolerance or run.precision_tolerance),
        float(precision_loss_threshold or run.precision_loss_threshold),
        window,
    )
    report = TransferReport(
        run=run.name,
        run_dir=str(run.path),
        metric=run.metric,
        tolerance=tol,
        counts=counts,
        results=results,
        precisions=precision.precisions,
        precision=precision,
        search=search_record(run.spec, run.trials, run.data_fingerprint),
        conditional=conditional_records(
            run.trials, run.swept, run.metric, tol, run.spec.strategy if run.spec else "grid"
        ),
    )
    if write:
        report.write()
    return report


def plot_hp(
    panels: list[tuple[str, HPTransfer]], metric: str, stem: Path, formats: tuple[str, ...]
) -> list[Path]:
    """Draw `transfer_figure` and save it as ``stem.<fmt>`` for each format."""
    fig = transfer_figure(panels, metric)
    stem.parent.mkdir(parents=True, exist_ok=True)
    written = []
    for fmt in formats:
        path = stem.with_suffix(f".{fmt}")
        fig.savefig(path, dpi=110)
        written.append(path)
    return written


def plot_runs(
    runs: Sequence[str | Path | TransferReport],
    out_dir: str | Path | None = None,
    formats: tuple[str, ...] = ("png", "svg"),
    tolerance: float | None = None,
) -> list[Path]:
    """Plot one or more runs; several runs go side by side (e.g. u-μP vs SP).

    Args:
        runs: run directories (analysed now, `transfer.json` refreshed) or reports.
        out_dir: where to write; default the first run's `plots/`.
        formats: file types to write.
        tolerance: override the transfer tolerance.

    Returns:
        The files written (`<hp>.png`/`.svg`; `<hp>_<run1>_vs_<run2>.*` for several runs;
        for one run with lr gridded against another HP, also `lr_by_<hp>.*`).

    Example:
        >>> plot_runs(["runs/lr_width", "runs/sp_lr_width"])  # doctest: +SKIP
        [PosixPath('runs/lr_width/plots/lr_lr_width_vs_sp_lr_width.png'), ...]
    """
    reports = [r if isinstance(r, TransferReport) else analyze_run(r, tolerance) for r in runs]
    if not reports:
        return []
    out = Path(out_dir) if out_dir is not None else Path(reports[0].run_dir) / PLOTS_DIR
    hps: list[str] = []
    for rep in reports:
        hps += [h for h in rep.results if h not in hps]
    written: list[Path] = []
    names = [rep.run for rep in reports]
    for hp in hps:
        panels = [
            (rep.run, res)
            for rep in reports
            for res in sorted(
                rep.results.get(hp, {}).values(),
                key=lambda r: (r.parametrization, precision_rank(r.precision)),
            )
        ]
        stem = hp if len(reports) == 1 else f"{hp}_{'_vs_'.join(names)}"
        written += plot_hp(panels, reports[0].metric, out / stem, formats)
    if len(reports) == 1:
        written += _plot_conditional(reports[0], out, formats)
    return written


def _plot_conditional(report: TransferReport, out: Path, formats: tuple[str, ...]) -> list[Path]:
    """``<hp>_by_<other>.*``: the lr curves per value of the HP swept with it (per result
    key, suffixed with the key when the run has several)."""
    written: list[Path] = []
    records = report.conditional or {}
    for key, by_hp in records.items():
        for by, record in by_hp.items():
            stem = f"{record['hp']}_by_{by}" + ("" if len(records) == 1 else f"_{key}")
            fig = conditional_figure(record, report.metric, report.run)
            out.mkdir(parents=True, exist_ok=True)
            for fmt in formats:
                path = out / f"{stem}.{fmt}"
                fig.savefig(path, dpi=110)
                written.append(path)
    return written


def write_report(
    report: TransferReport,
    plots: list[Path] | None = None,
    out: str | Path | None = None,
    compare: Comparison | None = None,
) -> Path:
    """Write `report.md` for an analysed run; returns its path.

    Args:
        report: the run's transfer analysis (`analyze_run`).
        plots: image files to embed (default: every PNG in the run's `plots/`).
        out: output file (default `<run_dir>/report.md`).
        compare: the run next to another (`load_comparison`): adds a "Compared with" section
            and writes its numbers to `compare.json` next to the report.

    Example:
        >>> write_report(analyze_run("runs/lr_width"))  # doctest: +SKIP
        PosixPath('runs/lr_width/report.md')
    """
    run_dir = Path(report.run_dir)
    path = Path(out) if out is not None else run_dir / REPORT_FILE
    if plots is None:
        plots = sorted((run_dir / PLOTS_DIR).glob("*.png"))
    rec_path = run_dir / RECOMMENDED_FILE
    recommended = (yaml.safe_load(rec_path.read_text()) or {}) if rec_path.exists() else None
    if compare is not None:
        data = compare.to_dict()
        (path.parent / COMPARE_FILE).write_text(json.dumps(data, indent=2) + "\n")
    path.write_text(report_markdown(report, plots, path, recommended, compare))
    return path


def finalize_run(
    run_dir: str | Path | RunData,
    tolerance: float | None = None,
    compare: Comparison | None = None,
) -> TransferReport:
    """Everything a finished run gets: `transfer.json`, `plots/`, `report.md` (and, with
    ``compare``, `compare.json` and the report's "Compared with" section).

    Meant for the end of `umup-sweep run` and for `umup-sweep report` (``run_dir`` may be an
    already loaded `RunData`, so a caller that also compares the run reads it once).

    Example:
        >>> finalize_run("runs/lr_width").results["lr"]["umup"].verdict  # doctest: +SKIP
        'transfers'
    """
    report = analyze_run(run_dir, tolerance)
    plots = [p for p in plot_runs([report]) if p.suffix == ".png"]
    write_report(report, plots, compare=compare)
    return report
