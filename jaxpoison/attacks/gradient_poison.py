r"""Objective-driven poisoning by gradient ascent through training (Biggio et al. 2012 style).

Maximise the validation loss of the model trained on clean + poison data over the poison
features (labels fixed):

$$
\max_{X_p\in\mathcal X^{n_p}}\ \sum_{(x,y)\in D_{val}} \ell\big(\theta^\star(X_p); x, y\big),
\qquad \theta^\star(X_p) = \arg\min_\theta \sum_{D_c\cup D_p}\ell + (N+n_p)\lambda R(\theta).
$$

The gradient $\partial\theta^\star/\partial X_p$ comes from implicit
differentiation of `jaxpoison.models.fit_linear` (no unrolling), and each retraining
is warm-started from the previous one. Projected Adam steps keep the points in the box.
This is a local method with no guarantee; it is the baseline that differentiating through
training makes a few lines.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, Float

from jaxpoison import _validate as V
from jaxpoison._result import Result, Status, raise_if_failed
from jaxpoison.attacks._poisoning import as_labels, check_poisoning_problem
from jaxpoison.models.linear import LinearModel, LinearSolver, fit_linear

__all__ = ["GradientAttackResult", "gradient_poisoning_attack"]


class GradientAttackResult(Result):
    """Result of `gradient_poisoning_attack`: the poison points, the model trained
    with them, and the validation loss (mean) at every step (entry 0: initial points)."""

    X_poison: Array
    y_poison: Array
    model: LinearModel
    val_loss: Array


def _val_loss(model, X, y, loss):
    m = y * (X @ model.w + model.b)
    ell = jnp.maximum(0.0, 1.0 - m) if loss == "hinge" else jnp.logaddexp(0.0, -m)
    return jnp.mean(ell)


@partial(jax.jit, static_argnames=("loss", "steps"))
def _run(X, y, Xp0, yp, Xv, yv, lo, hi, reg, lr, solver, *, loss, steps):
    n, d = X.shape
    n_p = Xp0.shape[0]
    s = jnp.ones(n + n_p, X.dtype)
    y_all = jnp.concatenate([y, yp])
    width = hi - lo
    opt = optax.adam(lr)

    def train(Xp, warm):
        return fit_linear(jnp.concatenate([X, Xp]), y_all, loss=loss, reg=reg,
                          sample_weight=s, init=warm, solver=solver, throw=False)

    zeros = fit_linear(jnp.concatenate([X, Xp0]), y_all, loss=loss, reg=reg, sample_weight=s,
                       solver=solver, throw=False)

    def objective(Xp, warm):
        fit = train(Xp, warm)
        return -_val_loss(fit.model, Xv, yv, loss), fit

    def body(c, _):
        Xp, st, warm = c
        (val, fit), g = jax.value_and_grad(objective, has_aux=True)(Xp, warm)
        upd, st = opt.update(g * width, st, Xp)
        Xp = jnp.clip(optax.apply_updates(Xp, upd * width), lo, hi)
        fit = jax.lax.stop_gradient(fit)
        return (Xp, st, fit), -val

    (Xp, _, _), hist = jax.lax.scan(body, (Xp0, opt.init(Xp0), zeros), None, length=steps)
    final = train(Xp, zeros)
    val_final = _val_loss(final.model, Xv, yv, loss)
    return Xp, final, jnp.concatenate([hist, val_final[None]])


def gradient_poisoning_attack(
    X: Float[Array, "n d"], y, X_val, y_val, *, loss: str = "hinge", reg, lower, upper,
    budget: int, steps: int = 50, lr: float = 0.05, key=None, X_init=None, y_init=None,
    solver: LinearSolver | None = None, throw: bool = True,
) -> GradientAttackResult:
    r"""Validation-loss ascent on `budget` points through the trained model.

    Args:
      X, y: clean training data; X_val, y_val: the attacker's validation data (it enters
        the objective).
      loss, reg: the victim's training problem; lower, upper: the feasible box.
      budget: number of poison points.
      steps: projected Adam steps; lr: step size relative to the box width (> 0).
      key: PRNG key used to pick the initial points (training points with flipped labels);
        required unless `X_init`, `y_init` are given.
      X_init, y_init: initial poison points and their (fixed) labels, `(budget, d)`.
      solver: `LinearSolver` for the retrainings.
      throw: raise if a retraining failed or the loss became non-finite.
    Returns:
      `GradientAttackResult`.
    """
    X, y, _, lo, hi = check_poisoning_problem(loss, X, y, None, reg, lower, upper)
    dtype = X.dtype
    Xv = V.as_float_array(X_val, "X_val", ndim=2, dtype=dtype)
    yv = as_labels(y_val, "y_val", dtype)
    V.check_same_length(Xv, "X_val", yv, "y_val")
    n, d = X.shape
    V.check_shape(Xv, "X_val", (None, d))
    budget = V.check_int(budget, "budget", low=1)
    steps = V.check_int(steps, "steps", low=1)
    V.check_positive(lr, "lr")
    if X_init is None:
        if y_init is not None:
            raise ValueError("y_init is only used with X_init; got y_init without X_init")
        V.check_key(key)
        idx = jax.random.choice(key, n, (budget,), replace=budget > n)
        Xp0, yp = jnp.clip(X[idx], lo, hi), -y[idx]
    else:
        Xp0 = V.as_float_array(X_init, "X_init", ndim=2, dtype=dtype)
        V.check_shape(Xp0, "X_init", (budget, d))
        if y_init is None:
            raise ValueError("y_init is required with X_init")
        yp = as_labels(y_init, "y_init", dtype)
        V.check_same_length(Xp0, "X_init", yp, "y_init")
        Xp0 = jnp.clip(Xp0, lo, hi)
    if solver is None:
        solver = LinearSolver()
    if not isinstance(solver, LinearSolver):
        raise TypeError(f"solver must be a LinearSolver; got {type(solver).__name__}")
    solver = solver.resolve(loss, dtype)
    Xp, fit, hist = _run(X, y, Xp0, yp, Xv, yv, lo, hi, reg, jnp.asarray(lr, dtype), solver,
                         loss=loss, steps=steps)
    status = jnp.where(jnp.all(jnp.isfinite(hist)), fit.status, Status.NUMERICAL_ERROR)
    result = GradientAttackResult(status=status.astype(jnp.int32),
                                  iterations=jnp.asarray(steps, jnp.int32), X_poison=Xp,
                                  y_poison=yp.astype(jnp.int32), model=fit.model,
                                  val_loss=hist)
    return raise_if_failed(result, "gradient_poisoning_attack", throw=throw)
