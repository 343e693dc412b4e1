r"""Restarted primal--dual hybrid gradient (PDLP-style) for bounded-variable LPs.

Solves `min c^T x  s.t.  A x = b, l <= x <= u` through the saddle point
`min_{l<=x<=u} max_y c^T x - y^T (A x - b)` with the iteration

$$
x^{k+1} = \mathrm{proj}_{[l,u]}\big(x^k - \tfrac{\eta}{\omega}(c - A^T y^k)\big),\qquad
y^{k+1} = y^k + \eta\omega\,\big(b - A(2x^{k+1} - x^k)\big),
$$

touching `A` only through `A v` and `A^T w` (matrix-free), with the PDLP enhancements:

* **diagonal preconditioning**: 10 Ruiz (inf-norm) equilibration passes, then
  Pock--Chambolle (alpha = 1) scaling: `Ã = R A C`;
* **adaptive step size** `η`: a step is accepted when
  `η <= (ω||Δx||^2 + ||Δy||^2/ω) / (2 |Δy^T A Δx|)`, and `η` is updated to
  `min((1-(k+1)^{-0.3}) η_max, (1+(k+1)^{-0.6}) η)`;
* **adaptive restarts** on the KKT error (every 64 iterations the better of the current and
  the step-size-weighted average iterate is the restart candidate; restart when its KKT error
  fell below 0.2x the last restart's, or below 0.8x and rising, or after 36% of all iterations);
* **primal weight** `ω` updated at restarts by `log ω <- ½ log(||Δy||/||Δx||) + ½ log ω`.

Termination uses the same relative KKT measures as the interior-point method, evaluated on the
unscaled problem. Infeasibility: differences of iterates between checks are tested as Farkas
rays (`INFEASIBLE`) or recession rays (`UNBOUNDED`).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from jaxpoison._result import Status
from jaxpoison.solvers._lp_common import (
    LPRaw,
    abs_max,
    kkt_measures,
    make_bounds,
    primal_infeasibility_certificate,
    ray_certificate,
)

__all__ = ["pdhg_solve", "ruiz_pock_chambolle"]

_CHECK = 64


def ruiz_pock_chambolle(op, iters: int = 10):
    """Row and column scalings `(r, c)` such that `diag(r) A diag(c)` is equilibrated."""
    m, n = op.shape
    dtype = op.row_abs_max().dtype
    r = jnp.ones((m,), dtype)
    cc = jnp.ones((n,), dtype)

    def safe(v):
        return jnp.where(v > 0, 1.0 / jnp.sqrt(jnp.where(v > 0, v, 1.0)), 1.0)

    for _ in range(iters):
        s = op.scale(r, cc)
        r = r * safe(s.row_abs_max())
        cc = cc * safe(s.col_abs_max())
    s = op.scale(r, cc)
    r = r * safe(s.row_abs_sum())
    cc = cc * safe(s.col_abs_sum())
    return r, cc


class _State(NamedTuple):
    x: jax.Array
    y: jax.Array
    ax: jax.Array
    aty: jax.Array
    xsum: jax.Array
    ysum: jax.Array
    wsum: jax.Array
    x0: jax.Array          # last restart point
    y0: jax.Array
    kkt0: jax.Array        # its KKT error
    kkt_prev: jax.Array    # previous candidate's KKT error
    xc: jax.Array          # previous check's iterate (for infeasibility rays)
    yc: jax.Array
    eta: jax.Array
    omega: jax.Array
    it: jax.Array
    since: jax.Array
    status: jax.Array
    pres: jax.Array
    dres: jax.Array
    gap: jax.Array


def pdhg_solve(op, c, b, lower, upper, *, tol, max_iter: int) -> LPRaw:
    """Run restarted PDHG on `min c^T x, op x = b, lower <= x <= upper` (pure, traceable)."""
    dtype = c.dtype
    m, n = op.shape
    bd = make_bounds(lower, upper)
    a_max = abs_max(op)        # loop-invariant, for the infeasibility certificates
    rs, cs = ruiz_pock_chambolle(op)
    sop = op.scale(rs, cs)
    c_s, b_s = cs * c, rs * b
    lo_s = jnp.where(jnp.isfinite(lower), lower / cs, -jnp.inf)
    hi_s = jnp.where(jnp.isfinite(upper), upper / cs, jnp.inf)

    def proj(x):
        return jnp.clip(x, lo_s, hi_s)

    def unscale(xs, ys):
        return cs * xs, rs * ys

    def duals(x, y):
        red = c - op.rmatvec(y)
        zl = jnp.where(bd.has_lo | bd.fixed, jnp.maximum(red, 0.0), 0.0)
        zu = jnp.where(bd.has_hi | bd.fixed, jnp.maximum(-red, 0.0), 0.0)
        return zl, zu

    def measures(xs, ys):
        x, y = unscale(xs, ys)
        zl, zu = duals(x, y)
        pres, dres, gap, _, _ = kkt_measures(op, c, b, bd, x, y, zl, zu)
        return pres, dres, gap

    def kkt_error(xs, ys):
        p, d, g = measures(xs, ys)
        return jnp.sqrt(p * p + d * d + g * g)

    nc, nb = jnp.linalg.norm(c_s), jnp.linalg.norm(b_s)
    omega0 = jnp.where((nc > 1e-10) & (nb > 1e-10), nc / jnp.where(nb > 0, nb, 1.0), 1.0)
    eta0 = 1.0 / jnp.maximum(jnp.max(sop.row_abs_max()), jnp.finfo(dtype).tiny)
    x0 = proj(jnp.zeros((n,), dtype))
    y0 = jnp.zeros((m,), dtype)
    k0 = kkt_error(x0, y0)
    p0, d0, g0 = measures(x0, y0)
    zero = jnp.asarray(0.0, dtype)
    init = _State(x0, y0, sop.matvec(x0), sop.rmatvec(y0), jnp.zeros_like(x0),
                  jnp.zeros_like(y0), zero, x0, y0, k0, k0, x0, y0, eta0, omega0,
                  jnp.asarray(0, jnp.int32), jnp.asarray(0, jnp.int32),
                  jnp.asarray(Status.MAX_ITERATIONS, jnp.int32), p0, d0, g0)

    def cond(s):
        return (s.status == Status.MAX_ITERATIONS) & (s.it < max_iter)

    def step(s: _State) -> _State:
        tau, sigma = s.eta / s.omega, s.eta * s.omega
        xn = proj(s.x - tau * (c_s - s.aty))
        axn = sop.matvec(xn)
        yn = s.y + sigma * (b_s - 2.0 * axn + s.ax)
        atyn = sop.rmatvec(yn)
        dx, dy = xn - s.x, yn - s.y
        inter = jnp.abs(dy @ (axn - s.ax))
        movement = 0.5 * (s.omega * (dx @ dx) + (dy @ dy) / s.omega)
        limit = jnp.where(inter > 0, movement / jnp.where(inter > 0, inter, 1.0), jnp.inf)
        k = (s.it + 2).astype(dtype)
        accept = s.eta <= limit
        eta_new = jnp.minimum((1.0 - k ** -0.3) * limit, (1.0 + k ** -0.6) * s.eta)
        eta_new = jnp.where(jnp.isfinite(eta_new), eta_new, s.eta)

        def pick(a, b_):
            return jnp.where(accept, a, b_)

        w = jnp.where(accept, s.eta, 0.0)
        return s._replace(x=pick(xn, s.x), y=pick(yn, s.y), ax=pick(axn, s.ax),
                          aty=pick(atyn, s.aty), xsum=s.xsum + w * xn, ysum=s.ysum + w * yn,
                          wsum=s.wsum + w, eta=eta_new, it=s.it + 1,
                          since=s.since + accept.astype(jnp.int32))

    def check(s: _State) -> _State:
        wsafe = jnp.where(s.wsum > 0, s.wsum, 1.0)
        xa = jnp.where(s.wsum > 0, s.xsum / wsafe, s.x)
        ya = jnp.where(s.wsum > 0, s.ysum / wsafe, s.y)
        kc, ka = kkt_error(s.x, s.y), kkt_error(xa, ya)
        use_avg = ka < kc
        xr = jnp.where(use_avg, xa, s.x)
        yr = jnp.where(use_avg, ya, s.y)
        kr = jnp.minimum(ka, kc)
        restart = ((kr <= 0.2 * s.kkt0) | ((kr <= 0.8 * s.kkt0) & (kr > s.kkt_prev))
                   | (s.since >= 0.36 * s.it))
        ddx = jnp.linalg.norm(xr - s.x0)
        ddy = jnp.linalg.norm(yr - s.y0)
        ok = (ddx > 1e-10) & (ddy > 1e-10)
        omega_new = jnp.where(
            restart & ok,
            jnp.exp(0.5 * jnp.log(jnp.where(ok, ddy / jnp.where(ok, ddx, 1.0), 1.0))
                    + 0.5 * jnp.log(s.omega)), s.omega)
        x = jnp.where(restart, xr, s.x)
        y = jnp.where(restart, yr, s.y)
        pres, dres, gap = measures(xr, yr)
        conv = (pres <= tol) & (dres <= tol) & (gap <= tol)
        xo, yo = unscale(x, y)
        dxo, dyo = unscale(x - s.xc, y - s.yc)
        infeas = primal_infeasibility_certificate(op, b, bd, dyo, jnp.sqrt(tol), a_max)
        unb = ray_certificate(op, c, bd, dxo, jnp.sqrt(tol), a_max)
        finite = jnp.all(jnp.isfinite(xo)) & jnp.all(jnp.isfinite(yo))
        status = jnp.where(~finite, Status.NUMERICAL_ERROR,
                           jnp.where(conv, Status.SUCCESS,
                                     jnp.where(infeas, Status.INFEASIBLE,
                                               jnp.where(unb, Status.UNBOUNDED,
                                                         Status.MAX_ITERATIONS))))
        x = jnp.where(conv, xr, x)
        y = jnp.where(conv, yr, y)
        z = jnp.zeros((), dtype)
        return s._replace(
            x=x, y=y, ax=jnp.where(restart | conv, sop.matvec(x), s.ax),
            aty=jnp.where(restart | conv, sop.rmatvec(y), s.aty),
            xsum=jnp.where(restart, jnp.zeros_like(x), s.xsum),
            ysum=jnp.where(restart, jnp.zeros_like(y), s.ysum),
            wsum=jnp.where(restart, z, s.wsum),
            x0=jnp.where(restart, x, s.x0), y0=jnp.where(restart, y, s.y0),
            kkt0=jnp.where(restart, kr, s.kkt0), kkt_prev=jnp.where(restart, s.kkt0 * 10, kr),
            xc=s.x, yc=s.y, omega=omega_new,
            since=jnp.where(restart, 0, s.since), status=status.astype(jnp.int32),
            pres=pres, dres=dres, gap=gap)

    def body(s):
        s = step(s)
        return lax.cond(s.it % _CHECK == 0, check, lambda t: t, s)

    s = lax.while_loop(cond, body, init)
    x, y = unscale(s.x, s.y)
    zl, zu = duals(x, y)
    x = jnp.where(bd.fixed, bd.lo, x)
    return LPRaw(x, y, zl, zu, s.status, s.it, s.pres, s.dres, s.gap)
