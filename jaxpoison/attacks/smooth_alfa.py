r"""Smoothed ALFA and ALFA-tilt: flip probabilities with a scale, for meta-gradients.

The exact attacks (`jaxpoison.attacks.alfa`, `jaxpoison.attacks.alfa_tilt`) pick the
`budget` $L$ points with the smallest score, refit SMO on the flipped labels and (ALFA)
repeat until the flip set repeats. Every pick is piecewise constant in the data and in
$(C, \gamma)$, so a loss downstream jumps. Here:

* every SVM fit is $T$ = `steps` unrolled projected-gradient steps on the dual
  (`jaxpoison.solvers.unrolled_svm_dual`), differentiable in $X$, $C$, $\gamma$ and the
  labels;
* every top-$L$ pick of a score $r \in \mathbb R^n$ is relaxed to flip probabilities
  $\mu\in[0,1]^n$, $\sum_i\mu_i = L$: `"entropic"`
  $\mu = \operatorname{soft\,topk}_L(r;\sigma)$, `"perturbed"`
  $\mu = \mathbb E_Z\operatorname{topk}_L(r + \sigma Z)$, `"exact"` the hard mask (its
  derivative raises `NoDerivativeError`);
* the tainted labels are soft, $\tilde y = y\circ(1 - 2\mu)$ (the label in expectation
  over the relaxed flip, equal to the exact flipped labels at $\mu\in\{0,1\}^n$), and the
  next fit uses them.

**ALFA** (`smooth_alfa`). With $f_0$ the clean fit, $\psi_i(\pm) = [1 \mp y_if_0(x_i)]_+$;
with $f$ the fit on the current $\tilde y$, $\xi_i(\pm) = [1 \mp y_if(x_i)]_+$; in the
smoothed modes every hinge $[u]_+$ is $\sigma\operatorname{softplus}(u/\sigma)$ (within
$\sigma\log 2$ of it; without this the derivative jumps wherever a margin crosses 1 and
central differences at a practical $\varepsilon$ can miss it, see `docs/metagrad.md`). The pick
score is $r_i = -\delta_i$, $\delta_i = [\xi_i(-) - \psi_i(-)] - [\xi_i(+) - \psi_i(+)]$
(ALFA's LP with unit costs picks the $L$ smallest $\delta$). Start: $\xi = 0$; then
exactly `alternations` (static) rounds fit $\to$ pick. The exact attack stops when the
flip set repeats; from then on further rounds repeat it, so any `alternations` at least
the exact attack's `iterations` gives its flips (at `"exact"`, or $\sigma\to0$, with
enough `steps`).

**ALFA-tilt** (`smooth_alfa_tilt`). Score $v_i = a_i/C - \beta_1 s_i - \beta_2 q_i$ with
$s_i = y_if_0(x_i)/\max_j|y_jf_0(x_j)|$; the pick score is $r = -v$ (flip the smallest
$v$).

* `variant="authors"`: $a_i = \alpha_i y_i$ (signed), $q = s$: one relaxed pick.
* `variant="xiao"`: $a_i = \alpha_i$, $q^{(j)}$ the normalised margins of `num_trials`
  random classifiers $f^{(j)}(x) = \sum_i c_i k(x_i,x) + b$, $c, b\sim U(-1,1)$ drawn
  from `key` exactly as `alfa_tilt` draws them. Each candidate $\mu^{(j)}$ is refitted on
  its soft labels and scored by the cosine $\kappa_j = \langle w^{(j)},w\rangle_{\mathcal H}
  /(\|w^{(j)}\|\|w\|)$ with the clean weight vector; the exact argmin over candidates is
  relaxed with **the same scale** $\sigma$ (cosines lie in $[-1, 1]$, the pick scores in
  about $[-3, 3]$, so one scale serves both): `"entropic"` uses the softmin weights
  $\pi_j = e^{-\kappa_j/\sigma}/\sum_l e^{-\kappa_l/\sigma}$, `"perturbed"` the
  perturbed argmin $\pi = \mathbb E_Z\,\mathrm{onehot}(\arg\min_j(\kappa_j + \sigma
  Z_j))$, and $\mu = \sum_j\pi_j\mu^{(j)}$.

The validation-loss closures (`smooth_alfa_validation_loss`,
`smooth_alfa_tilt_validation_loss`) retrain the victim on $\tilde y$ (the same `steps`)
and return the mean logistic loss
$\frac1m\sum_j\log(1+e^{-y^{val}_jf(x^{val}_j)})$: continuous in $(C,\gamma,\sigma, X)$
(the hinge losses and the dual's clip make it piecewise smooth, not $C^\infty$), and
differentiable by reverse mode for `"entropic"` and `"perturbed"`.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from jaxpoison import _validate as v
from jaxpoison._result import Result, Status, raise_if_failed
from jaxpoison.attacks.label_flip import ALFA_TILT_VARIANTS
from jaxpoison.attacks.smooth_label_flip import check_smooth_flip_inputs, check_validation_data
from jaxpoison.models.kernels import kernel_matrix
from jaxpoison.solvers.smoothing import (
    no_derivative,
    perturbed,
    soft_topk,
    topk_mask,
)
from jaxpoison.solvers.svm_dual_unrolled import unrolled_svm_dual

__all__ = ["SmoothFlipResult", "smooth_alfa", "smooth_alfa_tilt", "smooth_alfa_validation_loss",
           "smooth_alfa_tilt_validation_loss"]

_EXACT_MSG = ("smoothing='exact' has no derivative: the attack's discrete picks are piecewise "
              "constant; pass smoothing='entropic' or 'perturbed' with a scale > 0")


class SmoothFlipResult(Result):
    r"""Outcome of a smoothed label-flip attack (`smooth_alfa`, `smooth_alfa_tilt`,
    `smooth_greedy_lfa`).

    Attributes:
        flip_prob: relaxed flip indicator $\mu\in[0,1]^n$ ($\sum_i\mu_i = $ `budget`
            for the ALFA family; $\le$ `budget` for the greedy attack).
        labels: soft poisoned labels $\tilde y = y(1 - 2\mu)$.
        score: the attack's objective of the returned flips: ALFA
            $\sum_i\mu_i\delta_i$ at the last fit; ALFA-tilt the (weighted) cosine
            $\kappa$; greedy the smoothed validation score of the last step.
        change: $\max_i|\mu_i - \mu_i^{prev}|$ between the last two picks (ALFA: a
            convergence check of the alternation; 0 where there is only one pick).
    """

    flip_prob: jax.Array
    labels: jax.Array
    score: jax.Array
    change: jax.Array


def _relaxed_topk(scores: Float[Array, " n"], budget: int, scale, key, *, smoothing: str,
                 num_samples: int = 256) -> Float[Array, " n"]:
    r"""The top-`budget` pick of `scores` in one of the `SMOOTHINGS` (a jit-safe core).

    `"entropic"`: `soft_topk(scores, budget, scale=scale)`; `"perturbed"`:
    $\mathbb E_Z\operatorname{topk}(s + \sigma Z)$ over `num_samples` draws from `key`;
    `"exact"`: the hard mask, whose derivative raises `NoDerivativeError`. No value
    checks (the public attacks check their arguments).
    """
    if budget == 0:
        return jnp.zeros_like(scores)
    if smoothing == "exact":
        return (topk_mask(jax.lax.stop_gradient(scores), budget)
                + 0.0 * no_derivative(scores, _EXACT_MSG))
    if smoothing == "entropic":
        return soft_topk(scores, budget, scale=scale)
    return perturbed(lambda z, _: topk_mask(z, budget), num_samples=num_samples,
                     key=key)(scores, scale)


def _argmin_weights(c, scale, key, *, smoothing, num_samples):
    """Relaxed one-hot argmin of `c` (softmin / perturbed argmin / exact)."""
    if smoothing == "exact":
        hard = jax.nn.one_hot(jnp.argmin(jax.lax.stop_gradient(c)), c.shape[0], dtype=c.dtype)
        return hard + 0.0 * no_derivative(c, _EXACT_MSG)
    if smoothing == "entropic":
        return jax.nn.softmax(-c / scale)
    return perturbed(lambda z, _: jax.nn.one_hot(jnp.argmax(z), z.shape[0], dtype=z.dtype),
                     num_samples=num_samples, key=key)(-c, scale)


def _hinges(f, yf, scale, smoothing):
    if smoothing == "exact":
        return jnp.maximum(0.0, 1.0 - yf * f), jnp.maximum(0.0, 1.0 + yf * f)
    return (scale * jax.nn.softplus((1.0 - yf * f) / scale),
            scale * jax.nn.softplus((1.0 + yf * f) / scale))


def _fit(K, ys, C, steps):
    alpha, b = unrolled_svm_dual(K, ys, C, steps=steps)
    return alpha, b, K @ (alpha * ys) + b


def _alfa_core(K, yf, C, scale, key, *, budget, steps, alternations, smoothing, num_samples):
    _, _, f0 = _fit(K, yf, C, steps)
    psi, psi_flip = _hinges(f0, yf, scale, smoothing)
    keys = jax.random.split(key, alternations + 1)

    def pick(xi, xi_flip, k):
        delta = (xi_flip - psi_flip) - (xi - psi)
        mu = _relaxed_topk(-delta, budget, scale, k, smoothing=smoothing,
                          num_samples=num_samples)
        return mu, delta

    zero = jnp.zeros_like(yf)
    mu0, _ = pick(zero, zero, keys[0])

    def body(carry, k):
        mu, _, _ = carry
        _, _, f = _fit(K, yf * (1 - 2 * mu), C, steps)
        xi, xi_flip = _hinges(f, yf, scale, smoothing)
        new, delta = pick(xi, xi_flip, k)
        return (new, jnp.max(jnp.abs(new - mu)), new @ delta), None

    (mu, change, score), _ = jax.lax.scan(
        body, (mu0, jnp.zeros((), yf.dtype), jnp.zeros((), yf.dtype)), keys[1:])
    return mu, score, change


def _cosine(a2, a, K):
    return (a2 @ (K @ a)) / jnp.sqrt(jnp.maximum((a2 @ (K @ a2)) * (a @ (K @ a)), 1e-300))


def _tilt_core(K, yf, C, beta1, beta2, scale, key, *, budget, steps, variant, num_trials,
               smoothing, num_samples):
    dtype = yf.dtype
    n = yf.shape[0]
    alpha, _, f0 = _fit(K, yf, C, steps)
    w = alpha * yf
    s = yf * f0
    s = s / jnp.max(jnp.abs(s))
    kdraw, knoise = key, jax.random.fold_in(key, 1)   # the draws exactly as alfa_tilt's
    if variant == "authors":
        mu = _relaxed_topk(-(w / C - (beta1 + beta2) * s), budget, scale, knoise,
                          smoothing=smoothing, num_samples=num_samples)
        a2, _, _ = _fit(K, yf * (1 - 2 * mu), C, steps)
        return mu, _cosine(a2, alpha, K), jnp.zeros((), dtype)

    def candidate(k):
        ka, kb = jax.random.split(k)
        coef = jax.random.uniform(ka, (n,), dtype, -1.0, 1.0)
        b = jax.random.uniform(kb, (), dtype, -1.0, 1.0)
        q = yf * (K @ coef + b)
        return q / jnp.max(jnp.abs(q))

    Q = jax.vmap(candidate)(jax.random.split(kdraw, num_trials))
    kpick, kmin = jax.random.split(knoise)
    mus = jax.vmap(lambda q: _relaxed_topk(-(alpha / C - beta1 * s - beta2 * q), budget,
                                          scale, kpick, smoothing=smoothing,
                                          num_samples=num_samples))(Q)

    def tilt(mu):
        ys = yf * (1 - 2 * mu)
        a2, _, _ = _fit(K, ys, C, steps)
        return _cosine(a2 * ys, w, K)

    cos = jax.vmap(tilt)(mus)
    pi = _argmin_weights(cos, scale, kmin, smoothing=smoothing, num_samples=num_samples)
    return pi @ mus, pi @ cos, jnp.zeros((), dtype)


def _result(yf, mu, score, change, steps):
    finite = jnp.all(jnp.isfinite(mu)) & jnp.isfinite(score)
    return SmoothFlipResult(
        status=jnp.where(finite, Status.SUCCESS, Status.NUMERICAL_ERROR).astype(jnp.int32),
        iterations=jnp.asarray(steps, jnp.int32), flip_prob=mu, labels=yf * (1 - 2 * mu),
        score=score, change=change)


def _victim_loss(X, Xv, yv, ys, C, gamma, K, *, steps, kernel):
    alpha, b, _ = _fit(K, ys, C, steps)
    f = kernel_matrix(Xv, X, gamma, kernel=kernel) @ (alpha * ys) + b
    return jnp.mean(jax.nn.softplus(-yv.astype(X.dtype) * f))


_STATIC = ("budget", "steps", "smoothing", "kernel", "num_samples")


@functools.partial(jax.jit, static_argnames=_STATIC + ("alternations",))
def _alfa_jit(X, y, C, gamma, scale, key, *, budget, steps, alternations, smoothing, kernel,
              num_samples):
    yf = y.astype(X.dtype)
    K = kernel_matrix(X, X, gamma, kernel=kernel)
    mu, score, change = _alfa_core(K, yf, C, scale, key, budget=budget, steps=steps,
                                   alternations=alternations, smoothing=smoothing,
                                   num_samples=num_samples)
    return _result(yf, mu, score, change, steps)


@functools.partial(jax.jit, static_argnames=_STATIC + ("alternations",))
def _alfa_val_jit(X, y, Xv, yv, C, gamma, scale, key, *, budget, steps, alternations,
                  smoothing, kernel, num_samples):
    yf = y.astype(X.dtype)
    K = kernel_matrix(X, X, gamma, kernel=kernel)
    mu, _, _ = _alfa_core(K, yf, C, scale, key, budget=budget, steps=steps,
                          alternations=alternations, smoothing=smoothing,
                          num_samples=num_samples)
    return _victim_loss(X, Xv, yv, yf * (1 - 2 * mu), C, gamma, K, steps=steps, kernel=kernel)


@functools.partial(jax.jit, static_argnames=_STATIC + ("variant", "num_trials"))
def _tilt_jit(X, y, C, gamma, beta1, beta2, scale, key, *, budget, steps, variant, num_trials,
              smoothing, kernel, num_samples):
    yf = y.astype(X.dtype)
    K = kernel_matrix(X, X, gamma, kernel=kernel)
    mu, score, change = _tilt_core(K, yf, C, beta1, beta2, scale, key, budget=budget,
                                   steps=steps, variant=variant, num_trials=num_trials,
                                   smoothing=smoothing, num_samples=num_samples)
    return _result(yf, mu, score, change, steps)


@functools.partial(jax.jit, static_argnames=_STATIC + ("variant", "num_trials"))
def _tilt_val_jit(X, y, Xv, yv, C, gamma, beta1, beta2, scale, key, *, budget, steps,
                  variant, num_trials, smoothing, kernel, num_samples):
    yf = y.astype(X.dtype)
    K = kernel_matrix(X, X, gamma, kernel=kernel)
    mu, _, _ = _tilt_core(K, yf, C, beta1, beta2, scale, key, budget=budget, steps=steps,
                          variant=variant, num_trials=num_trials, smoothing=smoothing,
                          num_samples=num_samples)
    return _victim_loss(X, Xv, yv, yf * (1 - 2 * mu), C, gamma, K, steps=steps, kernel=kernel)


def smooth_alfa(
    X: Float[Array, "n d"], y, *, budget: int, C=1.0, gamma=1.0, scale=None,
    smoothing: str = "entropic", key=None, steps: int = 300, alternations: int = 5,
    num_samples: int = 256, kernel: str = "rbf", throw: bool = True,
) -> SmoothFlipResult:
    r"""Relaxed ALFA: `alternations` rounds of (unrolled SVM fit, relaxed top-`budget` pick).

    Args:
        X, y: training data, labels in $\{-1, +1\}$.
        budget: number of flips $L$.
        C, gamma, kernel: the SVM of every fit (traceable `C`, `gamma`).
        scale: smoothing scale $\sigma > 0$ in units of the pick score $\delta$ (hinge
            losses; required unless `smoothing="exact"`, where it must be left out).
        smoothing: `"entropic"` (default, deterministic), `"perturbed"` (needs `key`)
            or `"exact"`.
        key: PRNG key of the Monte-Carlo draws, only with `"perturbed"`.
        steps: projected-gradient steps of every SVM fit (static).
        alternations: fit-and-pick rounds after the first pick (static, $\ge 1$).
        num_samples: Monte-Carlo draws for `"perturbed"` (even).
        throw: raise on a non-finite result.

    Returns:
        `SmoothFlipResult`; with `"exact"`, `alternations` $\ge$ the exact attack's
        iterations and enough `steps`, the rounded `flip_prob` is `alfa`'s flip mask.
    """
    (X, y, budget, C, gamma, scale, key, steps, num_samples) = check_smooth_flip_inputs(
        X, y, budget=budget, C=C, gamma=gamma, kernel=kernel, scale=scale,
        smoothing=smoothing, key=key, steps=steps, num_samples=num_samples)
    alternations = v.check_int(alternations, "alternations", low=1)
    res = _alfa_jit(X, y, C, gamma, scale, key, budget=budget, steps=steps,
                    alternations=alternations, smoothing=smoothing, kernel=kernel,
                    num_samples=num_samples)
    return raise_if_failed(res, "smooth_alfa", throw=throw)


def smooth_alfa_validation_loss(
    X: Float[Array, "n d"], y, X_val, y_val, *, budget: int, C, gamma, scale=None,
    smoothing: str = "entropic", key=None, steps: int = 300, alternations: int = 5,
    num_samples: int = 256, kernel: str = "rbf",
) -> Float[Array, ""]:
    r"""Logistic validation loss of the SVM retrained on `smooth_alfa`'s soft labels.

    $L_\sigma(C,\gamma) = \frac1m\sum_j\log(1+e^{-y^{val}_jf(x^{val}_j)})$, $f$ the
    kernel SVM after `steps` dual steps on $\tilde y$. Arguments as in `smooth_alfa`
    (checked when concrete, so it runs under `jit`/`grad`); the derivative through
    `smoothing="exact"` raises `NoDerivativeError`.
    """
    (X, y, budget, C, gamma, scale, key, steps, num_samples) = check_smooth_flip_inputs(
        X, y, budget=budget, C=C, gamma=gamma, kernel=kernel, scale=scale,
        smoothing=smoothing, key=key, steps=steps, num_samples=num_samples)
    alternations = v.check_int(alternations, "alternations", low=1)
    Xv, yv = check_validation_data(X, X_val, y_val)
    return _alfa_val_jit(X, y, Xv, yv, C, gamma, scale, key, budget=budget, steps=steps,
                         alternations=alternations, smoothing=smoothing, kernel=kernel,
                         num_samples=num_samples)


def _check_tilt(variant, num_trials, beta1, beta2):
    v.check_choice(variant, "variant", ALFA_TILT_VARIANTS)
    num_trials = v.check_int(num_trials, "num_trials", low=1) if variant == "xiao" else 1
    v.check_finite(beta1, "beta1")
    v.check_finite(beta2, "beta2")
    return num_trials


def smooth_alfa_tilt(
    X: Float[Array, "n d"], y, *, budget: int, variant: str = "authors", C=1.0, gamma=1.0,
    scale=None, smoothing: str = "entropic", key=None, steps: int = 300,
    num_trials: int = 10, beta1=1.0, beta2=1.0, num_samples: int = 256,
    kernel: str = "rbf", throw: bool = True,
) -> SmoothFlipResult:
    r"""Relaxed ALFA-tilt (`alfa_tilt`'s two variants; module docstring for the math).

    Args:
        X, y: training data, labels in $\{-1, +1\}$.
        budget: number of flips $L$.
        variant: `"authors"` (deterministic) or `"xiao"` (random classifiers from `key`,
            relaxed argmin over the candidates' cosines).
        C, gamma, kernel: the SVM of every fit (traceable `C`, `gamma`).
        scale: smoothing scale $\sigma > 0$ in units of the score $v$ (and of the cosine
            for `"xiao"`); required unless `smoothing="exact"` (then left out).
        smoothing: `"entropic"`, `"perturbed"` or `"exact"`.
        key: PRNG key: required with `variant="xiao"` (the random classifiers, drawn as
            `alfa_tilt` draws them) or `smoothing="perturbed"`; left out otherwise.
        steps: projected-gradient steps of every SVM fit (static).
        num_trials: random classifiers of `"xiao"` (static).
        beta1, beta2: score weights $\beta_1, \beta_2$.
        num_samples: Monte-Carlo draws for `"perturbed"` (even).
        throw: raise on a non-finite result.

    Returns:
        `SmoothFlipResult` (`score`: the cosine $\kappa$ of the refit, weighted by $\pi$
        for `"xiao"`); with `"exact"` and enough `steps` the rounded `flip_prob` is
        `alfa_tilt`'s flip mask (the same `key` for `"xiao"`).
    """
    num_trials = _check_tilt(variant, num_trials, beta1, beta2)
    (X, y, budget, C, gamma, scale, key, steps, num_samples) = check_smooth_flip_inputs(
        X, y, budget=budget, C=C, gamma=gamma, kernel=kernel, scale=scale,
        smoothing=smoothing, key=key, steps=steps, num_samples=num_samples,
        key_required=variant == "xiao")
    dtype = X.dtype
    res = _tilt_jit(X, y, C, gamma, jnp.asarray(beta1, dtype), jnp.asarray(beta2, dtype),
                    scale, key, budget=budget, steps=steps, variant=variant,
                    num_trials=num_trials, smoothing=smoothing, kernel=kernel,
                    num_samples=num_samples)
    return raise_if_failed(res, "smooth_alfa_tilt", throw=throw)


def smooth_alfa_tilt_validation_loss(
    X: Float[Array, "n d"], y, X_val, y_val, *, budget: int, C, gamma,
    variant: str = "authors", scale=None, smoothing: str = "entropic", key=None,
    steps: int = 300, num_trials: int = 10, beta1=1.0, beta2=1.0, num_samples: int = 256,
    kernel: str = "rbf",
) -> Float[Array, ""]:
    r"""Logistic validation loss of the SVM retrained on `smooth_alfa_tilt`'s soft labels.

    As `smooth_alfa_validation_loss`, with the arguments of `smooth_alfa_tilt`.
    """
    num_trials = _check_tilt(variant, num_trials, beta1, beta2)
    (X, y, budget, C, gamma, scale, key, steps, num_samples) = check_smooth_flip_inputs(
        X, y, budget=budget, C=C, gamma=gamma, kernel=kernel, scale=scale,
        smoothing=smoothing, key=key, steps=steps, num_samples=num_samples,
        key_required=variant == "xiao")
    Xv, yv = check_validation_data(X, X_val, y_val)
    dtype = X.dtype
    return _tilt_val_jit(X, y, Xv, yv, C, gamma, jnp.asarray(beta1, dtype),
                         jnp.asarray(beta2, dtype), scale, key, budget=budget, steps=steps,
                         variant=variant, num_trials=num_trials, smoothing=smoothing,
                         kernel=kernel, num_samples=num_samples)
