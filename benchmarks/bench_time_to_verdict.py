"""Time to a verdict: `sweeps/lr_width.yaml`'s grid against the adaptive lr bracket
(`sweeps/lr_width_bracket.yaml`), on the same proxies, seeds and steps (issue #14, §3).

What a user waits for is the verdict "does lr transfer, and where is it", so for each
procedure this runs the sweep to completion (fresh run directory, the sweep's own executor:
Ray, two 1-thread trials at a time), one after the other in one process, then applies the
transfer analysis (what `umup-sweep plot` writes to transfer.json) and prints side by side:
wall time, trials, trial-seconds (the sum of the trials' own wall times), each width's fitted
optimum ± se (and, for the bracket, the lr values it ran and why it stopped), the drift ± se
per width doubling with the width of its 95% interval, the verdict, and the ratios
bracket / grid. Goal: the same verdict with an interval no wider than the grid's in at most
50% of its wall time.

Run (from the repo root; the full run takes about 4.5 + 3.5 minutes on 2 idle cores, up to
twice that on a loaded machine):

    PYTHONPATH=. .venv/bin/python benchmarks/bench_time_to_verdict.py \\
        --out benchmarks/results/time_to_verdict.txt

Options: ``--quick`` trains 20 steps instead of 300 (a smoke run of the script, 3.5
minutes on the loaded 2-core machine; its numbers mean nothing), ``--order bracket,grid``
runs the bracket first (the machine's speed drifts: run both orders when the ratio is close
to a goal), ``--executor serial`` runs one trial at a time, ``--run-dir`` keeps the run
directories (default: a temporary folder).
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from umup_sweep.analysis import analyze_trials
from umup_sweep.config import SweepSpec, load_sweep
from umup_sweep.data import data_fingerprint
from umup_sweep.runner import run_sweep
from umup_sweep.search import make_strategy
from umup_sweep.store import RunStore

REPO = Path(__file__).resolve().parents[1]
SWEEPS = {
    "grid": REPO / "sweeps" / "lr_width.yaml",
    "bracket": REPO / "sweeps" / "lr_width_bracket.yaml",
}
GOAL_WALL = 0.5  # the bracket's wall time at most this fraction of the grid's


@dataclass
class Outcome:
    """One procedure's run and its verdict."""

    name: str
    wall_s: float
    trials: int
    trial_s: float
    per_width: list[dict[str, Any]] = field(default_factory=list)
    drift: float = math.nan
    drift_se: float = math.nan
    verdict: str = "none"
    reason: str = ""

    @property
    def interval(self) -> float:
        """Width of the drift's 95% interval (2 se either side), log2 per doubling."""
        return 4 * self.drift_se


def load(name: str, run_dir: Path, steps: int | None) -> SweepSpec:
    overrides: dict[str, Any] = {"storage.run_dir": str(run_dir)}
    if steps is not None:
        overrides["train.steps"] = steps
    return load_sweep(SWEEPS[name], overrides=overrides)


def run(name: str, run_dir: Path, steps: int | None, executor: str | None) -> Outcome:
    """Run one procedure from scratch and analyse it."""
    sweep = load(name, run_dir, steps)
    start = time.monotonic()
    summary = run_sweep(sweep, force=True, executor=executor, analyze=False)
    wall = time.monotonic() - start
    results = RunStore.load(summary.run_dir).results()
    out = Outcome(name, wall, len(results), float(results["wall_s"].fillna(0).sum()))
    searched = _bracket_lines(sweep, results) if sweep.strategy == "bracket" else {}
    res = analyze_trials(results, ["lr"], sweep.metric, sweep.analysis.tolerance).get("lr", {})
    transfer = res.get("umup") or next(iter(res.values()), None)
    if transfer is None:
        out.reason = "no lr line to analyse"
        return out
    for p in transfer.per_proxy:
        ran = results[results["width"] == p.width]
        out.per_width.append(
            {
                "width": p.width,
                "optimum": p.fit_optimum_log2,
                "se": p.fit_optimum_se,
                "method": p.fit_method,
                "edge": p.at_edge,
                "lrs": sorted({round(math.log2(v), 3) for v in ran["lr"]}),
                "trials": len(ran),
                "trial_s": float(ran["wall_s"].fillna(0).sum()),
                "status": searched.get(p.width, ""),
            }
        )
    drift = transfer.drift.get("width")
    if drift is not None:
        out.drift, out.drift_se = drift.slope, drift.se
    out.verdict, out.reason = transfer.verdict, transfer.reason
    return out


def _bracket_lines(sweep: SweepSpec, results: pd.DataFrame) -> dict[int, str]:
    """Why each width's bracket stopped (the strategy replayed on the stored trials)."""
    strategy = make_strategy(sweep, data_fingerprint(sweep.data))
    summary = strategy.summary(results)  # type: ignore[attr-defined]
    return {line["width"]: line["status"] for line in summary["lines"]}


def _num(v: float | None, fmt: str = "+.2f") -> str:
    return "—" if v is None or not math.isfinite(v) else format(v, fmt)


def _minutes(seconds: float) -> str:
    return f"{int(seconds // 60)} min {seconds % 60:04.1f} s"


def report(outcomes: dict[str, Outcome], header: list[str]) -> str:
    """The side-by-side table, each width's points, and the ratios against the goal."""
    grid, bracket = outcomes["grid"], outcomes["bracket"]
    lines = [*header, ""]
    lines.append(f"{'':28} {'grid (lr_width)':>22} {'bracket':>22} {'bracket/grid':>13}")

    def row(label: str, a: str, b: str, ratio: str = "") -> None:
        lines.append(f"{label:28} {a:>22} {b:>22} {ratio:>13}")

    def ratio(a: float, b: float) -> str:
        return f"{b / a:.2f}" if a > 0 and math.isfinite(a) and math.isfinite(b) else "—"

    row(
        "wall time",
        _minutes(grid.wall_s),
        _minutes(bracket.wall_s),
        ratio(grid.wall_s, bracket.wall_s),
    )
    row("trials", str(grid.trials), str(bracket.trials), ratio(grid.trials, bracket.trials))
    row(
        "trial-seconds",
        f"{grid.trial_s:.0f}",
        f"{bracket.trial_s:.0f}",
        ratio(grid.trial_s, bracket.trial_s),
    )
    widths = sorted({p["width"] for o in (grid, bracket) for p in o.per_width})
    for w in widths:
        cells = []
        for o in (grid, bracket):
            p = next((p for p in o.per_width if p["width"] == w), None)
            cells.append(
                "—"
                if p is None
                else f"{_num(p['optimum'])} ± {_num(p['se'], '.2f')}"
                + (" edge" if p["edge"] else "")
            )
        row(f"optimum log2 lr, width {w}", *cells)
    row(
        "drift / width doubling",
        *(f"{_num(o.drift)} ± {_num(o.drift_se, '.2f')}" for o in (grid, bracket)),
    )
    row(
        "95% interval width",
        _num(grid.interval, ".3f"),
        _num(bracket.interval, ".3f"),
        ratio(grid.interval, bracket.interval),
    )
    row("verdict", grid.verdict, bracket.verdict)
    lines.append("")
    for o in (grid, bracket):
        for p in o.per_width:
            stop = f", {p['status']}" if p["status"] else ""
            lines.append(
                f"{o.name:8} width {p['width']:4}: {p['trials']:2} trials,"
                f" {p['trial_s']:6.0f} trial-s, log2 lr {p['lrs']}{stop}"
            )
    lines += ["", f"grid:    {grid.reason}", f"bracket: {bracket.reason}", ""]
    same = grid.verdict == bracket.verdict
    narrower = bracket.interval <= grid.interval
    faster = bracket.wall_s <= GOAL_WALL * grid.wall_s
    yes = {True: "yes", False: "NO"}
    lines.append(floor_line(grid))
    lines.append(
        f"goal: same verdict {yes[same]}; interval no wider {yes[narrower]}"
        f"; wall time <= {GOAL_WALL:.0%} of the grid's {yes[faster]}"
        f" ({ratio(grid.wall_s, bracket.wall_s)})"
    )
    return "\n".join(lines)


def floor_line(grid: Outcome) -> str:
    """What the cheapest procedure that still fits a parabola over seeds would cost: 3 lr
    values × every seed at every width (fewer values leave no curvature to fit), at the
    grid's own trial times. No bracket can stop earlier, so above `GOAL_WALL` of the grid's
    trial-seconds the wall-time goal is out of reach with two workers (wall time follows
    trial-seconds when both are kept busy)."""
    floor = sum(3 * p["trial_s"] / len(p["lrs"]) for p in grid.per_width if p["lrs"])
    frac = floor / grid.trial_s if grid.trial_s > 0 else math.nan
    return (
        f"floor: 3 lr values x every seed at every width (the fewest a parabola can be fitted"
        f" to) costs {floor:.0f} trial-s at the grid's trial times, {frac:.2f} of the grid's"
    )


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="20 training steps: a smoke run")
    ap.add_argument("--order", default="grid,bracket", choices=["grid,bracket", "bracket,grid"])
    ap.add_argument("--executor", choices=["ray", "serial"], default=None)
    ap.add_argument("--run-dir", type=Path, default=None, help="keep the runs here")
    ap.add_argument("--out", type=Path, default=None, help="also write the report here")
    args = ap.parse_args(argv)
    steps = 20 if args.quick else None
    header = [
        f"bench_time_to_verdict {time.strftime('%Y-%m-%d %H:%M:%S %Z')}"
        f"  ({'--quick, 20 steps: smoke run, numbers meaningless' if args.quick else 'full'})",
        f"machine: {platform.machine()}, {os.cpu_count()} cores, load average before"
        f" {' '.join(f'{x:.2f}' for x in os.getloadavg())}; order {args.order}",
        f"sweeps: {SWEEPS['grid'].relative_to(REPO)} vs {SWEEPS['bracket'].relative_to(REPO)}",
    ]
    with tempfile.TemporaryDirectory(prefix="bench_verdict_") as tmp:
        root = args.run_dir or Path(tmp)
        outcomes = {}
        for name in args.order.split(","):
            print(f"running {name} ...", flush=True)
            outcomes[name] = run(name, root, steps, args.executor)
            print(
                f"  {name}: {outcomes[name].trials} trials, {_minutes(outcomes[name].wall_s)}",
                flush=True,
            )
    header.append(f"load average after {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    text = report(outcomes, header)
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
