"""One run's loss next to another's (u-μP's search against SP's lr-tuned best), per width both
ran: the `report --compare` section of `report.md` and its `compare.json`.

Per run and width:

- *final*: an independent search's returned config, measured on the fresh confirmation seeds
  of its last stage (seeds that chose nothing, so the mean is unbiased); *lr only*: the
  stage-1 baseline (every HP at its default, the stage-1 lr) on the same seeds. Both come from
  the search's own decisions (`search_record`), replayed from the stored trials.
- *best grid*: for any run, the lowest seed mean over every config run at that width on the
  sweep's seeds. It is the minimum of many noisy values, so it is biased low.

The gap is this run minus the other (the final when the run has one, else its best grid),
± the standard error of the difference (sd over seeds / √n per run, the runs independent).
*indistinguishable* when |gap| ≤ 2 se. Pure: `load_comparison` reads the two runs,
`compare_runs` compares them, `_analyze.py` writes the files.

Example:
    >>> gap, se = _gap(Measured(2.95, 0.004, 2, [4, 5]), Measured(2.98, 0.004, 2, [4, 5]))
    >>> round(gap, 4), round(se, 4)
    (-0.03, 0.0057)
"""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from umup_sweep.analysis._points import json_ready
from umup_sweep.analysis._run import DEFAULT_PRECISION, RunData, load_run, precision_rank
from umup_sweep.analysis._search import search_record
from umup_sweep.errors import UserError
from umup_sweep.spec import HP_NAMES, STOPPED
from umup_sweep.store import COMPARE_FILE, SWEEP_FILE

__all__ = [
    "COMPARE_FILE",
    "Comparison",
    "Measured",
    "compare_markdown",
    "compare_rows",
    "compare_runs",
    "load_comparison",
]

PARAM_LABEL = {"umup": "u-μP", "sp": "SP", "mup": "μP"}
Z = 2.0  # |gap| within Z standard errors: indistinguishable


@dataclass
class Measured:
    """A config's loss at one proxy: the mean over ``seeds`` ± its standard error (None with
    one seed); ``mean`` is None when a trial diverged or none finished."""

    mean: float | None
    se: float | None
    n: int
    seeds: list[int]
    n_diverged: int = 0
    config: dict[str, float] | None = None  # the best grid point's HPs (changed from default)


@dataclass
class Side:
    """One of the two runs: who it is and what its numbers are."""

    run: str
    run_dir: str
    parametrization: str
    label: str  # "u-μP", or "u-μP (run name)" when both runs share the parametrization
    kind: str  # "full search" | "lr-tuned" | "best grid point"
    basis: str  # what its gap uses: "final" | "best grid"
    confirm_seeds: list[int] = field(default_factory=list)

    @property
    def title(self) -> str:
        """`u-μP full search`, `SP lr-tuned`, `SP best grid point`."""
        return f"{self.label} {self.kind}"


@dataclass
class ProxyComparison:
    """Both runs at one proxy, the gap (this − other) and its verdict."""

    width: int
    depth: int
    this: dict[str, Measured | None]  # lr_only, final, best_grid
    other: dict[str, Measured | None]
    gap: float | None
    gap_se: float | None
    verdict: str
    sentence: str


@dataclass
class Comparison:
    """`compare_runs`'s answer; `to_dict()` is the `compare.json` content."""

    metric: str
    precision: str
    this: Side
    other: Side
    proxies: list[ProxyComparison]
    closes_gap: bool | None  # None: some width has no interval
    overall: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (NaN and inf written as null)."""
        return json_ready(asdict(self))


# -- loading -----------------------------------------------------------------------------


def load_comparison(run_dir: str | Path | RunData, other_dir: str | Path) -> Comparison:
    """Load both runs (``run_dir`` may be loaded already) and compare them (`compare_runs`).

    Raises:
        UserError: ``other_dir`` is not a run directory or has no trials; the runs measure
            different metrics, share no precision or no width (one line, naming the runs).
    """
    other_path = Path(other_dir)
    if not (other_path / SWEEP_FILE).is_file():
        raise UserError(
            f"--compare: {other_path} is not a run directory (expected runs/<name>/ holding "
            f"{SWEEP_FILE}, as `umup-sweep run` writes it)"
        )
    this = run_dir if isinstance(run_dir, RunData) else load_run(run_dir)
    try:
        other = load_run(other_path)
    except UserError as err:
        raise UserError(f"--compare: {err}") from None
    return compare_runs(this, other)


# -- measuring -----------------------------------------------------------------------------


def _frame(run: RunData, precision: str) -> pd.DataFrame:
    trials = run.trials
    prec = trials["precision"].fillna(DEFAULT_PRECISION) if "precision" in trials else None
    trials = trials if prec is None else trials[prec == precision]
    return trials[trials["status"].isin(STOPPED + ("ok",))]


def _measure(values: pd.Series, diverged: int, seeds: list[int]) -> Measured:
    """Mean ± se of the ok losses (mean None when any diverged or none finished)."""
    ok = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    n = len(ok)
    se = statistics.stdev(ok) / math.sqrt(n) if n >= 2 else None
    mean = statistics.fmean(ok) if n and not diverged else None
    return Measured(mean, se if mean is not None else None, n, sorted(seeds), diverged)


def _at_config(
    trials: pd.DataFrame, config: dict[str, float], seeds: list[int], metric: str
) -> Measured | None:
    """One config's loss on ``seeds`` (``trials`` already at one proxy); None if not run."""
    mask = trials["seed"].isin(seeds)
    for hp, value in config.items():
        if hp in trials:
            mask &= np.isclose(trials[hp].astype(float), float(value), rtol=1e-9, atol=0.0)
    sub = trials[mask]
    if sub.empty:
        return None
    diverged = int(sub["status"].isin(STOPPED).sum())
    ok = sub[sub["status"] == "ok"]
    return _measure(ok[metric], diverged, [int(s) for s in sub["seed"].unique()])


def _best_grid(
    trials: pd.DataFrame, seeds: list[int], metric: str, defaults: dict[str, float]
) -> Measured | None:
    """The lowest seed mean at one proxy, over the configs run at the most of ``seeds`` with
    none diverged (None when there is none)."""
    sub = trials[trials["seed"].isin(seeds)]
    hps = [h for h in HP_NAMES if h in sub]
    best: tuple[int, float, Measured] | None = None
    for key, group in sub.groupby(hps, sort=False):
        if group["status"].isin(STOPPED).any():
            continue
        m = _measure(group[metric], 0, [int(s) for s in group["seed"]])
        if m.mean is None:
            continue
        config = dict(zip(hps, (float(k) for k in key), strict=True))
        m.config = {
            h: v for h, v in config.items() if h == "lr" or not math.isclose(v, defaults.get(h, v))
        }
        if best is None or (-m.n, m.mean) < (-best[0], best[1]):
            best = (m.n, m.mean, m)
    return best[2] if best is not None else None


def _search(run: RunData, precision: str) -> dict[str, Any] | None:
    """The independent search's record at ``precision`` when it has finished (else None)."""
    record = search_record(run.spec, run.trials, run.data_fingerprint)
    rec = (record or {}).get(precision)
    return rec if rec and rec.get("complete") and rec.get("final") else None


def _parametrization(run: RunData) -> str:
    if run.spec is not None:
        return run.spec.parametrization
    return str(run.trials["parametrization"].iloc[0])


def _side(run: RunData, rec: dict[str, Any] | None, label: str) -> Side:
    kind = "best grid point"
    if rec is not None:
        kind = "full search" if rec.get("hps") else "lr-tuned"
    return Side(
        run=run.name,
        run_dir=str(run.path),
        parametrization=_parametrization(run),
        label=label,
        kind=kind,
        basis="final" if rec is not None else "best grid",
        confirm_seeds=list(rec.get("confirm_seeds") or []) if rec else [],
    )


def _proxy_measures(
    run: RunData, trials: pd.DataFrame, rec: dict[str, Any] | None
) -> dict[str, Measured | None]:
    """lr only, final, best grid of one run at one proxy (``trials`` at that proxy)."""
    defaults = dict(run.spec.defaults) if run.spec is not None else {}
    seeds = list(run.spec.seeds) if run.spec is not None else sorted(trials["seed"].unique())
    out: dict[str, Measured | None] = {"lr_only": None, "final": None}
    if rec is not None:
        fresh = [int(s) for s in rec.get("confirm_seeds") or []]
        baseline = {**defaults, "lr": rec["stage1_lr"]}
        out["lr_only"] = _at_config(trials, baseline, fresh, run.metric)
        out["final"] = _at_config(trials, rec["final"], fresh, run.metric)
    out["best_grid"] = _best_grid(trials, seeds, run.metric, defaults)
    return out


# -- comparing -----------------------------------------------------------------------------


def _gap(a: Measured | None, b: Measured | None) -> tuple[float | None, float | None]:
    if a is None or b is None or a.mean is None or b.mean is None:
        return None, None
    se = math.hypot(a.se, b.se) if a.se is not None and b.se is not None else None
    return a.mean - b.mean, se


def _verdict(gap: float | None, se: float | None, this: Side, other: Side) -> str:
    if gap is None:
        return "no measurement"
    if se is None:
        return "no interval (one seed)"
    if abs(gap) <= Z * se:
        return "indistinguishable"
    return f"{this.label} better" if gap < 0 else f"{other.label} better"


def _basis(measures: dict[str, Measured | None], side: Side) -> Measured | None:
    return measures["final"] if side.basis == "final" else measures["best_grid"]


def _proxy_name(width: int, depth: int, one_depth: bool) -> str:
    return f"width {width}" if one_depth else f"width {width} (depth {depth})"


def _overall(
    comps: list[ProxyComparison], this: Side, other: Side, one_depth: bool
) -> tuple[bool | None, str]:
    subject = "the search" if this.basis == "final" else "the best grid point"
    worse = [
        c for c in comps if c.gap is not None and c.gap_se is not None and c.gap > Z * c.gap_se
    ]
    unknown = [c for c in comps if c.gap is None or c.gap_se is None]
    if worse:
        where = ", ".join(_proxy_name(c.width, c.depth, one_depth) for c in worse)
        return False, f"{subject} does not close the gap: {other.title} is better at {where}"
    if unknown:
        where = ", ".join(_proxy_name(c.width, c.depth, one_depth) for c in unknown)
        return None, f"cannot tell whether {subject} closes the gap: no interval at {where}"
    return True, (
        f"{subject} closes the gap: {this.title} is not worse than {other.title} beyond "
        f"{Z:g} se at any common width"
    )


def _labels(this: RunData, other: RunData) -> tuple[str, str]:
    a, b = (PARAM_LABEL.get(p, p) for p in (_parametrization(this), _parametrization(other)))
    return (f"{a} ({this.name})", f"{b} ({other.name})") if a == b else (a, b)


def _settings(run: RunData) -> list[tuple[int, int]] | None:
    """The (steps, batch size) settings a run trained its proxies at (None: not known)."""
    spec = run.spec
    if spec is None:
        return None
    if spec.train_axes is not None:
        return spec.train_axes.points(spec.train)
    return [(spec.train.steps, spec.train.batch_size)]


def _words(settings: list[tuple[int, int]]) -> str:
    return ", ".join(f"{s} steps × batch {b}" for s, b in settings)


def _same_training(this: RunData, other: RunData) -> None:
    """Refuse runs whose proxies trained differently: proxies are matched by width and depth,
    so a run with several horizons or batch sizes, or two runs at different ones, would put
    unlike losses side by side."""
    settings = _settings(this), _settings(other)
    for run, setting in zip((this, other), settings, strict=True):
        if setting is not None and len(setting) > 1:
            raise UserError(
                f"--compare: {run.path} trains each proxy at {len(setting)} settings "
                f"({_words(setting)}): compare runs made at one training horizon and batch size"
            )
    if None not in settings and settings[0] != settings[1]:
        raise UserError(
            f"--compare: {this.path} trains at {_words(settings[0] or [])} but {other.path} at "
            f"{_words(settings[1] or [])}: compare runs with the same training horizon"
        )


def _common(this: RunData, other: RunData) -> tuple[str, list[tuple[int, int]]]:
    """The precision and the proxies both runs ran (refusing when there are none)."""
    _same_training(this, other)
    if this.metric != other.metric:
        raise UserError(
            f"--compare: {this.path} measures {this.metric} but {other.path} measures "
            f"{other.metric}: compare runs with the same metric"
        )
    precisions = [p for p in this.precisions if p in other.precisions]
    if not precisions:
        raise UserError(
            f"--compare: {this.path} ran at {', '.join(this.precisions)} and {other.path} at "
            f"{', '.join(other.precisions)}: no precision in common"
        )

    def proxies(run: RunData) -> set[tuple[int, int]]:
        return {
            (int(w), int(d)) for w, d in zip(run.trials["width"], run.trials["depth"], strict=True)
        }

    common = sorted(proxies(this) & proxies(other))
    if not common:
        shared_width = {w for w, _ in proxies(this)} & {w for w, _ in proxies(other)}
        axis, index = ("depth", 1) if shared_width else ("width", 0)

        def listed(run: RunData) -> str:
            return ", ".join(str(v) for v in sorted({p[index] for p in proxies(run)}))

        raise UserError(
            f"--compare: {this.path} ({axis}s {listed(this)}) and {other.path} ({axis}s "
            f"{listed(other)}) share no {axis}: compare runs made at the same {axis}s"
        )
    return sorted(precisions, key=precision_rank)[0], common


def compare_runs(this: RunData, other: RunData) -> Comparison:
    """``this`` run's losses next to ``other``'s at every proxy both ran (the module
    docstring says what each number is).

    Raises:
        UserError: the runs measure different metrics, trained at different horizons or
            batch sizes (or at several), or share no precision or width.
    """
    precision, common = _common(this, other)
    recs = _search(this, precision), _search(other, precision)
    labels = _labels(this, other)
    sides = _side(this, recs[0], labels[0]), _side(other, recs[1], labels[1])
    frames = _frame(this, precision), _frame(other, precision)
    one_depth = len({d for _, d in common}) == 1
    comps = []
    for width, depth in common:
        measures = []
        for run, frame, rec in zip((this, other), frames, recs, strict=True):
            at = frame[(frame["width"] == width) & (frame["depth"] == depth)]
            measures.append(_proxy_measures(run, at, rec))
        gap, se = _gap(_basis(measures[0], sides[0]), _basis(measures[1], sides[1]))
        verdict = _verdict(gap, se, *sides)
        sentence = f"{sides[0].title} vs {sides[1].title} at {_proxy_name(width, depth, one_depth)}"
        sentence += ": no measurement" if gap is None else f": {gap:+.3f}"
        sentence += f" ± {se:.3f} ({verdict})" if se is not None else f" ({verdict})"
        comps.append(
            ProxyComparison(width, depth, measures[0], measures[1], gap, se, verdict, sentence)
        )
    closes, overall = _overall(comps, *sides, one_depth)
    return Comparison(this.metric, precision, *sides, comps, closes, overall)


# -- the report's section ------------------------------------------------------------------


def _cell(m: Measured | None) -> str:
    if m is None:
        return "–"
    if m.mean is None:
        return f"diverged ({m.n_diverged} of {m.n + m.n_diverged})" if m.n_diverged else "–"
    return f"{m.mean:.4f}" + (f" ± {m.se:.4f}" if m.se is not None else " (one seed)")


def compare_rows(comp: Comparison) -> tuple[list[str], list[list[str]]]:
    """The comparison table's header and rows (for the report and the CLI)."""
    this, other = comp.this, comp.other
    one_depth = len({c.depth for c in comp.proxies}) == 1
    final = {"full search": "full search", "lr-tuned": "final"}.get(this.kind, "best grid*")
    header = [
        "width" if one_depth else "width×depth",
        f"{this.label}: lr only",
        f"{this.label}: {final}",
        f"{other.label}: final",
        f"{other.label}: best grid*",
        f"gap ({this.label} − {other.label})",
        "verdict",
    ]
    rows = []
    for c in comp.proxies:
        gap = "–" if c.gap is None else f"{c.gap:+.4f}"
        gap += f" ± {c.gap_se:.4f}" if c.gap is not None and c.gap_se is not None else ""
        rows.append(
            [
                str(c.width) if one_depth else f"{c.width}×{c.depth}",
                _cell(c.this["lr_only"]),
                _cell(_basis(c.this, this)),
                _cell(c.other["final"]),
                _cell(c.other["best_grid"]),
                gap,
                c.verdict,
            ]
        )
    return header, rows


def _seeds_note(side: Side) -> str:
    if side.basis == "final":
        return f"{side.run}'s final config on its fresh seeds {side.confirm_seeds}"
    return f"{side.run}'s best grid point (no finished independent search)"


def compare_markdown(comp: Comparison) -> list[str]:
    """The report's "Compared with <other run>" section."""
    header, rows = compare_rows(comp)
    lines = [
        f"## Compared with {comp.other.run}",
        "",
        f"`{comp.metric}` ({comp.precision}) of this run ({comp.this.run}, "
        f"{comp.this.title}) next to {comp.other.run} ({comp.other.title}), at every width both "
        f"ran. Mean ± standard error over seeds. *lr only*: HPs at their defaults with the "
        f"stage-1 lr; *final*: the config the search returned; both measured on the fresh seeds "
        f"of the search's last check. The gap compares {_seeds_note(comp.this)} with "
        f"{_seeds_note(comp.other)}; *indistinguishable* when |gap| ≤ {Z:g} se.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    lines += [
        "",
        "\\* *best grid*: the lowest seed mean over every configuration run at that width on "
        "the sweep's seeds: the minimum of many noisy values, so selection-biased (low).",
        "",
    ]
    lines += [f"- {c.sentence}" for c in comp.proxies]
    lines += [
        "",
        f"**Overall: {comp.overall}.**",
        "",
        f"Numbers: [{COMPARE_FILE}]({COMPARE_FILE}).",
        "",
    ]
    return lines
