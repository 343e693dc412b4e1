r"""Smoothed greedy label-flip attack: relaxed argmax over candidates, for meta-gradients.

The exact attack (`jaxpoison.attacks.greedy_lfa`) flips one label per step, the one
whose flip gives the retrained SVM the highest validation score
$e + h/(1+h)$ ($e$ the number of validation errors, $h$ the mean validation hinge
loss), among the labels not yet flipped. Here, with flip probabilities
$\mu\in[0,1]^n$ ($\mu = 0$ at the start) and $L$ = `budget` steps:

* candidate $i$ sets $\mu_i = 1$: labels $\tilde y^{(i)} = y\circ(1 - 2\mu^{(i)})$,
  $\mu^{(i)} = \mu + (1-\mu_i)e_i$; every candidate is refitted by `steps` unrolled dual
  steps (`jaxpoison.solvers.unrolled_svm_dual`), all $n$ in one `vmap`;
* the validation score is smoothed: the error count becomes
  $e_\sigma = \sum_j \operatorname{sigmoid}(-y^{val}_jf(x^{val}_j)/\sigma)$ and the
  hinge $[u]_+$ in $h$ becomes $\sigma\operatorname{softplus}(u/\sigma)$, so
  $r_i = e_\sigma + h_\sigma/(1+h_\sigma)$;
* the argmax over the candidates not yet flipped is relaxed with the same $\sigma$:
  logits $\ell_i = r_i + \sigma\log(1-\mu_i)$ (a flipped candidate, $\mu_i = 1$, has
  $\ell_i = -\infty$); `"entropic"` uses $p = \operatorname{softmax}(\ell/\sigma)$,
  i.e. $p_i\propto(1-\mu_i)e^{r_i/\sigma}$; `"perturbed"` the perturbed argmax
  $p = \mathbb E_Z\,\mathrm{onehot}(\arg\max_i(\ell_i + \sigma Z_i))$; `"exact"` the
  hard argmax of the exact score (its derivative raises `NoDerivativeError`);
* the state moves to the expectation of the next candidate's flips,
  $\mu \leftarrow \sum_i p_i\mu^{(i)} = \mu + p\circ(1-\mu)$, which stays in
  $[0,1]^n$; $\sum_i\mu_i$ grows by at most 1 per step (exactly 1 at $\mu\in\{0,1\}^n$).

As $\sigma\to0$ (and with enough `steps`) every step is the exact attack's. Cost: $L\,n$
unrolled fits of $T$ steps each, $O(L\,n^3 T)$ — for small $n$ (tens of points).
`smooth_greedy_lfa_validation_loss` retrains the victim on the final soft labels and
returns its mean logistic loss on the same validation set (the attacker's objective,
smoothed): continuous in $(C,\gamma,\sigma,X)$ and differentiable for `"entropic"` /
`"perturbed"`.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from jaxpoison._result import Status, raise_if_failed
from jaxpoison.attacks.smooth_alfa import SmoothFlipResult
from jaxpoison.attacks.smooth_label_flip import check_smooth_flip_inputs, check_validation_data
from jaxpoison.models.kernels import kernel_matrix
from jaxpoison.solvers.smoothing import no_derivative, perturbed
from jaxpoison.solvers.svm_dual_unrolled import unrolled_svm_dual

__all__ = ["smooth_greedy_lfa", "smooth_greedy_lfa_validation_loss"]

_EXACT_MSG = ("smoothing='exact' has no derivative: the greedy attack's argmax over "
              "candidates is piecewise constant; pass smoothing='entropic' or 'perturbed' "
              "with a scale > 0")


def _score(f, yv, scale, exact):
    if exact:
        err = jnp.sum(jnp.where(f >= 0, 1.0, -1.0) != yv)
        hinge = jnp.mean(jnp.maximum(0.0, 1.0 - yv * f))
    else:
        err = jnp.sum(jax.nn.sigmoid(-yv * f / scale))
        hinge = jnp.mean(scale * jax.nn.softplus((1.0 - yv * f) / scale))
    return err + hinge / (1.0 + hinge)


def _masked_logits(r, mu, scale):
    """$r_i + \\sigma\\log(1-\\mu_i)$, exactly $-\\infty$ (zero derivative) where $\\mu_i = 1$."""
    ok = mu < 1.0
    return jnp.where(ok, r + scale * jnp.log(jnp.where(ok, 1.0 - mu, 1.0)), -jnp.inf)


def _greedy_core(K, Kv, yf, yv, C, scale, key, *, budget, steps, smoothing, num_samples):
    n = yf.shape[0]
    eye = jnp.eye(n, dtype=yf.dtype)
    exact = smoothing == "exact"

    def score_of(ys):
        alpha, b = unrolled_svm_dual(K, ys, C, steps=steps)
        return _score(Kv @ (alpha * ys) + b, yv, scale, exact)

    def step(carry, k):
        mu, _, _ = carry
        M = mu[None, :] + eye * (1.0 - mu)[None, :]      # candidate i sets mu_i = 1
        r = jax.vmap(score_of)(yf[None, :] * (1.0 - 2.0 * M))
        if exact:
            masked = jnp.where(mu >= 1.0, -jnp.inf, jax.lax.stop_gradient(r))
            p = jax.nn.one_hot(jnp.argmax(masked), n, dtype=yf.dtype)
            p = p + 0.0 * no_derivative(r, _EXACT_MSG)
        else:
            logits = _masked_logits(r, mu, scale)
            if smoothing == "entropic":
                p = jax.nn.softmax(logits / scale)
            else:
                p = perturbed(lambda z, _: jax.nn.one_hot(jnp.argmax(z), n, dtype=z.dtype),
                              num_samples=num_samples, key=k)(logits, scale)
        new = mu + p * (1.0 - mu)
        return (new, p @ r, jnp.max(jnp.abs(new - mu))), None

    zero = jnp.zeros((), yf.dtype)
    (mu, score, change), _ = jax.lax.scan(step, (jnp.zeros_like(yf), zero, zero),
                                          jax.random.split(key, budget))
    return mu, score, change


_STATIC = ("budget", "steps", "smoothing", "kernel", "num_samples")


def _prepare(X, y, Xv, yv, gamma, kernel):
    yf = y.astype(X.dtype)
    return (yf, yv.astype(X.dtype), kernel_matrix(X, X, gamma, kernel=kernel),
            kernel_matrix(Xv, X, gamma, kernel=kernel))


@functools.partial(jax.jit, static_argnames=_STATIC)
def _greedy_jit(X, y, Xv, yv, C, gamma, scale, key, *, budget, steps, smoothing, kernel,
                num_samples):
    yf, yvf, K, Kv = _prepare(X, y, Xv, yv, gamma, kernel)
    mu, score, change = _greedy_core(K, Kv, yf, yvf, C, scale, key, budget=budget,
                                     steps=steps, smoothing=smoothing,
                                     num_samples=num_samples)
    finite = jnp.all(jnp.isfinite(mu)) & jnp.isfinite(score)
    return SmoothFlipResult(
        status=jnp.where(finite, Status.SUCCESS, Status.NUMERICAL_ERROR).astype(jnp.int32),
        iterations=jnp.asarray(budget, jnp.int32), flip_prob=mu, labels=yf * (1 - 2 * mu),
        score=score, change=change)


@functools.partial(jax.jit, static_argnames=_STATIC)
def _greedy_val_jit(X, y, Xv, yv, C, gamma, scale, key, *, budget, steps, smoothing, kernel,
                    num_samples):
    yf, yvf, K, Kv = _prepare(X, y, Xv, yv, gamma, kernel)
    mu, _, _ = _greedy_core(K, Kv, yf, yvf, C, scale, key, budget=budget, steps=steps,
                            smoothing=smoothing, num_samples=num_samples)
    ys = yf * (1 - 2 * mu)
    alpha, b = unrolled_svm_dual(K, ys, C, steps=steps)
    return jnp.mean(jax.nn.softplus(-yvf * (Kv @ (alpha * ys) + b)))


def _check(X, y, X_val, y_val, budget, C, gamma, kernel, scale, smoothing, key, steps,
           num_samples):
    (X, y, budget, C, gamma, scale, key, steps, num_samples) = check_smooth_flip_inputs(
        X, y, budget=budget, C=C, gamma=gamma, kernel=kernel, scale=scale,
        smoothing=smoothing, key=key, steps=steps, num_samples=num_samples)
    Xv, yv = check_validation_data(X, X_val, y_val)
    return X, y, Xv, yv, budget, C, gamma, scale, key, steps, num_samples


def smooth_greedy_lfa(
    X: Float[Array, "n d"], y, X_val, y_val, *, budget: int, C=1.0, gamma=1.0, scale=None,
    smoothing: str = "entropic", key=None, steps: int = 300, num_samples: int = 256,
    kernel: str = "rbf", throw: bool = True,
) -> SmoothFlipResult:
    r"""Relaxed `greedy_lfa`: `budget` steps, each a relaxed argmax over the candidates.

    Args:
        X, y: training data, labels in $\{-1, +1\}$.
        X_val, y_val: the attacker's validation data (labels in $\{-1, +1\}$).
        budget: number of greedy steps $L$ (static).
        C, gamma, kernel: the SVM of every fit (traceable `C`, `gamma`).
        scale: smoothing scale $\sigma > 0$ in units of the validation score (errors;
            also the margin scale of the smoothed error count); required unless
            `smoothing="exact"` (then left out).
        smoothing: `"entropic"` (default, deterministic), `"perturbed"` (needs `key`)
            or `"exact"`.
        key: PRNG key of the Monte-Carlo draws, only with `"perturbed"`.
        steps: projected-gradient steps of every SVM fit (static).
        num_samples: Monte-Carlo draws for `"perturbed"` (even).
        throw: raise on a non-finite result.

    Returns:
        `SmoothFlipResult` (`score`: the expected validation score $p^\top r$ of the last
        step); with `"exact"` and enough `steps`, `flip_prob` is `greedy_lfa`'s flip mask.
    """
    (X, y, Xv, yv, budget, C, gamma, scale, key, steps, num_samples) = _check(
        X, y, X_val, y_val, budget, C, gamma, kernel, scale, smoothing, key, steps,
        num_samples)
    res = _greedy_jit(X, y, Xv, yv, C, gamma, scale, key, budget=budget, steps=steps,
                      smoothing=smoothing, kernel=kernel, num_samples=num_samples)
    return raise_if_failed(res, "smooth_greedy_lfa", throw=throw)


def smooth_greedy_lfa_validation_loss(
    X: Float[Array, "n d"], y, X_val, y_val, *, budget: int, C, gamma, scale=None,
    smoothing: str = "entropic", key=None, steps: int = 300, num_samples: int = 256,
    kernel: str = "rbf",
) -> Float[Array, ""]:
    r"""Logistic loss on (`X_val`, `y_val`) of the SVM retrained on `smooth_greedy_lfa`'s
    soft labels.

    $L_\sigma = \frac1m\sum_j\log(1+e^{-y^{val}_jf(x^{val}_j)})$ (the same validation set
    the attacker maximises its score on). Arguments as in `smooth_greedy_lfa` (checked
    when concrete, so it runs under `jit`/`grad`).
    """
    (X, y, Xv, yv, budget, C, gamma, scale, key, steps, num_samples) = _check(
        X, y, X_val, y_val, budget, C, gamma, kernel, scale, smoothing, key, steps,
        num_samples)
    return _greedy_val_jit(X, y, Xv, yv, C, gamma, scale, key, budget=budget, steps=steps,
                           smoothing=smoothing, kernel=kernel, num_samples=num_samples)
