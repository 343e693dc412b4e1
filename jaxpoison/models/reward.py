r"""Bradley--Terry reward model, linear in fixed features, with soft labels.

For pairs with feature differences `Φ` (n x N, column `φ_i = φ(x_i,y_i) - φ(x_i,z_i)`) and
soft labels `θ ∈ [0,1]^N` (probability that `y_i` is preferred), the reward
`r(x, y) = r^T φ(x, y)` is fitted by

$$
\min_r \; \frac1N\sum_i \Big[-\theta_i\log\sigma(r^T\phi_i)
- (1-\theta_i)\log\sigma(-r^T\phi_i)\Big] + \frac{\lambda}{2}\|r\|_2^2 .
$$

Its gradient `(1/N)(Φσ(Φ^T r) - Φθ) + λr` depends on the labels only through `Φθ`: two
label vectors with the same `Φθ` give the same reward model (the premise of PCM).

Solved by Newton's method with backtracking (Hessian `(1/N)Φ diag(σ(1-σ)) Φ^T + λI`,
n x n) to a gradient norm of `tol`. Matches `sklearn.linear_model.LogisticRegression(
fit_intercept=False, C=1/(N λ))` fitted on each pair twice, as `(φ_i, 1)` with weight `θ_i`
and `(φ_i, 0)` with weight `1 - θ_i`.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax
from jaxtyping import Array, Float

from jaxpoison import _validate as V
from jaxpoison._result import Result, Status, raise_if_failed

__all__ = ["fit_bradley_terry", "RewardResult", "bradley_terry_loss"]


class RewardResult(Result):
    """`reward`: the vector `r` (n,); `loss`: objective value; `grad_norm`:
    `||∇||_2` at `r`."""

    reward: jax.Array
    loss: jax.Array
    grad_norm: jax.Array


def bradley_terry_loss(r, phi, theta, reg):
    r"""The objective of `fit_bradley_terry` at `r` (`reg` is the L2 weight $\lambda$)."""
    s = r @ phi
    nll = theta * jax.nn.softplus(-s) + (1.0 - theta) * jax.nn.softplus(s)
    return jnp.mean(nll) + 0.5 * reg * (r @ r)


def fit_bradley_terry(
    phi: Float[Array, "n N"],
    theta: Float[Array, " N"],
    *,
    reg: float = 1e-3,
    tol: float | None = None,
    max_iter: int = 100,
    throw: bool = True,
) -> RewardResult:
    r"""Fit the linear Bradley--Terry reward on soft labels (module docstring).

    Args:
        phi: feature differences (n, N).
        theta: soft labels in `[0, 1]` (N,).
        reg: ridge $\lambda \ge 0$ (`0` only when the labels make the minimiser finite).
        tol: gradient-norm tolerance (default 1e-10 in float64, 1e-5 in float32), at least
            10 eps of the working precision. Traced.
        max_iter: Newton iterations.
        throw: raise when the status is not `SUCCESS`.

    Returns:
        `RewardResult`.
    """
    phi = V.as_float_array(phi, "phi", ndim=2)
    theta = V.as_float_array(theta, "theta", ndim=1, dtype=phi.dtype)
    V.check_same_length(phi, "phi", theta, "theta", axis_a=1)
    if phi.shape[0] == 0 or phi.shape[1] == 0:
        raise ValueError("phi must have at least one row and one column; got shape "
                         f"{tuple(phi.shape)}")
    V.check_in_range(theta, "theta", 0.0, 1.0)
    V.check_nonnegative(reg, "reg")
    max_iter = V.check_int(max_iter, "max_iter", low=1)
    if tol is None:
        tol = 1e-10 if phi.dtype == jnp.float64 else 1e-5
    V.check_positive(tol, "tol")
    if V.is_concrete(tol) and float(tol) < 10 * float(jnp.finfo(phi.dtype).eps):
        raise ValueError(f"tol must be at least 10 * eps of {jnp.dtype(phi.dtype).name} "
                         f"({10 * float(jnp.finfo(phi.dtype).eps):.3g}); got {float(tol)!r}")
    res = _fit(phi, theta, jnp.asarray(reg, phi.dtype), jnp.asarray(tol, phi.dtype), max_iter)
    return raise_if_failed(res, "fit_bradley_terry", throw=throw)


@functools.partial(jax.jit, static_argnums=(4,))
def _fit(phi, theta, reg, tol, max_iter):
    n, N = phi.shape
    target = phi @ theta / N

    def grad_hess(r):
        p = jax.nn.sigmoid(r @ phi)
        g = phi @ p / N - target + reg * r
        H = (phi * (p * (1.0 - p))) @ phi.T / N + reg * jnp.eye(n, dtype=phi.dtype)
        return g, H

    def loss(r):
        return bradley_terry_loss(r, phi, theta, reg)

    def cond(s):
        r, it, gn = s
        return (gn > tol) & (it < max_iter)

    def body(s):
        r, it, _ = s
        g, H = grad_hess(r)
        H = H + 1e-12 * jnp.trace(H) / n * jnp.eye(n, dtype=phi.dtype)
        d = -jnp.linalg.solve(H, g)
        f0 = loss(r)
        slope = g @ d

        def ls_cond(t):
            return (loss(r + t * d) > f0 + 1e-4 * t * slope) & (t > 1e-10)

        t = lax.while_loop(ls_cond, lambda t: 0.5 * t, jnp.asarray(1.0, phi.dtype))
        rn = r + t * d
        gn, _ = grad_hess(rn)
        return rn, it + 1, jnp.linalg.norm(gn)

    r0 = jnp.zeros((n,), phi.dtype)
    g0, _ = grad_hess(r0)
    r, it, gn = lax.while_loop(cond, body, (r0, jnp.asarray(0, jnp.int32), jnp.linalg.norm(g0)))
    status = jnp.where(gn <= tol, Status.SUCCESS,
                       jnp.where(jnp.isfinite(gn), Status.MAX_ITERATIONS,
                                 Status.NUMERICAL_ERROR)).astype(jnp.int32)
    return RewardResult(status=status, iterations=it, reward=r, loss=loss(r), grad_norm=gn)
