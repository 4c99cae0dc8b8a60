"""The joint fit of the transfer analysis: one moving bowl in log2(HP) over every proxy.

Loss against log2(lr) (or any u-μP multiplier) is only locally quadratic, so the fit is applied
to points near the optimum (each proxy's own optimum is `umup_sweep.fitting.log2_optimum`).
`fit_moving_bowl` fits every proxy and seed at once, ``y ≈ a_p + b_p·(x − c0 − Σ_k d_k·u_pk)²``
with a per-proxy offset ``a_p`` and curvature ``b_p`` and a centre that moves linearly with
``u = log2(width / width_ref)`` (and/or depth) at slope ``d`` = the drift per doubling.
Solved by Levenberg–Marquardt (numpy only) started from the per-proxy optima; standard errors
from ``s²·(JᵀJ)⁻¹`` (u-μP transfer as defined in arXiv 2407.17465 §4, measured as in μTransfer).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class BowlFit:
    """Result of `fit_moving_bowl`.

    Attributes:
        offsets: ``a_p`` per proxy (loss at that proxy's optimum).
        curvature: ``b_p`` per proxy (loss per log2² away from the optimum); one shared value
            when fitted with ``per_proxy_curvature=False``.
        centre: ``c0``, the optimum in log2 at the reference proxy (u = 0).
        drift: ``d_k`` per axis, log2 per doubling.
        drift_se: standard error of each ``d_k``.
        centre_se: standard error of ``c0``.
        rss: residual sum of squares; ``dof`` its degrees of freedom.
    """

    offsets: tuple[float, ...]
    curvature: tuple[float, ...]
    centre: float
    drift: tuple[float, ...]
    drift_se: tuple[float, ...]
    centre_se: float
    rss: float
    dof: int
    n_points: int
    converged: bool

    def optimum_at(self, u: np.ndarray | list[float]) -> float:
        """Fitted optimum (log2 HP) at ``u`` (log2 doublings from the reference per axis)."""
        return self.centre + float(np.dot(self.drift, np.asarray(u, dtype=float)))


@dataclass(frozen=True)
class _Layout:
    """Where each parameter group sits in theta = [a (P), b (C), c0, d (K)]."""

    proxy: np.ndarray  # offset index per point
    cidx: np.ndarray  # curvature index per point
    n_proxy: int
    n_curv: int

    @property
    def c0(self) -> int:
        return self.n_proxy + self.n_curv


def _bowl_residuals(
    theta: np.ndarray, x: np.ndarray, y: np.ndarray, u: np.ndarray, lay: _Layout
) -> tuple[np.ndarray, np.ndarray]:
    """Residuals ``model − y`` and the Jacobian of the moving-bowl model at ``theta``."""
    n = len(x)
    a = theta[: lay.n_proxy]
    b = theta[lay.n_proxy : lay.c0][lay.cidx]
    d = theta[lay.c0 + 1 :]
    r = x - theta[lay.c0] - u @ d
    pred = a[lay.proxy] + b * r * r
    jac = np.zeros((n, len(theta)))
    jac[np.arange(n), lay.proxy] = 1.0
    jac[np.arange(n), lay.n_proxy + lay.cidx] = r * r
    jac[:, lay.c0] = -2 * b * r
    jac[:, lay.c0 + 1 :] = (-2 * b * r)[:, None] * u
    return pred - y, jac


def _profile_linear(
    c0: float, d: np.ndarray, x: np.ndarray, y: np.ndarray, u: np.ndarray, lay: _Layout
) -> np.ndarray:
    """Given the centre line, solve the linear part (offsets, curvatures) exactly."""
    n = len(x)
    r = x - c0 - u @ d
    design = np.zeros((n, lay.c0))
    design[np.arange(n), lay.proxy] = 1.0
    design[np.arange(n), lay.n_proxy + lay.cidx] = r * r
    lin, *_ = np.linalg.lstsq(design, y, rcond=None)
    return np.concatenate([lin, [c0], d])


def _levenberg_marquardt(
    theta: np.ndarray, args: tuple, max_iter: int = 200
) -> tuple[np.ndarray, float, bool]:
    """Minimise the residual sum of squares of the moving bowl from ``theta``."""
    resid, jac = _bowl_residuals(theta, *args)
    rss = float(resid @ resid)
    lam = 1e-3
    converged = False
    for _ in range(max_iter):
        jtj = jac.T @ jac
        grad = jac.T @ resid
        step = np.linalg.lstsq(jtj + lam * np.diag(np.diag(jtj) + 1e-12), -grad, rcond=None)[0]
        cand = theta + step
        new_resid, new_jac = _bowl_residuals(cand, *args)
        new_rss = float(new_resid @ new_resid)
        if new_rss < rss:
            improvement = rss - new_rss
            theta, resid, jac, rss = cand, new_resid, new_jac, new_rss
            lam = max(lam / 3, 1e-12)
            if improvement <= 1e-12 * max(rss, 1e-30) and float(np.max(np.abs(step))) < 1e-9:
                converged = True
                break
            if float(np.max(np.abs(step))) < 1e-10:
                converged = True
                break
        else:
            lam *= 4
            if lam > 1e12:
                converged = True  # no descent direction left: at a minimum to precision
                break
    return theta, rss, converged


def fit_moving_bowl(
    x: np.ndarray,
    y: np.ndarray,
    proxy: np.ndarray,
    u: np.ndarray,
    init_centres: np.ndarray | None = None,
    start: tuple[float, tuple[float, ...]] | None = None,
    per_proxy_curvature: bool = True,
) -> BowlFit | None:
    """Fit ``y ≈ a_p + b_p·(x − c0 − u·d)²`` over all points at once.

    Each proxy keeps its own offset ``a_p`` and (by default) its own curvature ``b_p``, so a
    flat proxy pins its optimum loosely and weighs less in the drift ``d``; the centres are
    tied to one line in ``u``. Falls back to one shared curvature if a proxy has none.

    Args:
        x: log2 HP per point.
        y: loss per point.
        proxy: integer proxy index per point (0..P-1), selects the offset ``a_p``.
        u: ``[n_points, K]`` axis coordinates (log2 width / depth doublings from the reference).
        init_centres: optional per-proxy optimum guesses (log2) to start from.
        start: ``(c0, drift)`` to start from *only* (a warm start, e.g. in a bootstrap);
            default: several starts, keep the best.
        per_proxy_curvature: one curvature per proxy (default) or one shared by all.

    Returns:
        The fit, or None when there are too few points or no curvature.

    Example:
        >>> xs = np.tile(np.arange(-2.0, 3.0), 2); ws = np.repeat([0.0, 1.0], 5)
        >>> ys = 1.0 + 0.1 * (xs - 0.5 - 1.0 * ws) ** 2
        >>> fit = fit_moving_bowl(xs, ys, ws.astype(int), ws[:, None])
        >>> round(fit.centre, 6), round(fit.drift[0], 6)
        (0.5, 1.0)
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    proxy = np.asarray(proxy, dtype=int)
    u = np.asarray(u, dtype=float).reshape(len(x), -1)
    n_proxy = int(proxy.max()) + 1 if len(proxy) else 0
    if per_proxy_curvature:
        fit = _fit(x, y, proxy, u, n_proxy, n_proxy, init_centres, start)
        if fit is not None:
            return fit
    return _fit(x, y, proxy, u, n_proxy, 1, init_centres, start)


def _fit(
    x: np.ndarray,
    y: np.ndarray,
    proxy: np.ndarray,
    u: np.ndarray,
    n_proxy: int,
    n_curv: int,
    init_centres: np.ndarray | None,
    start: tuple[float, tuple[float, ...]] | None,
) -> BowlFit | None:
    k = u.shape[1]
    n_params = n_proxy + n_curv + 1 + k
    if len(x) <= n_params or n_proxy == 0:
        return None
    lay = _Layout(proxy, proxy if n_curv > 1 else np.zeros_like(proxy), n_proxy, n_curv)
    args = (x, y, u, lay)
    curv = slice(n_proxy, lay.c0)

    # Starting centre lines: regress the per-proxy optimum guesses on u, plus a few fixed slopes.
    starts: list[tuple[float, np.ndarray]] = []
    if start is not None:
        starts.append((float(start[0]), np.asarray(start[1], dtype=float).reshape(k)))
    per_proxy_u = np.array([u[proxy == p][0] for p in range(n_proxy)])
    if start is None and init_centres is not None and np.all(np.isfinite(init_centres)):
        design = np.concatenate([np.ones((n_proxy, 1)), per_proxy_u], axis=1)
        sol, *_ = np.linalg.lstsq(design, np.asarray(init_centres, float), rcond=None)
        starts.append((float(sol[0]), sol[1:].astype(float)))
    x_mid = float(np.average(x, weights=np.exp(-(y - y.min()) / max(np.ptp(y), 1e-12) * 5)))
    for slope in (0.0, -1.0, 1.0) if start is None else ():
        starts.append((x_mid, np.full(k, slope)))

    fallback_b = max(1e-3, float(np.ptp(y)) / max(float(np.ptp(x)) ** 2, 1e-12))
    best: tuple[np.ndarray, float, bool] | None = None
    for c0, d in starts:
        theta0 = _profile_linear(c0, d, *args)
        theta0[curv] = np.where(theta0[curv] > 0, theta0[curv], fallback_b)
        theta, rss, conv = _levenberg_marquardt(theta0, args)
        if np.all(theta[curv] > 0) and (best is None or rss < best[1] - 1e-15):
            best = (theta, rss, conv)
    if best is None:
        return None
    theta, rss, conv = best
    _, jac = _bowl_residuals(theta, *args)
    dof = len(x) - n_params
    s2 = rss / dof
    cov = s2 * np.linalg.pinv(jac.T @ jac)
    se = np.sqrt(np.clip(np.diag(cov), 0, None))
    return BowlFit(
        offsets=tuple(float(v) for v in theta[:n_proxy]),
        curvature=tuple(float(v) for v in theta[curv]),
        centre=float(theta[lay.c0]),
        drift=tuple(float(v) for v in theta[lay.c0 + 1 :]),
        drift_se=tuple(float(v) for v in se[lay.c0 + 1 :]),
        centre_se=float(se[lay.c0]),
        rss=float(rss),
        dof=int(dof),
        n_points=len(x),
        converged=bool(conv),
    )
