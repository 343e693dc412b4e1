r"""A fixed number of projected-gradient steps on the SVM dual, differentiable by unrolling.

$$
\alpha^{t} = P_{\{\tilde y^\top\alpha = 0,\ 0\le\alpha\le C\}}\bigl(\alpha^{t-1}
- \eta\,(Q\alpha^{t-1} - \mathbf 1)\bigr),\qquad \alpha^0 = 0,\quad
Q = (\tilde y\tilde y^\top)\circ K,
$$

for $t = 1..T$ (`steps`, static), with $\eta = 1/\hat\lambda_{\max}(Q)$ from 30 power
iterations. The labels $\tilde y$ may be real (the soft labels $y(1-2\mu)$ of a smoothed
label-flip attacker); the projection is `box_hyperplane_multiplier` (bisection). The
bias is $b = \nu/\eta$ with $\nu$ the multiplier of $\tilde y^\top\alpha = 0$ in the last
projection: at a fixed point every free dual has $\tilde y_i f(x_i) = 1$ exactly, and
$b$ moves continuously with the data (no support-set threshold).

Everything is a `lax.scan` of fixed length, so reverse-mode derivatives in $K$, $\tilde y$
and $C$ are exact derivatives of the $T$-step map (not of the exact SVM); the map is
continuous and piecewise smooth (the clip of the projection). With enough steps
$\alpha^T$ approaches the exact dual (linear rate for a positive definite $Q$).

A jit-safe core: no value checks, works under `jit`/`vmap`/`grad`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from jaxpoison.solvers.box_hyperplane import box_hyperplane_multiplier

__all__ = ["unrolled_svm_dual"]


def unrolled_svm_dual(K: Float[Array, "n n"], y: Float[Array, " n"], C, *,
                      steps: int) -> tuple[Float[Array, " n"], Float[Array, ""]]:
    r"""`steps` projected-gradient steps on the SVM dual with (soft) labels `y`.

    Args:
        K: Gram matrix `(n, n)`.
        y: labels or soft labels $\tilde y$ `(n,)` (real).
        C: box bound $C > 0$ (scalar, may be traced).
        steps: number of steps $T$ (static).

    Returns:
        `(alpha, b)`: the dual after $T$ steps and the bias $\nu/\eta$; the decision
        function is $f(x) = \sum_i \alpha_i\tilde y_i k(x_i, x) + b$.
    """
    Q = (y[:, None] * y[None, :]) * K
    vec = jnp.ones(y.shape, K.dtype)

    def power(_, u):
        w = Q @ u
        return w / jnp.maximum(jnp.linalg.norm(w), 1e-30)

    u = jax.lax.fori_loop(0, 30, power, vec / jnp.sqrt(y.shape[0]))
    eta = 1.0 / jnp.maximum(u @ (Q @ u), 1e-12)

    def step(carry, _):
        a, _ = carry
        z = a - eta * (Q @ a - 1.0)
        mu = box_hyperplane_multiplier(z, y, C, method="bisect")
        return (jnp.clip(z - mu * y, 0.0, C), mu), None

    (alpha, mu), _ = jax.lax.scan(step, (jnp.zeros(y.shape, K.dtype),
                                         jnp.zeros((), K.dtype)), None, length=steps)
    return alpha, mu / eta
