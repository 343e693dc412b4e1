r"""Mehrotra predictor--corrector interior-point method for bounded-variable LPs.

Solves

$$
\min_x c^T x \quad\text{s.t.}\quad Ax = b,\; l \le x \le u
$$

(`l`, `u` finite or infinite, `l == u` allowed) by the standard bounded-variable
primal--dual method: finite bounds get slacks `s_l = x - l`, `s_u = u - x` and
multipliers `z_l, z_u`; the Newton system of the perturbed KKT conditions

$$
A\,dx = r_p,\quad A^T dy + dz_l - dz_u = r_d,\quad
Z_l\,dx + S_l\,dz_l = r_l,\quad -Z_u\,dx + S_u\,dz_u = r_u
$$

is reduced to the m x m *normal equations* `(A Θ A^T + δI) dy = r_p + A Θ \hat r` with
`Θ^{-1} = Z_l S_l^{-1} + Z_u S_u^{-1} + ρ`, factorised once per iteration by Cholesky and
used twice (predictor and corrector). `ρ` (primal) and `δ` (dual, relative to the
largest diagonal entry) are proximal regularisations centred at the current iterate, so they
do not move the solution; they keep the factorisation defined for free variables and rank-
deficient `A`. Fixed variables get `Θ = 0` and stay at their value.

Float32 safety: slacks are stored (not recomputed as `x - l`) and floored at a tiny positive
value, steps stay a fraction `η < 1` of the distance to the boundary, and an iterate with a
NaN/inf is rejected (status `NUMERICAL_ERROR` with the last finite iterate).

The normal equations are factorised with a small dual regularisation and then refined
against the *unregularised* matrix (near the optimum its diagonal spans ~1e10, where the
regularisation alone leaves an error that stalls the primal residual). The loop stops at
the tolerance, at `max_iter`, or when the KKT error has not fallen by 10% in 6 iterations;
a final *crossover* (`_polish`) then snaps the variables the iterate identifies as bound to
their bounds, completes the free set to `m` variables when the vertex is degenerate, and
solves for the free variables and `y` exactly; when more than `m` variables look free (a
low-precision iterate stopped on the optimal face but off its vertices), `_purify` first
moves the surplus ones to their bounds along directions with $A d = 0$ at unchanged cost, so
that the answer is a vertex. Its result is kept when it passes `tol`
(status `SUCCESS`, also after a stall or the iteration limit), so a solution at a vertex
has its bound coordinates exactly at the bounds.

Infeasibility is detected from the iterates (residual-based): a Farkas ray in the direction of
`y` gives `INFEASIBLE`; a recession ray of the box with `A d ~ 0, c^T d < 0` in the
direction of the diverging `x` gives `UNBOUNDED` (see `._lp_common`).
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
    dual_infeasibility_certificate,
    interior_step,
    kkt_measures,
    make_bounds,
    primal_infeasibility_certificate,
)

__all__ = ["ipm_solve"]


class _State(NamedTuple):
    x: jax.Array
    sl: jax.Array
    su: jax.Array
    y: jax.Array
    zl: jax.Array
    zu: jax.Array
    it: jax.Array
    status: jax.Array
    pres: jax.Array
    dres: jax.Array
    gap: jax.Array
    best: jax.Array      # smallest KKT error max(pres, dres, gap) so far
    best_it: jax.Array   # iteration where it was reached (stall detection)


# iterations without a 10% decrease of the KKT error after which the loop stops and the
# final crossover (`_polish`) decides the status
_STALL = 6


def _max_step(s, ds, mask):
    ratio = jnp.where(mask & (ds < 0), -s / jnp.where(ds < 0, ds, -1.0), jnp.inf)
    return jnp.min(ratio, initial=jnp.inf)


def ipm_solve(op, c, b, lower, upper, *, tol, max_iter: int) -> LPRaw:
    """Run the interior-point method on `min c^T x, op x = b, lower <= x <= upper`.

    `op` is a `._lp_ops` operator. Pure and traceable (`jit`/`vmap`).
    """
    dtype = c.dtype
    eps = jnp.finfo(dtype).eps
    floor = jnp.sqrt(jnp.finfo(dtype).tiny)
    m = b.shape[0]
    bd = make_bounds(lower, upper)
    a_max = abs_max(op)        # loop-invariant, for the infeasibility certificates
    hl, hu, fixed = bd.has_lo, bd.has_hi, bd.fixed
    nb = jnp.maximum(jnp.sum(hl) + jnp.sum(hu), 1)
    rho = jnp.sqrt(eps) * 1e-2          # primal proximal regularisation
    delta = eps ** 0.75                  # dual regularisation relative to max diag
    eta = 0.99 if dtype == jnp.float64 else 0.95
    cscale = 1.0 + jnp.max(jnp.abs(c), initial=0.0)

    # starting point: strictly inside the box, unit distance where unbounded
    both = hl & hu
    x0 = jnp.where(both, 0.5 * (bd.lo + bd.hi),
                   jnp.where(hl, bd.lo + 1.0, jnp.where(hu, bd.hi - 1.0, 0.0)))
    x0 = jnp.where(fixed, bd.lo, x0)
    width = jnp.where(both, bd.hi - bd.lo, 2.0)
    sl0 = jnp.where(hl, 0.5 * width, 1.0)
    su0 = jnp.where(hu, 0.5 * width, 1.0)
    z0 = cscale
    zl0 = jnp.where(hl, z0, 0.0)
    zu0 = jnp.where(hu, z0, 0.0)
    y0 = jnp.zeros((m,), dtype)

    def measures(x, y, zl, zu):
        pres, dres, gap, _, _ = kkt_measures(op, c, b, bd, x, y, zl, zu)
        return pres, dres, gap

    p0, d0, g0 = measures(x0, y0, zl0, zu0)
    zero = jnp.asarray(0, jnp.int32)
    init = _State(x0, sl0, su0, y0, zl0, zu0, zero,
                  jnp.asarray(Status.MAX_ITERATIONS, jnp.int32), p0, d0, g0,
                  jnp.maximum(jnp.maximum(p0, d0), g0), zero)

    def cond(s: _State):
        return ((s.status == Status.MAX_ITERATIONS) & (s.it < max_iter)
                & (s.it - s.best_it < _STALL))

    def body(s: _State):
        x, sl, su, y, zl, zu = s.x, s.sl, s.su, s.y, s.zl, s.zu
        rp = b - op.matvec(x)
        aty = op.rmatvec(y)
        rd = jnp.where(fixed, 0.0, c - aty - zl + zu)
        mu = (jnp.sum(jnp.where(hl, sl * zl, 0.0)) + jnp.sum(jnp.where(hu, su * zu, 0.0))) / nb
        qinv = jnp.where(hl, zl / sl, 0.0) + jnp.where(hu, zu / su, 0.0) + rho
        theta = jnp.where(fixed, 0.0, 1.0 / qinv)
        M0 = op.normal(theta)
        dmax = jnp.max(jnp.diag(M0), initial=0.0)
        L = jnp.linalg.cholesky(M0 + (delta * (1.0 + dmax)) * jnp.eye(m, dtype=dtype))

        def msolve(r):
            # the regularised factor preconditions refinement against the *unregularised*
            # normal matrix: near the optimum `dmax` reaches 1e10 and the regularisation
            # alone would leave an error that stalls the primal residual
            v = jax.scipy.linalg.cho_solve((L, True), r)
            for _ in range(2):
                v = v + jax.scipy.linalg.cho_solve((L, True), r - M0 @ v)
            return v

        def newton(rcl, rcu):
            rhat = rd - jnp.where(hl, rcl / sl, 0.0) + jnp.where(hu, rcu / su, 0.0)
            dy = msolve(rp + op.matvec(theta * rhat))
            dx = theta * (op.rmatvec(dy) - rhat)
            dzl = jnp.where(hl, (rcl - zl * dx) / sl, 0.0)
            dzu = jnp.where(hu, (rcu + zu * dx) / su, 0.0)
            return dx, dy, dzl, dzu

        def steps(dx, dzl, dzu):
            ap = jnp.minimum(_max_step(sl, dx, hl), _max_step(su, -dx, hu))
            ad = jnp.minimum(_max_step(zl, dzl, hl), _max_step(zu, dzu, hu))
            return ap, ad

        # predictor (affine scaling)
        dxa, dya, dzla, dzua = newton(-sl * zl, -su * zu)
        apa, ada = steps(dxa, dzla, dzua)
        apa, ada = jnp.minimum(1.0, apa), jnp.minimum(1.0, ada)
        mu_aff = (jnp.sum(jnp.where(hl, (sl + apa * dxa) * (zl + ada * dzla), 0.0))
                  + jnp.sum(jnp.where(hu, (su - apa * dxa) * (zu + ada * dzua), 0.0))) / nb
        sigma = jnp.clip((mu_aff / jnp.maximum(mu, floor)) ** 3, 0.0, 1.0)
        # corrector (centring + second-order term)
        rcl = sigma * mu - sl * zl - dxa * dzla
        rcu = sigma * mu - su * zu + dxa * dzua
        dx, dy, dzl, dzu = newton(rcl, rcu)
        ap, ad = steps(dx, dzl, dzu)
        ap, ad = jnp.minimum(1.0, eta * ap), jnp.minimum(1.0, eta * ad)

        xn, sln, sun, yn, zln, zun, finite = interior_step(
            x, sl, su, y, zl, zu, dx, dy, dzl, dzu, ap, ad, hl, hu, floor)
        pres, dres, gap = measures(xn, yn, zln, zun)
        conv = (pres <= tol) & (dres <= tol) & (gap <= tol)
        infeas = primal_infeasibility_certificate(op, b, bd, yn, jnp.sqrt(tol), a_max)
        unb = dual_infeasibility_certificate(op, c, bd, xn, sln, sun, jnp.sqrt(tol), a_max)
        status = jnp.where(~finite, Status.NUMERICAL_ERROR,
                           jnp.where(conv, Status.SUCCESS,
                                     jnp.where(infeas, Status.INFEASIBLE,
                                               jnp.where(unb, Status.UNBOUNDED,
                                                         Status.MAX_ITERATIONS))))
        err = jnp.maximum(jnp.maximum(pres, dres), gap)
        better = err < 0.9 * s.best
        return _State(xn, sln, sun, yn, zln, zun, s.it + 1, status.astype(jnp.int32),
                      pres, dres, gap, jnp.where(better, err, s.best),
                      jnp.where(better, s.it + 1, s.best_it))

    s = lax.while_loop(cond, body, init)
    # crossover: snap the identified active set to its bounds and solve for the rest
    px, py, pzl, pzu, pp, pd, pg = _polish(op, c, b, bd, s.x, s.sl, s.su, s.y, s.zl, s.zu)
    ok = ((pp <= tol) & (pd <= tol) & (pg <= tol)
          & ((s.status == Status.SUCCESS) | (s.status == Status.MAX_ITERATIONS)))
    status = jnp.where(ok, Status.SUCCESS, s.status).astype(jnp.int32)

    def pick(a, b_):
        return jnp.where(ok, a, b_)

    x, y, zl, zu = pick(px, s.x), pick(py, s.y), pick(pzl, s.zl), pick(pzu, s.zu)
    pres, dres, gap = pick(pp, s.pres), pick(pd, s.dres), pick(pg, s.gap)
    # bound multipliers of fixed variables: split the reduced cost by sign
    red = c - op.rmatvec(y)
    zl = jnp.where(fixed, jnp.maximum(red, 0.0), zl)
    zu = jnp.where(fixed, jnp.maximum(-red, 0.0), zu)
    x = jnp.where(fixed, bd.lo, x)
    return LPRaw(x, y, zl, zu, status, s.it, pres, dres, gap)


def _polish(op, c, b, bd, x, sl, su, y, zl, zu):
    """Crossover to the face identified by the interior point.

    A variable with a finite lower bound is *at* it when its slack is smaller than its
    multiplier (`s_l < z_l`), likewise for the upper bound; the others are free (`F`). The
    bound variables are set exactly to their bounds, `x_F` receives the least-norm correction
    that restores `A x = b`, and `y` the least-squares correction of `A_F^T y = c_F`
    (both through `A_F A_F^T`, m x m, regularised by `sqrt(eps)` and refined four
    times); bound multipliers are the reduced costs on the bound variables. At a vertex
    this is the exact basic solution, so coordinates at a bound are exact (not `1e-9`
    away) and the KKT measures drop to rounding level. The caller accepts the result only
    when its KKT measures pass `tol`.
    """
    dtype = c.dtype
    m = b.shape[0]
    eps = jnp.finfo(dtype).eps
    at_lo0 = bd.has_lo & (sl < zl)
    at_hi0 = bd.has_hi & (su < zu) & ~at_lo0
    free0 = ~(at_lo0 | at_hi0 | bd.fixed)
    # basis completion: at a degenerate or not yet resolved vertex fewer than m variables
    # look free; add the bound variables that are least clearly at their bound (largest
    # slack / multiplier) until m are free, so that `A_F` can be square
    sc_lo = jnp.where(bd.has_lo, sl / jnp.maximum(zl, jnp.finfo(dtype).tiny), jnp.inf)
    sc_hi = jnp.where(bd.has_hi, su / jnp.maximum(zu, jnp.finfo(dtype).tiny), jnp.inf)
    score = jnp.where(bd.fixed | free0, -jnp.inf, jnp.log(jnp.minimum(sc_lo, sc_hi)))
    k = min(m, score.shape[0])
    need = m - jnp.sum(free0)
    kth = jnp.sort(score)[::-1][jnp.clip(need - 1, 0, k - 1)]
    extra = (need > 0) & (score >= kth) & jnp.isfinite(score)
    free = free0 | extra
    at_lo = at_lo0 & ~free
    at_hi = at_hi0 & ~free
    f = free.astype(dtype)
    xs = jnp.where(at_lo | bd.fixed, bd.lo, jnp.where(at_hi, bd.hi, x))
    lo = jnp.where(bd.has_lo, bd.lo, -jnp.inf)
    hi = jnp.where(bd.has_hi, bd.hi, jnp.inf)

    def factor(f):
        MF = op.normal(f)
        # sqrt(eps) regularisation: directions outside the range of A_F (fewer than m free
        # variables) stay small, and refinement against MF recovers the range part
        reg = jnp.sqrt(eps) * (1.0 + jnp.max(jnp.diag(MF), initial=0.0))
        L = jnp.linalg.cholesky(MF + reg * jnp.eye(m, dtype=dtype))

        def fsolve(r):
            v = jax.scipy.linalg.cho_solve((L, True), r)
            for _ in range(4):
                v = v + jax.scipy.linalg.cho_solve((L, True), r - MF @ v)
            return v

        return fsolve

    fsolve = factor(f)
    for _ in range(2):
        xs = xs + f * op.rmatvec(fsolve(b - op.matvec(xs)))
    # free coordinates must lie in the box (to rounding); more than m free variables: move
    # towards a vertex of the face (`_purify`), so that A_F^T y = c_F becomes square
    xs = jnp.where(free, jnp.clip(xs, lo, hi), xs)
    xs, at_lo, at_hi, free = _purify(op, c, xs, at_lo, at_hi, free, lo, hi, m, eps)
    f = free.astype(dtype)
    fsolve = factor(f)
    for _ in range(2):
        xs = xs + f * op.rmatvec(fsolve(b - op.matvec(xs)))
        y = y + fsolve(op.matvec(f * (c - op.rmatvec(y))))
    xs = jnp.where(free, jnp.clip(xs, lo, hi), xs)
    red = c - op.rmatvec(y)
    zl = jnp.where(at_lo, jnp.maximum(red, 0.0), 0.0)
    zu = jnp.where(at_hi, jnp.maximum(-red, 0.0), 0.0)
    pres, dres, gap, _, _ = kkt_measures(op, c, b, bd, xs, y, zl, zu)
    finite = jnp.all(jnp.isfinite(xs)) & jnp.all(jnp.isfinite(y))
    big = jnp.asarray(jnp.inf, dtype)
    return (xs, y, zl, zu, jnp.where(finite, pres, big), jnp.where(finite, dres, big),
            jnp.where(finite, gap, big))


PURIFY_STEPS = 8
"""Passes of `_purify`: at most this many surplus free variables are moved to a bound."""


def _purify(op, c, x, at_lo, at_hi, free, lo, hi, m, eps):
    """Move a point with more than `m` free variables towards a vertex of its optimal face.

    While more than `m` variables are free, take the free variable closest to a bound,
    push it there along the direction `d` with `A d = 0` that changes only it and the
    other free variables (least-norm correction through `A_F A_F^T`), stop at the first
    free variable that reaches a bound (ratio test) and fix that one at its bound. `A x`
    is unchanged, and at an optimal face `c^T d = (c - A^T y)^T d` is zero to rounding;
    a pass whose cost change exceeds `sqrt(eps)` (relative) is not taken. Without it, a
    low-precision interior point can stop on the face but off its vertices, and which
    coordinates count as moved (`pcm`'s flip count) would depend on rounding.
    """
    dtype = c.dtype
    n = x.shape[0]
    scale = 1.0 + jnp.max(jnp.abs(c), initial=0.0) * (1.0 + jnp.max(jnp.abs(jnp.where(
        jnp.isfinite(x), x, 0.0)), initial=0.0))

    def one(carry, _):
        x, at_lo, at_hi, free = carry
        surplus = jnp.sum(free) > m
        d_lo = jnp.where(free, x - lo, jnp.inf)
        d_hi = jnp.where(free, hi - x, jnp.inf)
        dist = jnp.minimum(d_lo, d_hi)
        j = jnp.argmin(dist)
        sj = jnp.where(d_lo[j] <= d_hi[j], -1.0, 1.0).astype(dtype)
        ej = jax.nn.one_hot(j, n, dtype=dtype) * sj
        others = free & (jnp.arange(n) != j)
        fo = others.astype(dtype)
        MF = op.normal(fo)
        reg = jnp.sqrt(eps) * (1.0 + jnp.max(jnp.diag(MF), initial=0.0))
        L = jnp.linalg.cholesky(MF + reg * jnp.eye(m, dtype=dtype))
        r = op.matvec(ej)
        v = jax.scipy.linalg.cho_solve((L, True), r)
        for _ in range(3):
            v = v + jax.scipy.linalg.cho_solve((L, True), r - MF @ v)
        d = ej - fo * op.rmatvec(v)
        # ratio test over the free variables (j itself reaches its bound at t = dist[j])
        up = jnp.where(free & (d > 0), (hi - x) / jnp.where(d > 0, d, 1.0), jnp.inf)
        down = jnp.where(free & (d < 0), (x - lo) / jnp.where(d < 0, -d, 1.0), jnp.inf)
        ratio = jnp.minimum(up, down)
        i = jnp.argmin(ratio)
        t = jnp.maximum(ratio[i], 0.0)
        ok = (surplus & jnp.isfinite(t) & jnp.all(jnp.isfinite(d))
              & (jnp.abs(c @ d) * t <= jnp.sqrt(eps) * scale))
        xn = x + t * d
        hit_hi = d[i] > 0
        xn = xn.at[i].set(jnp.where(hit_hi, hi[i], lo[i]))
        at_lo_n = at_lo.at[i].set(~hit_hi)
        at_hi_n = at_hi.at[i].set(hit_hi)
        free_n = free.at[i].set(False)

        def pick(a, b_):
            return jnp.where(ok, a, b_)

        return (pick(xn, x), pick(at_lo_n, at_lo), pick(at_hi_n, at_hi),
                pick(free_n, free)), None

    steps = min(PURIFY_STEPS, max(n - m, 0))
    if steps == 0:
        return x, at_lo, at_hi, free
    (x, at_lo, at_hi, free), _ = lax.scan(one, (x, at_lo, at_hi, free), None, length=steps)
    return x, at_lo, at_hi, free
