"""What the independent search decided, rebuilt from the stored trials (the `search` section
of `transfer.json` and the report's "Independent search" section).

The strategy is a pure function of the results, so replaying it on the run's trials gives the
same decisions the driver took: the stage-1 lr, each HP's measured best and its gain on the
fresh seeds (± its standard error, p-value), which HPs were adopted, and whether the final
config beat the baseline or the search reverted to it.

Example:
    >>> search_markdown(None)
    []
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from umup_sweep.config import SweepSpec

__all__ = ["search_markdown", "search_record"]


def search_record(
    spec: SweepSpec | None, trials: pd.DataFrame, data_fingerprint: str
) -> dict[str, Any] | None:
    """``{precision: record}`` for an independent search (None for other strategies); with
    train axes, one record per part (``fp32 300x16``: precision, steps × batch size).

    Args:
        spec: the validated sweep of the run.
        trials: the store's trials frame.
        data_fingerprint: the corpus fingerprint the trials ran with (part of their keys).
    """
    if spec is None or spec.strategy != "independent":
        return None
    from umup_sweep.search import make_strategy

    strategy = make_strategy(spec, data_fingerprint)
    summary: dict[str, Any] = strategy.summary(trials)  # type: ignore[attr-defined]
    by_precision = summary if len(spec.parts()) > 1 else {spec.precisions[0]: summary}
    return {p: _record(s, spec) for p, s in by_precision.items()}


def _record(summary: dict[str, Any], spec: SweepSpec) -> dict[str, Any]:
    stage2 = spec.strategy_options.get("stage2") or []
    hps = {}
    for hp in stage2:
        line = summary.get(f"2-{hp}")
        if line is None:
            continue
        hps[hp] = {
            "best": line["best"],
            "fitted": line.get("fitted"),
            "gain_sweep_seeds": line.get("gain"),
            "screened": line.get("screened"),
            "confirm": line.get("confirm"),
            "adopted": line.get("adopted", False),
        }
    keys = ("stage1_lr", "noise", "adopted", "final", "final_changes", "final_loss")
    return {
        "complete": summary.get("complete", False),
        **{k: summary[k] for k in keys if k in summary},
        "hps": hps,
        "final_check": summary.get("confirm"),
        "reverted": summary.get("reverted", False),
        "confirm_seeds": summary.get("confirm_seeds"),
    }


def search_markdown(search: dict[str, Any] | None) -> list[str]:
    """The report's section on the independent search ([] when there is none)."""
    if not search:
        return []
    lines = ["## Independent search", ""]
    for precision, rec in search.items():
        if len(search) > 1:
            lines += [f"### {precision}", ""]
        if not rec.get("complete"):
            lines += ["The search has not finished: decisions so far only.", ""]
        noise = rec.get("noise") or {}
        lines += [
            f"Stage-1 lr: {_num(rec.get('stage1_lr'))}. Noise of a paired difference: "
            f"{_num(noise.get('sd'), 4)} ({_dof(noise.get('dof'))}).",
            "",
            "| HP | best value (run) | gain on the sweep seeds | gain on fresh seeds ± se | "
            "p | adopted |",
            "|---|---|---|---|---|---|",
        ]
        for hp, h in rec["hps"].items():
            c = h.get("confirm") or {}
            fresh = f"{_num(c.get('gain'), 4)} ± {_num(c.get('se'), 4)}" if c else "not tested"
            lines.append(
                f"| {hp} | {_num(h['best'])} | {_num(h.get('gain_sweep_seeds'), 4)} | {fresh} | "
                f"{_num(c.get('p'), 3) if c else '–'} | {'**yes**' if h['adopted'] else 'no'} |"
            )
        lines += ["", _final_line(rec), ""]
    return lines


def _final_line(rec: dict[str, Any]) -> str:
    check = rec.get("final_check")
    changes = rec.get("final_changes") or {}
    shown = ", ".join(f"{k} {_num(v)}" for k, v in changes.items()) or "every HP at its default"
    final = f"Final config: lr {_num((rec.get('final') or {}).get('lr'))}, {shown}."
    if not check:
        return final + " Nothing beat the baseline, so nothing was checked against it."
    gain = f"{_num(check['gain'], 4)} ± {_num(check['se'], 4)} (p {_num(check['p'], 3)})"
    seeds = rec.get("confirm_seeds") or []
    if rec.get("reverted"):
        return (
            f"{final} The best candidate did not beat the baseline on fresh seeds {seeds} "
            f"(gain {gain}): the search returned the baseline."
        )
    return f"{final} It beat the baseline on fresh seeds {seeds} by {gain}."


def _num(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}g}" if abs(value) >= 1e-3 or value == 0 else f"{value:.2e}"
    return str(value)


def _dof(dof: Any) -> str:
    if dof is None or (isinstance(dof, float) and math.isinf(dof)):
        return "given"
    return f"estimated, {dof:g} degrees of freedom"
