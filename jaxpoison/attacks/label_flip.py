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
* `alfa_tilt` -- ALFA-tilt: score $v_i = a_i / C - \beta_1 s_i - \beta_2 q_i$ (clean
  dual coefficient, normalised signed margins of the clean SVM and of a "random"
  classifier) and flip the $L$ smallest; `variant="authors"` is the FLORAL authors'
  deterministic script (signed duals, the clean SVM as the "random" classifier),
  `variant="xiao"` Xiao et al. (Neurocomputing 2015): random classifiers, unsigned duals,
  the candidate that tilts the SVM most is kept.
* `greedy_lfa` -- greedy label-flip attack: flip one label at a time, the one
  maximising the validation error (ties broken by validation hinge loss) of the retrained
  SVM; each step solves all $n$ candidate SVMs in one batched (`vmap`) call.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from jaxpoison import _validate as v
from jaxpoison._result import Result, Status, raise_if_failed
from jaxpoison.models.kernel_svm import SVM_DEFAULTS, check_svm_inputs, kernel_svm_core
from jaxpoison.models.kernels import kernel_matrix
from jaxpoison.solvers.svm_dual import DEFAULT_SOLVER, PGD, SMO

_C, _KERNEL, _GAMMA = SVM_DEFAULTS["C"], SVM_DEFAULTS["kernel"], SVM_DEFAULTS["gamma"]

__all__ = ["ALFA_TILT_VARIANTS", "LabelFlipResult", "random_label_flip", "topk_sv_flip",
           "alfa", "alfa_tilt", "greedy_lfa", "flip_budget"]


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


def flip_budget(n: int, budget_fraction: float) -> int:
    """Number of flips for a fraction of `n` points, $\\lceil n \\cdot$ `budget_fraction`$\\rceil$
    (rounded up like the FLORAL code, after rounding away float noise at 1e-9)."""
    n = v.check_int(n, "n", low=0)
    v.check_in_range(budget_fraction, "budget_fraction", 0.0, 1.0)
    return int(-(-round(n * budget_fraction * 1e9) // int(1e9)))


def _result(y, flip, score=jnp.nan, status=Status.SUCCESS, iterations=0):
    labels = jnp.where(flip, -y, y).astype(jnp.int32)
    return LabelFlipResult(status=jnp.asarray(status, jnp.int32),
                           iterations=jnp.asarray(iterations, jnp.int32), labels=labels,
                           flipped=flip, num_flipped=jnp.sum(flip).astype(jnp.int32),
                           score=jnp.asarray(score, jnp.result_type(float)))


def _check(X, y, budget, C, gamma, kernel, solver):
    """The kernel-SVM boundary check plus `0 <= budget <= n`; returns (X, y, budget, gamma)."""
    X, y, gamma = check_svm_inputs(X, y, C=C, kernel=kernel, gamma=gamma, solver=solver)
    budget = v.check_int(budget, "budget", low=0, high=X.shape[0])
    return X, y, budget, gamma


def _topk_mask(score, L):
    """Mask of the L largest entries of `score`."""
    n = score.shape[0]
    if L == 0:
        return jnp.zeros(n, bool)
    _, idx = jax.lax.top_k(score, L)
    return jnp.zeros(n, bool).at[idx].set(True)


def random_label_flip(y, *, budget: int, key, throw: bool = True) -> LabelFlipResult:
    """Flip `budget` labels chosen uniformly at random without replacement."""
    y = v.as_label_array(y, "y", allowed=(-1, 1))
    budget = v.check_int(budget, "budget", low=0, high=y.shape[0])
    v.check_key(key)
    u = jax.random.uniform(key, y.shape)
    return raise_if_failed(_result(y, _topk_mask(u, budget)), "random_label_flip",
                           throw=throw)


def _fit(X, K, yf, C, gamma, solver, kernel):
    """The one kernel-SVM fit (`jaxpoison.models.kernel_svm_core`) on a shared Gram matrix."""
    fit = kernel_svm_core(X, yf, C, gamma, solver, kernel=kernel, K=K)
    return fit.model, fit.status


@functools.partial(jax.jit, static_argnames=("L", "kernel"))
def _topk_jit(X, y, C, gamma, solver, *, L, kernel):
    yf = y.astype(X.dtype)
    K = kernel_matrix(X, X, gamma, kernel=kernel)
    res, status = _fit(X, K, yf, C, gamma, solver, kernel)
    # Ties (many alpha = C): break towards the most violating margins.
    f = K @ (res.alpha * yf) + res.intercept
    score = res.alpha - 1e-9 * jnp.tanh(yf * f)
    return _result(y, _topk_mask(score, L), status=status, iterations=1)


def topk_sv_flip(X, y, *, budget: int, C: float = _C, gamma=_GAMMA, kernel: str = _KERNEL,
                 solver: SMO | PGD = DEFAULT_SOLVER, throw: bool = True) -> LabelFlipResult:
    """Flip the labels of the `budget` points with the largest clean-SVM dual variables
    (ties among $\\alpha_i = C$ broken by the smallest margin $y_i f(x_i)$)."""
    X, y, budget, gamma = _check(X, y, budget, C, gamma, kernel, solver)
    res = _topk_jit(X, y, jnp.asarray(C, X.dtype), jnp.asarray(gamma, X.dtype), solver,
                    L=budget, kernel=kernel)
    return raise_if_failed(res, "topk_sv_flip", throw=throw)


def _hinge_pair(K, coef, b, yf):
    f = K @ coef + b
    return jnp.maximum(0.0, 1.0 - yf * f), jnp.maximum(0.0, 1.0 + yf * f)


@functools.partial(jax.jit, static_argnames=("L", "kernel"))
def _alfa_jit(X, y, C, gamma, solver, max_iter, *, L, kernel):
    yf = y.astype(X.dtype)
    K = kernel_matrix(X, X, gamma, kernel=kernel)
    clean, st0 = _fit(X, K, yf, C, gamma, solver, kernel)
    psi, psi_flip = _hinge_pair(K, clean.alpha * yf, clean.intercept, yf)
    n = y.shape[0]

    def pick(xi, xi_flip):
        delta = (xi_flip - psi_flip) - (xi - psi)
        return _topk_mask(-delta, L)

    def body(state):
        flip, it, _, st = state
        z = jnp.where(flip, -yf, yf)
        res, st_z = _fit(X, K, z, C, gamma, solver, kernel)
        xi, xi_flip = _hinge_pair(K, res.alpha * z, res.intercept, yf)
        new = pick(xi, xi_flip)
        return new, it + 1, jnp.any(new != flip), jnp.maximum(st, st_z)

    flip0 = pick(jnp.zeros(n, X.dtype), jnp.zeros(n, X.dtype))
    flip, it, changed, st = jax.lax.while_loop(
        lambda s: s[2] & (s[1] < max_iter), body,
        (flip0, jnp.asarray(0), jnp.asarray(True), st0))
    status = jnp.where(st != Status.SUCCESS, st,
                       jnp.where(changed, Status.MAX_ITERATIONS, Status.SUCCESS))
    return _result(y, flip, status=status, iterations=it)


def alfa(X, y, *, budget: int, C: float = _C, gamma=_GAMMA, kernel: str = _KERNEL,
         max_iter: int = 20, solver: SMO | PGD = DEFAULT_SOLVER,
         throw: bool = True) -> LabelFlipResult:
    r"""ALFA (Xiao, Xiao & Eckert 2012) with unit flip costs.

    Alternates (i) fitting the SVM $f_z$ on the tainted labels $z$ and (ii)
    choosing the `budget` flips with the smallest
    $\delta_i = [\xi_i(-y_i) - \psi_i(-y_i)] - [\xi_i(y_i) - \psi_i(y_i)]$ (the
    solution of ALFA's LP for unit costs), where $\xi_i(\cdot)$, $\psi_i(\cdot)$
    are hinge losses of $f_z$ and of the clean SVM. Starts from $\xi = 0$;
    stops when the flip set repeats (status `SUCCESS`) or after `max_iter` alternations
    (status `MAX_ITERATIONS`: raises with `throw=True`; with `throw=False` the last
    flips are returned). `solver` configures every SVM fit (`jaxpoison.solvers.SMO`).
    """
    X, y, budget, gamma = _check(X, y, budget, C, gamma, kernel, solver)
    max_iter = v.check_int(max_iter, "max_iter", low=1)
    res = _alfa_jit(X, y, jnp.asarray(C, X.dtype), jnp.asarray(gamma, X.dtype), solver,
                    max_iter, L=budget, kernel=kernel)
    return raise_if_failed(res, "alfa", throw=throw)


ALFA_TILT_VARIANTS = ("authors", "xiao")


@functools.partial(jax.jit, static_argnames=("L", "kernel", "num_trials", "variant"))
def _tilt_jit(X, y, C, gamma, beta1, beta2, key, solver, *, L, kernel, num_trials, variant):
    dtype = X.dtype
    yf = y.astype(dtype)
    n = y.shape[0]
    K = kernel_matrix(X, X, gamma, kernel=kernel)
    clean, st0 = _fit(X, K, yf, C, gamma, solver, kernel)
    w = clean.alpha * yf
    s = yf * (K @ w + clean.intercept)
    s = s / jnp.max(jnp.abs(s))

    if variant == "authors":
        # the "random" classifier is the clean SVM itself (q = s) and alpha is signed
        flip = _topk_mask(-(w / C - (beta1 + beta2) * s), L)
        z = jnp.where(flip, -yf, yf)
        res, st = _fit(X, K, z, C, gamma, solver, kernel)
        a, a2 = clean.alpha, res.alpha   # their Q_zy / Q_zz / Q_yy products of signed duals
        cos = (a2 @ (K @ a)) / jnp.sqrt(jnp.maximum((a2 @ (K @ a2)) * (a @ (K @ a)), 1e-300))
        return _result(y, flip, score=cos, status=jnp.maximum(st0, st), iterations=1)

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
        res, st = _fit(X, K, z, C, gamma, solver, kernel)
        w2 = res.alpha * z
        cos = (w2 @ (K @ w)) / jnp.sqrt(jnp.maximum((w2 @ (K @ w2)) * (w @ (K @ w)), 1e-300))
        return cos, st

    cos, status = jax.vmap(tilt)(flips)
    best = jnp.argmin(cos)
    return _result(y, flips[best], score=cos[best],
                   status=jnp.maximum(st0, jnp.max(status)), iterations=num_trials)


def alfa_tilt(X, y, *, budget: int, variant: str = "authors", key: jax.Array | None = None,
              C: float = _C, gamma=_GAMMA, kernel: str = _KERNEL, num_trials: int = 10,
              beta1: float = 1.0, beta2: float = 1.0, solver: SMO | PGD = DEFAULT_SOLVER,
              throw: bool = True) -> LabelFlipResult:
    r"""ALFA-tilt label flips, in the FLORAL authors' deterministic form or Xiao et al.'s.

    Both score every point by $v_i = a_i/C - \beta_1 s_i - \beta_2 q_i$ and flip the
    `budget` smallest, where $s_i = y_i f(x_i)/\max_j |y_j f(x_j)|$ is the normalised
    signed margin of the clean SVM $f$ (fitted with `C`, `gamma`, `solver`) and $q_i$ that
    of a "random" classifier.

    * `variant="authors"` (default; the script `src/data/alfa_tilt_attack.py` of the
      FLORAL authors, which made the labels of their Table 1): the "random" classifier is
      the clean SVM itself, so $q = s$; $a_i = \alpha_i y_i$ are the **signed** dual
      coefficients; the script's `N` candidates are therefore identical and the result is
      deterministic: $v = \alpha\circ y/C - (\beta_1+\beta_2)s$. `key` and `num_trials`
      are ignored. `score` is the script's "tilt angle" of the refit on the flipped labels
      $z$: $a'^\top K a/(\sqrt{a'^\top K a'}\sqrt{a^\top K a})$ with the unsigned duals
      $a, a'$ of the clean and the refitted SVM (their $\alpha'^\top Q_{zy}\alpha$ with
      signed duals reduces to this). One difference: the script refits with its default
      $\gamma = 1$ whatever `gamma` it attacked with; here the refit uses `gamma` (the same
      for their $\gamma = 1$ runs).
    * `variant="xiao"` (Xiao et al., Neurocomputing 2015): $a_i = \alpha_i$ (unsigned);
      `num_trials` random classifiers $f_{rnd}(x) = \sum_j c_j k(x_j, x) + b$,
      $c_j, b \sim U(-1, 1)$ drawn with `key` (required); each candidate flip set is
      refitted and the one whose weight vector tilts most (smallest cosine
      $\langle w', w\rangle_{\mathcal H}/(\|w'\|\|w\|)$, $w = \sum_i\alpha_i y_i
      \phi(x_i)$) is kept; `score` is that cosine. All refits run in one `vmap`-ped call.

    Ties in $v$ go to the smaller index. Raises `ValueError` for an unknown `variant` or a
    `budget` outside `[0, n]`, `TypeError` for a missing `key` with `variant="xiao"`.
    """
    v.check_choice(variant, "variant", ALFA_TILT_VARIANTS)
    X, y, budget, gamma = _check(X, y, budget, C, gamma, kernel, solver)
    if variant == "xiao":
        v.check_key(key)
        num_trials = v.check_int(num_trials, "num_trials", low=1)
    else:
        key, num_trials = jax.random.key(0), 1
    dtype = X.dtype
    res = _tilt_jit(X, y, jnp.asarray(C, dtype), jnp.asarray(gamma, dtype),
                    jnp.asarray(beta1, dtype), jnp.asarray(beta2, dtype), key, solver,
                    L=budget, kernel=kernel, num_trials=num_trials, variant=variant)
    return raise_if_failed(res, "alfa_tilt", throw=throw)


def _val_score(Kv, yv, coef, b):
    f = Kv @ coef + b
    err = jnp.sum(jnp.where(f >= 0, 1.0, -1.0) != yv)
    hinge = jnp.mean(jnp.maximum(0.0, 1.0 - yv * f))
    return err + hinge / (1.0 + hinge)


@functools.partial(jax.jit, static_argnames=("L", "kernel"))
def _lfa_jit(X, y, Xv, yv, C, gamma, solver, *, L, kernel):
    dtype = X.dtype
    yf = y.astype(dtype)
    yvf = yv.astype(dtype)
    n = y.shape[0]
    K = kernel_matrix(X, X, gamma, kernel=kernel)
    Kv = kernel_matrix(Xv, X, gamma, kernel=kernel)
    eye = jnp.eye(n, dtype=bool)

    def score_of(z):
        res, st = _fit(X, K, z, C, gamma, solver, kernel)
        return _val_score(Kv, yvf, res.alpha * z, res.intercept), st

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


def greedy_lfa(X, y, X_val, y_val, *, budget: int, C: float = _C, gamma=_GAMMA,
               kernel: str = _KERNEL, solver: SMO | PGD = DEFAULT_SOLVER,
               throw: bool = True) -> LabelFlipResult:
    r"""Greedy label-flip attack maximising validation error.

    For $t = 1..L$: among the labels not yet flipped, flip the one whose flip gives
    the SVM (retrained from scratch) with the most validation errors, ties broken by the
    larger mean validation hinge loss. Each step solves the $n$ candidate SVMs in
    one `vmap`-ped SMO call. `score` is (errors + h/(1+h)) of the last step
    (`h` = mean hinge loss). Cost $O(L\,n)$ SVM solves; meant for small `n`.
    """
    X, y, budget, gamma = _check(X, y, budget, C, gamma, kernel, solver)
    X_val = v.as_float_array(X_val, "X_val", ndim=2, dtype=X.dtype)
    v.check_shape(X_val, "X_val", (None, X.shape[1]))
    y_val = v.as_label_array(y_val, "y_val", allowed=(-1, 1))
    v.check_same_length(X_val, "X_val", y_val, "y_val")
    res = _lfa_jit(X, y, X_val, y_val, jnp.asarray(C, X.dtype), jnp.asarray(gamma, X.dtype),
                   solver, L=budget, kernel=kernel)
    return raise_if_failed(res, "greedy_lfa", throw=throw)
