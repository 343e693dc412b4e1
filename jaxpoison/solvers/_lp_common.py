"""Pieces shared by the LP solvers: bound masks, residuals, and infeasibility certificates.

The LP is

$$
\\min_x c^T x \\quad\\text{s.t.}\\quad A x = b,\\; l \\le x \\le u,
$$

with `l` and `u` possibly infinite, and a variable is *fixed* when `l == u`.
Its dual, with bound multipliers `z_l, z_u >= 0`, is

$$
\\max_{y, z_l, z_u} b^T y + l^T z_l - u^T z_u
\\quad\\text{s.t.}\\quad A^T y + z_l - z_u = c,
$$

where `z_l` (`z_u`) is zero on coordinates with infinite lower (upper) bound.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

__all__ = ["Bounds", "make_bounds", "kkt_measures", "kkt_measures_from_products",
           "interior_step", "abs_max", "primal_infeasibility_certificate",
           "dual_infeasibility_certificate", "ray_certificate", "LPRaw"]


class LPRaw(NamedTuple):
    """What a core solver returns (before the public wrapper builds an `LPResult`)."""

    x: jax.Array
    y: jax.Array
    z_lower: jax.Array
    z_upper: jax.Array
    status: jax.Array
    iterations: jax.Array
    primal_residual: jax.Array
    dual_residual: jax.Array
    gap: jax.Array


class Bounds(NamedTuple):
    lo: jax.Array        # l with infinities replaced by 0
    hi: jax.Array        # u with infinities replaced by 0
    has_lo: jax.Array    # finite lower bound on a non-fixed variable
    has_hi: jax.Array    # finite upper bound on a non-fixed variable
    fixed: jax.Array     # l == u


def make_bounds(lower, upper) -> Bounds:
    fl, fu = jnp.isfinite(lower), jnp.isfinite(upper)
    lo = jnp.where(fl, lower, 0.0)
    hi = jnp.where(fu, upper, 0.0)
    scale = 1.0 + jnp.maximum(jnp.abs(lo), jnp.abs(hi))
    fixed = fl & fu & (hi - lo <= 10 * jnp.finfo(lo.dtype).eps * scale)
    return Bounds(lo, hi, fl & ~fixed, fu & ~fixed, fixed)


def _inf(x):
    return jnp.max(jnp.abs(x), initial=0.0)


def kkt_measures(op, c, b, bd: Bounds, x, y, zl, zu):
    """Relative primal residual, dual residual and gap (infinity norms), and both objectives.

    The reduced cost on fixed variables is free, so it is excluded from the dual residual and
    its contribution `l_i (c - A^T y)_i` enters the dual objective.
    """
    return kkt_measures_from_products(c, b, bd, x, y, zl, zu, op.matvec(x), op.rmatvec(y))


def kkt_measures_from_products(c, b, bd: Bounds, x, y, zl, zu, ax, aty):
    """`kkt_measures` from precomputed `A x` and `A^T y` (no pass over `A`)."""
    rp = b - ax
    rd = jnp.where(bd.fixed, 0.0, c - aty - zl + zu)
    pobj = c @ x
    red_fixed = jnp.where(bd.fixed, c - aty, 0.0)
    dobj = (b @ y + jnp.sum(jnp.where(bd.has_lo, bd.lo * zl, 0.0))
            - jnp.sum(jnp.where(bd.has_hi, bd.hi * zu, 0.0)) + bd.lo @ red_fixed)
    pres = _inf(rp) / (1.0 + _inf(b))
    dres = _inf(rd) / (1.0 + _inf(c))
    gap = jnp.abs(pobj - dobj) / (1.0 + jnp.abs(pobj) + jnp.abs(dobj))
    return pres, dres, gap, pobj, dobj


def interior_step(x, sl, su, y, zl, zu, dx, dy, dzl, dzu, ap, ad, hl, hu, floor):
    """One primal-dual interior-point update with step lengths `ap`, `ad`: slacks and bound
    multipliers floored at `floor` (float32 safety), and the whole step rejected (the old
    iterate kept) when any new value is NaN/inf. Returns the new iterate and `finite`."""
    xn = x + ap * dx
    sln = jnp.where(hl, jnp.maximum(sl + ap * dx, floor), 1.0)
    sun = jnp.where(hu, jnp.maximum(su - ap * dx, floor), 1.0)
    yn = y + ad * dy
    zln = jnp.where(hl, jnp.maximum(zl + ad * dzl, floor), 0.0)
    zun = jnp.where(hu, jnp.maximum(zu + ad * dzu, floor), 0.0)
    finite = (jnp.all(jnp.isfinite(xn)) & jnp.all(jnp.isfinite(yn))
              & jnp.all(jnp.isfinite(zln)) & jnp.all(jnp.isfinite(zun))
              & jnp.all(jnp.isfinite(sln)) & jnp.all(jnp.isfinite(sun)))

    def keep(new, old):
        return jnp.where(finite, new, old)

    return (keep(xn, x), keep(sln, sl), keep(sun, su), keep(yn, y), keep(zln, zl),
            keep(zun, zu), finite)


def abs_max(op):
    """`max_ij |A_ij|` of the (scaled) operator: one pass over A. Loop-invariant: the
    solvers compute it once before their loop and hand it to the certificates (`a_max`),
    instead of a pass every iteration."""
    return _inf(op.row_abs_max())


def primal_infeasibility_certificate(op, b, bd: Bounds, y, tol, a_max):
    """True when the direction of `y` proves `{Ax = b, l <= x <= u}` empty (`a_max`:
    `abs_max(op)`).

    Farkas: the set is empty iff some `y` has `b^T y > max_{l<=x<=u} y^T A x`. With
    `g = A^T y`, the maximum is `sum_i max(l_i g_i, u_i g_i)`, which is `+inf` when
    `g_i` points towards an infinite bound; such components must vanish (to `tol`).
    """
    nrm = jnp.sqrt(y @ y)
    yh = y / jnp.maximum(nrm, jnp.finfo(y.dtype).tiny)
    g = op.rmatvec(yh)
    up = jnp.where(bd.fixed | bd.has_hi, bd.hi * g, 0.0)
    dn = jnp.where(bd.fixed | bd.has_lo, bd.lo * g, 0.0)
    bad_up = (g > 0) & ~(bd.fixed | bd.has_hi)
    bad_dn = (g < 0) & ~(bd.fixed | bd.has_lo)
    term = jnp.where(g > 0, up, dn)
    viol = jnp.max(jnp.where(bad_up | bad_dn, jnp.abs(g), 0.0), initial=0.0)
    h = b @ yh - jnp.sum(term)
    scale = jnp.abs(b @ yh) + jnp.sum(jnp.abs(term))
    gscale = 1.0 + jnp.maximum(a_max, 0.0)
    return (nrm > 0) & (h > tol * (1.0 + scale)) & (viol <= tol * gscale)


def dual_infeasibility_certificate(op, c, bd: Bounds, x, sl, su, tol, a_max):
    """True when the direction of `x` is (to `tol`) a ray `d` with `A d = 0`,
    `c^T d < 0` in the recession cone of the box: the LP is unbounded if feasible
    (`a_max`: `abs_max(op)`)."""
    free = ~(bd.has_lo | bd.has_hi | bd.fixed)
    only_lo = bd.has_lo & ~bd.has_hi
    only_hi = bd.has_hi & ~bd.has_lo
    d = jnp.where(free, x, 0.0) + jnp.where(only_lo, sl, 0.0) - jnp.where(only_hi, su, 0.0)
    nrm = jnp.sqrt(d @ d)
    dh = d / jnp.maximum(nrm, jnp.finfo(x.dtype).tiny)
    ad = _inf(op.matvec(dh))
    cd = c @ dh
    big = nrm > 1e6 * (1.0 + _inf(jnp.where(free | only_lo | only_hi, 0.0, x)))
    return big & (cd < -tol * (1.0 + _inf(c))) & (ad <= tol * (1.0 + a_max))


def ray_certificate(op, c, bd: Bounds, d, tol, a_max):
    """True when `d` (e.g. a difference of PDHG iterates) is, to `tol`, a recession ray of
    the box with `A d = 0` and `c^T d < 0` (`a_max`: `abs_max(op)`)."""
    free = ~(bd.has_lo | bd.has_hi | bd.fixed)
    only_lo = bd.has_lo & ~bd.has_hi
    only_hi = bd.has_hi & ~bd.has_lo
    proj = (jnp.where(free, d, 0.0) + jnp.where(only_lo, jnp.maximum(d, 0.0), 0.0)
            + jnp.where(only_hi, jnp.minimum(d, 0.0), 0.0))
    nrm = jnp.sqrt(proj @ proj)
    off = jnp.sqrt(jnp.sum((d - proj) ** 2))
    dh = proj / jnp.maximum(nrm, jnp.finfo(d.dtype).tiny)
    ad = _inf(op.matvec(dh))
    cd = c @ dh
    return ((nrm > 0) & (off <= tol * nrm) & (cd < -tol * (1.0 + _inf(c)))
            & (ad <= tol * (1.0 + a_max)))
