r"""PCM: poisoning cost minimisation for label-flipping attacks on preference data.

A reward model linear in fixed features, trained by Bradley--Terry on pairs with feature
differences `Φ = [φ_1, ..., φ_N]` (n x N) and labels `θ ∈ [0, 1]^N`, depends on the labels
only through `Φθ` (see `jaxpoison.models.reward`). Any `θ` with `Φθ = Φθ_A`
therefore produces the same poisoned model as an attack's labels `θ_A`. PCM finds the
cheapest such `θ` (arXiv 2511.09105):

$$
\min_{\theta} \sum_i w_i |\theta_i - \theta_{O,i}|
\quad\text{s.t.}\quad \Phi\theta = \Phi\theta_A,\; 0 \le \theta \le 1 .
$$

With `θ - θ_O = p - q`, `0 <= p <= 1 - θ_O`, `0 <= q <= θ_O` this is the bounded-variable
LP `min w^T p + w^T q  s.t.  Φ p - Φ q = Φ(θ_A - θ_O)` with only `n` equality rows; the
interior-point method's normal matrix is `Φ (D_p + D_q) Φ^T` (n x n, `n^2 N` flops per
iteration), and PDHG touches `Φ` only through products. At the optimum `p_i q_i = 0`
(for `w_i > 0`), so `|θ_i - θ_{O,i}| = p_i + q_i`.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from jaxpoison import _validate as V
from jaxpoison._result import Result, raise_if_failed
from jaxpoison.solvers._lp_ops import PairOperator
from jaxpoison.solvers.lp import default_tol, solve_lp_operator
from jaxpoison.solvers.lp_wide import WIDE_METHODS, is_wide

__all__ = ["pcm", "PCMResult", "count_flips", "check_pcm_inputs"]

FLIP_TOL = 1e-6


class PCMResult(Result):
    """Result of `pcm`.

    Attributes:
        theta: the cheapest labels `θ*` in `[0, 1]^N`.
        cost: `Σ w_i |θ*_i - θ_{O,i}|` (fractional flips, weighted).
        flips: number of pairs whose label changed, `|θ*_i - θ_{O,i}| > 1e-6`
            (for binary `θ_O` and `θ*` this is the number of flipped labels; a soft change
            counts as one changed pair).
        naive_cost, naive_flips: the same for the attack's own labels `θ_A`.
        residual: `||Φθ* - Φθ_A||_2` (for the adaptive-embedding variant, of the one kept row).
        y: multipliers of `Φθ = Φθ_A` (derivative of the optimal cost w.r.t. the target).
        primal_residual, dual_residual, gap: the LP solver's relative KKT measures.
    """

    theta: jax.Array
    cost: jax.Array
    flips: jax.Array
    naive_cost: jax.Array
    naive_flips: jax.Array
    residual: jax.Array
    y: jax.Array
    primal_residual: jax.Array
    dual_residual: jax.Array
    gap: jax.Array


def count_flips(theta, theta_orig, tol: float = FLIP_TOL):
    """Number of pairs with `|θ_i - θ_{O,i}| > tol` (the flip-count rule of `pcm`)."""
    return jnp.sum(jnp.abs(theta - theta_orig) > tol)


def check_pcm_inputs(phi, theta_orig, theta_target, weights):
    """Validate and convert the common PCM inputs (shared with the bounds)."""
    phi = V.as_float_array(phi, "phi", ndim=2)
    dtype = phi.dtype
    n, N = phi.shape
    theta_orig = V.as_float_array(theta_orig, "theta_orig", ndim=1, dtype=dtype)
    V.check_shape(theta_orig, "theta_orig", (N,))
    V.check_in_range(theta_orig, "theta_orig", 0.0, 1.0)
    if theta_target is not None:
        theta_target = V.as_float_array(theta_target, "theta_target", ndim=1, dtype=dtype)
        V.check_shape(theta_target, "theta_target", (N,))
        V.check_in_range(theta_target, "theta_target", 0.0, 1.0)
    if weights is None:
        weights = jnp.ones((N,), dtype)
    else:
        weights = V.as_float_array(weights, "weights", ndim=(0, 1), dtype=dtype)
        if weights.ndim == 1:
            V.check_shape(weights, "weights", (N,))
        V.check_nonnegative(weights, "weights")
        weights = jnp.broadcast_to(weights, (N,))
    return phi, theta_orig, theta_target, weights


def pcm(
    phi: Float[Array, "n N"],
    theta_orig: Float[Array, " N"],
    theta_target: Float[Array, " N"] | None = None,
    *,
    target: Float[Array, " n"] | None = None,
    weights: Float[Array, " N"] | None = None,
    adaptive_embedding: Float[Array, " n"] | None = None,
    method: str = "auto",
    tol: float | None = None,
    max_iter: int | None = None,
    throw: bool = True,
) -> PCMResult:
    r"""Cheapest relabelling that keeps the poisoned reward model (PCM).

    Solves $\min_\theta \sum_i w_i|\theta_i-\theta_{O,i}|$ s.t.
    $\Phi\theta = \Phi\theta_A$, $0\le\theta\le 1$ (module docstring) with
    `jaxpoison.solvers.linprog`'s methods on the structured operator `[Φ, -Φ]`.
    Gives the same optimal cost as `scipy.optimize.linprog` (HiGHS) on the p--q LP.

    Args:
        phi: feature differences `Φ` (n, N), column i = `φ(x_i, y_i) - φ(x_i, z_i)`.
        theta_orig: original labels `θ_O` in `[0, 1]` (N,), binary or soft.
        theta_target: the attack's labels `θ_A` in `[0, 1]` (N,).
        target: instead of `theta_target`, the required `Φθ` (n,) directly; a target
            outside `Φ[0,1]^N` makes the LP infeasible (status `INFEASIBLE`).
        weights: per-pair flip costs `w >= 0` (N,) or scalar; default 1.
        adaptive_embedding: a reward direction `r_A` (n,): keep only the single constraint
            `r_A^T Φ θ = r_A^T Φ θ_A` (the paper's adaptive-embedding variant, where the
            attacker only needs the reward along `r_A`).
        method: `"auto"` (default: `"wide"` when `Φ` is wide, see
            `jaxpoison.solvers.lp_wide.is_wide`, else `"ipm"`), `"ipm"`, `"pdhg"`,
            `"wide"` or `"wide-f64"` (see `linprog`).
        tol, max_iter: solver tolerance and iteration limit (see `linprog`).
        throw: raise `jaxpoison.SolverError` on a failed solve.

    Returns:
        `PCMResult`; `theta` satisfies `Φθ = Φθ_A` to the solver tolerance.
    """
    V.check_choice(method, "method", ("auto", "ipm", "pdhg") + WIDE_METHODS)
    phi, theta_orig, theta_target, weights = check_pcm_inputs(phi, theta_orig, theta_target,
                                                              weights)
    n, N = phi.shape
    if (theta_target is None) == (target is None):
        raise ValueError("give exactly one of theta_target and target")
    if target is not None:
        target = V.as_float_array(target, "target", ndim=1, dtype=phi.dtype)
        V.check_shape(target, "target", (n,))
    if adaptive_embedding is not None:
        r = V.as_float_array(adaptive_embedding, "adaptive_embedding", ndim=1, dtype=phi.dtype)
        V.check_shape(r, "adaptive_embedding", (n,))
        if target is not None:
            target = (r @ target)[None]
        phi = (r @ phi)[None, :]
    if method == "auto":
        method = "wide" if is_wide(phi.shape[0], 2 * N) else "ipm"
    if tol is None:
        tol = default_tol(phi.dtype, method)
    if max_iter is None:
        max_iter = 50_000 if method == "pdhg" else 100
    max_iter = V.check_int(max_iter, "max_iter", low=1)
    if theta_target is None:
        res = _pcm_target_jit(phi, theta_orig, target, weights, method=method, tol=float(tol),
                              max_iter=max_iter)
    else:
        res = _pcm_jit(phi, theta_orig, theta_target, weights, method=method, tol=float(tol),
                       max_iter=max_iter)
    return raise_if_failed(res, "pcm", throw=throw)


def _pcm_core(phi, theta_orig, b, naive_theta, weights, method, tol, max_iter) -> PCMResult:
    n, N = phi.shape
    # rows of Φ rescaled to unit max-norm: same feasible set, better-conditioned LP
    rn = jnp.max(jnp.abs(phi), axis=1)
    rs = jnp.where(rn > 0, 1.0 / jnp.where(rn > 0, rn, 1.0), 1.0)
    phis, bs = phi * rs[:, None], b * rs
    c = jnp.concatenate([weights, weights])
    lower = jnp.zeros((2 * N,), phi.dtype)
    upper = jnp.concatenate([1.0 - theta_orig, theta_orig])
    raw = solve_lp_operator(PairOperator(phis), c, bs, lower, upper, method=method, tol=tol,
                            max_iter=max_iter)
    p = jnp.clip(raw.x[:N], 0.0, 1.0 - theta_orig)
    q = jnp.clip(raw.x[N:], 0.0, theta_orig)
    theta = jnp.clip(theta_orig + p - q, 0.0, 1.0)
    cost = weights @ jnp.abs(theta - theta_orig)
    resid = jnp.linalg.norm(phi @ theta - b - phi @ theta_orig)
    naive_cost = weights @ jnp.abs(naive_theta - theta_orig)
    return PCMResult(status=raw.status, iterations=raw.iterations, theta=theta, cost=cost,
                     flips=count_flips(theta, theta_orig), naive_cost=naive_cost,
                     naive_flips=count_flips(naive_theta, theta_orig), residual=resid,
                     y=raw.y * rs, primal_residual=raw.primal_residual,
                     dual_residual=raw.dual_residual, gap=raw.gap)


@functools.partial(jax.jit, static_argnames=("method", "tol", "max_iter"))
def _pcm_jit(phi, theta_orig, theta_target, weights, *, method, tol, max_iter):
    b = phi @ (theta_target - theta_orig)
    return _pcm_core(phi, theta_orig, b, theta_target, weights, method, tol, max_iter)


@functools.partial(jax.jit, static_argnames=("method", "tol", "max_iter"))
def _pcm_target_jit(phi, theta_orig, target, weights, *, method, tol, max_iter):
    b = target - phi @ theta_orig
    nan = jnp.full_like(theta_orig, jnp.nan)
    return _pcm_core(phi, theta_orig, b, nan, weights, method, tol, max_iter)


