"""From which width on does the optimum transfer? Small proxies are often too narrow for the
asymptotic scaling to hold yet, so one drift line over every width can hide a regime where it
transfers. Along width, at one depth (the one with the most widths; tie: the smallest):

* ``steps``: each neighbour pair's slope, Δoptimum / Δlog2 width, with the standard error from
  the two optima's (each proxy's ``fit_optimum_se``, else its ``seed_spread``; None without
  either) and `verdict_for`'s verdict on it.
* ``from_width``: the smallest width X such that the proxies of width ≥ X (at least two
  widths, none with its best on an edge of the swept range) transfer: their joint drift
  transfers and, with three widths or more, none of the steps between them drifts (one
  straight drift line over every width can average a jump at the narrow end away: +0.6 from
  64 to 128 and flat after reads as a transferring +0.1 per doubling over 64–512). For X = the
  smallest width the joint drift is the main analysis's width drift (``drift`` here is then
  None); above it, the same moving-bowl fit over that subset with the same error model (the
  larger of the Wald and the parametric-bootstrap standard errors; the bootstrap only runs
  when the Wald interval already lies within the tolerance, as it can only widen it).
  ``too_narrow``: the widths below X (empty when there is no X). With two widths it is the
  main verdict.

Shape (plain JSON): ``{depth, widths, steps: [{from, to, slope, se, verdict}], from_width,
too_narrow, drift: {slope, se, ci, verdict, se_wald, se_bootstrap, widths} | None,
drift_shown, sentence}`` (``drift_shown``: whether the whole line or a step drifts, so that
"no regime" means shown not to transfer rather than too little evidence); empty when the width
axis was not swept or fewer than two of its widths are usable.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from umup_sweep.analysis._drift import FitProxy, bootstrap_se, fit_all, verdict_for
from umup_sweep.analysis._points import Z, finite_or_none

if TYPE_CHECKING:
    from umup_sweep.analysis._transfer import HPTransfer, ProxyOptimum


def width_regime(
    result: HPTransfer, usable: list[FitProxy], window: int, n_boot: int
) -> dict[str, Any]:
    """The width regime of one analysis (see the module docstring); {} without a width axis."""
    if "width" not in result.axes:
        return {}
    by_rest: dict[tuple[int, ...], list[FitProxy]] = {}  # depth (and tokens, batch)
    for item in usable:
        by_rest.setdefault(item.opt.key[1:], []).append(item)
    if not by_rest:
        return {}
    rest = min(by_rest, key=lambda r: (-len(by_rest[r]), r))
    depth = rest[0]
    line = sorted(by_rest[rest], key=lambda t: t.opt.width)
    if len(line) < 2:
        return {}
    widths = [t.opt.width for t in line]
    tol = result.tolerance
    on_edge = {t.opt.width for t in line if t.opt.at_edge}
    steps = [_step(a.opt, b.opt, tol) for a, b in zip(line, line[1:], strict=False)]
    main = result.drift.get("width")
    jumps = [i for i, st in enumerate(steps) if st["verdict"] == "drifts" and len(widths) >= 3]
    from_width, drift = None, None
    if main is not None and main.verdict == "transfers" and not on_edge and not jumps:
        from_width = widths[0]
    elif len(widths) >= 3:
        for i in range(1, len(widths) - 1):
            if on_edge & set(widths[i:]) or any(j >= i for j in jumps):
                continue
            fitted = subset_drift(line[i:], window, n_boot, tol)
            if fitted is not None and fitted["verdict"] == "transfers":
                from_width, drift = widths[i], fitted
                break
    too_narrow = [] if from_width is None else [w for w in widths if w < from_width]
    return {
        "depth": depth,
        "widths": widths,
        "steps": steps,
        "from_width": from_width,
        "too_narrow": too_narrow,
        "drift": drift,
        "drift_shown": _any_drifts(main, steps),
        "sentence": regime_sentence(
            from_width, too_narrow, drift, widths, shown=_any_drifts(main, steps)
        ),
    }


def _optimum_se(p: ProxyOptimum) -> float | None:
    return p.fit_optimum_se if p.fit_optimum_se is not None else p.seed_spread


def _step(a: ProxyOptimum, b: ProxyOptimum, tol: float) -> dict[str, Any]:
    """The slope of the optimum from proxy ``a`` to the next wider ``b``, per width doubling."""
    assert a.fit_optimum_log2 is not None and b.fit_optimum_log2 is not None  # usable proxies
    span = math.log2(b.width / a.width)
    slope = (b.fit_optimum_log2 - a.fit_optimum_log2) / span
    se_a, se_b = _optimum_se(a), _optimum_se(b)
    se = None if se_a is None or se_b is None else math.hypot(se_a, se_b) / span
    verdict = verdict_for(slope, math.nan if se is None else se, tol)
    return {"from": a.width, "to": b.width, "slope": slope, "se": se, "verdict": verdict}


def subset_drift(
    subset: list[FitProxy], window: int, n_boot: int, tol: float
) -> dict[str, Any] | None:
    """The drift per width doubling fitted over ``subset`` alone (one depth), its standard error
    and verdict (None when the fit fails)."""
    w0 = subset[0].opt.width
    items = [FitProxy(t.opt, t.pts, t.mask, [math.log2(t.opt.width / w0)]) for t in subset]
    fit = fit_all(items, [t.mask for t in items])
    if fit is None:
        return None
    slope, se = fit.drift[0], fit.drift_se[0]
    se_boot = None
    if n_boot and verdict_for(slope, se, tol) == "transfers":
        se_boot = bootstrap_se(items, fit, window, n_boot)[0][0]
        se = max(se, se_boot)
    return {
        "slope": slope,
        "se": se,
        "ci": [slope - Z * se, slope + Z * se],
        "verdict": verdict_for(slope, se, tol),
        "se_wald": finite_or_none(fit.drift_se[0]),
        "se_bootstrap": finite_or_none(se_boot),
        "widths": [t.opt.width for t in subset],
    }


def _any_drifts(main: Any, steps: list[dict[str, Any]]) -> bool:
    """Whether the data show a drift (the whole line or a neighbour step), rather than too
    little evidence either way."""
    return (main is not None and main.verdict == "drifts") or any(
        s.get("verdict") == "drifts" for s in steps
    )


def regime_sentence(
    from_width: int | None,
    too_narrow: list[int],
    drift: dict[str, Any] | None,
    widths: list[int],
    shown: bool = True,
) -> str:
    """The regime in words; with no regime, `shown` says whether a drift was shown (else the
    evidence is too weak either way).

    Example:
        >>> d = {"slope": 0.02, "se": 0.04, "widths": [128, 256, 512]}
        >>> regime_sentence(128, [64], d, [64, 128, 256, 512])
        'transfers from width 128 on (drift +0.02 ± 0.04 over 128–512); width 64 is too narrow'
        >>> regime_sentence(64, [], None, [64, 128]), regime_sentence(None, [], None, [64, 128])
        ('transfers at every width (64–128)', 'no width range where it transfers')
        >>> regime_sentence(None, [], None, [64, 128], shown=False)
        'no width range shown to transfer yet (inconclusive: add seeds or widths)'
    """
    if from_width is None:
        if not shown:
            return "no width range shown to transfer yet (inconclusive: add seeds or widths)"
        return "no width range where it transfers"
    if not too_narrow:
        return f"transfers at every width ({widths[0]}–{widths[-1]})"
    assert drift is not None
    narrow = (
        f"width {too_narrow[0]} is"
        if len(too_narrow) == 1
        else f"widths {', '.join(map(str, too_narrow))} are"
    )
    return (
        f"transfers from width {from_width} on (drift {drift['slope']:+.2f} ± {drift['se']:.2f} "
        f"over {drift['widths'][0]}–{drift['widths'][-1]}); {narrow} too narrow"
    )
