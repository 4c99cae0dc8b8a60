"""Optima on the edge of the swept range: where a proxy's best grid point is the smallest value
tried (or the largest, when nothing diverged up there), the true optimum may lie beyond it, so
no drift measured from it can be trusted. Each such proxy becomes an edge record, and the
transfer verdict turns *inconclusive* with a reason that says how far to extend the range (one
and two grid steps beyond the edge, the grid step being the spacing next to the edge).

Example:
    >>> from umup_sweep.analysis._points import CurvePoint
    >>> from umup_sweep.analysis._transfer import ProxyOptimum
    >>> curve = [CurvePoint(2.0**x, x, 1.0, 0.0, 1.0, 1.0, 1, 0, 0) for x in (-1.0, 0.0, 1.0)]
    >>> opt = ProxyOptimum(128, 2, {}, curve, 2.0, 1.0, 1.0, None, "grid", None, 1.0, True,
    ...                    3, 0, 0)
    >>> edges = edge_records([opt])
    >>> edges[0]["side"], edges[0]["extend_to"]
    ('upper', [4.0, 8.0])
    >>> edge_reason("lr", edges)
    'the best lr at 128x2 is on the upper edge of the swept range (2^1): extend the range to 2^2..2^3 and rerun'
"""  # noqa: E501

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from umup_sweep.analysis._transfer import ProxyOptimum


def edge_records(optima: Iterable[ProxyOptimum]) -> list[dict[str, Any]]:
    """One record per proxy whose best grid point is on an edge of its swept range:
    ``{proxy, width, depth, side, value, log2, extend_to, extend_to_log2}``."""
    out = []
    for p in optima:
        if not p.at_edge or p.grid_optimum_log2 is None:
            continue
        tested = sorted(c.log2 for c in p.curve if c.tested)
        edge = p.grid_optimum_log2
        lower = edge == tested[0]
        # the grid's log2 values carry the 9-digit rounding of the HP values: drop it
        step = round(tested[1] - tested[0] if lower else tested[-1] - tested[-2], 6)
        beyond = [round(edge + (-k if lower else k) * step, 6) for k in (1, 2)]
        out.append(
            {
                "proxy": p.name,
                "width": p.width,
                "depth": p.depth,
                **{a: v for a, v in p.coords.items() if a in ("tokens", "batch")},
                "side": "lower" if lower else "upper",
                "value": p.grid_optimum,
                "log2": edge,
                "extend_to": [float(f"{2.0**b:.6g}") for b in beyond],
                "extend_to_log2": beyond,
            }
        )
    return out


def pow2_text(x: float) -> str:
    """``2^3`` (or ``2^-3.5``) on a quarter-step log2 grid, else the value: a list like
    0.03 is not on 2^k."""
    on_grid = abs(4 * x - round(4 * x)) < 1e-5
    return f"2^{round(4 * x) / 4:g}" if on_grid else f"{2.0**x:.3g}"


def edge_reason(hp: str, edges: list[dict[str, Any]]) -> str:
    """The clause that opens an inconclusive reason: which proxies sit on which edge, and the
    range to add (proxies on the same edge share one clause)."""
    groups: dict[tuple[str, float, tuple[float, ...]], list[str]] = {}
    for e in edges:
        key = (e["side"], e["log2"], tuple(sorted(e["extend_to_log2"])))
        groups.setdefault(key, []).append(e["proxy"])
    clauses = []
    for (side, edge, (lo, hi)), names in groups.items():
        where = names[0] if len(names) == 1 else ", ".join(names[:-1]) + f" and {names[-1]}"
        clauses.append(
            f"the best {hp} at {where} is on the {side} edge of the swept range "
            f"({pow2_text(edge)}): "
            f"extend the range to {pow2_text(lo)}..{pow2_text(hi)} and rerun"
        )
    return "; ".join(clauses)
