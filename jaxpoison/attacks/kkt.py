r"""The KKT attack (Koh, Steinhardt and Liang 2018), the model-targeted baseline of
Suya et al. (2021).

For a target $\theta_p$ and a budget of $n_p = n_+ + n_-$ points, the attack
looks for two points $x_+$ (label +1, $n_+$ copies) and $x_-$ (label -1,
$n_-$ copies) that make $\theta_p$ stationary for training on
$D_c\cup D_p$:

$$
\min_{x_\pm\in\mathcal X}\Big\lVert \underbrace{\sum_{D_c}\nabla\ell(\theta_p;x,y)
+ (N+n_p)\lambda\theta_p}_{g}
+ n_+\nabla\ell(\theta_p;x_+,+1) + n_-\nabla\ell(\theta_p;x_-,-1)\Big\rVert_2 .
$$

For hinge loss, requiring the poison points to violate the margin
($y\,\theta_p^\top\tilde x\le1$) makes $\nabla\ell = -y\tilde x$ linear, so the
problem is a convex QP in $(x_+,x_-)$, solved here by accelerated projected gradient
(projection onto the box intersected with the margin half-space, by bisection on its
multiplier). For logistic loss it is solved (locally) by projected Adam. The split
$n_+/n_p$ is searched on a grid in one vmapped call and the best split kept.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, Float

from jaxpoison import _validate as V
from jaxpoison._result import Result, raise_if_failed
from jaxpoison.attacks._poisoning import check_poisoning_problem
from jaxpoison.models.linear import LinearModel, LinearSolver, fit_linear
from jaxpoison.solvers.box_halfspace import project_box_halfspace

__all__ = ["KKTResult", "kkt_attack"]


class KKTResult(Result):
    """Result of `kkt_attack`.

    Attributes:
      X_poison, y_poison: the `budget` poison points (copies of `x_+` and `x_-`).
      x_pos, x_neg: the two distinct points; n_pos, n_neg: their copy counts.
      residual: the stationarity residual norm at the target (0 = target exactly induced).
      model: the model trained on clean + poison data.
    """

    X_poison: Array
    y_poison: Array
    x_pos: Array
    x_neg: Array
    n_pos: Array
    n_neg: Array
    residual: Array
    model: LinearModel


@partial(jax.jit, static_argnames=("loss", "steps"))
def _kkt_solve(X, y, theta, n_pos, n_neg, reg, lo, hi, *, loss, steps):
    n = X.shape[0]
    n_p = n_pos + n_neg
    m = y * (X @ theta[:-1] + theta[-1])
    if loss == "hinge":
        coef = jnp.where(m < 1, -1.0, 0.0)
    else:
        coef = -jax.nn.sigmoid(-m)
    Xt = jnp.concatenate([X, jnp.ones((n, 1), X.dtype)], axis=1)
    g = Xt.T @ (coef * y) + (n + n_p) * reg * theta
    w, b = theta[:-1], theta[-1]

    def resid(xp, xn):
        if loss == "hinge":
            cp, cn = -1.0, -1.0
        else:
            cp = -jax.nn.sigmoid(-(w @ xp + b))
            cn = -jax.nn.sigmoid(w @ xn + b)
        tp = jnp.concatenate([xp, jnp.ones(1, X.dtype)])
        tn = jnp.concatenate([xn, jnp.ones(1, X.dtype)])
        return g + n_pos * cp * tp - n_neg * cn * tn

    def obj(z):
        r = resid(z[0], z[1])
        return 0.5 * r @ r

    mid = 0.5 * (lo + hi)
    z0 = jnp.stack([mid, mid])
    if loss == "hinge":
        # feasible sets: w.x + b <= 1 for x_+, -(w.x + b) <= 1 for x_-
        def proj(z):
            return jnp.stack([project_box_halfspace(z[0], w, 1.0 - b, lo, hi),
                              project_box_halfspace(z[1], -w, 1.0 + b, lo, hi)])

        lip = (n_pos + n_neg) ** 2 + 1e-12
        z0 = proj(z0)

        def body(c, _):
            z, zprev, t = c
            t_new = 0.5 * (1 + jnp.sqrt(1 + 4 * t * t))
            yk = z + ((t - 1) / t_new) * (z - zprev)
            z_new = proj(yk - jax.grad(obj)(yk) / lip)
            return (z_new, z, t_new), None

        (z, _, _), _ = jax.lax.scan(body, (z0, z0, jnp.asarray(1.0, X.dtype)), None,
                                    length=steps)
    else:
        opt = optax.adam(0.05 * jnp.max(hi - lo))

        def body(c, _):
            z, st = c
            upd, st = opt.update(jax.grad(obj)(z), st, z)
            return (jnp.clip(optax.apply_updates(z, upd), lo, hi), st), None

        (z, _), _ = jax.lax.scan(body, (z0, opt.init(z0)), None, length=steps)
    return z[0], z[1], jnp.sqrt(2 * obj(z))


def kkt_attack(X: Float[Array, "n d"], y, target: LinearModel, *, loss: str = "hinge", reg,
               lower, upper, budget: int, splits: int = 11, steps: int = 2000,
               solver: LinearSolver | None = None, throw: bool = True) -> KKTResult:
    r"""KKT attack: `budget` copies of two points that make `target` stationary.

    Args:
      X, y: clean training data; target: $\theta_p$; loss, reg: the training problem.
      lower, upper: the feasible box.
      budget: number of poison points $n_p$ (e.g. the size found by
        `model_targeted_attack`, as in the paper's comparison).
      splits: number of values of $n_+/n_p$ on a uniform grid of [0, 1] ($\ge 2$).
      steps: projected-gradient (hinge) or Adam (logistic) steps.
      solver: `LinearSolver` for the final retraining.
      throw: raise if the retraining failed.
    Returns:
      `KKTResult` (status: the retraining's).
    """
    X, y, target, lo, hi = check_poisoning_problem(loss, X, y, target, reg, lower, upper)
    dtype = X.dtype
    n, d = X.shape
    budget = V.check_int(budget, "budget", low=1)
    splits = V.check_int(splits, "splits", low=2)
    steps = V.check_int(steps, "steps", low=1)
    n_pos = np.unique(np.round(np.linspace(0, 1, splits) * budget)).astype(int)
    n_neg = budget - n_pos
    theta = target.theta
    xp, xn, res = jax.vmap(
        lambda a, c: _kkt_solve(X, y, theta, a, c, reg, lo, hi, loss=loss, steps=steps))(
        jnp.asarray(n_pos, dtype), jnp.asarray(n_neg, dtype))
    j = int(jnp.argmin(res))
    k_pos, k_neg = int(n_pos[j]), int(n_neg[j])
    X_p = jnp.concatenate([jnp.repeat(xp[j][None], k_pos, 0), jnp.repeat(xn[j][None], k_neg, 0)])
    y_p = jnp.concatenate([jnp.ones(k_pos, jnp.int32), -jnp.ones(k_neg, jnp.int32)])
    # retrain on clean + two weighted rows
    X_all = jnp.concatenate([X, jnp.stack([xp[j], xn[j]])])
    y_all = jnp.concatenate([y, jnp.array([1.0, -1.0], dtype)])
    s_all = jnp.concatenate([jnp.ones(n, dtype), jnp.array([k_pos, k_neg], dtype)])
    fit = fit_linear(X_all, y_all, loss=loss, reg=reg, sample_weight=s_all, solver=solver,
                     throw=False)
    result = KKTResult(status=fit.status, iterations=jnp.asarray(steps, jnp.int32),
                       X_poison=X_p, y_poison=y_p, x_pos=xp[j], x_neg=xn[j],
                       n_pos=jnp.asarray(k_pos), n_neg=jnp.asarray(k_neg), residual=res[j],
                       model=fit.model)
    return raise_if_failed(result, "kkt_attack (retraining)", throw=throw)

