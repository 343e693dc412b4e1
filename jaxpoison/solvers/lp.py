r"""Bounded-variable linear programming: `linprog` and its result `LPResult`.

$$
\min_x c^T x \quad\text{s.t.}\quad A_{eq} x = b_{eq},\; l \le x \le u
$$

The methods share one result type and one derivative rule; each is a small options
object (an `equinox.Module`: `tol` is a traced leaf, `max_iter` static), so its defaults
live in one place:

* `IPM(tol, max_iter)` (`method="ipm"`) -- Mehrotra predictor--corrector interior point,
  m x m normal equations by Cholesky, a final crossover to the identified vertex; the
  accurate default (float64 to ~1e-9 relative, 1e-5 in float32).
* `PDHG(tol, max_iter)` (`method="pdhg"`) -- restarted primal--dual hybrid gradient in the
  PDLP manner, matrix-free; for large or accelerator runs at moderate accuracy.

`LP_METHODS` maps each `method` string to its options class. Before any method runs, the
rows of `A` (and `b`) are scaled to unit max-norm and `c` to unit max-norm; the solution,
multipliers and residuals are reported for the problem as given.

`A_eq` may be a dense array or a structured operator: `PairOperator(Φ)` is `[Φ, -Φ]`
without forming it (the PCM LP), with normal matrix `Φ(D_1 + D_2)Φ^T` in `m^2 N` flops.

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
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from jaxpoison import _validate as V
from jaxpoison._result import Result, is_concrete, raise_if_failed
from jaxpoison.solvers._lp_common import LPRaw, make_bounds
from jaxpoison.solvers._lp_ops import DenseOperator, PairOperator
from jaxpoison.solvers.lp_ipm import ipm_solve
from jaxpoison.solvers.lp_pdhg import pdhg_solve
from jaxpoison.solvers.lp_wide import Wide, WideF64, crossover_raw, is_wide

__all__ = ["linprog", "crossover", "LPResult", "IPM", "PDHG", "Wide", "auto_method", "LP_METHODS",
           "DenseOperator", "PairOperator"]


class LPResult(Result):
    r"""Solution of a bounded-variable LP (fields batch along leading axes under `vmap`).

    Attributes:
        x: primal solution.
        objective: $c^T x$.
        y: equality multipliers (`scipy.optimize.linprog(...).eqlin.marginals`: the
            derivative of the optimal value with respect to `b_eq`).
        z_lower: multipliers $\ge 0$ of the lower bounds (derivative of the value with
            respect to `lower`; HiGHS's `lower.marginals`).
        z_upper: multipliers $\ge 0$ of the upper bounds (derivative of the value with
            respect to `-upper`; HiGHS's `-upper.marginals`).
        status: a `jaxpoison.Status` code.
        iterations: iterations of the method.
        primal_residual: $\|A x - b\|_\infty / (1 + \|b\|_\infty)$ (rows of `A`, `b`
            scaled to unit max-norm).
        dual_residual: $\|c - A^T y - z_l + z_u\|_\infty / (1 + \|c\|_\infty)$ (`c`
            scaled to unit max-norm).
        gap: $|c^T x - \text{dual objective}| / (1 + |c^T x| + |\text{dual objective}|)$.
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
        """$c - A^T y = z_l - z_u$."""
        return self.z_lower - self.z_upper


def _check_tol(tol, dtype) -> None:
    if not is_concrete(tol):
        return
    if isinstance(tol, bool) or not isinstance(tol, (int, float, np.floating, np.ndarray,
                                                     jax.Array)):
        raise TypeError(f"tol must be a positive number; got {type(tol).__name__} {tol!r}")
    t = float(np.asarray(tol))
    floor = 10 * float(jnp.finfo(dtype).eps)
    if not np.isfinite(t) or t <= 0:
        raise ValueError(f"tol must be a positive number; got {t!r}")
    if t < floor:
        raise ValueError(f"tol must be at least 10 * eps of the working precision "
                         f"({jnp.dtype(dtype).name}: {floor:.3g}) to be reachable; got {t!r}")


class IPM(eqx.Module):
    """Options of the interior-point method (`method="ipm"`).

    Attributes:
        tol: relative tolerance on the primal and dual residuals and the gap; `None` means
            `1e-9` in float64 and `1e-5` in float32. Traced: changing it does not recompile.
        max_iter: iteration limit (static).
    """

    tol: float | jax.Array | None = None
    max_iter: int = eqx.field(static=True, default=100)
    name: ClassVar[str] = "ipm"

    def default_tol(self, dtype) -> float:
        return 1e-9 if jnp.dtype(dtype) == jnp.float64 else 1e-5

    def solve(self, op, c, b, lower, upper) -> LPRaw:
        return ipm_solve(op, c, b, lower, upper, tol=self.tol, max_iter=self.max_iter)


class PDHG(eqx.Module):
    """Options of restarted PDHG (`method="pdhg"`).

    Attributes:
        tol: relative KKT tolerance; `None` means `1e-7` in float64 and `1e-4` in float32.
            Traced.
        max_iter: iteration limit (static).
    """

    tol: float | jax.Array | None = None
    max_iter: int = eqx.field(static=True, default=50_000)
    name: ClassVar[str] = "pdhg"

    def default_tol(self, dtype) -> float:
        return 1e-7 if jnp.dtype(dtype) == jnp.float64 else 1e-4

    def solve(self, op, c, b, lower, upper) -> LPRaw:
        return pdhg_solve(op, c, b, lower, upper, tol=self.tol, max_iter=self.max_iter)


LP_METHODS: dict[str, type] = {"ipm": IPM, "pdhg": PDHG, "wide": Wide, "wide-f64": WideF64}
"""`method` string -> options class (an `equinox.Module` with `tol`, `max_iter`,
`default_tol(dtype)` and `solve(op, c, b, lower, upper)`)."""


def auto_method(method, m: int, n: int):
    """`method`, with `"auto"` replaced by `"wide"` for a wide (m, n) constraint matrix
    (`jaxpoison.solvers.lp_wide.is_wide`) and `"ipm"` otherwise."""
    if isinstance(method, str) and method == "auto":
        return "wide" if is_wide(m, n) else "ipm"
    return method


def resolve_method(method, tol, max_iter, dtype):
    """The options object for `method` (a name in `LP_METHODS` or an options object) with
    `tol` filled in for `dtype` and checked. Used by `linprog` and `jaxpoison.attacks.pcm`.
    """
    if isinstance(method, str):
        V.check_choice(method, "method", ("auto",) + tuple(LP_METHODS))
        if method == "auto":
            raise ValueError("method='auto' needs the problem's shape; resolve it with "
                             "auto_method(m, n) first")
        cls = LP_METHODS[method]
        kw = {} if max_iter is None else {"max_iter": V.check_int(max_iter, "max_iter", low=1)}
        cfg = cls(tol=tol, **kw)
    elif isinstance(method, tuple(LP_METHODS.values())):
        if tol is not None or max_iter is not None:
            raise ValueError("give tol and max_iter inside the method object "
                             f"({type(method).__name__}(tol=..., max_iter=...)), not beside it")
        cfg = method
        V.check_int(cfg.max_iter, "max_iter", low=1)
    else:
        raise TypeError(f"method must be one of {list(LP_METHODS)} or one of their options "
                        f"objects; got {type(method).__name__} {method!r}")
    t = cfg.default_tol(dtype) if cfg.tol is None else cfg.tol
    _check_tol(t, dtype)
    return eqx.tree_at(lambda m: m.tol, cfg, jnp.asarray(t, dtype),
                       is_leaf=lambda v: v is None)


def _scaled_solve(cfg, op, c, b, lower, upper) -> LPRaw:
    """Row-equilibrate `A`, normalise `c`, solve, and map the answer back. The row scaling
    is lazy (`op.scale` stores the vector; no scaled copy of `A` is made)."""
    rn = op.row_abs_max()
    rs = jnp.where(rn > 0, 1.0 / jnp.where(rn > 0, rn, 1.0), 1.0)
    cmax = jnp.max(jnp.abs(c), initial=0.0)
    gam = jnp.where(cmax > 0, cmax, 1.0)
    raw = cfg.solve(op.scale(rs), c / gam, b * rs, lower, upper)
    return raw._replace(y=raw.y * rs * gam, z_lower=raw.z_lower * gam,
                        z_upper=raw.z_upper * gam)


@functools.partial(jax.custom_jvp, nondiff_argnums=(0,))
def _solve(cfg, tol, c, A, b, lower, upper):
    raw = _scaled_solve(eqx.tree_at(lambda m: m.tol, cfg, tol, is_leaf=lambda v: v is None),
                        A, c, b, lower, upper)
    return raw, raw.x @ c


def _active_sets(raw: LPRaw, lower, upper):
    bd = make_bounds(lower, upper)
    at_lo = bd.has_lo & ((raw.x - bd.lo) < raw.z_lower)
    at_hi = bd.has_hi & ((bd.hi - raw.x) < raw.z_upper) & ~at_lo
    free = ~(at_lo | at_hi | bd.fixed)
    return bd, at_lo, at_hi, free


@_solve.defjvp
def _solve_jvp(cfg, primals, tangents):
    tol, c, A, b, lower, upper = primals
    _, dc, dA, db, dl, du = tangents
    raw, obj = _solve(cfg, tol, c, A, b, lower, upper)
    x, y = raw.x, raw.y
    bd, at_lo, at_hi, free = _active_sets(raw, lower, upper)
    dl = jnp.where(jnp.isfinite(lower), dl, 0.0)
    du = jnp.where(jnp.isfinite(upper), du, 0.0)
    dAx = dA.matvec(x)
    ydA = dA.rmatvec(y)
    # envelope derivative of the optimal value
    dobj = (dc @ x + db @ y - y @ dAx + jnp.sum(jnp.where(bd.has_lo | bd.fixed,
                                                          raw.z_lower * dl, 0.0))
            - jnp.sum(jnp.where(bd.has_hi | bd.fixed, raw.z_upper * du, 0.0)))
    # solution derivative on the active set
    m = b.shape[0]
    dtype = c.dtype
    f = free.astype(dtype)
    dx_n = jnp.where(at_lo, dl, 0.0) + jnp.where(at_hi, du, 0.0) + jnp.where(
        bd.fixed, 0.5 * (dl + du), 0.0)
    MF = A.normal(f)
    reg = jnp.finfo(dtype).eps * (1.0 + jnp.max(jnp.diag(MF), initial=0.0))
    MF = MF + reg * jnp.eye(m, dtype=dtype)
    r = db - dAx - A.matvec(dx_n)
    dx = f * A.rmatvec(jnp.linalg.solve(MF, r)) + dx_n
    g = f * (dc - ydA)
    dy = jnp.linalg.solve(MF, A.matvec(g))
    dred = dc - ydA - A.rmatvec(dy)
    red = c - A.rmatvec(y)
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


def _as_operator(A_eq, dtype):
    if isinstance(A_eq, (DenseOperator, PairOperator)):
        leaf = A_eq.A if isinstance(A_eq, DenseOperator) else A_eq.Phi
        arr = V.as_float_array(leaf, "A_eq", ndim=2, dtype=dtype)
        return type(A_eq)(arr)
    return DenseOperator(V.as_float_array(A_eq, "A_eq", ndim=2, dtype=dtype))


def linprog(
    c: Float[Array, " n"],
    A_eq: Float[Array, "m n"] | DenseOperator | PairOperator,
    b_eq: Float[Array, " m"],
    lower: Float[Array, " n"] | float | None = 0.0,
    upper: Float[Array, " n"] | float | None = None,
    *,
    method: str | IPM | PDHG | Wide = "auto",
    tol: float | None = None,
    max_iter: int | None = None,
    throw: bool = True,
) -> LPResult:
    r"""Solve $\min_x c^T x$ s.t. $A_{eq} x = b_{eq}$, $l \le x \le u$.

    Equivalent to `scipy.optimize.linprog(c, A_eq=A_eq, b_eq=b_eq, bounds=..., method="highs")`
    (which the tests compare against), but a pure JAX function: `jit`-compiled, `vmap`-able
    over `c`, `b_eq` or whole problems, and differentiable with respect to `c`, `A_eq`
    (also through a `PairOperator`'s `Phi`), `b_eq`, `lower` and `upper` through the KKT
    conditions (see the module docstring).

    Args:
        c: cost vector (n,).
        A_eq: equality constraint matrix (m, n), or a `DenseOperator` / `PairOperator`.
            Rank-deficient `A_eq` (redundant rows) is handled by a small dual regularisation.
        b_eq: right-hand side (m,).
        lower: lower bounds, a scalar or (n,) array; `-inf` allowed; `None` means `0`
            (scipy's default).
        upper: upper bounds, a scalar or (n,) array; `inf` allowed; `None` means `+inf`;
            `lower == upper` fixes a variable.
        method: `"auto"` (default: `"wide"` when `A_eq` is wide -- at least 20,000 columns
            and at most one row per 20 columns -- else `"ipm"`), `"ipm"`, `"pdhg"`,
            `"wide"`/`"wide-f64"` (`jaxpoison.solvers.lp_wide`), or an options object
            `IPM(...)`/`PDHG(...)`/`Wide(...)`.
        tol: relative tolerance on primal/dual residuals and gap (default: the method's,
            see `IPM`, `PDHG`); at least `10 * eps` of the working precision. Traced.
        max_iter: iteration limit (default: the method's).
        throw: raise when the status is not `SUCCESS` (`jaxpoison.SolverError` on the host,
            an `equinox` runtime error under the caller's `jit`/`vmap`).

    Returns:
        `LPResult`. Infeasible and unbounded problems give `Status.INFEASIBLE` and
        `Status.UNBOUNDED`.
    """
    c, op, b_eq, lower, upper = _check_problem(c, A_eq, b_eq, lower, upper)
    m, n = op.shape
    cfg = resolve_method(auto_method(method, m, n), tol, max_iter, c.dtype)
    result = solve_lp(cfg, c, op, b_eq, lower, upper)
    return raise_if_failed(result, f"linprog(method={cfg.name!r})", throw=throw)


def _check_problem(c, A_eq, b_eq, lower, upper):
    """`linprog`'s boundary checks of the LP data: arrays of `c`'s float dtype, consistent
    shapes, bounds broadcast to (n,) with no NaN, no `lower = +inf`, `upper = -inf` or
    `lower > upper`."""
    c = V.as_float_array(c, "c", ndim=1)
    dtype = c.dtype
    op = _as_operator(A_eq, dtype)
    b_eq = V.as_float_array(b_eq, "b_eq", ndim=1, dtype=dtype)
    m, n = op.shape
    if n == 0:
        raise ValueError("c and A_eq must have at least one variable (column); got 0")
    if m == 0:
        raise ValueError(f"A_eq must have at least one row; got shape {op.shape}")
    V.check_shape(c, "c", (n,))
    V.check_shape(b_eq, "b_eq", (m,))
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
    return c, op, b_eq, lower, upper


def crossover(
    c: Float[Array, " n"],
    A_eq: Float[Array, "m n"] | DenseOperator | PairOperator,
    b_eq: Float[Array, " m"],
    lower: Float[Array, " n"] | float | None,
    upper: Float[Array, " n"] | float | None,
    x: Float[Array, " n"],
    y: Float[Array, " m"],
    z_lower: Float[Array, " n"],
    z_upper: Float[Array, " n"],
    *,
    tol: float | None = None,
    pivots: int = 8,
    throw: bool = True,
) -> LPResult:
    r"""From a near-optimal primal-dual point of $\min_x c^Tx$ s.t. $A_{eq}x = b_{eq}$,
    $l \le x \le u$ to a verified vertex: the crossover of the wide solver
    (`jaxpoison.solvers.lp_wide`, step 3), for a point from any solver (e.g. PDHG).

    Variables are split by the complementarity rule ($x_i$ at a bound when its distance to
    it is below its multiplier), the $m$ highest-ranked ones solve $A_B x_B = b - A_N x_N$
    exactly, the multipliers solve $A_F^T y = c_F$ on the free ones, and the result is
    verified (relative primal residual, dual residual and gap $\le$ `tol`). While it fails,
    up to `pivots` simplex pivots follow, each verified alike: a dual pivot when the exact
    solve put a basic variable outside its box (it leaves at the violated bound; the dual
    ratio test $\min_j |c_j - a_j^Ty| / |\alpha_j|$ over the row $\alpha = e_k^TB^{-1}A$
    picks the entering variable), else a primal pivot (the variable at a bound whose
    reduced cost $c_j - a_j^Ty$ has the largest wrong-sign value enters; the ratio test
    picks the leaving one, or the entering one flips to its other bound).

    Args:
        c, A_eq, b_eq, lower, upper: the LP, as in `linprog` (`None` bounds: $0$ and
            $+\infty$).
        x, y, z_lower, z_upper: the point, its equality multipliers and its bound
            multipliers ($\ge 0$), as `linprog` returns them.
        tol: relative tolerance of the verification (default: the wide solver's, 1e-9 in
            float64, 1e-5 in float32); at least `10 * eps`.
        pivots: simplex pivots after a failed first attempt ($\ge 0$).
        throw: raise when the point does not pass (`jaxpoison.SolverError` on the host, an
            `equinox` runtime error under the caller's `jit`/`vmap`).

    Returns:
        `LPResult`: `status` `SUCCESS` when verified, else `MAX_ITERATIONS` (the pivots ran
        out; the last attempt is returned); `iterations` counts the pivots taken.
    """
    c, op, b_eq, lower, upper = _check_problem(c, A_eq, b_eq, lower, upper)
    m, n = op.shape
    dtype = c.dtype
    x, z_lower, z_upper = (V.as_float_array(v, name, ndim=1, dtype=dtype) for v, name in
                           ((x, "x"), (z_lower, "z_lower"), (z_upper, "z_upper")))
    y = V.as_float_array(y, "y", ndim=1, dtype=dtype)
    for v, name, size in ((x, "x", n), (y, "y", m), (z_lower, "z_lower", n),
                          (z_upper, "z_upper", n)):
        V.check_shape(v, name, (size,))
    for v, name in ((z_lower, "z_lower"), (z_upper, "z_upper")):
        if V.is_concrete(v) and np.any(np.asarray(v) < 0):
            raise ValueError(f"{name} must be >= 0; got minimum {float(np.min(v))}")
    pivots = V.check_int(pivots, "pivots", low=0)
    t = Wide().default_tol(dtype) if tol is None else tol
    _check_tol(t, dtype)
    result = _crossover_jit(pivots, jnp.asarray(t, dtype), c, op, b_eq, lower, upper, x, y,
                            z_lower, z_upper)
    return raise_if_failed(result, "crossover", throw=throw)


@functools.partial(jax.jit, static_argnums=(0,))
def _crossover_jit(pivots, tol, c, op, b, lower, upper, x, y, zl, zu) -> LPResult:
    raw = crossover_raw(op, c, b, lower, upper, x, y, zl, zu, tol=tol, pivots=pivots)
    return LPResult(status=raw.status, iterations=raw.iterations, x=raw.x,
                    objective=raw.x @ c, y=raw.y, z_lower=raw.z_lower, z_upper=raw.z_upper,
                    primal_residual=raw.primal_residual, dual_residual=raw.dual_residual,
                    gap=raw.gap)


def solve_lp(cfg, c, op, b, lower, upper) -> LPResult:
    """The jit-compiled core of `linprog`, with its derivative rule: no validation.

    `cfg` comes from `resolve_method`; `op` is a `DenseOperator` or `PairOperator`; all
    arrays already of one float dtype and consistent shapes. Callable from compiled code.
    """
    static = eqx.tree_at(lambda m: m.tol, cfg, None)
    return _linprog_jit(static, cfg.tol, c, op, b, lower, upper)


@functools.partial(jax.jit, static_argnums=(0,))
def _linprog_jit(static, tol, c, op, b, lower, upper) -> LPResult:
    raw, obj = _solve(static, tol, c, op, b, lower, upper)
    return LPResult(status=raw.status, iterations=raw.iterations, x=raw.x, objective=obj,
                    y=raw.y, z_lower=raw.z_lower, z_upper=raw.z_upper,
                    primal_residual=raw.primal_residual, dual_residual=raw.dual_residual,
                    gap=raw.gap)
