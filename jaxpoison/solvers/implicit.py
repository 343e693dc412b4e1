r"""Implicit differentiation of the solution of an optimality condition.

Given a solution map $\theta^\star(p)$ defined implicitly by
$F(\theta^\star(p), p) = 0$ with $\partial_\theta F$ invertible, the implicit
function theorem gives

$$
\frac{\partial \theta^\star}{\partial p} = -(\partial_\theta F)^{-1}\,\partial_p F,
$$

so a reverse-mode cotangent $g$ on $\theta^\star$ maps to the parameter
cotangent $-(\partial_p F)^\top u$ where $(\partial_\theta F)^\top u = g$
(the *adjoint* linear system). `attach_implicit_grad` wraps an already computed
solution so that `jax.grad` / `jax.vjp` through it use that rule instead of
differentiating through the iterations of the solver that produced it.

The adjoint system is solved matrix-free by conjugate gradients (`solve="cg"`, for a
symmetric positive-definite $\partial_\theta F$, e.g. the Hessian when
$F = \nabla_\theta f$ of a strongly convex objective), or by a dense factorisation
of the Jacobian (`solve="dense"`, any invertible Jacobian; forms the full matrix).
This module knows nothing about poisoning or models.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

__all__ = ["attach_implicit_grad"]


def _solve_adjoint(F, solution, params, g, solve: str, tol: float, maxiter: int):
    flat_sol, unravel = ravel_pytree(solution)
    flat_g, _ = ravel_pytree(g)

    def F_of_flat(v):
        return ravel_pytree(F(unravel(v), params))[0]

    _, vjp_sol = jax.vjp(F_of_flat, flat_sol)

    if solve == "dense":
        jac = jax.jacfwd(F_of_flat)(flat_sol)
        u = jnp.linalg.solve(jac.T, flat_g)
    else:
        def matvec(v):
            return vjp_sol(v)[0]

        u, _ = jax.scipy.sparse.linalg.cg(matvec, flat_g, tol=tol, maxiter=maxiter)
    return unravel(u)


@partial(jax.custom_vjp, nondiff_argnums=(0, 3, 4, 5))
def _attach(F, solution, params, solve, tol, maxiter):
    return solution


def _attach_fwd(F, solution, params, solve, tol, maxiter):
    return solution, (solution, params)


def _attach_bwd(F, solve, tol, maxiter, residuals, g):
    solution, params = residuals
    u = _solve_adjoint(F, solution, params, g, solve, tol, maxiter)
    _, vjp_params = jax.vjp(lambda p: F(solution, p), params)
    (params_ct,) = vjp_params(u)
    params_ct = jax.tree_util.tree_map(lambda c: -c, params_ct)
    zero_sol = jax.tree_util.tree_map(jnp.zeros_like, solution)
    return zero_sol, params_ct


_attach.defvjp(_attach_fwd, _attach_bwd)


def attach_implicit_grad(F: Callable, solution, params, *, solve: str = "cg",
                         tol: float = 1e-10, max_iter: int | None = None):
    r"""Return `solution` unchanged, differentiable w.r.t. `params` through `F = 0`.

    Args:
      F: optimality condition `F(solution, params) -> pytree` shaped like `solution`,
        zero at the solution (e.g. the gradient of a strongly convex objective).
      solution: a (numerically) exact root, computed by any solver; no gradient flows
        through how it was computed (it is treated as a function of `params` only).
      params: pytree of the quantities to differentiate with respect to.
      solve: `"cg"` (matrix-free, needs a symmetric positive-definite
        $\partial_\theta F$) or `"dense"` (forms the Jacobian; any invertible one).
      tol, max_iter: conjugate-gradient tolerance and iteration cap (default: 10 x size).

    Returns:
      `solution`; its reverse-mode derivative w.r.t. `params` is
      $-(\partial_p F)^\top (\partial_\theta F)^{-\top} g$ (implicit function theorem).
      Forward-mode (`jvp`) is not supported (the wrapper is a `custom_vjp`).
    """
    if solve not in ("cg", "dense"):
        raise ValueError(f"solve must be 'cg' or 'dense'; got {solve!r}")
    if max_iter is None:
        max_iter = 10 * max(1, ravel_pytree(solution)[0].size)
    solution = jax.lax.stop_gradient(solution)
    return _attach(F, solution, params, solve, float(tol), int(max_iter))
