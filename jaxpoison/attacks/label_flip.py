r"""Label-flip attacks on binary kernel SVMs.

All attacks take clean labels $y \in \{-1,+1\}^n$ and a flip budget $L$
(a number of labels) and return a `LabelFlipResult` with the poisoned labels.

* `random_label_flip` -- $L$ labels chosen uniformly at random.
* `topk_sv_flip` -- the $L$ points with the largest dual variables of the
  clean SVM (the "most influential" support vectors; FLORAL's attacker without the
  randomisation).
* `alfa` -- ALFA (Xiao, Xiao & Eckert, ECAI 2012): alternately fit the SVM on the
  tainted labels and re-pick the flips minimising
  $\sum_i [\xi_i(z_i) - \psi_i(z_i)]$, where $\xi$ are hinge losses of the
  tainted SVM and $\psi$ those of the clean SVM.
* `alfa_tilt` -- ALFA-tilt (Xiao et al., Neurocomputing 2015): score
  $v_i = \alpha_i / C - \beta_1 s_i - \beta_2 q_i$ (clean dual variable, normalised
  signed margins of the clean SVM and of a random classifier), flip the $L$
  smallest, repeat for `num_trials` random classifiers and keep the flips that tilt the
  SVM most (smallest cosine between the clean and the tainted weight vectors in feature
  space); all trials are solved in one `vmap`-ped SVM call.
* `greedy_lfa` -- greedy label-flip attack: flip one label at a time, the one
  maximising the validation error (ties broken by validation hinge loss) of the retrained
  SVM; each step solves all $n$ candidate SVMs in one batched (`vmap`) call.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from jaxpoison import _validate as v
from jaxpoison._result import Result, Status
from jaxpoison.models.kernels import KERNELS, kernel_matrix, resolve_gamma
from jaxpoison.solvers.svm_dual import svm_dual_smo_kernel

__all__ = ["LabelFlipResult", "random_label_flip", "topk_sv_flip", "alfa", "alfa_tilt",
           "greedy_lfa", "flip_budget"]


class LabelFlipResult(Result):
    """Poisoned labels.

    Attributes:
        labels: the poisoned labels (int, $\\{-1,+1\\}$).
        flipped: boolean mask of flipped points.
        num_flipped: number of flips.
        score: attack-specific objective of the returned flips (NaN if none).
    """

    labels: jax.Array
    flipped: jax.Array
    num_flipped: jax.Array
    score: jax.Array


def flip_budget(n: int, fraction: float) -> int:
    """Number of flips for a fraction of `n` points (rounded up, like the FLORAL code)."""
    v.check_in_range(fraction, "fraction", 0.0, 1.0)
    return int(-(-round(n * fraction * 1e9) // int(1e9)))


def _result(y, flip, score=jnp.nan, status=Status.SUCCESS, iterations=0):
    labels = jnp.where(flip, -y, y).astype(jnp.int32)
    return LabelFlipResult(status=jnp.asarray(status, jnp.int32),
                           iterations=jnp.asarray(iterations, jnp.int32), labels=labels,
                           flipped=flip, num_flipped=jnp.sum(flip).astype(jnp.int32),
                           score=jnp.asarray(score, jnp.result_type(float)))


def _check(X, y, budget):
    X = v.as_float_array(X, "X", ndim=2)
    y = v.as_label_array(y, "y", allowed=(-1, 1))
    v.check_same_length(X, "X", y, "y")
    budget = v.check_int(budget, "budget", low=0, high=X.shape[0])
    return X, y, budget


def _check_svm(C, gamma, kernel, X):
    v.check_positive(C, "C")
    v.check_choice(kernel, "kernel", KERNELS)
    gamma = resolve_gamma(gamma, X)
    v.check_positive(gamma, "gamma")
    return gamma


def _topk_mask(score, L):
    """Mask of the L largest entries of `score`."""
    n = score.shape[0]
    if L == 0:
        return jnp.zeros(n, bool)
    _, idx = jax.lax.top_k(score, L)
    return jnp.zeros(n, bool).at[idx].set(True)


def random_label_flip(y, *, budget: int, key) -> LabelFlipResult:
    """Flip `budget` labels chosen uniformly at random without replacement."""
    y = v.as_label_array(y, "y", allowed=(-1, 1))
    budget = v.check_int(budget, "budget", low=0, high=y.shape[0])
    v.check_key(key)
    u = jax.random.uniform(key, y.shape)
    return _result(y, _topk_mask(u, budget))


def _fit(K, yf, C, tol, max_iter):
    return svm_dual_smo_kernel(K, yf, C, tol=tol, max_iter=max_iter)


@functools.partial(jax.jit, static_argnames=("L", "kernel"))
def _topk_jit(X, y, C, gamma, tol, *, L, kernel, max_iter):
    yf = y.astype(X.dtype)
    K = kernel_matrix(X, X, gamma, kernel=kernel)
    res = _fit(K, yf, C, tol, max_iter)
    # Ties (many alpha = C): break towards the most violating margins.
    f = K @ (res.alpha * yf) + res.intercept
    score = res.alpha - 1e-9 * jnp.tanh(yf * f)
    return _result(y, _topk_mask(score, L), status=res.status, iterations=res.iterations)


def topk_sv_flip(X, y, *, budget: int, C: float = 1.0, gamma=1.0, kernel: str = "rbf",
                 tol: float = 1e-3, max_iter: int = 100_000) -> LabelFlipResult:
    """Flip the labels of the `budget` points with the largest clean-SVM dual variables
    (ties among $\\alpha_i = C$ broken by the smallest margin $y_i f(x_i)$)."""
    X, y, budget = _check(X, y, budget)
    gamma = _check_svm(C, gamma, kernel, X)
    return _topk_jit(X, y, jnp.asarray(C, X.dtype), jnp.asarray(gamma, X.dtype),
                     jnp.asarray(tol, X.dtype), L=budget, kernel=kernel, max_iter=max_iter)


def _hinge_pair(K, coef, b, yf):
    f = K @ coef + b
    return jnp.maximum(0.0, 1.0 - yf * f), jnp.maximum(0.0, 1.0 + yf * f)


@functools.partial(jax.jit, static_argnames=("L", "kernel", "iters"))
def _alfa_jit(X, y, C, gamma, tol, *, L, kernel, iters, max_iter):
    yf = y.astype(X.dtype)
    K = kernel_matrix(X, X, gamma, kernel=kernel)
    clean = _fit(K, yf, C, tol, max_iter)
    psi, psi_flip = _hinge_pair(K, clean.alpha * yf, clean.intercept, yf)
    n = y.shape[0]

    def pick(xi, xi_flip):
        delta = (xi_flip - psi_flip) - (xi - psi)
        return _topk_mask(-delta, L)

    def body(state):
        flip, it, _ = state
        z = jnp.where(flip, -yf, yf)
        res = _fit(K, z, C, tol, max_iter)
        xi, xi_flip = _hinge_pair(K, res.alpha * z, res.intercept, yf)
        new = pick(xi, xi_flip)
        return new, it + 1, jnp.any(new != flip)

    flip0 = pick(jnp.zeros(n, X.dtype), jnp.zeros(n, X.dtype))
    flip, it, changed = jax.lax.while_loop(
        lambda s: s[2] & (s[1] < iters), body, (flip0, jnp.asarray(0), jnp.asarray(True)))
    status = jnp.where(changed, Status.MAX_ITERATIONS, Status.SUCCESS)
    return _result(y, flip, status=status, iterations=it)


def alfa(X, y, *, budget: int, C: float = 1.0, gamma=1.0, kernel: str = "rbf",
         iters: int = 20, tol: float = 1e-3, max_iter: int = 100_000) -> LabelFlipResult:
    r"""ALFA (Xiao, Xiao & Eckert 2012) with unit flip costs.

    Alternates (i) fitting the SVM $f_z$ on the tainted labels $z$ and (ii)
    choosing the `budget` flips with the smallest
    $\delta_i = [\xi_i(-y_i) - \psi_i(-y_i)] - [\xi_i(y_i) - \psi_i(y_i)]$ (the
    solution of ALFA's LP for unit costs), where $\xi_i(\cdot)$, $\psi_i(\cdot)$
    are hinge losses of $f_z$ and of the clean SVM. Starts from $\xi = 0$;
    stops when the flip set repeats (status `SUCCESS`) or after `iters` rounds
    (`MAX_ITERATIONS`; the labels are still returned, no exception).
    """
    X, y, budget = _check(X, y, budget)
    gamma = _check_svm(C, gamma, kernel, X)
    v.check_int(iters, "iters", low=1)
    return _alfa_jit(X, y, jnp.asarray(C, X.dtype), jnp.asarray(gamma, X.dtype),
                     jnp.asarray(tol, X.dtype), L=budget, kernel=kernel, iters=iters,
                     max_iter=max_iter)


@functools.partial(jax.jit, static_argnames=("L", "kernel", "num_trials"))
def _tilt_jit(X, y, C, gamma, beta1, beta2, key, tol, *, L, kernel, num_trials, max_iter):
    dtype = X.dtype
    yf = y.astype(dtype)
    n = y.shape[0]
    K = kernel_matrix(X, X, gamma, kernel=kernel)
    clean = _fit(K, yf, C, tol, max_iter)
    w = clean.alpha * yf
    s = yf * (K @ w + clean.intercept)
    s = s / jnp.max(jnp.abs(s))

    def candidate(k):
        ka, kb = jax.random.split(k)
        coef = jax.random.uniform(ka, (n,), dtype, -1.0, 1.0)
        b = jax.random.uniform(kb, (), dtype, -1.0, 1.0)
        q = yf * (K @ coef + b)
        q = q / jnp.max(jnp.abs(q))
        vi = clean.alpha / C - beta1 * s - beta2 * q
        return _topk_mask(-vi, L)

    flips = jax.vmap(candidate)(jax.random.split(key, num_trials))

    def tilt(flip):
        z = jnp.where(flip, -yf, yf)
        res = _fit(K, z, C, tol, max_iter)
        w2 = res.alpha * z
        cos = (w2 @ (K @ w)) / jnp.sqrt(jnp.maximum((w2 @ (K @ w2)) * (w @ (K @ w)), 1e-300))
        return cos, res.status

    cos, status = jax.vmap(tilt)(flips)
    best = jnp.argmin(cos)
    return _result(y, flips[best], score=cos[best], status=jnp.max(status),
                   iterations=num_trials)


def alfa_tilt(X, y, *, budget: int, key, C: float = 1.0, gamma=1.0, kernel: str = "rbf",
              num_trials: int = 10, beta1: float = 1.0, beta2: float = 1.0,
              tol: float = 1e-3, max_iter: int = 100_000) -> LabelFlipResult:
    r"""ALFA-tilt (Xiao et al. 2015).

    For each of `num_trials` random classifiers $f_{rnd}(x) = \sum_j c_j k(x_j, x)
    + b$, $c_j, b \sim U(-1, 1)$, flip the `budget` points with the smallest
    $v_i = \alpha_i/C - \beta_1 s_i - \beta_2 q_i$ ($s, q$: signed margins
    $y_i f(x_i)$ of the clean and the random classifier, each divided by its largest
    magnitude), refit, and keep the candidate whose weight vector has the smallest cosine
    $\langle w', w\rangle_{\mathcal H}/(\|w'\|\|w\|)$ with the clean one (the largest
    tilt). `score` is that cosine. All refits run in one `vmap`-ped SMO call.
    """
    X, y, budget = _check(X, y, budget)
    gamma = _check_svm(C, gamma, kernel, X)
    v.check_key(key)
    v.check_int(num_trials, "num_trials", low=1)
    dtype = X.dtype
    return _tilt_jit(X, y, jnp.asarray(C, dtype), jnp.asarray(gamma, dtype),
                     jnp.asarray(beta1, dtype), jnp.asarray(beta2, dtype), key,
                     jnp.asarray(tol, dtype), L=budget, kernel=kernel,
                     num_trials=num_trials, max_iter=max_iter)


def _val_score(Kv, yv, coef, b):
    f = Kv @ coef + b
    err = jnp.sum(jnp.where(f >= 0, 1.0, -1.0) != yv)
    hinge = jnp.mean(jnp.maximum(0.0, 1.0 - yv * f))
    return err + hinge / (1.0 + hinge)


@functools.partial(jax.jit, static_argnames=("L", "kernel"))
def _lfa_jit(X, y, Xv, yv, C, gamma, tol, *, L, kernel, max_iter):
    dtype = X.dtype
    yf = y.astype(dtype)
    yvf = yv.astype(dtype)
    n = y.shape[0]
    K = kernel_matrix(X, X, gamma, kernel=kernel)
    Kv = kernel_matrix(Xv, X, gamma, kernel=kernel)
    eye = jnp.eye(n, dtype=bool)

    def score_of(z):
        res = _fit(K, z, C, tol, max_iter)
        return _val_score(Kv, yvf, res.alpha * z, res.intercept), res.status

    def step(_, state):
        flip, best_scores, status = state
        cand = flip[None, :] ^ eye                       # candidate i flips label i
        Z = jnp.where(cand, -yf[None, :], yf[None, :])
        scores, st = jax.vmap(score_of)(Z)
        scores = jnp.where(flip, -jnp.inf, scores)       # never un-flip
        i = jnp.argmax(scores)
        return flip.at[i].set(True), scores[i], jnp.maximum(status, jnp.max(st))

    flip, score, status = jax.lax.fori_loop(
        0, L, step, (jnp.zeros(n, bool), jnp.asarray(jnp.nan, dtype), jnp.asarray(0)))
    return _result(y, flip, score=score, status=status, iterations=L)


def greedy_lfa(X, y, X_val, y_val, *, budget: int, C: float = 1.0, gamma=1.0,
               kernel: str = "rbf", tol: float = 1e-3,
               max_iter: int = 100_000) -> LabelFlipResult:
    r"""Greedy label-flip attack maximising validation error.

    For $t = 1..L$: among the labels not yet flipped, flip the one whose flip gives
    the SVM (retrained from scratch) with the most validation errors, ties broken by the
    larger mean validation hinge loss. Each step solves the $n$ candidate SVMs in
    one `vmap`-ped SMO call. `score` is (errors + h/(1+h)) of the last step
    (`h` = mean hinge loss). Cost $O(L\,n)$ SVM solves; meant for small `n`.
    """
    X, y, budget = _check(X, y, budget)
    gamma = _check_svm(C, gamma, kernel, X)
    X_val = v.as_float_array(X_val, "X_val", ndim=2, dtype=X.dtype)
    y_val = v.as_label_array(y_val, "y_val", allowed=(-1, 1))
    v.check_same_length(X_val, "X_val", y_val, "y_val")
    return _lfa_jit(X, y, X_val, y_val, jnp.asarray(C, X.dtype),
                    jnp.asarray(gamma, X.dtype), jnp.asarray(tol, X.dtype), L=budget,
                    kernel=kernel, max_iter=max_iter)
