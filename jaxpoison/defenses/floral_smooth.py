r"""Smoothed FLORAL: the FLORAL game with a differentiable attacker, for meta-gradients.

`jaxpoison.defenses.floral` plays the game of Bal et al. (ICLR 2025): every round the
learner takes a projected-gradient step on the SVM dual under the adversarial labels, and
the attacker ranks the support vectors by $\lambda^t$, keeps the top
$m = \min(|S|, 2k)$ and flips $k$ of them drawn at random (positions $P_t$ of the
ranking, $|P_t| = k$, fixed by the key). The ranking is piecewise constant in
$\lambda^t$, so the validation loss after $T$ rounds is piecewise smooth with dense
jumps in $(C, \gamma, \eta)$ and its exact derivative is useless to a meta-optimiser.

Here the attacker's flip of point $i$ becomes a probability $\mu_i \in [0, 1]$,
the labels become soft, $\tilde y_i = y_i (1 - 2\mu_i) \in [-1, 1]$, and the learner
steps on the dual of the SVM with soft labels,

$$
\lambda^t = P_{\{\tilde y^\top\lambda = 0,\ 0\le\lambda\le C\}}
\bigl(\lambda^{t-1} - \eta\,(\tilde Q\lambda^{t-1} - \mathbf 1)\bigr),
\qquad \tilde Q = (\tilde y\tilde y^\top)\circ K .
$$

* `smoothing="entropic"` (deterministic, $C^\infty$ in the ranking): the indicator
  "rank of $i$ is $p$" is $\operatorname{topk}_{p+1}(\lambda)_i -
  \operatorname{topk}_p(\lambda)_i$; with the entropic soft top-k of
  `jaxpoison.solvers.smoothing.soft_topk` at temperature $\sigma$ = `scale`,

  $$
  \mu_i = \sum_{p \in P_t} \bigl[\operatorname{soft\,topk}_{p+1}(\lambda)_i
  - \operatorname{soft\,topk}_{p}(\lambda)_i\bigr], \qquad \sum_i \mu_i = k .
  $$

* `smoothing="perturbed"`: $\mu = \mathbb E_Z[\text{exact flip mask}(\lambda + \sigma Z)]$
  (Berthet et al. 2020; `jaxpoison.solvers.smoothing.perturbed`), `num_samples` draws
  per round; the value is a Monte-Carlo estimate (jumps $\le 1/M$), the derivative an
  unbiased estimate of the smoothed one.
* `smoothing="exact"` (no `scale`): the exact attacker, for reference. It has no
  derivative in the attacker's choices; asking for one raises
  `jaxpoison.solvers.smoothing.NoDerivativeError` (use `floral_validation_loss` for the
  derivative with the choices held fixed).

The support-vector threshold is relaxed too: the bias is the weighted mean of
$\tilde y_i - f(x_i)$ with weights $w_i = \operatorname{clip}((\lambda_i - \theta)/\rho + 1,
0, 1)$, $\rho = \min(\sigma, \theta)$ ($\theta$ = `sv_threshold`), and the final
coefficients are $w_i\lambda_i\tilde y_i$, so nothing jumps when a dual crosses
$\theta$. Ties in $\lambda$ (many duals at $C$) are broken by index, as the exact
game's stable `top_k`, through a shift of $10^{-9} C\,i/n$.

As $\sigma \to 0$ every relaxed step tends to the exact one and the game is the exact
FLORAL game (tested against `floral_validation_loss`). Two choices stay discrete and are
documented rather than smoothed: the positions $P_t$ (a function of the key) and the
candidate count $m = \min(|S|, 2k)$, which only moves when fewer than $2k$ duals
exceed the threshold.
"""

from __future__ import annotations

import functools

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from jaxpoison import _validate as v
from jaxpoison._result import Result, Status, raise_if_failed
from jaxpoison.models.kernels import KERNELS, kernel_matrix, resolve_gamma
from jaxpoison.solvers.box_hyperplane import project_box_hyperplane
from jaxpoison.solvers.smoothing import (
    SMOOTHINGS,
    check_scale,
    no_derivative,
    perturbed,
    soft_topk,
)

__all__ = ["SmoothFloralResult", "smooth_floral",
           "smooth_floral_validation_loss"]

_TIE = 1e-9        # index tie-break, relative to C
_EXACT_MSG = ("smoothing='exact' has no derivative in the attacker's choices (a hard "
              "top-k of the duals); pass smoothing='entropic' or 'perturbed' with a "
              "scale > 0, or use jaxpoison.defenses.floral_validation_loss for the "
              "derivative with the choices held fixed")


class SmoothFloralResult(Result):
    """Outcome of `smooth_floral`.

    Attributes:
        lam: final dual iterate $\\lambda^T$.
        coef: final coefficients $w_i\\lambda_i\\tilde y_i$ (module docstring).
        intercept: final bias.
        labels: the soft labels $\\tilde y$ used in the last learner step.
        flip_prob: the attacker's last flip probabilities $\\mu$ (sum = `budget`).
        X_train, gamma: training points and kernel parameter (for `decision_function`).
    """

    lam: jax.Array
    coef: jax.Array
    intercept: jax.Array
    labels: jax.Array
    flip_prob: jax.Array
    X_train: jax.Array
    gamma: jax.Array
    kernel: str = eqx.field(static=True, default="rbf")

    def decision_function(self, X: Float[Array, "m d"]) -> Float[Array, " m"]:
        """$f(x) = \\sum_i \\mathrm{coef}_i\\, k(x_i, x) + b$."""
        X = jnp.asarray(X, self.X_train.dtype)
        return kernel_matrix(X, self.X_train, self.gamma, kernel=self.kernel) @ self.coef \
            + self.intercept

    def predict(self, X) -> jax.Array:
        return jnp.where(self.decision_function(X) > 0, 1, -1)

    def accuracy(self, X, y) -> jax.Array:
        return jnp.mean(self.predict(X) == jnp.asarray(y))


def _positions(key, lam, budget, m_max, thr):
    """The exact attacker's random ranking positions (boolean over 0..m_max-1)."""
    m = jnp.minimum(jnp.sum(lam > thr), m_max)
    u = jax.random.uniform(key, (m_max,), dtype=lam.dtype)
    u = jnp.where(jnp.arange(m_max) < m, u, jnp.inf)
    _, pos = jax.lax.top_k(-u, budget)
    return jnp.zeros(m_max, bool).at[pos].max(pos < m)


def _flip_mask(scores, sel):
    """Exact flip mask: flip the points ranked at the selected positions."""
    (sel,) = sel
    _, cand = jax.lax.top_k(scores, sel.shape[0])
    return jnp.zeros(scores.shape, scores.dtype).at[cand].max(sel.astype(scores.dtype))


def _attacker(lam, sel, key, scale, C, *, smoothing, thr, num_samples):
    n = lam.shape[0]
    m_max = sel.shape[0]
    if smoothing == "exact":
        lam = no_derivative(lam, _EXACT_MSG)
        return _flip_mask(jnp.where(lam > thr, lam, -jnp.inf), (sel,))
    s = lam - _TIE * C * jnp.arange(n, dtype=lam.dtype) / n
    if smoothing == "entropic":
        T = jax.vmap(lambda j: soft_topk(s, j, scale=scale))(
            jnp.arange(m_max + 1, dtype=lam.dtype))
        return sel.astype(lam.dtype) @ (T[1:] - T[:-1])
    smooth = perturbed(_flip_mask, num_samples=num_samples, key=key)
    return smooth(s, scale, (sel,))


def _sv_weight(lam, thr, scale, smoothing):
    if smoothing == "exact":
        return (lam > thr).astype(lam.dtype)
    rho = jnp.minimum(scale, thr)
    return jnp.clip((lam - thr) / rho + 1.0, 0.0, 1.0)


def _smooth_game(K, y, C, lr, key, scale, *, budget, steps, smoothing, thr, factor,
                 num_samples):
    dtype = K.dtype
    n = K.shape[0]
    m_max = min(factor * budget, n)

    def body(carry, _):
        lam, y_soft, _, _, _, _, key = carry
        key, sub = jax.random.split(key)
        grad = y_soft * (K @ (y_soft * lam)) - 1.0
        lam = project_box_hyperplane(lam - lr * grad, y_soft, C, method="bisect")
        w = _sv_weight(lam, thr, scale, smoothing)
        coef = w * lam * y_soft
        sw = jnp.sum(w)
        b = jnp.where(sw > 0, jnp.sum(w * (y_soft - K @ coef)) / jnp.where(sw > 0, sw, 1.0),
                      0.0)
        if budget == 0:
            mu = jnp.zeros(n, dtype)
        else:
            sel = _positions(sub, jax.lax.stop_gradient(lam), budget, m_max, thr)
            mu = _attacker(lam, sel, jax.random.fold_in(sub, 1), scale, C,
                           smoothing=smoothing, thr=thr, num_samples=num_samples)
        return (lam, y * (1.0 - 2.0 * mu), y_soft, coef, b, mu, key), None

    zeros = jnp.zeros(n, dtype)
    carry0 = (zeros, y, y, zeros, jnp.zeros((), dtype), zeros, key)
    (lam, _, y_last, coef, b, mu, _), _ = jax.lax.scan(body, carry0, None, length=steps)
    return lam, coef, b, mu, y_last


@functools.partial(jax.jit, static_argnames=(
    "budget", "steps", "smoothing", "kernel", "factor", "num_samples"))
def _smooth_floral_jit(X, y, C, gamma, lr, scale, thr, key, *, budget, steps, smoothing,
                       kernel, factor, num_samples):
    dtype = X.dtype
    K = kernel_matrix(X, X, gamma, kernel=kernel)
    lam, coef, b, mu, y_last = _smooth_game(
        K, y.astype(dtype), C, lr, key, scale, budget=budget, steps=steps,
        smoothing=smoothing, thr=thr, factor=factor, num_samples=num_samples)
    finite = jnp.all(jnp.isfinite(lam)) & jnp.isfinite(b)
    status = jnp.where(finite, Status.SUCCESS, Status.NUMERICAL_ERROR).astype(jnp.int32)
    return SmoothFloralResult(status=status, iterations=jnp.asarray(steps, jnp.int32),
                              lam=lam, coef=coef, intercept=b, labels=y_last, flip_prob=mu,
                              X_train=X, gamma=jnp.asarray(gamma, dtype), kernel=kernel)


def _check(X, y, C, gamma, lr, budget, steps, key, scale, smoothing, kernel, num_samples,
           candidate_factor):
    X = v.as_float_array(X, "X", ndim=2)
    y = v.as_label_array(y, "y", allowed=(-1, 1))
    v.check_same_length(X, "X", y, "y")
    v.check_choice(smoothing, "smoothing", SMOOTHINGS)
    check_scale(scale, "scale", smoothing=smoothing)
    v.check_choice(kernel, "kernel", KERNELS)
    gamma = resolve_gamma(gamma, X)
    v.check_positive(gamma, "gamma")
    v.check_positive(C, "C")
    v.check_positive(lr, "lr")
    budget = v.check_int(budget, "budget", low=0, high=X.shape[0])
    steps = v.check_int(steps, "steps", low=1)
    num_samples = v.check_int(num_samples, "num_samples", low=2)
    if num_samples % 2:
        raise ValueError(f"num_samples must be even (antithetic pairs); got {num_samples}")
    candidate_factor = v.check_int(candidate_factor, "candidate_factor", low=1)
    v.check_key(key)
    dtype = X.dtype
    scale = jnp.asarray(1.0 if scale is None else scale, dtype)
    return (X, y, jnp.asarray(C, dtype), jnp.asarray(gamma, dtype), jnp.asarray(lr, dtype),
            scale, budget, steps, num_samples, candidate_factor)


def smooth_floral(
    X: Float[Array, "n d"], y, *, C=10.0, gamma=1.0, lr=1e-3, budget: int,
    steps: int = 500, key, scale=None, smoothing: str = "entropic", num_samples: int = 64,
    kernel: str = "rbf", sv_threshold: float = 1e-5, candidate_factor: int = 2,
    throw: bool = True,
) -> SmoothFloralResult:
    r"""Play the smoothed FLORAL game for `steps` rounds (module docstring).

    Args:
        X: training points `(n, d)`; y: labels in $\{-1, +1\}$.
        C, gamma, lr: box bound, kernel parameter and step size (traceable,
            differentiable).
        budget: the attacker's flips per round $k$ (`0 <= budget <= n`).
        steps: number of rounds $T$ (static).
        key: PRNG key of the attacker's draws (keyword-only, required); the same key
            gives the same positions $P_t$ as `jaxpoison.defenses.floral`.
        scale: smoothing scale $\sigma > 0$ in units of $\lambda$ (required
            unless `smoothing="exact"`, where it must be left out).
        smoothing: `"entropic"` (default), `"perturbed"` or `"exact"`.
        num_samples: Monte-Carlo draws per round for `"perturbed"` (even).
        kernel, sv_threshold, candidate_factor: as in `floral`.
        throw: raise on a non-finite result.

    Returns:
        `SmoothFloralResult`.
    """
    (X, y, C, gamma, lr, scale, budget, steps, num_samples, factor) = _check(
        X, y, C, gamma, lr, budget, steps, key, scale, smoothing, kernel, num_samples,
        candidate_factor)
    res = _smooth_floral_jit(X, y, C, gamma, lr, scale, jnp.asarray(sv_threshold, X.dtype),
                             key, budget=budget, steps=steps, smoothing=smoothing,
                             kernel=kernel, factor=factor, num_samples=num_samples)
    return raise_if_failed(res, "smooth_floral", throw=throw)


def _loss(z, loss):
    if loss == "logistic":
        return jnp.mean(jax.nn.softplus(-z))
    return jnp.mean(jnp.where(z >= 1, 0.0, jnp.where(z <= 0, 0.5 - z, 0.5 * (1 - z) ** 2)))


@functools.partial(jax.jit, static_argnames=(
    "budget", "steps", "smoothing", "kernel", "factor", "num_samples", "loss"))
def _val_loss_jit(X, y, Xv, yv, C, gamma, lr, scale, thr, key, *, budget, steps, smoothing,
                  kernel, factor, num_samples, loss):
    dtype = X.dtype
    K = kernel_matrix(X, X, gamma, kernel=kernel)
    _, coef, b, _, _ = _smooth_game(
        K, y.astype(dtype), C, lr, key, scale, budget=budget, steps=steps,
        smoothing=smoothing, thr=thr, factor=factor, num_samples=num_samples)
    f = kernel_matrix(Xv, X, gamma, kernel=kernel) @ coef + b
    return _loss(yv.astype(dtype) * f, loss)


def smooth_floral_validation_loss(
    X: Float[Array, "n d"], y, X_val: Float[Array, "m d"], y_val, *, C, gamma, lr,
    budget: int, steps: int, key, scale=None, smoothing: str = "entropic",
    loss: str = "logistic", num_samples: int = 64, kernel: str = "rbf",
    sv_threshold: float = 1e-5, candidate_factor: int = 2,
) -> Float[Array, ""]:
    r"""Validation loss of the smoothed FLORAL model; differentiable in `C`, `gamma`, `lr`,
    `scale` (and `X`).

    $$
    L_\sigma(C, \gamma, \eta) = \frac1m\sum_{j=1}^m \ell\bigl(y^{val}_j f_T(x^{val}_j)\bigr),
    \qquad \ell(z) = \log(1 + e^{-z})\ (\text{`"logistic"`})\ \text{or the smooth hinge},
    $$

    with $f_T$ the classifier after `steps` rounds of the smoothed game (`smooth_floral`).
    For $\sigma \to 0$ it tends to `jaxpoison.defenses.floral_validation_loss`. The
    arguments are checked when concrete, so the function also runs under `jit`, `vmap`
    and `grad` (traced `C`, `gamma`, `lr`, `scale`). With `smoothing="exact"` any
    derivative raises `NoDerivativeError`.
    """
    (X, y, C, gamma, lr, scale, budget, steps, num_samples, factor) = _check(
        X, y, C, gamma, lr, budget, steps, key, scale, smoothing, kernel, num_samples,
        candidate_factor)
    v.check_choice(loss, "loss", ("logistic", "smooth_hinge"))
    Xv = v.as_float_array(X_val, "X_val", ndim=2, dtype=X.dtype)
    yv = v.as_label_array(y_val, "y_val", allowed=(-1, 1))
    v.check_same_length(Xv, "X_val", yv, "y_val")
    if Xv.shape[1] != X.shape[1]:
        raise ValueError(f"X_val must have {X.shape[1]} columns like X; got {Xv.shape[1]}")
    return _val_loss_jit(X, y, Xv, yv, C, gamma, lr, scale,
                         jnp.asarray(sv_threshold, X.dtype), key, budget=budget, steps=steps,
                         smoothing=smoothing, kernel=kernel, factor=factor,
                         num_samples=num_samples, loss=loss)
