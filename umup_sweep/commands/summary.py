"""The text `umup-sweep run` and `umup-sweep status` print: a run's summary, a run directory's
status and the one-line report of a finished trial.

Example:
    >>> from pathlib import Path
    >>> from umup_sweep.runner import RunSummary
    >>> best = {"val_loss": 3.25, "width": 64, "depth": 2, "seed": 0, "lr": 0.5}
    >>> summary = RunSummary(Path("runs/demo"), "val_loss", {"total": 2, "ok": 2}, 2, 0,
    ...                      best, ("lr",), 75.0, [Path("runs/demo/trials.csv")])
    >>> print("\\n".join(summary_lines(summary)))
    finished: runs/demo  (2 trials run now, 0 already done, 1 min 15 s)
    trials: 2 stored — 2 ok, 0 diverged, 0 failed
    best val_loss 3.2500: width 64, depth 2, seed 0, lr=2^-1
    outputs:
      runs/demo/trials.csv
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from umup_sweep.run_status import PruningSavings, RunStatus
    from umup_sweep.runner import RunSummary
    from umup_sweep.spec import TrialResult, TrialSpec
    from umup_sweep.store import Growth


def summary_lines(summary: RunSummary) -> list[str]:
    """The one-screen summary of a sweep run as plain text lines (see the module example)."""
    c = summary.counts
    out = [
        f"{'interrupted' if summary.interrupted else 'finished'}: {summary.run_dir}  "
        f"({summary.n_new} trials run now, {summary.n_resumed} already done, "
        f"{_duration(summary.elapsed_s)})",
        f"trials: {c.get('total', 0)} stored — {c.get('ok', 0)} ok, "
        f"{c.get('diverged', 0)} diverged, {_pruned(c)}{c.get('failed', 0)} failed",
    ]
    if summary.growth is not None:
        out.append(growth_line(summary.growth))
    if summary.pruning is not None:
        out.append(pruning_line(summary.pruning))
    if summary.best is None:
        out.append("best: none (no trial finished ok)")
    else:
        out.append(_best_line(summary.best, summary.metric, summary.swept))
    if summary.analysis_error:
        out.append(f"analysis skipped: {summary.analysis_error}")
    out.append("outputs:")
    out.extend(f"  {p}" for p in summary.outputs)
    return out


def status_lines(status: RunStatus) -> list[str]:
    """`umup-sweep status`: whether a driver is running, counts by status, trials remaining
    (when the sweep's strategy can estimate them) and the best trial so far.

    Example:
        >>> from pathlib import Path
        >>> from umup_sweep.run_status import RunStatus
        >>> counts = {"total": 3, "ok": 2, "diverged": 1, "failed": 0}
        >>> status = RunStatus(Path("runs/demo"), "val_loss", ("lr",), counts, None, 4242, 8)
        >>> lines = status_lines(status)
        >>> for i in (0, 2, 3):
        ...     print(lines[i])
        runs/demo: running (driver pid 4242)
        remaining: about 5 of 8 trials
        best: none yet
        >>> lines[1].startswith("trials: 3 stored — 2 ok, 1 diverged, 0 failed (failed trials")
        True
    """
    c = status.counts
    finals = c["ok"] + c["diverged"] + c.get("pruned", 0)
    holder = status.driver_pid
    lines = [
        f"{status.run_dir}: " + (f"running (driver pid {holder})" if holder else "not running"),
        f"trials: {c['total']} stored — {c['ok']} ok, {c['diverged']} diverged, "
        f"{_pruned(c)}{c['failed']} failed (failed trials are retried by the next "
        "`umup-sweep run`)",
    ]
    if status.growth is not None:
        lines.append(growth_line(status.growth))
    if status.pruning is not None:
        lines.append(pruning_line(status.pruning))
    total = status.total_estimate
    if total is not None:
        lines.append(f"remaining: about {max(0, total - finals)} of {max(total, finals)} trials")
    if status.best is None:
        lines.append("best: none yet")
    else:
        lines.append(_best_line(status.best, status.metric, status.swept))
    return lines


def _pruned(counts: Mapping[str, int]) -> str:
    """ ", N pruned" for the counts line, only when some trial was pruned."""
    n = counts.get("pruned", 0)
    return f"{n} pruned, " if n else ""


def pruning_line(savings: PruningSavings) -> str:
    """What pruning saved.

    Example:
        >>> from umup_sweep.run_status import PruningSavings
        >>> line = pruning_line(PruningSavings(n_pruned=4, saved_s=90.0, spent_s=270.0))
        >>> line.split(" (")[0]
        'pruned: 4 trials stopped early, saving about 1 min 30 s of trial time'
        >>> line.split(" (")[1][:16]
        '25% of the sweep'
    """
    return (
        f"pruned: {savings.n_pruned} trials stopped early, saving about "
        f"{_duration(savings.saved_s)} of trial time ({savings.fraction:.0%} of the sweep; "
        "`umup-sweep run --rerun-pruned` runs them in full)"
    )


def growth_line(growth: Growth) -> str:
    """How the sweep last grew or shrank, with the trials reused and run since.

    Example:
        >>> from umup_sweep.store import Growth
        >>> growth_line(Growth(("seeds +[1]", "proxy.widths +[64]"), (), reused=2, new=6))
        'grown: seeds +[1], proxy.widths +[64] — 2 reused, 6 new'
        >>> growth_line(Growth((), ("seeds -[1]",), reused=2, new=0, outside=2))
        'shrunk: seeds -[1] — 2 reused, 0 new; 2 stored trials outside the sweep (kept, not used)'
    """
    parts = [f"grown: {', '.join(growth.grown)}"] if growth.grown else []
    parts += [f"shrunk: {', '.join(growth.shrunk)}"] if growth.shrunk else []
    parts += [f"retuned: {', '.join(growth.retuned)}"] if growth.retuned else []
    line = f"{'; '.join(parts)} — {growth.reused} reused, {growth.new} new"
    if growth.outside:
        line += f"; {growth.outside} stored trials outside the sweep (kept, not used)"
    return line


def trial_line(spec: TrialSpec, result: TrialResult, metric: str) -> str:
    """One finished trial: status, key, proxy, seed, HPs, metric, wall time, error.

    Example:
        >>> from umup_sweep.spec import ModelSpec, TrainSpec, TrialResult, TrialSpec
        >>> spec = TrialSpec(ModelSpec(width=32, depth=1), TrainSpec(lr=0.5))
        >>> line = trial_line(spec, TrialResult(spec.trial_key, "ok", val_loss=2.5), "val_loss")
        >>> line.split()[0], line.split()[2:5], "val_loss 2.5000" in line
        ('ok', ['w32', 'd1', 's0'], True)
    """
    value = getattr(result, metric)
    shown = f"{metric} {value:.4f}" if isinstance(value, float) else ""
    hps = ", ".join(f"{k}={_fmt(v)}" for k, v in spec.hps.items())
    why = result.error or result.note  # a failure's error, a pruned trial's reason
    extra = f" — {why}" if why else ""
    return (
        f"{result.status:8s} {spec.trial_key} w{spec.model.width} d{spec.model.depth} "
        f"s{spec.seed} {hps} {shown} ({result.wall_s:.1f} s){extra}"
    )


def _best_line(best: Mapping[str, Any], metric: str, swept: Iterable[str]) -> str:
    hps = ", ".join(f"{k}={_fmt(best[k])}" for k in swept if k in best)
    return (
        f"best {metric} {best[metric]:.4f}: width {best['width']}, depth "
        f"{best['depth']}, seed {best['seed']}" + (f", {hps}" if hps else "")
    )


def _fmt(value: Any) -> str:
    """An HP value as shown to people: powers of two as 2^k, other floats to 4 digits.

    Example:
        >>> _fmt(0.125), _fmt(1.0), _fmt(0.3), _fmt(3)
        ('2^-3', '1', '0.3', '3')
    """
    if isinstance(value, float):
        if value > 0 and math.log2(value).is_integer():
            return f"2^{int(math.log2(value))}" if value != 1 else "1"
        return f"{value:.4g}"
    return str(value)


def _duration(seconds: float) -> str:
    """A wall time as shown to people.

    Example:
        >>> _duration(12.34), _duration(75), _duration(7300)
        ('12.3 s', '1 min 15 s', '2 h 01 min')
    """
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {secs:02d} s"
