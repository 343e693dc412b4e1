r"""Solvers for the SVM dual with bias on a precomputed $Q = (y y^\top) \circ K$.

$$
\min_{\alpha \in \mathbb{R}^n} \tfrac12 \alpha^\top Q \alpha - \mathbf 1^\top \alpha
\quad\text{s.t.}\quad y^\top \alpha = 0,\; 0 \le \alpha \le C,
$$

with $y \in \{-1,+1\}^n$ and $C$ a positive scalar or per-point vector.

The solver options are held once, in a small configuration module passed as `solver`:
`SMO(tol, max_iter)` or `PGD(tol, max_iter, projection)`; `tol` and `max_iter` are array
leaves of that pytree (changing them does not recompile), `projection` is static.
`solve_svm_dual` is the one entry point every kernel SVM of jaxpoison goes through
(`jaxpoison.models.fit_kernel_svm`, FLORAL's evaluation, the label-noise baselines,
the label-flip attacks); it dispatches on the type of `solver`.

* `svm_dual_smo` -- working-set SMO with the second-order working-set selection
  (WSS2) of Fan, Chen & Lin (JMLR 2005), the algorithm of libsvm, in one
  `lax.while_loop`; stops when the maximal KKT violation
  $m(\alpha) - M(\alpha) \le$ `tol` (libsvm's criterion and meaning of `tol`).
* `svm_dual_pgd` -- accelerated projected gradient (FISTA with gradient-based
  restart, O'Donoghue & Candes 2015) with the exact projection of
  `jaxpoison.solvers.box_hyperplane`; step $1/L$, $L$ by power iteration.

Both return `SVMDualResult` with the intercept $b$ computed from the KKT
conditions exactly like libsvm (mean of $-y_i \nabla_i f$ over free support
vectors, else the midpoint of the feasible interval), so the decision function is
$f(x) = \sum_i \alpha_i y_i k(x_i, x) + b$. Both `vmap` over `Q`, `y` and
`C`. This module imports nothing from the rest of jaxpoison except the result base.
"""

from __future__ import annotations

import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from jaxpoison._result import Result, Status, is_concrete
from jaxpoison.solvers.box_hyperplane import project_box_hyperplane

__all__ = ["SMO", "PGD", "SVMDualResult", "solve_svm_dual",
           "svm_dual_smo", "svm_dual_smo_kernel", "svm_dual_pgd", "svm_dual_objective",
           "svm_intercept", "svm_kkt_gap", "max_eigenvalue"]

_TAU = 1e-12


def _check_options(name, tol, max_iter):
    # value checks only on concrete numbers (a config built under jit holds tracers)
    if is_concrete(tol):
        t = np.asarray(tol, dtype=float)
        if t.shape != () or not np.isfinite(t) or t <= 0:
            raise ValueError(f"{name}.tol must be a positive finite scalar; got {tol!r}")
    if isinstance(max_iter, bool) or (is_concrete(max_iter) and (
            np.asarray(max_iter).shape != () or not float(max_iter).is_integer()
            or int(max_iter) < 1)):
        raise ValueError(f"{name}.max_iter must be an integer >= 1; got {max_iter!r}")


class SMO(eqx.Module):
    """Options of the SMO solver (libsvm's algorithm).

    Attributes:
        tol: stop when the maximal KKT violation $m(\alpha) - M(\alpha)$ is at most
            `tol` (libsvm's `eps`). Traced: changing it does not recompile.
        max_iter: iteration limit (two coordinates per iteration). Traced.
    """

    tol: float | jax.Array = 1e-3
    max_iter: int | jax.Array = 100_000

    def __check_init__(self):
        _check_options("SMO", self.tol, self.max_iter)


class PGD(eqx.Module):
    """Options of the accelerated projected-gradient solver (FISTA with restart).

    Attributes:
        tol: stop when the maximal KKT violation is at most `tol` (as `SMO`). Traced.
        max_iter: iteration limit (one matrix-vector product each). Traced.
        projection: root finder of the box-hyperplane projection, `"sort"` or `"bisect"`
            (static).
    """

    tol: float | jax.Array = 1e-3
    max_iter: int | jax.Array = 20_000
    projection: str = eqx.field(static=True, default="sort")

    def __check_init__(self):
        _check_options("PGD", self.tol, self.max_iter)
        if self.projection not in ("sort", "bisect"):
            raise ValueError("PGD.projection must be one of ['sort', 'bisect']; got "
                             f"{self.projection!r}")


DEFAULT_SOLVER = SMO()
"""The default solver of every kernel SVM in jaxpoison: `SMO(tol=1e-3, max_iter=100_000)`."""
_DEFAULT_PGD = PGD()


def check_solver(solver, name: str = "solver"):
    """Check that `solver` is an `SMO` or `PGD` configuration (a `TypeError` otherwise)."""
    if not isinstance(solver, (SMO, PGD)):
        raise TypeError(f"{name} must be jaxpoison.solvers.SMO(...) or PGD(...); got "
                        f"{type(solver).__name__} {solver!r}")
    return solver


class SVMDualResult(Result):
    """Solution of the SVM dual.

    Attributes:
        alpha: dual variables, `(n,)`.
        intercept: $b$ with $f(x) = \\sum_i \\alpha_i y_i k(x_i, x) + b$.
        objective: $\\tfrac12\\alpha^\\top Q\\alpha - \\mathbf 1^\\top\\alpha$.
        gap: maximal KKT violation $m(\\alpha) - M(\\alpha)$ (libsvm's stopping value).
        status, iterations: see `jaxpoison.Result`.
    """

    alpha: jax.Array
    intercept: jax.Array
    objective: jax.Array
    gap: jax.Array


def svm_dual_objective(Q, alpha):
    """$\\tfrac12\\alpha^\\top Q\\alpha - \\mathbf 1^\\top\\alpha$."""
    return 0.5 * alpha @ (Q @ alpha) - jnp.sum(alpha)


def _sets(alpha, y, C):
    up = ((y > 0) & (alpha < C)) | ((y < 0) & (alpha > 0))
    low = ((y < 0) & (alpha < C)) | ((y > 0) & (alpha > 0))
    return up, low


def svm_kkt_gap(G, alpha, y, C):
    """Maximal violating-pair value $\\max_{I_{up}} -y_i G_i - \\min_{I_{low}} -y_i G_i$."""
    up, low = _sets(alpha, y, C)
    myg = -y * G
    m = jnp.max(jnp.where(up, myg, -jnp.inf))
    M = jnp.min(jnp.where(low, myg, jnp.inf))
    return m - M


def svm_intercept(G, alpha, y, C):
    """libsvm's `calculate_rho` from the gradient `G = Q alpha - 1`; returns `b = -rho`."""
    yG = y * G
    atub = alpha >= C
    atlb = alpha <= 0
    free = ~atub & ~atlb
    ubset = (atub & (y < 0)) | (atlb & (y > 0))
    lbset = (atub & (y > 0)) | (atlb & (y < 0))
    ub = jnp.min(jnp.where(ubset, yG, jnp.inf))
    lb = jnp.max(jnp.where(lbset, yG, -jnp.inf))
    ub = jnp.where(jnp.isfinite(ub), ub, jnp.where(jnp.isfinite(lb), lb, 0.0))
    lb = jnp.where(jnp.isfinite(lb), lb, ub)
    nfree = jnp.sum(free)
    rho = jnp.where(nfree > 0, jnp.sum(jnp.where(free, yG, 0.0)) / jnp.maximum(nfree, 1),
                    0.5 * (ub + lb))
    return -rho


def _argmax_first(v):
    """`(max(v), argmax(v))` with the first maximiser, as two plain reductions (a max and
    an index min); on XLA's CPU backend this made a batched SMO iteration 13% faster than
    one variadic argmax."""
    m = jnp.max(v)
    idx = jnp.arange(v.shape[0], dtype=jnp.int32)
    return m, jnp.min(jnp.where(v == m, idx, v.shape[0] - 1))


def _status(gap, tol, finite):
    return jnp.where(~finite, Status.NUMERICAL_ERROR,
                     jnp.where(gap <= tol, Status.SUCCESS, Status.MAX_ITERATIONS)).astype(jnp.int32)


def _smo_core(row, diag, Qa0, y, C, solver, alpha0):
    """SMO on rows `row(i)` of a symmetric Q; `Qa0` = Q @ alpha0 (None for zeros)."""
    dtype = diag.dtype
    tol = jnp.asarray(solver.tol, dtype)
    max_iter = jnp.asarray(solver.max_iter, jnp.int32)
    n = diag.shape[0]
    Cv = jnp.broadcast_to(jnp.asarray(C, dtype), (n,))
    alpha = jnp.zeros(n, dtype) if alpha0 is None else alpha0.astype(dtype)
    G = -jnp.ones(n, dtype) if alpha0 is None else Qa0 - 1.0

    def select(alpha, G):
        up, low = _sets(alpha, y, Cv)
        myg = -y * G
        m, i = _argmax_first(jnp.where(up, myg, -jnp.inf))
        M = jnp.min(jnp.where(low, myg, jnp.inf))
        b = m - myg
        Qi = row(i)
        a = diag[i] + diag - 2.0 * y[i] * y * Qi
        a = jnp.where(a > 0, a, _TAU)
        cand = low & (myg < m)
        _, j = _argmax_first(jnp.where(cand, (b * b) / a, -jnp.inf))
        return i, j, m - M, Qi

    def body(state):
        alpha, G, it, i, j, _, Qi = state
        Qj = row(j)
        yi, yj = y[i], y[j]
        a = diag[i] + diag[j] - 2.0 * yi * yj * Qi[j]
        a = jnp.where(a > 0, a, _TAU)
        b = -yi * G[i] + yj * G[j]
        ti = jnp.where(yi > 0, Cv[i] - alpha[i], alpha[i])
        tj = jnp.where(yj > 0, alpha[j], Cv[j] - alpha[j])
        t = jnp.maximum(jnp.minimum(b / a, jnp.minimum(ti, tj)), 0.0)
        ai = jnp.where(t >= ti, jnp.where(yi > 0, Cv[i], 0.0), alpha[i] + yi * t)
        aj = jnp.where(t >= tj, jnp.where(yj > 0, 0.0, Cv[j]), alpha[j] - yj * t)
        dai, daj = ai - alpha[i], aj - alpha[j]
        alpha = alpha.at[i].set(ai).at[j].set(aj)
        G = G + dai * Qi + daj * Qj
        i2, j2, gap, Qi2 = select(alpha, G)
        return alpha, G, it + 1, i2, j2, gap, Qi2

    def cond(state):
        gap, it = state[5], state[2]
        return (gap > tol) & (it < max_iter) & jnp.isfinite(gap)

    i0, j0, gap0, Qi0 = select(alpha, G)
    alpha, G, it, _, _, gap, _ = jax.lax.while_loop(
        cond, body, (alpha, G, jnp.asarray(0, jnp.int32), i0, j0, gap0, Qi0))
    gap = jnp.maximum(gap, 0.0)
    finite = jnp.all(jnp.isfinite(G))
    return SVMDualResult(
        status=_status(gap, tol, finite), iterations=it, alpha=alpha,
        intercept=svm_intercept(G, alpha, y, Cv),
        objective=0.5 * alpha @ (G + 1.0) - jnp.sum(alpha), gap=gap)


@jax.jit
def svm_dual_smo(
    Q: Float[Array, "n n"],
    y: Float[Array, " n"],
    C: float | Float[Array, " n"],
    solver: SMO = DEFAULT_SOLVER,
    *,
    alpha0: Float[Array, " n"] | None = None,
) -> SVMDualResult:
    r"""SMO with second-order working-set selection (libsvm's algorithm, no shrinking).

    A jit-safe core: no input validation (use `jaxpoison.models.fit_kernel_svm_precomputed`
    for a checked call).

    Args:
        Q: $(y y^\top) \circ K$, symmetric positive semidefinite, `(n, n)`.
        y: labels in $\{-1, +1\}$ as floats.
        C: box bound, scalar or `(n,)` (a zero entry removes that point).
        solver: `SMO(tol, max_iter)`: stop when the maximal KKT violation is at most
            `tol` (libsvm `eps`) or after `max_iter` iterations.
        alpha0: optional feasible starting point (default zeros).

    Returns:
        `SVMDualResult`. Matches `sklearn.svm.SVC(kernel="precomputed", tol=tol)`
        up to the tolerance (the optimum is the same; libsvm also shrinks). Only rows of
        `Q` are read (two per iteration).
    """
    y = y.astype(Q.dtype)
    return _smo_core(lambda i: Q[i], jnp.diagonal(Q), None if alpha0 is None else Q @ alpha0,
                     y, C, solver, alpha0)


@jax.jit
def svm_dual_smo_kernel(
    K: Float[Array, "n n"],
    y: Float[Array, " n"],
    C: float | Float[Array, " n"],
    solver: SMO = DEFAULT_SOLVER,
    *,
    alpha0: Float[Array, " n"] | None = None,
) -> SVMDualResult:
    r"""`svm_dual_smo` given the Gram matrix `K` instead of $Q$.

    Rows of $Q$ are formed on the fly ($Q_{i\cdot} = y_i\, y \circ K_{i\cdot}$),
    so `vmap` over label vectors shares one `K` instead of materialising a batch of
    $n \times n$ matrices.
    """
    y = y.astype(K.dtype)
    Qa0 = None if alpha0 is None else y * (K @ (y * alpha0))
    return _smo_core(lambda i: y[i] * y * K[i], jnp.diagonal(K), Qa0, y, C, solver, alpha0)


@functools.partial(jax.jit, static_argnames=("iters",))
def max_eigenvalue(Q: Float[Array, "n n"], iters: int = 50) -> Float[Array, ""]:
    r"""Largest eigenvalue of a symmetric positive semidefinite `Q` by power iteration.

    Returns the Rayleigh quotient $v^\top Q v$ after `iters` normalised products
    $v \leftarrow Qv/\lVert Qv\rVert$ from a fixed start (deterministic, `jit`/`vmap`-able).
    It never exceeds $\lambda_{\max}$ and approaches it from below; `svm_dual_pgd`
    uses $1.05\,\lambda_{\max}$ as its Lipschitz constant, and $1/\lambda_{\max}(K)$
    is the step of a projected-gradient SVM loop such as FLORAL's.
    """
    v = jnp.ones(Q.shape[0], Q.dtype) / jnp.sqrt(Q.shape[0]) + 0.01 * jnp.cos(
        jnp.arange(Q.shape[0], dtype=Q.dtype))

    def body(_, v):
        w = Q @ v
        return w / jnp.maximum(jnp.linalg.norm(w), 1e-30)

    v = jax.lax.fori_loop(0, iters, body, v)
    return v @ (Q @ v)


@jax.jit
def svm_dual_pgd(
    Q: Float[Array, "n n"],
    y: Float[Array, " n"],
    C: float | Float[Array, " n"],
    solver: PGD = _DEFAULT_PGD,
    *,
    alpha0: Float[Array, " n"] | None = None,
) -> SVMDualResult:
    r"""Accelerated projected gradient (FISTA with adaptive restart) on the SVM dual.

    Each step $\alpha^+ = P(z - \nabla f(z)/L)$ uses the exact projection onto
    $\{y^\top\alpha=0, 0\le\alpha\le C\}$; momentum is reset whenever
    $(z - \alpha^+)^\top(\alpha^+ - \alpha) > 0$. Stopping rule and intercept as in
    `svm_dual_smo`. One matrix-vector product per iteration. Options in
    `solver = PGD(tol, max_iter, projection)`; no input validation (jit-safe core).
    """
    dtype = Q.dtype
    tol = jnp.asarray(solver.tol, dtype)
    max_iter = jnp.asarray(solver.max_iter, jnp.int32)
    projection = solver.projection
    n = Q.shape[0]
    y = y.astype(dtype)
    Cv = jnp.broadcast_to(jnp.asarray(C, dtype), (n,))
    L = 1.05 * max_eigenvalue(Q) + 1e-12
    x = jnp.zeros(n, dtype) if alpha0 is None else project_box_hyperplane(
        alpha0.astype(dtype), y, Cv, method=projection)
    Qx = Q @ x

    def body(state):
        x, Qx, z, Qz, t, it, _ = state
        xn = project_box_hyperplane(z - (Qz - 1.0) / L, y, Cv, method=projection)
        Qxn = Q @ xn
        restart = (z - xn) @ (xn - x) > 0
        tn = jnp.where(restart, 1.0, 0.5 * (1.0 + jnp.sqrt(1.0 + 4.0 * t * t)))
        beta = jnp.where(restart, 0.0, (t - 1.0) / tn)
        zn = xn + beta * (xn - x)
        Qzn = Qxn + beta * (Qxn - Qx)
        gap = svm_kkt_gap(Qxn - 1.0, xn, y, Cv)
        return xn, Qxn, zn, Qzn, tn, it + 1, gap

    def cond(state):
        *_, it, gap = state
        return (gap > tol) & (it < max_iter) & jnp.isfinite(gap)

    gap0 = svm_kkt_gap(Qx - 1.0, x, y, Cv)
    x, Qx, *_, it, gap = jax.lax.while_loop(
        cond, body, (x, Qx, x, Qx, jnp.asarray(1.0, dtype), jnp.asarray(0, jnp.int32), gap0))
    G = Qx - 1.0
    gap = jnp.maximum(gap, 0.0)
    finite = jnp.all(jnp.isfinite(G))
    return SVMDualResult(
        status=_status(gap, tol, finite), iterations=it, alpha=x,
        intercept=svm_intercept(G, x, y, Cv),
        objective=0.5 * x @ Qx - jnp.sum(x), gap=gap)


def solve_svm_dual(
    K: Float[Array, "n n"],
    y: Float[Array, " n"],
    C: float | Float[Array, " n"],
    solver: SMO | PGD = DEFAULT_SOLVER,
    *,
    alpha0: Float[Array, " n"] | None = None,
) -> SVMDualResult:
    r"""Solve the SVM dual for the Gram matrix `K` with the solver `solver` configures.

    The one path by which every kernel SVM in jaxpoison is fitted. `SMO` reads rows of
    $Q = (yy^\top)\circ K$ formed on the fly (`svm_dual_smo_kernel`); `PGD` forms $Q$
    (`svm_dual_pgd`). A jit-safe core: no value checks, works under `jit`/`vmap`
    (over `K`, `y`, `C` and the solver's `tol`/`max_iter`); check the solver's type
    with `check_solver` before tracing.
    """
    n = jnp.shape(K)[0]
    if jnp.ndim(K) != 2 or jnp.shape(K)[1] != n or jnp.shape(y) != (n,) or jnp.ndim(C) not in (
            0, 1) or (jnp.ndim(C) == 1 and jnp.shape(C) != (n,)):
        raise ValueError(f"K must be square (n, n), y of shape (n,) and C a scalar or (n,); "
                         f"got K {jnp.shape(K)}, y {jnp.shape(y)}, C {jnp.shape(C)}")
    y = jnp.asarray(y).astype(K.dtype)
    if isinstance(solver, SMO):
        return svm_dual_smo_kernel(K, y, C, solver, alpha0=alpha0)
    if isinstance(solver, PGD):
        return svm_dual_pgd((y[:, None] * y[None, :]) * K, y, C, solver, alpha0=alpha0)
    check_solver(solver)
