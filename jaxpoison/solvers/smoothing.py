r"""Differentiable relaxations of discrete choices: soft top-k and perturbed optimisers.

An attacker that picks the $k$ largest scores, $\operatorname{topk}(s) \in \{0,1\}^n$,
is piecewise constant in $s$: its derivative is zero almost everywhere and the value
jumps where two scores cross. A meta-objective with such a step inside (FLORAL's
attacker, label-flip attacks) is piecewise smooth with dense jumps, and a gradient step
on a hyperparameter follows noise. This module replaces the step by a smooth map with a
*scale* $\sigma > 0$ that recovers the exact choice as $\sigma \to 0$.

* **Entropic soft top-k** (`soft_topk`). The top-$k$ mask is the solution of the LP
  $\max_{\mu} \langle s, \mu\rangle$ s.t. $\sum_i \mu_i = k$, $0 \le \mu \le 1$.
  Adding the binary entropy $\sigma \sum_i H(\mu_i)$,
  $H(p) = -p\log p - (1-p)\log(1-p)$, gives the unique solution

  $$
  \mu_i(s) = \operatorname{sigmoid}\bigl((s_i - \tau)/\sigma\bigr),
  \qquad \sum_i \mu_i = k ,
  $$

  with the threshold $\tau(s, k, \sigma)$ found by safeguarded Newton (bisection
  fallback) and differentiated by the
  implicit-function theorem ($g(\tau) = \sum_i \mu_i - k = 0$):

  $$
  \mathrm d\tau = \frac{\sum_i d_i\,\mathrm ds_i - \mathrm dk
  - \mathrm d\sigma \sum_i d_i u_i}{\sum_i d_i},
  \qquad u_i = \frac{s_i - \tau}{\sigma},\quad d_i = \frac{\mu_i(1-\mu_i)}{\sigma}.
  $$

  Deterministic and $C^\infty$ in $(s, k, \sigma)$; $\sum_i\mu_i = k$ exactly;
  $\mu \to \operatorname{topk}(s)$ as $\sigma \to 0$ when the $k$-th and
  $(k+1)$-th scores differ (tied scores share their membership).

* **Perturbed optimiser** (`perturbed`; Berthet et al., "Learning with differentiable
  perturbed optimizers", NeurIPS 2020). For any piecewise-constant map $f$ (the exact
  attacker itself) and $Z \sim \mathcal N(0, I)$,

  $$
  f_\sigma(s) = \mathbb E\, f(s + \sigma Z), \qquad
  \nabla_s f_\sigma(s) = \frac1\sigma\,\mathbb E\bigl[f(s+\sigma Z)\,Z^\top\bigr],
  $$

  $$
  \partial_\sigma f_\sigma(s) = \frac1\sigma\,\mathbb E\bigl[f(s+\sigma Z)
  (\lVert Z\rVert^2 - n)\bigr].
  $$

  Both are estimated by Monte Carlo with a fixed key and antithetic pairs $(Z, -Z)$;
  the estimate of the *value* is piecewise constant with jumps of at most $1/M$ ($M$ =
  `num_samples`), the derivative estimate is unbiased for the derivative of $f_\sigma$
  (not of the Monte-Carlo value). Use it when the discrete map is not a plain top-k.

* **Exact top-k** (`topk_mask`): the hard mask, with a derivative rule that *raises*
  (naming the argument) instead of returning a silent zero gradient.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.custom_derivatives import SymbolicZero
from jaxtyping import Array, Float

from jaxpoison import _validate as v

__all__ = ["SMOOTHINGS", "soft_topk", "topk_mask", "perturbed", "check_scale",
           "check_smoothing", "no_derivative", "NoDerivativeError"]


SMOOTHINGS = ("entropic", "perturbed", "exact")
"""The `smoothing` modes of the smoothed attackers: entropic soft top-k, perturbed
optimiser, or the exact choice (no derivative)."""


class NoDerivativeError(ValueError):
    """Raised when a derivative is requested through a map that has none (a hard choice)."""


def check_scale(scale, name: str = "scale", *, smoothing: str | None = None) -> None:
    """Validate a smoothing scale against the smoothing mode.

    `smoothing="exact"` (or `None` meaning no smoothing) requires `scale is None`; any
    other mode requires a positive, finite scale (checked when concrete).
    """
    if smoothing == "exact":
        if scale is not None:
            raise ValueError(f"{name} is only used by a smoothed call; got {name}={scale!r} "
                             "with smoothing='exact' (leave it out, or pick smoothing="
                             "'entropic' or 'perturbed')")
        return
    if scale is None:
        raise ValueError(f"{name} is required with smoothing={smoothing!r}: pass a positive "
                         "number (see docs/metagrad.md, 'Choosing the scale')")
    if isinstance(scale, (bool, str)):
        raise TypeError(f"{name} must be a positive number; got {type(scale).__name__} "
                        f"{scale!r}")
    v.check_positive(scale, name)


def check_smoothing(smoothing: str, scale, *, key, num_samples: int,
                    key_required: bool = False) -> int:
    """The boundary check of a smoothed attacker's `smoothing`, `scale`, `key`, `num_samples`.

    `smoothing` must be in `SMOOTHINGS`; `scale` as in `check_scale`; `num_samples` an
    integer >= 2, even with `"perturbed"` (antithetic pairs); `key` a PRNG key when
    `smoothing="perturbed"` or `key_required` (the attack itself draws random numbers),
    and left out otherwise. Raises `ValueError` / `TypeError` naming the argument;
    returns `num_samples` as an int.
    """
    v.check_choice(smoothing, "smoothing", SMOOTHINGS)
    check_scale(scale, "scale", smoothing=smoothing)
    num_samples = v.check_int(num_samples, "num_samples", low=2)
    if smoothing == "perturbed" and num_samples % 2:
        raise ValueError(f"num_samples must be even (antithetic pairs); got {num_samples}")
    if smoothing == "perturbed" or key_required:
        v.check_key(key)
    elif key is not None:
        raise ValueError("key is only used with smoothing='perturbed' (or a randomised "
                         f"attack); got a key with smoothing={smoothing!r}")
    return num_samples


# ---------------------------------------------------------------------------------------
# exact top-k with a loud derivative


@functools.partial(jax.custom_jvp, nondiff_argnums=(1,))
def _guard(x, message):
    return x


def _guard_jvp(message, primals, tangents):
    (x,), (dx,) = primals, tangents
    if not isinstance(dx, SymbolicZero):
        raise NoDerivativeError(message)
    return x, jnp.zeros_like(x)


_guard.defjvp(_guard_jvp, symbolic_zeros=True)


def no_derivative(x, message: str):
    """Identity whose derivative raises `NoDerivativeError(message)` instead of flowing.

    Put it in front of a piecewise-constant computation (a hard `argmax`/`top_k`) so that
    a derivative requested through it fails loudly rather than returning a silent zero.
    Forward evaluation, `jit` and `vmap` are unaffected; a derivative taken with respect
    to something `x` does not depend on is unaffected too.
    """
    return _guard(x, str(message))


@functools.partial(jax.custom_jvp, nondiff_argnums=(1,))
def _hard_topk(scores, k):
    n = scores.shape[-1]
    if k == 0:
        return jnp.zeros(scores.shape, scores.dtype)
    _, idx = jax.lax.top_k(scores, k)
    return jnp.sum(jax.nn.one_hot(idx, n, dtype=scores.dtype), axis=-2)


def _hard_topk_jvp(k, primals, tangents):
    (scores,), (ds,) = primals, tangents
    if not isinstance(ds, SymbolicZero):
        raise NoDerivativeError(
            "the exact top-k choice is piecewise constant in `scores` and has no useful "
            "derivative; a gradient through it would be a silent zero. Use a smoothed "
            "call (smoothing='entropic' or 'perturbed' with scale > 0), or stop the "
            "gradient explicitly with jax.lax.stop_gradient(scores)")
    out = _hard_topk(scores, k)
    return out, jnp.zeros_like(out)


_hard_topk.defjvp(_hard_topk_jvp, symbolic_zeros=True)


def topk_mask(scores: Float[Array, "... n"], k: int) -> Float[Array, "... n"]:
    """Exact top-`k` mask over the last axis (ties: the smaller index first, as `lax.top_k`).

    Differentiating through it raises `NoDerivativeError` naming `scores`
    (the mask is piecewise constant); use `soft_topk` or `perturbed` instead.
    """
    scores = jnp.asarray(scores)
    k = v.check_int(k, "k", low=0, high=scores.shape[-1])
    return _hard_topk(scores, k)


# ---------------------------------------------------------------------------------------
# entropic soft top-k


def _mu(s, tau, scale):
    return jax.nn.sigmoid((s - tau) / scale)


@jax.custom_jvp
def _threshold(s, k, scale):
    # safeguarded Newton on g(t) = sum_i sigmoid((s_i - t)/scale) - k (decreasing in t),
    # started between the k-th and (k+1)-th largest scores (the root as scale -> 0), with
    # the bracket [min s - w, max s + w] (w = scale (log n + 40)) kept for bisection steps
    n = s.shape[0]
    width = scale * (math.log(n) + 40.0)
    desc = -jnp.sort(-s)
    i = jnp.clip(jnp.floor(k).astype(jnp.int32), 1, n - 1)
    t0 = 0.5 * (desc[i - 1] + desc[i])
    tol = (1e-13 if s.dtype == jnp.float64 else 1e-5) * jnp.maximum(k, 1.0)

    def cond(c):
        _, _, _, g, it = c
        return (jnp.abs(g) > tol) & (it < 100)

    def body(c):
        lo, hi, t, g, it = c
        mu = _mu(s, t, scale)
        g = jnp.sum(mu) - k
        d = jnp.sum(mu * (1.0 - mu)) / scale
        lo = jnp.where(g > 0, t, lo)
        hi = jnp.where(g > 0, hi, t)
        tn = t + g / jnp.where(d > 0, d, 1.0)
        ok = (d > 0) & (tn >= lo) & (tn <= hi)
        t = jnp.where(jnp.abs(g) <= tol, t, jnp.where(ok, tn, 0.5 * (lo + hi)))
        return lo, hi, t, g, it + 1

    big = jnp.asarray(jnp.inf, s.dtype)
    lo, hi, t, _, _ = jax.lax.while_loop(
        cond, body, (jnp.min(s) - width, jnp.max(s) + width, t0, big, 0))
    return t


@_threshold.defjvp
def _threshold_jvp(primals, tangents):
    s, k, scale = primals
    ds, dk, dscale = tangents
    tau = _threshold(s, k, scale)
    mu = _mu(s, tau, scale)
    d = mu * (1.0 - mu) / scale
    u = (s - tau) / scale
    sd = jnp.sum(d)
    safe = jnp.where(sd > 0, sd, 1.0)
    dtau = (jnp.sum(d * ds) - dk - dscale * jnp.sum(d * u)) / safe
    return tau, jnp.where(sd > 0, dtau, 0.0)


def soft_topk(scores: Float[Array, " n"], k, *, scale) -> Float[Array, " n"]:
    r"""Entropic soft top-`k` membership $\mu \in (0, 1)^n$ with $\sum_i\mu_i = k$.

    $\mu_i = \operatorname{sigmoid}((s_i - \tau)/\sigma)$ with $\tau$ such that the
    memberships sum to `k` (module docstring). Differentiable in `scores`, `k` and
    `scale` (implicit function theorem); `jit`/`vmap`-safe (checks skipped on tracers).

    Args:
        scores: scores $s$ `(n,)`.
        k: number of members, `0 <= k <= n` (a number; may be traced and fractional).
        scale: temperature $\sigma > 0$, in the units of `scores`. As
            $\sigma\to 0$ the result tends to `topk_mask(scores, k)` (ties shared).

    Returns:
        Memberships `(n,)`; exactly 0 for `k = 0` and 1 for `k = n`.
    """
    s = jnp.asarray(scores)
    if not jnp.issubdtype(s.dtype, jnp.floating):
        s = s.astype(jnp.result_type(float))
    if s.ndim != 1:
        raise ValueError(f"scores must be 1-D; got shape {tuple(s.shape)}")
    n = s.shape[0]
    check_scale(scale, "scale", smoothing="entropic")
    if v.is_concrete(k):
        kk = np.asarray(k, dtype=float)
        if kk.ndim or not (0 <= float(kk) <= n):
            raise ValueError(f"k must be a number in [0, {n}]; got {k!r}")
    k = jnp.asarray(k, s.dtype)
    scale = jnp.asarray(scale, s.dtype)
    inner = (k > 0) & (k < n)
    k_safe = jnp.where(inner, k, 0.5)
    mu = _mu(s, _threshold(s, k_safe, scale), scale)
    return jnp.where(inner, mu, jnp.where(k <= 0, 0.0, 1.0).astype(s.dtype))


# ---------------------------------------------------------------------------------------
# perturbed optimiser (Berthet et al. 2020)


def _check_aux(aux):
    for leaf in jax.tree_util.tree_leaves(aux):
        dt = jnp.asarray(leaf).dtype
        if not (jnp.issubdtype(dt, jnp.integer) or dt == jnp.bool_):
            raise TypeError("aux of a perturbed map must hold integer or boolean arrays "
                            f"only (it is not differentiated); got dtype {dt}")


@functools.partial(jax.custom_jvp, nondiff_argnums=(0,))
def _expect(fn, s, scale, Z, aux):
    return jnp.mean(jax.vmap(lambda z: fn(s + scale * z, aux))(Z), axis=0)


@_expect.defjvp
def _expect_jvp(fn, primals, tangents):
    s, scale, Z, aux = primals
    ds, dscale, _, _ = tangents
    F = jax.vmap(lambda z: fn(s + scale * z, aux))(Z)                  # (M, ...out)
    axes = tuple(range(1, Z.ndim))
    weight = jnp.sum(Z * ds, axis=axes) + dscale * (jnp.sum(Z * Z, axis=axes) - s.size)
    weight = weight.reshape(weight.shape + (1,) * (F.ndim - 1))
    return jnp.mean(F, axis=0), jnp.mean(F * weight, axis=0) / scale


def perturbed(fn: Callable, *, num_samples: int = 1000, key) -> Callable:
    r"""Perturbed (Gaussian-smoothed) version of a piecewise-constant map.

    Returns `g(scores, scale, aux=None)` $= \frac1M\sum_{j} f(s + \sigma Z_j, aux)$
    over `num_samples` antithetic normal draws from `key` (fixed once), with the
    derivative in `scores` and `scale` given by the score-function estimator of the
    module docstring (Berthet et al. 2020), never by differentiating `fn` (which may be
    a hard `top_k`/`argmax`). `fn(scores, aux)` must return a float array; `aux`
    (integer/boolean arrays, not differentiated) passes extra inputs such as fixed
    random positions.

    Args:
        fn: the exact map `fn(scores, aux) -> array`.
        num_samples: number of draws $M$ (even; pairs $Z, -Z$).
        key: PRNG key of the draws (keyword-only, required).
    """
    if not callable(fn):
        raise TypeError(f"fn must be callable; got {type(fn).__name__}")
    num_samples = v.check_int(num_samples, "num_samples", low=2)
    if num_samples % 2:
        raise ValueError(f"num_samples must be even (antithetic pairs); got {num_samples}")
    v.check_key(key)

    def smoothed(scores, scale, aux=None):
        s = jnp.asarray(scores)
        if not jnp.issubdtype(s.dtype, jnp.floating):
            s = s.astype(jnp.result_type(float))
        check_scale(scale, "scale", smoothing="perturbed")
        aux = () if aux is None else aux
        _check_aux(aux)
        half = jax.random.normal(key, (num_samples // 2,) + s.shape, s.dtype)
        Z = jnp.concatenate([half, -half])
        return _expect(fn, s, jnp.asarray(scale, s.dtype), Z, aux)

    return smoothed
