r"""Smoothed label-flip attacks: flip probabilities with a scale, for meta-gradients.

`jaxpoison.attacks.topk_sv_flip` flips the $L$ points with the largest clean-SVM dual
variables $\alpha$ (ties among $\alpha_i = C$ broken by the smaller margin). The choice
is piecewise constant in the data and in $(C, \gamma)$, so anything downstream of it
(the poisoned model's validation loss, a defender's hyperparameters) jumps. Here:

* the clean dual is $T$ = `steps` projected-gradient steps from $\alpha^0 = 0$
  (`jaxpoison.solvers.unrolled_svm_dual`),
  $\alpha^{t} = P_{\{y^\top\alpha=0,\,0\le\alpha\le C\}}(\alpha^{t-1} - \eta(Q\alpha^{t-1}
  - \mathbf 1))$ with $\eta = 1/\lambda_{\max}(Q)$ (30 power iterations), so it is
  differentiable in $X$, $C$ and $\gamma$ by unrolling; the bias is $\mu/\eta$ with
  $\mu$ the multiplier of the last projection (continuous, no support-set threshold);
* the choice is relaxed by `jaxpoison.solvers.smoothing`: `"entropic"` gives
  $\mu = \operatorname{soft\,topk}_L(s; \sigma)$, `"perturbed"` gives
  $\mu = \mathbb E_Z\,\operatorname{topk}_L(s + \sigma Z)$, `"exact"` the hard mask
  (its derivative raises `NoDerivativeError`), with scores
  $s_i = \alpha_i - 10^{-9}\tanh(y_i f(x_i))$ as in `topk_sv_flip`;
* the poisoned labels are soft, $\tilde y_i = y_i(1 - 2\mu_i)$: the label in
  expectation over the relaxed flip, equal to the exact flipped labels at $\mu \in
  \{0, 1\}^n$.

`smooth_label_flip_validation_loss` closes the loop: the victim retrains (the same
`steps` dual steps, on $\tilde y$) and the validation loss is returned, a smooth function
of $(C, \gamma, \sigma)$ that tends to the exact attack's as $\sigma \to 0$.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from jaxpoison import _validate as v
from jaxpoison._result import Result, Status, raise_if_failed
from jaxpoison.models.kernels import KERNELS, kernel_matrix, resolve_gamma
from jaxpoison.solvers.smoothing import (
    check_smoothing,
    no_derivative,
    perturbed,
    soft_topk,
    topk_mask,
)
from jaxpoison.solvers.svm_dual_unrolled import unrolled_svm_dual

__all__ = ["SmoothLabelFlipResult", "smooth_topk_sv_flip", "smooth_label_flip_validation_loss",
           "check_smooth_flip_inputs", "check_validation_data"]

_EXACT_MSG = ("smoothing='exact' has no derivative: the top-`budget` choice is piecewise "
              "constant in the duals; pass smoothing='entropic' or 'perturbed' with a "
              "scale > 0")


class SmoothLabelFlipResult(Result):
    """Outcome of `smooth_topk_sv_flip`.

    Attributes:
        flip_prob: relaxed flip indicator $\\mu \\in [0,1]^n$, $\\sum_i\\mu_i$ = budget.
        labels: soft poisoned labels $\\tilde y = y(1 - 2\\mu)$.
        alpha: the clean SVM dual after `steps` projected-gradient steps.
        scores: the ranking scores $s$.
    """

    flip_prob: jax.Array
    labels: jax.Array
    alpha: jax.Array
    scores: jax.Array


def _flip(K, yf, C, scale, key, *, budget, steps, smoothing, num_samples):
    alpha, b = unrolled_svm_dual(K, yf, C, steps=steps)
    f = K @ (alpha * yf) + b
    s = alpha - 1e-9 * jnp.tanh(yf * f)
    if budget == 0:
        mu = jnp.zeros_like(s)
    elif smoothing == "exact":
        mu = topk_mask(jax.lax.stop_gradient(s), budget) + 0.0 * no_derivative(s, _EXACT_MSG)
    elif smoothing == "entropic":
        mu = soft_topk(s, budget, scale=scale)
    else:
        mu = perturbed(lambda z, _: topk_mask(z, budget), num_samples=num_samples,
                       key=key)(s, scale)
    return mu, alpha, s


@functools.partial(jax.jit, static_argnames=("budget", "steps", "smoothing", "kernel",
                                             "num_samples"))
def _flip_jit(X, y, C, gamma, scale, key, *, budget, steps, smoothing, kernel, num_samples):
    yf = y.astype(X.dtype)
    K = kernel_matrix(X, X, gamma, kernel=kernel)
    mu, alpha, s = _flip(K, yf, C, scale, key, budget=budget, steps=steps,
                         smoothing=smoothing, num_samples=num_samples)
    finite = jnp.all(jnp.isfinite(mu)) & jnp.all(jnp.isfinite(alpha))
    return SmoothLabelFlipResult(
        status=jnp.where(finite, Status.SUCCESS, Status.NUMERICAL_ERROR).astype(jnp.int32),
        iterations=jnp.asarray(steps, jnp.int32), flip_prob=mu, labels=yf * (1 - 2 * mu),
        alpha=alpha, scores=s)


def check_smooth_flip_inputs(X, y, *, budget, C, gamma, kernel, scale, smoothing, key, steps,
                             num_samples, key_required: bool = False):
    """The boundary check shared by the smoothed label-flip attacks.

    `X` (n, d) finite, `y` in $\\{-1, +1\\}$ of the same length, $0 \\le$ `budget`
    $\\le n$, `C` $> 0$, `kernel` known, `gamma` $> 0$ (after `resolve_gamma`), `steps`
    $\\ge 1$, and `smoothing`, `scale`, `key`, `num_samples` as
    `jaxpoison.solvers.check_smoothing` says (`key_required`: the attack itself draws
    random numbers). Raises `ValueError` / `TypeError` naming the argument. Returns
    `(X, y, budget, C, gamma, scale, key, steps, num_samples)` with `C`, `gamma`, `scale`
    as arrays of `X`'s dtype (`scale` 1 when left out) and a placeholder key when none is
    used.
    """
    X = v.as_float_array(X, "X", ndim=2)
    y = v.as_label_array(y, "y", allowed=(-1, 1))
    v.check_same_length(X, "X", y, "y")
    budget = v.check_int(budget, "budget", low=0, high=X.shape[0])
    v.check_positive(C, "C")
    v.check_choice(kernel, "kernel", KERNELS)
    gamma = resolve_gamma(gamma, X)
    v.check_positive(gamma, "gamma")
    num_samples = check_smoothing(smoothing, scale, key=key, num_samples=num_samples,
                                  key_required=key_required)
    steps = v.check_int(steps, "steps", low=1)
    dtype = X.dtype
    key = jax.random.key(0) if key is None else key   # unused placeholder (no randomness)
    return (X, y, budget, jnp.asarray(C, dtype), jnp.asarray(gamma, dtype),
            jnp.asarray(1.0 if scale is None else scale, dtype), key, steps, num_samples)


def check_validation_data(X, X_val, y_val):
    """`X_val` (m, d) with `X`'s feature count and dtype, `y_val` in $\\{-1, +1\\}$ of the
    same length; returns `(X_val, y_val)` as arrays."""
    Xv = v.as_float_array(X_val, "X_val", ndim=2, dtype=X.dtype)
    v.check_shape(Xv, "X_val", (None, X.shape[1]))
    yv = v.as_label_array(y_val, "y_val", allowed=(-1, 1))
    v.check_same_length(Xv, "X_val", yv, "y_val")
    return Xv, yv


def smooth_topk_sv_flip(
    X: Float[Array, "n d"], y, *, budget: int, C=1.0, gamma=1.0, scale=None,
    smoothing: str = "entropic", key=None, steps: int = 300, num_samples: int = 256,
    kernel: str = "rbf", throw: bool = True,
) -> SmoothLabelFlipResult:
    r"""Relaxed `topk_sv_flip`: flip probabilities of the `budget` largest clean duals.

    Args:
        X, y: training data, labels in $\{-1, +1\}$.
        budget: number of flips $L$.
        C, gamma, kernel: the victim's kernel SVM (traceable `C`, `gamma`).
        scale: smoothing scale $\sigma > 0$ in units of $\alpha$ (required unless
            `smoothing="exact"`, where it must be left out).
        smoothing: `"entropic"` (default, deterministic), `"perturbed"` (needs `key`)
            or `"exact"`.
        key: PRNG key of the Monte-Carlo draws, only with `"perturbed"`.
        steps: projected-gradient steps of the clean dual (static).
        num_samples: Monte-Carlo draws for `"perturbed"` (even).
        throw: raise on a non-finite result.

    Returns:
        `SmoothLabelFlipResult`; with `"exact"` and enough `steps` its rounded
        `flip_prob` is `topk_sv_flip`'s flip mask.
    """
    (X, y, budget, C, gamma, scale, key, steps, num_samples) = check_smooth_flip_inputs(
        X, y, budget=budget, C=C, gamma=gamma, kernel=kernel, scale=scale,
        smoothing=smoothing, key=key, steps=steps, num_samples=num_samples)
    res = _flip_jit(X, y, C, gamma, scale, key, budget=budget, steps=steps,
                    smoothing=smoothing, kernel=kernel, num_samples=num_samples)
    return raise_if_failed(res, "smooth_topk_sv_flip", throw=throw)


@functools.partial(jax.jit, static_argnames=("budget", "steps", "smoothing", "kernel",
                                             "num_samples"))
def _val_jit(X, y, Xv, yv, C, gamma, scale, key, *, budget, steps, smoothing, kernel,
             num_samples):
    dtype = X.dtype
    yf = y.astype(dtype)
    K = kernel_matrix(X, X, gamma, kernel=kernel)
    mu, _, _ = _flip(K, yf, C, scale, key, budget=budget, steps=steps, smoothing=smoothing,
                     num_samples=num_samples)
    y_soft = yf * (1 - 2 * mu)
    alpha, b = unrolled_svm_dual(K, y_soft, C, steps=steps)
    f = kernel_matrix(Xv, X, gamma, kernel=kernel) @ (alpha * y_soft) + b
    return jnp.mean(jax.nn.softplus(-yv.astype(dtype) * f))


def smooth_label_flip_validation_loss(
    X: Float[Array, "n d"], y, X_val, y_val, *, budget: int, C, gamma, scale=None,
    smoothing: str = "entropic", key=None, steps: int = 300, num_samples: int = 256,
    kernel: str = "rbf",
) -> Float[Array, ""]:
    r"""Logistic validation loss of the SVM retrained on `smooth_topk_sv_flip`'s labels.

    $L_\sigma(C,\gamma) = \frac1m\sum_j \log(1 + e^{-y^{val}_j f(x^{val}_j)})$, with $f$
    the kernel SVM after `steps` dual projected-gradient steps on $\tilde y$. Smooth in
    `C`, `gamma`, `scale` and `X` for `"entropic"`; arguments as in
    `smooth_topk_sv_flip` (checked when concrete, so it runs under `jit`/`grad`).
    """
    (X, y, budget, C, gamma, scale, key, steps, num_samples) = check_smooth_flip_inputs(
        X, y, budget=budget, C=C, gamma=gamma, kernel=kernel, scale=scale,
        smoothing=smoothing, key=key, steps=steps, num_samples=num_samples)
    Xv, yv = check_validation_data(X, X_val, y_val)
    return _val_jit(X, y, Xv, yv, C, gamma, scale, key, budget=budget, steps=steps,
                    smoothing=smoothing, kernel=kernel, num_samples=num_samples)
