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

It is solved by the public `jaxpoison.solvers.linprog` core on `PairOperator(Φ)`, so it
inherits the LP's KKT derivative rule. In particular the optimal cost is differentiable in
`Φ` by the envelope theorem: with the optimal multipliers `y` of `Φp - Φq = ΦΔ` and the
optimum `θ*`,

$$
\frac{\partial\,\mathrm{cost}}{\partial \Phi} = y\,(\theta_A - \theta^*)^T
$$

(and `∂cost/∂target = y` when the target `Φθ` is given directly). This is the derivative
wherever the optimal `y` is unique; at a degenerate optimum (several optimal `y`) the cost is
not differentiable and this is one subgradient, the one of the `y` the solver returns.
"""

from __future__ import annotations

import functools

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from jaxpoison import _validate as V
from jaxpoison._result import Result, raise_if_failed
from jaxpoison.solvers import IPM, PDHG, PairOperator, Wide, resolve_method, solve_lp

__all__ = ["pcm", "PCMResult", "count_flips", "flip_tolerance"]

FLIP_TOL = 1e-6


class PCMResult(Result):
    r"""Result of `pcm`.

    Attributes:
        theta: the cheapest labels $\theta^*$ in $[0, 1]^N$.
        cost: $\sum_i w_i |\theta^*_i - \theta_{O,i}|$ (fractional flips, weighted): the
            LP's optimal value, differentiable in `phi`, `theta_orig`, `theta_target`,
            `target` and `weights`.
        flips: number of pairs whose label changed, $|\theta^*_i - \theta_{O,i}| >$
            `flip_tolerance` (for binary $\theta_O$ and $\theta^*$ the number of flipped
            labels; a soft change counts as one changed pair).
        fractional: number of pairs with $\theta^*_i$ strictly inside the box, away from
            both $0$ and $1$ by more than `flip_tolerance` (at most `n` at a vertex).
        naive_cost: the cost of the attack's own labels $\theta_A$.
        naive_flips: the flip count of $\theta_A$.
        residual: $\|\Phi\theta^* - \Phi\theta_A\|_2$ (for the adaptive-embedding variant, of
            the one kept row).
        y: multipliers of $\Phi\theta = \Phi\theta_A$ (derivative of the optimal cost
            with respect to the target $\Phi\theta_A$).
        flip_tolerance: the threshold used by `flips`: $\max(10^{-6}, 10\,\mathrm{tol})$.
        primal_residual: the LP's relative primal residual.
        dual_residual: the LP's relative dual residual.
        gap: the LP's relative duality gap.
        status: a `jaxpoison.Status` code.
        iterations: LP iterations.
    """

    theta: jax.Array
    cost: jax.Array
    flips: jax.Array
    fractional: jax.Array
    naive_cost: jax.Array
    naive_flips: jax.Array
    residual: jax.Array
    y: jax.Array
    flip_tolerance: jax.Array
    primal_residual: jax.Array
    dual_residual: jax.Array
    gap: jax.Array


def flip_tolerance(tol):
    r"""The change $|\theta_i - \theta_{O,i}|$ above which `pcm` counts a pair as changed:
    $\max(10^{-6}, 10\,\mathrm{tol})$ for the LP tolerance `tol`, so that a value the solver
    has only resolved to `tol` (float32: `1e-5`) never counts as a flip."""
    return jnp.maximum(FLIP_TOL, 10.0 * tol)


def count_flips(theta, theta_orig, tol=FLIP_TOL):
    r"""Number of pairs with $|\theta_i - \theta_{O,i}| >$ `tol` (the rule of `pcm.flips`)."""
    return jnp.sum(jnp.abs(theta - theta_orig) > tol)


def check_pcm_inputs(phi, theta_orig, theta_target, weights):
    """Validate and convert the common PCM inputs (shared with the bounds; internal)."""
    phi = V.as_float_array(phi, "phi", ndim=2)
    dtype = phi.dtype
    n, N = phi.shape
    if n == 0 or N == 0:
        raise ValueError("phi must have at least one feature (row) and one pair (column); "
                         f"got shape {tuple(phi.shape)}")
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
    method: str | IPM | PDHG | Wide = "auto",
    tol: float | None = None,
    max_iter: int | None = None,
    throw: bool = True,
) -> PCMResult:
    r"""Cheapest relabelling that keeps the poisoned reward model (PCM).

    Solves $\min_\theta \sum_i w_i|\theta_i-\theta_{O,i}|$ s.t.
    $\Phi\theta = \Phi\theta_A$, $0\le\theta\le 1$ (module docstring) with
    `jaxpoison.solvers.linprog`'s core on the structured operator `PairOperator(Φ)` =
    $[\Phi, -\Phi]$. Gives the same optimal cost as `scipy.optimize.linprog` (HiGHS) on the
    p--q LP. Callable under `jit`/`vmap`; `jax.grad` of `.cost` is the envelope derivative
    (module docstring).

    Args:
        phi: feature differences $\Phi$ (n, N), column i = $\phi(x_i, y_i) - \phi(x_i, z_i)$.
        theta_orig: original labels $\theta_O$ in $[0, 1]$ (N,), binary or soft.
        theta_target: the attack's labels $\theta_A$ in $[0, 1]$ (N,).
        target: instead of `theta_target`, the required $\Phi\theta$ (n,) directly; a target
            outside $\Phi[0,1]^N$ makes the LP infeasible (status `INFEASIBLE`).
        weights: per-pair flip costs $w \ge 0$ (N,) or scalar; default 1.
        adaptive_embedding: a reward direction $r_A$ (n,): keep only the single constraint
            $r_A^T \Phi \theta = r_A^T \Phi \theta_A$ (the paper's adaptive-embedding
            variant, where the attacker only needs the reward along $r_A$).
        method: `"auto"` (default: `"wide"` when $\Phi$ is wide, see
            `jaxpoison.solvers.lp_wide.is_wide`, else `"ipm"`), `"ipm"`, `"pdhg"`, `"wide"`,
            `"wide-f64"` or an options object (see `linprog`).
        tol: solver tolerance (see `linprog`); also sets `flip_tolerance`.
        max_iter: iteration limit (see `linprog`).
        throw: raise on a failed solve (host: `jaxpoison.SolverError`; under `jit`: an
            `equinox` runtime error).

    Returns:
        `PCMResult`; `theta` satisfies $\Phi\theta = \Phi\theta_A$ to the solver tolerance.
    """
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
    cfg = resolve_method(method, tol, max_iter, phi.dtype, (phi.shape[0], 2 * N))
    static = eqx.tree_at(lambda m: m.tol, cfg, None)
    if theta_target is None:
        res = _pcm_target_jit(static, cfg.tol, phi, theta_orig, target, weights)
    else:
        res = _pcm_jit(static, cfg.tol, phi, theta_orig, theta_target, weights)
    return raise_if_failed(res, "pcm", throw=throw)


def _pcm_core(static, tol, phi, theta_orig, b, naive_theta, weights) -> PCMResult:
    N = phi.shape[1]
    c = jnp.concatenate([weights, weights])
    lower = jnp.zeros((2 * N,), phi.dtype)
    upper = jnp.concatenate([1.0 - theta_orig, theta_orig])
    lp = solve_lp(eqx.tree_at(lambda m: m.tol, static, tol, is_leaf=lambda v: v is None),
                  c, PairOperator(phi), b, lower, upper)
    p = jnp.clip(lp.x[:N], 0.0, 1.0 - theta_orig)
    q = jnp.clip(lp.x[N:], 0.0, theta_orig)
    theta = jnp.clip(theta_orig + p - q, 0.0, 1.0)
    resid = jnp.linalg.norm(phi @ theta - b - phi @ theta_orig)
    naive_cost = weights @ jnp.abs(naive_theta - theta_orig)
    ftol = flip_tolerance(tol).astype(phi.dtype)
    inside = (theta > ftol) & (theta < 1.0 - ftol)
    return PCMResult(status=lp.status, iterations=lp.iterations, theta=theta,
                     cost=lp.objective, flips=count_flips(theta, theta_orig, ftol),
                     fractional=jnp.sum(inside), naive_cost=naive_cost,
                     naive_flips=count_flips(naive_theta, theta_orig, ftol), residual=resid,
                     y=lp.y, flip_tolerance=ftol, primal_residual=lp.primal_residual,
                     dual_residual=lp.dual_residual, gap=lp.gap)


@functools.partial(jax.jit, static_argnums=(0,))
def _pcm_jit(static, tol, phi, theta_orig, theta_target, weights):
    b = phi @ (theta_target - theta_orig)
    return _pcm_core(static, tol, phi, theta_orig, b, theta_target, weights)


@functools.partial(jax.jit, static_argnums=(0,))
def _pcm_target_jit(static, tol, phi, theta_orig, target, weights):
    b = target - phi @ theta_orig
    nan = jnp.full_like(theta_orig, jnp.nan)
    return _pcm_core(static, tol, phi, theta_orig, b, nan, weights)
