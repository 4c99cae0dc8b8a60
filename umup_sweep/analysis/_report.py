"""The text of `runs/X/report.md`: the human-readable summary of a run (plots, transfer table,
verdict, recommendation, trial counts), with relative links so it opens anywhere. Pure: the
file is written by `write_report` in `_analyze.py`."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from umup_sweep.analysis._compare import Comparison, compare_markdown
from umup_sweep.analysis._conditional import conditional_markdown
from umup_sweep.analysis._report_hp import per_hp_markdown
from umup_sweep.analysis._search import search_markdown
from umup_sweep.analysis._transfer import HPTransfer
from umup_sweep.store import RECOMMENDED_FILE, TRANSFER_FILE

if TYPE_CHECKING:
    from umup_sweep.analysis._analyze import TransferReport

PARAM_LABEL = {"umup": "u-μP", "sp": "SP", "mup": "μP"}


def _f(v: float | None, digits: int = 3) -> str:
    return "–" if v is None or not math.isfinite(v) else f"{v:.{digits}f}"


def _label(parametrization: str, precision: str = "fp32") -> str:
    """`u-μP`, or `u-μP fp8_sim` below fp32."""
    label = PARAM_LABEL.get(parametrization, parametrization)
    return label if precision == "fp32" else f"{label} {precision}"


def _hp_section(res: HPTransfer, metric: str) -> list[str]:
    label = _label(res.parametrization, res.precision)
    lines = [
        f"### {res.hp} — {label}: **{res.verdict}**",
        "",
        f"{res.reason}.",
        "",
        f"| proxy (width×depth) | grid best {res.hp} | fitted optimum (log2) | ± se | seed spread "
        f"| best {metric} | ok / diverged / failed |",
        "|---|---|---|---|---|---|---|",
    ]
    for p in res.per_proxy:
        edge = " (edge)" if p.at_edge else ""
        lines.append(
            f"| {p.name.replace('x', '×', 1)} | {_f(p.grid_optimum, 4)}{edge} "
            f"| {_f(p.fit_optimum_log2, 2)} "
            f"({p.fit_method}) | {_f(p.fit_optimum_se, 2)} | {_f(p.seed_spread, 2)} "
            f"| {_f(p.best_loss, 4)} | {p.n_ok} / {p.n_diverged} / {p.n_failed}"
            + (f", {p.n_pruned} pruned |" if p.n_pruned else " |")
        )
    lines.append("")
    if res.regret.get("sentence"):
        lines += [f"Cost of carrying: {res.regret['sentence']}.", ""]
    elif res.regret.get("grid") is not None:
        regret = res.regret.get("fit", res.regret["grid"])
        lines.append(
            f"Regret of carrying the optimum from {res.regret['from']} to {res.regret['to']}: "
            f"{_f(regret, 4)} {metric}."
        )
        lines.append("")
    for note in res.loss_flags + res.notes:
        lines.append(f"- ⚠ {note}")
    if res.loss_flags or res.notes:
        lines.append("")
    return lines


def _precision_section(report: TransferReport) -> list[str]:
    """The precision table (only for runs with more than one precision)."""
    prec = report.precision
    if prec is None or len(prec.precisions) < 2 or prec.reference is None:
        return []
    ref = prec.reference
    lines = [
        "## Precision",
        "",
        f"Precisions: {', '.join(prec.precisions)}; each compared with {ref} at the same proxy "
        f"and the same values of the other HPs. *holds*: the 95% interval of the optimum's shift "
        f"(pooled over proxies) lies within ±{prec.tolerance:g} log2 and the {report.metric} gap "
        f"at the optimum stays below {prec.loss_threshold:g}; *degrades*: the gap exceeds "
        f"{prec.loss_threshold:g}; *shifts*: the shift's interval lies outside "
        f"±{prec.tolerance:g}; *inconclusive* otherwise.",
        "",
        f"| HP | parametrization | precision | shift vs {ref} (log2) | {report.metric} gap at "
        f"the optimum | gap at {ref}'s optimum | verdict |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in prec.rows():
        param = PARAM_LABEL.get(row["parametrization"], row["parametrization"])
        lines.append(
            f"| {row['hp']} | {param} | {row['precision']} | {row['shift']} | {row['gap']} "
            f"| {row['gap_at_reference_optimum']} | **{row['verdict']}** |"
        )
    if not prec.comparisons:
        lines.append("| – | – | – | – | – | – | no HP swept at two precisions |")
    lines.append("")
    for c in prec.all():
        label = PARAM_LABEL.get(c.parametrization, c.parametrization)
        lines += [
            f"### {c.hp} — {label} {c.precision} vs {ref}: **{c.verdict}**",
            "",
            f"{c.reason}.",
            "",
            f"| proxy (width×depth) | {ref} optimum (log2) | {c.precision} optimum (log2) "
            f"| shift ± se | {ref} {report.metric} | {c.precision} {report.metric} | gap ± se "
            f"| gap at {ref}'s optimum | verdict |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for p in c.per_proxy:
            lines.append(
                f"| {p.width}×{p.depth} | {_f(p.reference_optimum_log2, 2)} "
                f"| {_f(p.optimum_log2, 2)} | {_sf(p.shift_log2, 2)} ± {_f(p.shift_se, 2)} "
                f"| {_f(p.reference_loss, 4)} | {_f(p.loss, 4)} | {_sf(p.gap, 4)} ± "
                f"{_f(p.gap_se, 4)} | {_sf(p.gap_at_reference_optimum, 4)} | {p.verdict} |"
            )
        lines.append("")
        for note in c.notes:
            lines.append(f"- ⚠ {note}")
        if c.notes:
            lines.append("")
    return lines


def _sf(v: float | None, digits: int = 3) -> str:
    """Signed: `+0.012`."""
    return "–" if v is None or not math.isfinite(v) else f"{v:+.{digits}f}"


def _recommendation_section(recommended: dict[str, Any] | None, run_dir: Path) -> list[str]:
    """The target's hyperparameters from `recommended.yaml` (its mapping), or how to get them."""
    lines = ["## Recommendation", ""]
    if recommended is None:
        return lines + [
            "None yet: run `umup-sweep recommend "
            f"{run_dir} --width W --depth L` to write {RECOMMENDED_FILE}.",
            "",
        ]
    target = recommended.get("target", {})
    lines.append(
        f"For a target of width {target.get('width')} × depth {target.get('depth')} "
        f"([{RECOMMENDED_FILE}]({RECOMMENDED_FILE})):"
    )
    lines.append("")
    for hp, v in (recommended.get("hyperparameters") or {}).items():
        lines.append(f"- `{hp}` = {v:.6g}")
    for w in recommended.get("warnings") or []:
        lines.append(f"- ⚠ {w}")
    lines.append("")
    return lines


def report_markdown(
    report: TransferReport,
    plots: list[Path],
    path: Path,
    recommended: dict[str, Any] | None = None,
    compare: Comparison | None = None,
) -> str:
    """The text of `report.md` for an analysed run (written by `write_report`).

    Args:
        report: the run's transfer analysis.
        plots: image files to embed, linked relative to ``path``'s folder.
        path: where the report will live.
        recommended: the content of the run's `recommended.yaml` (None: not written yet).
        compare: the run's losses next to another run's (`compare_runs`), for a "Compared
            with" section (None: no such section).
    """
    c = report.counts
    lines = [
        f"# Transfer report: {report.run}",
        "",
        f"Trials: {c.get('total', 0)} ({c.get('ok', 0)} ok, {c.get('diverged', 0)} diverged, "
        + (f"{c['pruned']} pruned, " if c.get("pruned") else "")
        + f"{c.get('failed', 0)} failed). Metric: `{report.metric}`. "
        f"Tolerance: ±{report.tolerance:g}"
        " log2 per doubling (transfers when the 95% interval of the drift lies inside it, drifts "
        "when it lies outside, inconclusive otherwise).",
        "",
        "## Verdict",
        "",
        "| HP | parametrization | drift per doubling | verdict | cost of carrying (± se) "
        "| holds from |",
        "|---|---|---|---|---|---|",
    ]
    for row in report.rows():
        param = _label(row["parametrization"].split("@")[0], row["precision"])
        lines.append(
            f"| {row['hp']} | {param} | {row['drift']} | **{row['verdict']}** | {row['cost']} "
            f"| {row['holds_from']} |"
        )
    if not report.results:
        lines.append("| – | – | – | no HP swept over ≥ 3 values | – | – |")
    lines += [
        "",
        "*Cost of carrying*: the loss at the widest proxy at the narrowest proxy's optimum, "
        "minus the widest proxy's own best. *Holds from*: the width from which on the optimum "
        "transfers.",
        "",
        f"Machine-readable: [{TRANSFER_FILE}]({TRANSFER_FILE}).",
        "",
    ]
    lines += per_hp_markdown(report)
    lines += compare_markdown(compare) if compare is not None else []
    lines += _precision_section(report)
    lines += search_markdown(report.search)
    lines += conditional_markdown(report.conditional)
    if plots:
        lines += ["## Plots", ""]
        for p in plots:
            rel = _relative(Path(p), path.parent)
            lines += [f"![{Path(p).stem}]({rel.as_posix()})", ""]
    lines += ["## Optimum per proxy", ""]
    for by_param in report.results.values():
        for res in by_param.values():
            lines += _hp_section(res, report.metric)
    lines += _recommendation_section(recommended, Path(report.run_dir))
    return "\n".join(lines)


def _relative(target: Path, start: Path) -> Path:
    """Relative path from ``start`` to ``target`` (links in the report must survive a move)."""
    return Path(os.path.relpath(target.resolve(), start.resolve()))
