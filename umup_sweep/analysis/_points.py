"""What the transfer and precision analyses share: one swept line's seed statistics per HP value
(`CurvePoint`), its trials as arrays for the fits (`line_points`), the interval width and the
bootstrap size, and the small numeric helpers both use.

Example:
    >>> import pandas as pd
    >>> line = pd.DataFrame({"lr": [0.5, 0.5, 1.0, 2.0], "seed": [0, 1, 0, 0],
    ...                      "status": ["ok", "ok", "ok", "diverged"],
    ...                      "val_loss": [2.0, 2.2, 1.9, None]})
    >>> [(p.log2, p.mean, p.n_ok, p.n_diverged) for p in curve_points(line, "lr", "val_loss")]
    [(-1.0, 2.1, 2, 0), (0.0, 1.9, 1, 0), (1.0, None, 0, 1)]
    >>> line_points(line, "lr", "val_loss").grid.tolist()
    [-1.0, 0.0]
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from umup_sweep.fitting import LinePoints

Z = 2.0  # half-width of the interval in standard errors (≈95%)
N_BOOT = 200  # parametric-bootstrap replicates for the standard errors
ROUND = 9  # significant digits used to decide two HP values are "the same grid point"


@dataclass
class CurvePoint:
    """One HP value at one proxy: the seed-mean metric and what happened to every seed.

    A value with a pruned seed (stopped early as dominated, `umup_sweep.pruning`) is never
    the optimum and its other seeds are left out of the fits (their mean would leave out the
    worst seed); it still counts as tested: a value where the loss is known to be high."""

    value: float
    log2: float
    mean: float | None
    std: float | None
    min: float | None
    max: float | None
    n_ok: int
    n_diverged: int
    n_failed: int
    n_pruned: int = 0

    @property
    def eligible(self) -> bool:
        """Whether it can be the optimum: no seed pruned, and at least half of its finished
        seeds ok."""
        return self.n_pruned == 0 and self.n_ok > 0 and 2 * self.n_ok >= self.n_ok + self.n_diverged

    @property
    def tested(self) -> bool:
        """Whether some seed finished here (ok, diverged or pruned): the range it bounds."""
        return self.n_ok + self.n_diverged + self.n_pruned > 0


def rounded(value: float) -> float:
    """``value`` to `ROUND` significant digits: equal grid values compare equal.

    Example:
        >>> rounded(0.1 + 0.2) == rounded(0.3)
        True
    """
    return float(f"{float(value):.{ROUND}g}")


def curve_points(line: pd.DataFrame, hp: str, metric: str) -> list[CurvePoint]:
    """Seed statistics per HP value (ok trials only in the statistics; all counted)."""
    points = []
    for value, g in line.groupby(line[hp].map(rounded), sort=True):
        ok = g.loc[(g["status"] == "ok") & g[metric].notna(), metric].astype(float)
        n_ok = len(ok)
        points.append(
            CurvePoint(
                value=float(value),
                log2=math.log2(float(value)),
                mean=float(ok.mean()) if n_ok else None,
                std=float(ok.std(ddof=0)) if n_ok else None,
                min=float(ok.min()) if n_ok else None,
                max=float(ok.max()) if n_ok else None,
                n_ok=n_ok,
                n_diverged=int((g["status"] == "diverged").sum()),
                n_failed=int((g["status"] == "failed").sum()),
                n_pruned=int((g["status"] == "pruned").sum()),
            )
        )
    return points


def line_points(
    line: pd.DataFrame, hp: str, metric: str, curve: list[CurvePoint] | None = None
) -> LinePoints:
    """The ok trials of one line as arrays (but none of a value with a pruned seed); a grid
    point may be the optimum when it is `CurvePoint.eligible` (``curve``: the line's
    `curve_points`, computed when not given)."""
    curve = curve_points(line, hp, metric) if curve is None else curve
    pruned = {c.value for c in curve if c.n_pruned}
    ok = line[(line["status"] == "ok") & line[metric].notna()]
    if pruned:
        ok = ok[~ok[hp].map(rounded).isin(pruned)]
    x = np.array([rounded(v) for v in np.log2(ok[hp].to_numpy(float))])
    with_ok = [c for c in curve if c.n_ok > 0 and not c.n_pruned]
    grid = np.array([c.log2 for c in with_ok])
    # Nearest grid point: the curve's log2 comes from the rounded value, so it can differ from
    # x in the 9th digit (half-step grids like 2^-9.5); exact matching would misfile trials.
    gidx = np.abs(x[:, None] - grid[None, :]).argmin(axis=1) if len(grid) else np.zeros(0, int)
    return LinePoints(
        x=x,
        y=ok[metric].to_numpy(float),
        seed=ok["seed"].to_numpy(),
        grid=grid,
        gidx=gidx,
        eligible=np.array([c.eligible for c in with_ok], dtype=bool),
    )


def finite_or_none(v: float | None) -> float | None:
    """``v`` as a float, None when missing or not finite (JSON-friendly).

    Example:
        >>> finite_or_none(1), finite_or_none(float("nan")), finite_or_none(None)
        (1.0, None, None)
    """
    return float(v) if v is not None and math.isfinite(v) else None


def half_range(values: np.ndarray) -> np.ndarray:
    """Half the 16–84% range along the first axis: a standard error from bootstrap replicates
    that tolerates a few wild ones.

    Example:
        >>> round(float(half_range(np.arange(101.0))), 2)
        34.13
    """
    lo, hi = np.percentile(np.asarray(values), [15.87, 84.13], axis=0)
    return (hi - lo) / 2


def json_ready(obj: Any) -> Any:
    """Replace NaN/inf with None, tuples with lists and numpy scalars with Python ones,
    recursively (for JSON).

    Example:
        >>> json_ready({"a": (1.0, float("nan")), 2: np.int64(3)})
        {'a': [1.0, None], '2': 3}
    """
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): json_ready(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_ready(v) for v in obj]
    if isinstance(obj, np.generic):
        return json_ready(obj.item())
    return obj


def positive_rows(df: pd.DataFrame, hp: str) -> tuple[pd.DataFrame, list[str]]:
    """The trials whose ``hp`` is > 0 (the analysis works in log2 of the HP; a weight decay of
    0 is a reference point, not a point of the curve), and a note when some were left out."""
    zero = df[hp] <= 0
    if not zero.any():
        return df, []
    return df[~zero], [
        f"{hp} = 0 ({int(zero.sum())} trials) is left out of the log2 fit of {hp}; "
        "the per-value lr optima (`conditional`) still use it"
    ]
