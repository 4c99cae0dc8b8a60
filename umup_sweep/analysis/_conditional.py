"""Does the lr optimum move with another swept HP? (e.g. weight decay in `sweeps/lr_wd.yaml`)

In a grid over lr × another HP ``by``, every value of ``by`` has its own lr line at every
proxy. Its optimum is found as the transfer analysis finds any optimum (grid argmin, then a
parabola in log2 lr near it, `_transfer`), with its error (the parabola's, else the spread of
the per-seed optima). Against the first value of ``by`` (the smallest: weight decay 0) each
value's optimum shifts by ``Δ = opt_v − opt_ref`` log2, se ``hypot(se_v, se_ref)``; the shifts
are pooled over the proxies by inverse variance and judged with the transfer verdict rule at
the sweep's tolerance: `holds` when Δ ± 2se lies within ±tolerance, `moves` when it lies
outside, else `inconclusive`. ``by`` may be 0 (it is a value, not a log2 axis, here).

Shape (plain JSON, ``transfer.json``'s ``conditional[key][by]``): ``{hp, by, reference,
proxies: [{proxy, optima: [{value, optimum_log2, se, method, best_loss, at_edge,
curve: [{log2, mean, std}]}]}],
shifts: [{value, shift_log2, se, verdict}], verdict, sentence}``.

Example (the lr optimum at log2 −1 without decay and at +0 with decay 0.1, noise free):
    >>> import pandas as pd
    >>> from umup_sweep.spec import HP_DEFAULTS
    >>> rows = [HP_DEFAULTS | {"lr": 2.0**x, "weight_decay": wd, "width": 64, "depth": 2,
    ...         "seed": 0, "status": "ok", "parametrization": "umup",
    ...         "val_loss": 3 + 0.05 * (x + 1 - 10 * wd) ** 2}
    ...         for wd in (0.0, 0.1) for x in range(-4, 3)]
    >>> res = conditional_optima(pd.DataFrame(rows), "lr", "weight_decay", "val_loss", 0.25)
    >>> [round(s["shift_log2"], 6) for s in res["shifts"]], res["verdict"]
    ([1.0], 'moves')
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from umup_sweep.analysis._drift import verdict_for
from umup_sweep.analysis._points import rounded
from umup_sweep.analysis._proxy_axes import proxy_columns, proxy_label
from umup_sweep.analysis._transfer import proxy_optimum
from umup_sweep.fitting import FIT_WINDOW
from umup_sweep.spec import HP_NAMES

__all__ = ["conditional_markdown", "conditional_optima", "conditional_records"]

_WORDS = {"transfers": "holds", "drifts": "moves", "inconclusive": "inconclusive"}


def _line(g: pd.DataFrame, hp: str, by: str) -> pd.DataFrame | None:
    """The longest ``hp`` line (≥ 3 values) among the trials sharing every other HP."""
    others = [h for h in HP_NAMES if h not in (hp, by)]
    keys = g[others].apply(lambda r: tuple(rounded(v) for v in r), axis=1)
    lines = [sub for _, sub in g.groupby(keys, sort=False) if sub[hp].map(rounded).nunique() >= 3]
    return max(lines, key=lambda sub: sub[hp].map(rounded).nunique()) if lines else None


def _optima_at(
    proxy: tuple[int, ...], sub: pd.DataFrame, hp: str, by: str, metric: str, window: int
) -> list[dict[str, Any]]:
    """Per value of ``by`` at one proxy: the ``hp`` optimum and its error."""
    out = []
    for value, g in sub.groupby(sub[by].map(rounded), sort=True):
        line = _line(g, hp, by)
        if line is None:
            continue
        opt, _, _ = proxy_optimum(proxy, line, hp, metric, window)
        if opt.fit_optimum_log2 is None:
            continue
        se = opt.fit_optimum_se if opt.fit_optimum_se is not None else opt.seed_spread
        out.append(
            {
                "value": float(value),
                "optimum_log2": opt.fit_optimum_log2,
                "se": se,
                "method": opt.fit_method,
                "best_loss": opt.best_loss,
                "at_edge": opt.at_edge,
                # the seed-mean loss at each hp value run (log2), for the figure
                "curve": [
                    {"log2": c.log2, "mean": c.mean, "std": c.std}
                    for c in opt.curve
                    if c.mean is not None and math.isfinite(c.mean)
                ],
            }
        )
    return out


def _pooled(shifts: list[tuple[float, float | None]]) -> tuple[float, float]:
    """Inverse-variance mean of (shift, se) pairs; a shift without an error counts with an
    infinite one (its plain mean when none has an error, with se inf)."""
    known = [(s, se) for s, se in shifts if se is not None and se > 0 and math.isfinite(se)]
    if not known:
        return sum(s for s, _ in shifts) / len(shifts), math.inf
    w = [1 / se**2 for _, se in known]
    mean = sum(wi * s for wi, (s, _) in zip(w, known, strict=True)) / sum(w)
    return mean, math.sqrt(1 / sum(w))


def conditional_optima(
    df: pd.DataFrame,
    hp: str,
    by: str,
    metric: str,
    tolerance: float,
    window: int = FIT_WINDOW,
) -> dict[str, Any] | None:
    """The ``hp`` optimum per value of ``by`` at every proxy, and whether it moves (see the
    module docstring); None when fewer than two values of ``by`` have an ``hp`` line."""
    proxies: list[dict[str, Any]] = []
    for proxy, sub in df.groupby(proxy_columns(df), sort=True):
        key = tuple(int(v) for v in proxy)
        optima = _optima_at(key, sub, hp, by, metric, window)
        if len(optima) >= 2:
            proxies.append({"proxy": proxy_label(*key), "optima": optima})
    if not proxies:
        return None
    values = sorted({o["value"] for p in proxies for o in p["optima"]})
    reference = values[0]
    shifts = []
    for value in values[1:]:
        pairs = []
        for p in proxies:
            at = {o["value"]: o for o in p["optima"]}
            if value in at and reference in at:
                a, b = at[reference], at[value]
                se = None if a["se"] is None or b["se"] is None else math.hypot(a["se"], b["se"])
                pairs.append((b["optimum_log2"] - a["optimum_log2"], se))
        if pairs:
            shift, se = _pooled(pairs)
            verdict = _WORDS[verdict_for(shift, se, tolerance)]
            shifts.append({"value": value, "shift_log2": shift, "se": se, "verdict": verdict})
    verdicts = {s["verdict"] for s in shifts}
    verdict = (
        "moves" if "moves" in verdicts else "holds" if verdicts == {"holds"} else "inconclusive"
    )
    return {
        "hp": hp,
        "by": by,
        "reference": reference,
        "proxies": proxies,
        "shifts": shifts,
        "verdict": verdict,
        "sentence": _sentence(hp, by, reference, shifts, verdict, tolerance),
    }


def _sentence(
    hp: str, by: str, ref: float, shifts: list[dict[str, Any]], verdict: str, tol: float
) -> str:
    parts = [
        f"{by} {s['value']:g}: {s['shift_log2']:+.2f} ± {s['se']:.2f} ({s['verdict']})"
        for s in shifts
    ]
    head = {
        "moves": f"the {hp} optimum moves with {by}",
        "holds": f"the {hp} optimum holds across {by}",
        "inconclusive": f"whether the {hp} optimum moves with {by} is inconclusive",
    }[verdict]
    return (
        f"{head} (shift of the log2 {hp} optimum from {by} {ref:g}, pooled over the proxies, "
        f"tolerance ±{tol:g}): " + "; ".join(parts)
    )


def conditional_markdown(conditional: dict[str, Any] | None) -> list[str]:
    """The report section: one table per (parametrization, HP pair), rows = proxies × values."""
    if not conditional:
        return []
    lines = ["## Optimum per value of another HP", ""]
    for key, by_hp in conditional.items():
        for by, rec in by_hp.items():
            hp = rec["hp"]
            lines += [
                f"### {hp} per {by} ({key})",
                "",
                f"| proxy | {by} | optimum log2 {hp} ± se | optimum {hp} | best loss |",
                "|---|---|---|---|---|",
            ]
            for p in rec["proxies"]:
                for o in p["optima"]:
                    se = "" if o["se"] is None else f" ± {o['se']:.2f}"
                    edge = " (edge)" if o["at_edge"] else ""
                    loss = "–" if o["best_loss"] is None else f"{o['best_loss']:.4f}"
                    lines.append(
                        f"| {p['proxy']} | {o['value']:g} | {o['optimum_log2']:+.2f}{se}{edge} "
                        f"| {2.0 ** o['optimum_log2']:.3g} | {loss} |"
                    )
            lines += ["", f"**{rec['verdict']}**: {rec['sentence']}.", ""]
    return lines


def conditional_records(
    trials: pd.DataFrame,
    swept: tuple[str, ...] | list[str],
    metric: str,
    tolerance: float,
    strategy: str = "grid",
) -> dict[str, Any] | None:
    """``{result key: {"<by>": record}}`` for a grid over lr and one other HP ``by`` (at ≥ 2
    values of ``by``); None for any other run (a search's lr lines at two values of an HP
    differ in the other HPs too, so the shift could not be put down to ``by``)."""
    from umup_sweep.analysis._transfer import result_key

    if strategy != "grid" or "lr" not in swept or len(swept) != 2:
        return None
    out: dict[str, Any] = {}
    frame = trials if "precision" in trials else trials.assign(precision="fp32")
    for (param, precision), df in frame.groupby(["parametrization", "precision"], sort=True):
        for by in (h for h in swept if h != "lr"):
            rec = conditional_optima(df, "lr", by, metric, tolerance)
            if rec is not None:
                out.setdefault(result_key(str(param), str(precision)), {})[by] = rec
    return out or None
