r"""Bounded-variable linear programming: `linprog` and its result `LPResult`.

$$
\min_x c^T x \quad\text{s.t.}\quad A_{eq} x = b_{eq},\; l \le x \le u
$$

Two methods share one result type and one derivative rule:

* `"ipm"` -- Mehrotra predictor--corrector interior point (`.lp_ipm`), m x m normal
  equations by Cholesky; the accurate default (float64 to ~1e-9 relative).
* `"pdhg"` -- restarted primal--dual hybrid gradient in the PDLP manner (`.lp_pdhg`),
  matrix-free; for large or accelerator runs at moderate accuracy.

**Derivatives** are defined from the KKT conditions, not by differentiating the iterations.
The optimal value `f` has the envelope (dual) derivative

$$
df = x^{*T} dc + y^{*T} db - y^{*T} dA\, x^* + z_l^{*T} dl - z_u^{*T} du,
$$

exact wherever the primal and dual solutions are unique. The solution derivative comes from
the active set at the solution: variables at a bound (`x_i - l_i < z_{l,i}` or
`u_i - x_i < z_{u,i}`) move with their bound, the free set `F` solves
`A_F dx_F = db - dA\,x^* - A_N dx_N` and the duals `A_F^T dy = dc_F - dA_F^T y^*`. Both
are solved through `A_F A_F^T` (m x m), which gives the unique answer at a *nondegenerate
vertex* (`|F| = m`, `A_F` invertible, strict complementarity) -- the only place where
`x^*(c, b, A)` is differentiable -- and a minimum-norm selection elsewhere.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from jaxpoison import _validate as V
from jaxpoison._result import Result, raise_if_failed
from jaxpoison.solvers._lp_common import LPRaw, make_bounds
from jaxpoison.solvers._lp_ops import DenseOperator
from jaxpoison.solvers.lp_ipm import ipm_solve
from jaxpoison.solvers.lp_pdhg import pdhg_solve
from jaxpoison.solvers.lp_wide import WIDE_METHODS, is_wide, wide_options, wide_solve

__all__ = ["linprog", "LPResult", "solve_lp_operator", "default_tol"]

_METHODS = ("auto", "ipm", "pdhg") + WIDE_METHODS


class LPResult(Result):
    """Solution of a bounded-variable LP (fields batch along leading axes under `vmap`).

    Attributes:
        x: primal solution.
        objective: `c^T x`.
        y: equality multipliers (`scipy.optimize.linprog(...).eqlin.marginals`: the
            derivative of the optimal value with respect to `b_eq`).
        z_lower, z_upper: bound multipliers `>= 0` (derivative of the value with respect to
            `lower` and `-upper`; HiGHS's `lower.marginals` and `-upper.marginals`).
        reduced_costs: `c - A^T y = z_lower - z_upper`.
        status, iterations: see `jaxpoison.Status`.
        primal_residual: `||A x - b||_inf / (1 + ||b||_inf)`.
        dual_residual: `||c - A^T y - z_l + z_u||_inf / (1 + ||c||_inf)`.
        gap: `|c^T x - dual objective| / (1 + |c^T x| + |dual objective|)`.
    """

    x: jax.Array
    objective: jax.Array
    y: jax.Array
    z_lower: jax.Array
    z_upper: jax.Array
    primal_residual: jax.Array
    dual_residual: jax.Array
    gap: jax.Array

    @property
    def reduced_costs(self) -> jax.Array:
        return self.z_lower - self.z_upper


def default_tol(dtype, method: str) -> float:
    if jnp.dtype(dtype) == jnp.float64:
        return 1e-9 if method != "pdhg" else 1e-7
    return 1e-5 if method != "pdhg" else 1e-4


def _default_max_iter(method: str) -> int:
    return 50_000 if method == "pdhg" else 100


def solve_lp_operator(op, c, b, lower, upper, *, method: str, tol: float,
                      max_iter: int) -> LPRaw:
    """Run a core LP method on an operator (no validation, no derivative rule)."""
    if method in WIDE_METHODS:
        return wide_solve(op, c, b, lower, upper, tol=tol, max_iter=max_iter,
                          options=wide_options(method))
    if method == "ipm":
        return ipm_solve(op, c, b, lower, upper, tol=tol, max_iter=max_iter)
    return pdhg_solve(op, c, b, lower, upper, tol=tol, max_iter=max_iter)


@functools.partial(jax.custom_jvp, nondiff_argnums=(0, 1, 2))
def _solve(method, tol, max_iter, c, A, b, lower, upper):
    raw = solve_lp_operator(DenseOperator(A), c, b, lower, upper, method=method, tol=tol,
                            max_iter=max_iter)
    return raw, raw.x @ c


def _active_sets(raw: LPRaw, lower, upper):
    bd = make_bounds(lower, upper)
    at_lo = bd.has_lo & ((raw.x - bd.lo) < raw.z_lower)
    at_hi = bd.has_hi & ((bd.hi - raw.x) < raw.z_upper) & ~at_lo
    free = ~(at_lo | at_hi | bd.fixed)
    return bd, at_lo, at_hi, free


@_solve.defjvp
def _solve_jvp(method, tol, max_iter, primals, tangents):
    c, A, b, lower, upper = primals
    dc, dA, db, dl, du = tangents
    raw, obj = _solve(method, tol, max_iter, c, A, b, lower, upper)
    x, y = raw.x, raw.y
    bd, at_lo, at_hi, free = _active_sets(raw, lower, upper)
    dl = jnp.where(jnp.isfinite(lower), dl, 0.0)
    du = jnp.where(jnp.isfinite(upper), du, 0.0)
    # envelope derivative of the optimal value
    dobj = (dc @ x + db @ y - y @ (dA @ x) + jnp.sum(jnp.where(bd.has_lo | bd.fixed,
                                                               raw.z_lower * dl, 0.0))
            - jnp.sum(jnp.where(bd.has_hi | bd.fixed, raw.z_upper * du, 0.0)))
    # solution derivative on the active set
    m = A.shape[0]
    f = free.astype(A.dtype)
    dx_n = jnp.where(at_lo, dl, 0.0) + jnp.where(at_hi, du, 0.0) + jnp.where(
        bd.fixed, 0.5 * (dl + du), 0.0)
    MF = (A * f) @ A.T
    reg = jnp.finfo(A.dtype).eps * (1.0 + jnp.max(jnp.diag(MF), initial=0.0))
    MF = MF + reg * jnp.eye(m, dtype=A.dtype)
    r = db - dA @ x - A @ dx_n
    dx = f * (jnp.linalg.solve(MF, r) @ A) + dx_n
    g = f * (dc - y @ dA)
    dy = jnp.linalg.solve(MF, A @ g)
    dred = dc - y @ dA - dy @ A
    red = c - y @ A
    nf = ~free
    dzl = jnp.where(nf & (at_lo | (bd.fixed & (red > 0))), dred, 0.0)
    dzu = jnp.where(nf & (at_hi | (bd.fixed & (red < 0))), -dred, 0.0)

    def zero(a):
        if jnp.issubdtype(a.dtype, jnp.integer):
            return np.zeros(a.shape, dtype=jax.dtypes.float0)
        return jnp.zeros_like(a)

    draw = LPRaw(dx, dy, dzl, dzu, zero(raw.status), zero(raw.iterations),
                 zero(raw.primal_residual), zero(raw.dual_residual), zero(raw.gap))
    return (raw, obj), (draw, dobj)


def _as_bound(v, name, n, default, dtype):
    if v is None:
        return jnp.full((n,), default, dtype)
    arr = V.as_float_array(v, name, ndim=(0, 1), dtype=dtype, finite=False)
    if arr.ndim == 1:
        V.check_shape(arr, name, (n,))
    if V.is_concrete(arr) and np.any(np.isnan(np.asarray(arr))):
        raise ValueError(f"{name} must not contain NaN")
    return jnp.broadcast_to(arr, (n,))


def linprog(
    c: Float[Array, " n"],
    A_eq: Float[Array, "m n"],
    b_eq: Float[Array, " m"],
    lower: Float[Array, " n"] | float | None = 0.0,
    upper: Float[Array, " n"] | float | None = None,
    *,
    method: str = "auto",
    tol: float | None = None,
    max_iter: int | None = None,
    throw: bool = True,
) -> LPResult:
    r"""Solve $\min_x c^T x$ s.t. $A_{eq} x = b_{eq}$, $l \le x \le u$.

    Equivalent to `scipy.optimize.linprog(c, A_eq=A_eq, b_eq=b_eq, bounds=..., method="highs")`
    (which the tests compare against), but a pure JAX function: `jit`-compiled, `vmap`-able
    over `c`, `b_eq` or whole problems, and differentiable with respect to `c`, `A_eq`,
    `b_eq`, `lower` and `upper` through the KKT conditions (see the module docstring).

    Args:
        c: cost vector (n,).
        A_eq: equality constraint matrix (m, n); should have full row rank (a small dual
            regularisation handles mild rank deficiency).
        b_eq: right-hand side (m,).
        lower, upper: bounds, scalars or (n,) arrays; `-inf`/`inf` allowed; `None` means
            `0` for `lower` (scipy's default) and `+inf` for `upper`; `lower == upper`
            fixes a variable.
        method: `"auto"` (default: `"wide"` when `A_eq` is wide, see
            `jaxpoison.solvers.lp_wide.is_wide`, else `"ipm"`), `"ipm"` (dense interior
            point), `"pdhg"` (restarted PDHG), `"wide"` (interior point with preconditioned
            CG and verified crossover, mixed float32/float64) or `"wide-f64"` (the same in
            float64 throughout); see `jaxpoison.solvers.lp_wide`.
        tol: relative tolerance on primal/dual residuals and gap (default 1e-9 for ipm/wide,
            1e-7 for pdhg in float64; 1e-5 / 1e-4 in float32).
        max_iter: iteration limit (default 100 for ipm/wide, 50,000 for pdhg).
        throw: raise `jaxpoison.SolverError` when the status is not `SUCCESS`
            (skipped when called under a JAX transformation).

    Returns:
        `LPResult`. Infeasible and unbounded problems give `Status.INFEASIBLE` and
        `Status.UNBOUNDED`.
    """
    V.check_choice(method, "method", _METHODS)
    c = V.as_float_array(c, "c", ndim=1)
    dtype = c.dtype
    A_eq = V.as_float_array(A_eq, "A_eq", ndim=2, dtype=dtype)
    b_eq = V.as_float_array(b_eq, "b_eq", ndim=1, dtype=dtype)
    m, n = A_eq.shape
    if method == "auto":
        method = "wide" if is_wide(m, n) else "ipm"
    V.check_shape(c, "c", (n,))
    V.check_shape(b_eq, "b_eq", (m,))
    if m == 0:
        raise ValueError("A_eq must have at least one row")
    lower = _as_bound(lower, "lower", n, 0.0, dtype)
    upper = _as_bound(upper, "upper", n, jnp.inf, dtype)
    if V.is_concrete(lower) and V.is_concrete(upper):
        lo, hi = np.asarray(lower), np.asarray(upper)
        if np.any(lo == np.inf):
            raise ValueError("lower must not be +inf")
        if np.any(hi == -np.inf):
            raise ValueError("upper must not be -inf")
        if np.any(lo > hi):
            raise ValueError(f"lower must be <= upper; violated at {int(np.sum(lo > hi))} "
                             "coordinate(s)")
    if tol is None:
        tol = default_tol(dtype, method)
    if not (isinstance(tol, (int, float)) and tol > 0):
        raise ValueError(f"tol must be a positive number; got {tol!r}")
    if max_iter is None:
        max_iter = _default_max_iter(method)
    max_iter = V.check_int(max_iter, "max_iter", low=1)
    result = _linprog_jit(c, A_eq, b_eq, lower, upper, method=method, tol=float(tol),
                          max_iter=max_iter)
    return raise_if_failed(result, f"linprog(method={method!r})", throw=throw)


@functools.partial(jax.jit, static_argnames=("method", "tol", "max_iter"))
def _linprog_jit(c, A, b, lower, upper, *, method, tol, max_iter) -> LPResult:
    raw, obj = _solve(method, tol, max_iter, c, A, b, lower, upper)
    return LPResult(status=raw.status, iterations=raw.iterations, x=raw.x, objective=obj,
                    y=raw.y, z_lower=raw.z_lower, z_upper=raw.z_upper,
                    primal_residual=raw.primal_residual, dual_residual=raw.dual_residual,
                    gap=raw.gap)

