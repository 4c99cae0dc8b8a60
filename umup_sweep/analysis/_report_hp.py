"""Short texts about one HP's transfer (the cost of carrying its optimum, the width it holds
from, the edges to extend) and the report's "Transfer per HP" tables: one table per
parametrization, one row per swept HP. Pure: `report.md` is written by `write_report`.

The fields read here (`regret["cost"]`, `regret["cost_se"]`, `regret["judgement"]`,
`regret["seed_sd"]`, `edges`, `regime`) may be absent from an analysis: each text then falls
back to what is there (the plain regret, or "–").

Example:
    >>> from types import SimpleNamespace
    >>> res = SimpleNamespace(regret={"from": "64x2", "to": "128x2", "cost": 0.008,
    ...     "cost_se": 0.004, "seed_sd": 0.01, "judgement": "negligible"}, edges=[],
    ...     regime={"axis": "width", "from_width": 128, "too_narrow": [64]})
    >>> cost_text(res), holds_from(res)
    ('+0.0080 ± 0.0040 (negligible)', 'width 128 (64 too narrow)')
    >>> carry_short(res)
    'carry 64→128: +0.008 ± 0.004 (noise 0.010)'
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from umup_sweep.analysis._edges import pow2_text
from umup_sweep.analysis._proxy_axes import proxy_label
from umup_sweep.analysis._transfer import HPTransfer

if TYPE_CHECKING:
    from umup_sweep.analysis._analyze import TransferReport

__all__ = ["carry_short", "cost_text", "edges_text", "holds_from", "per_hp_markdown"]

PARAM_LABEL = {"umup": "u-μP", "sp": "SP", "mup": "μP"}


def _finite(v: Any) -> bool:
    return isinstance(v, int | float) and math.isfinite(v)


def _regret(res: Any) -> dict[str, Any]:
    return getattr(res, "regret", None) or {}


def cost_text(res: Any) -> str:
    """The cost of carrying the narrowest proxy's optimum to the widest, in metric units:
    `+0.0080 ± 0.0040 (negligible)`; the plain regret (`0.0080`) when there is no cost."""
    regret = _regret(res)
    cost = regret.get("cost")
    if _finite(cost):
        se = regret.get("cost_se")
        text = f"{cost:+.4f}" + (f" ± {se:.4f}" if _finite(se) else "")
        judgement = regret.get("judgement")
        return text + (f" ({judgement})" if judgement else "")
    old = regret.get("fit", regret.get("grid"))
    return f"{old:.4f}" if _finite(old) else "–"


def holds_from(res: Any) -> str:
    """Short form of where the transfer holds: `width 128 (64 too narrow)`, `width 64`,
    `none` (shown to drift at every width range), `not shown` (too little evidence either
    way), or `–` (not analysed)."""
    regime = getattr(res, "regime", None) or {}
    start = regime.get("from_width")
    if start is None:
        if not regime:
            return "–"
        return "none" if regime.get("drift_shown", True) else "not shown"
    axis = regime.get("axis") or "width"
    narrow = regime.get("too_narrow") or []
    extra = f" ({', '.join(str(w) for w in narrow)} too narrow)" if narrow else ""
    return f"{axis} {start}{extra}"


def _proxy_pair(a: str, b: str) -> str:
    """`64→128` when both proxies (`64x2`, `128x2`) share their depth, else `64x2→128x4`."""
    wa, _, da = str(a).partition("x")
    wb, _, db = str(b).partition("x")
    return f"{wa}→{wb}" if da == db else f"{a}→{b}"


def carry_short(res: Any) -> str | None:
    """`carry 64→128: +0.008 ± 0.004 (noise 0.010)` (None without a cost of carrying)."""
    regret = _regret(res)
    cost = regret.get("cost")
    if not _finite(cost) or "from" not in regret or "to" not in regret:
        return None
    se, noise = regret.get("cost_se"), regret.get("seed_sd")
    text = f"carry {_proxy_pair(regret['from'], regret['to'])}: {cost:+.3f}"
    text += f" ± {se:.3f}" if _finite(se) else ""
    return text + (f" (noise {noise:.3f})" if _finite(noise) else "")


def edges_text(res: Any) -> str | None:
    """`extend range: upper edge at 64x2, 128x2` when an optimum lies on an edge of the
    swept range (None otherwise)."""
    by_side: dict[str, list[str]] = {}
    for e in getattr(res, "edges", None) or []:
        by_side.setdefault(str(e.get("side", "")), []).append(str(e.get("proxy", "?")))
    if not by_side:
        return None
    where = [f"{side} edge at {', '.join(names)}".lstrip() for side, names in by_side.items()]
    return "extend range: " + "; ".join(where)


def _edge_proxies(res: HPTransfer) -> set[tuple[int, ...]]:
    edges = getattr(res, "edges", None) or []
    marked = {
        (int(e["width"]), int(e["depth"]), *(int(e[a]) for a in ("tokens", "batch") if a in e))
        for e in edges
        if "width" in e and "depth" in e
    }
    return marked | {p.key for p in res.per_proxy if p.at_edge}


def _label(res: HPTransfer) -> str:
    label = PARAM_LABEL.get(res.parametrization, res.parametrization)
    return label if res.precision == "fp32" else f"{label} {res.precision}"


def _drift(res: HPTransfer) -> str:
    several = len(res.drift) > 1
    parts = [
        f"{d.slope:+.2f} ± {d.se:.2f}" + (f" /{axis}×2" if several else "")
        for axis, d in res.drift.items()
    ]
    return "; ".join(parts) or "–"


def _optimum_cells(res: HPTransfer, proxies: list[tuple[int, ...]]) -> list[str]:
    by_proxy = {p.key: p for p in res.per_proxy}
    edges = _edge_proxies(res)
    cells = []
    for proxy in proxies:
        p = by_proxy.get(proxy)
        if p is None or p.fit_optimum_log2 is None:
            cells.append("–")
            continue
        cells.append(f"{p.fit_optimum_log2:+.2f}" + (" (edge)" if proxy in edges else ""))
    return cells


def _hp_value(log2: Any, value: Any) -> str:
    """`2^3` from a log2 value on a quarter-step grid, else the value itself (``0.03``, not
    ``2^-5.05889``)."""
    if _finite(log2):
        return pow2_text(log2)
    return f"{value:.3g}" if _finite(value) else "?"


def _edge_notes(results: list[HPTransfer]) -> list[str]:
    """Where an optimum sits on an edge of the swept range, and what to add."""
    lines = []
    for res in results:
        for e in getattr(res, "edges", None) or []:
            beyond = e.get("extend_to_log2") or [None] * len(e.get("extend_to") or [])
            further = [
                _hp_value(b, v) for b, v in zip(beyond, e.get("extend_to") or [], strict=False)
            ]
            lines.append(
                f"- ⚠ {res.hp} at {e.get('proxy')}: the best value "
                f"({_hp_value(e.get('log2'), e.get('value'))}) is on the {e.get('side')} edge of "
                "the swept range; extend it" + (f" to {', '.join(further)}" if further else "")
            )
    return lines


def _param_table(results: list[HPTransfer]) -> list[str]:
    """One parametrization's table: a row per swept HP, a column per proxy's optimum."""
    proxies = sorted({p.key for r in results for p in r.per_proxy})
    one_depth = len({k[1] for k in proxies}) == 1 and all(len(k) == 2 for k in proxies)
    heads = [
        f"width {k[0]}" if one_depth else proxy_label(*k).replace("x", "×", 1) for k in proxies
    ]
    lines = [
        f"### {_label(results[0])}",
        "",
        "| HP | " + " | ".join(f"optimum at {h} (log2)" for h in heads) + " | drift per doubling"
        " ± se | verdict | cost of carrying ± se | holds from |",
        "|---|" + "---|" * (len(heads) + 4),
    ]
    for res in results:
        cells = [res.hp, *_optimum_cells(res, proxies), _drift(res), f"**{res.verdict}**"]
        cells += [cost_text(res), holds_from(res)]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    notes = _edge_notes(results)
    return lines + notes + ([""] if notes else [])


def per_hp_markdown(report: TransferReport) -> list[str]:
    """The "Transfer per HP" section: one table per parametrization (and precision), rows =
    swept HPs ([] when no HP was analysed)."""
    by_key: dict[str, list[HPTransfer]] = {}
    for by_param in report.results.values():
        for key, res in by_param.items():
            by_key.setdefault(key, []).append(res)
    if not by_key:
        return []
    lines = [
        "## Transfer per HP",
        "",
        "Fitted optimum (log2 of the HP) per proxy — *(edge)*: on an edge of the swept range —, "
        "its drift per doubling, the verdict, the cost in "
        f"`{report.metric}` of using the narrowest proxy's optimum at the widest, and the width "
        "from which on the optimum holds.",
        "",
    ]
    for results in by_key.values():
        lines += _param_table(results)
    return lines
