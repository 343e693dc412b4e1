r"""FLORAL: adversarial training of a kernel SVM against label poisoning.

Bal, Cevher & Muehlebach, "Adversarial Training for Defense Against Label Poisoning
Attacks", ICLR 2025 (Algorithm 1; Algorithm 3 for several classes). The learner and a
label-flipping attacker play a Stackelberg game. Starting from $\lambda^0 = 0$ and
the clean labels $y^0 = y$, every round $t = 1, \dots, T$

1. the learner takes one projected-gradient step on the SVM dual under the current
   adversarial labels,

   $$
   \lambda^t = P_{\{(y^{t-1})^\top\lambda = 0,\ 0\le\lambda\le C\}}
   \bigl(\lambda^{t-1} - \eta_t (Q^{t-1}\lambda^{t-1} - \mathbf 1)\bigr),
   \qquad Q^{t-1} = (y^{t-1} {y^{t-1}}^\top)\circ K,
   $$

   and sets the bias as the mean over the support vectors
   $S = \{i : \lambda_i^t > 10^{-5}\}$ of
   $y_i - \sum_{j\in S}\lambda_j y_j K_{ij}$ (as in the authors' code);
2. the attacker sorts the support vectors by $\lambda^t$, keeps the top
   $\min(|S|, 2k)$, draws $k$ of them uniformly without replacement and flips
   those labels of the *original* training labels, giving $y^t$ (flips are
   rebuilt every round, not accumulated).

The whole game is one `lax.scan`; the result records per-round evaluation accuracy,
the number of support vectors, the intercept and the flipped indices. Everything is
`jit`-compiled and `vmap`-s over keys (replications) and over data sets of one
shape; `floral_validation_loss` is differentiable in `C`, `gamma` and `lr`
(the attacker's discrete choices are piecewise constant and held fixed by the key).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from jaxpoison import _validate as v
from jaxpoison._result import Result, Status, is_concrete, raise_if_failed
from jaxpoison.models.kernel_svm import KernelSVM
from jaxpoison.models.kernels import KERNELS, kernel_matrix, resolve_gamma
from jaxpoison.solvers.box_hyperplane import project_box_hyperplane

__all__ = ["FloralHistory", "FloralResult", "floral", "floral_multiclass",
           "floral_validation_loss", "LR_SCHEDULES"]

LR_SCHEDULES = ("constant", "authors", "step", "inverse_sqrt")


class FloralHistory(eqx.Module):
    """Per-round records (leading axis = round `1..T`).

    Attributes:
        accuracy: evaluation accuracy after each round (NaN without evaluation data).
        num_sv: number of support vectors ($\\lambda_i > $ threshold).
        intercept: bias after each round.
        flips: indices flipped by the attacker after each round, `(T, k)` (`-1` when
            fewer than `k` support vectors were available).
        lam: $\\lambda^t$ for every round `(T, n)` if `record_lam` else `None`.
    """

    accuracy: jax.Array
    num_sv: jax.Array
    intercept: jax.Array
    flips: jax.Array
    lam: jax.Array | None = None


class FloralResult(Result):
    """Outcome of `floral`.

    Attributes:
        model: the final `jaxpoison.models.KernelSVM` (`alpha` = final
            $\\lambda$ on its support, `y_train` = labels of the last step).
        lam: final dual iterate $\\lambda^T$ (including values below the threshold).
        y_adv: the attacker's last label vector $y^T$.
        history: `FloralHistory`.
        best_accuracy: max over rounds of the evaluation accuracy.
        last_accuracy: evaluation accuracy after the last round.
        best_round: 1-based round of `best_accuracy`.
    """

    model: KernelSVM
    lam: jax.Array
    y_adv: jax.Array
    history: FloralHistory
    best_accuracy: jax.Array
    last_accuracy: jax.Array
    best_round: jax.Array


def _lr_factor(schedule, t, dtype):
    t = t.astype(dtype)
    if callable(schedule):
        return jnp.asarray(schedule(t), dtype)
    if schedule == "constant":
        return jnp.asarray(1.0, dtype)
    if schedule == "authors":
        # The authors' code divides the configured rate by 10 on rounds 100, 200, ...
        # only (the rate is re-read every round), i.e. essentially constant.
        return jnp.where((jnp.mod(t, 100) == 0) & (t > 0), 0.1, 1.0).astype(dtype)
    if schedule == "step":
        return (0.1 ** jnp.floor(t / 100.0)).astype(dtype)
    if schedule == "inverse_sqrt":
        return 1.0 / jnp.sqrt(jnp.maximum(t, 1.0))
    raise ValueError(f"lr_schedule must be one of {list(LR_SCHEDULES)} or a callable")


def _attack(lam, sv, y, key, k, factor):
    """Randomised top-k support-vector flip; returns (new labels, flipped indices)."""
    n = lam.shape[0]
    if k == 0:
        return y, jnp.zeros((0,), jnp.int32)
    m_max = min(factor * k, n)
    scores = jnp.where(sv, lam, -jnp.inf)
    # top_k is stable: among equal lambdas the smaller index comes first (as Python's
    # sorted in the authors' code); non-support vectors (-inf) come last.
    _, cand = jax.lax.top_k(scores, m_max)
    m = jnp.minimum(jnp.sum(sv), m_max)
    u = jax.random.uniform(key, (m_max,), dtype=lam.dtype)
    u = jnp.where(jnp.arange(m_max) < m, u, jnp.inf)
    _, pos = jax.lax.top_k(-u, k)
    valid = pos < m
    idx = cand[pos]
    flip = jnp.zeros(n, bool).at[idx].max(valid)
    return jnp.where(flip, -y, y), jnp.where(valid, idx, -1).astype(jnp.int32)


def _step(K, y, lam, y_adv, Kyl, prev_flips, key, lr_t, C, *, k, thr, factor, projection):
    """One round. `Kyl` = K (y_adv * lam) is carried so that each round reads K once.

    After the step, K [y_adv * lam_new, coef] is one pass over K (two right-hand sides);
    the attacker changes at most 2k labels (its previous and new flips), so
    K (y_new * lam_new) is that plus a correction from 2k gathered rows (K symmetric).
    """
    grad = y_adv * Kyl - 1.0
    lam = project_box_hyperplane(lam - lr_t * grad, y_adv, C, method=projection)
    sv = lam > thr
    coef = jnp.where(sv, lam * y_adv, 0.0)
    nsv = jnp.sum(sv)
    AB = K @ jnp.stack([y_adv * lam, coef], axis=1)
    b = jnp.where(nsv > 0, jnp.sum(jnp.where(sv, y_adv - AB[:, 1], 0.0))
                  / jnp.maximum(nsv, 1), 0.0)
    y_new, flips = _attack(lam, sv, y, key, k, factor)
    if k == 0:
        Kyl_new = AB[:, 0]
    else:
        idx = jnp.concatenate([prev_flips, flips])
        valid = idx >= 0
        idx = jnp.where(valid, idx, 0)
        w = jnp.where(valid, (y_new[idx] - y_adv[idx]) * lam[idx], 0.0)
        Kyl_new = AB[:, 0] + w @ K[idx]  # K symmetric: contiguous rows, not columns
    return lam, coef, b, nsv, y_new, flips, Kyl_new


def _game(K, y, Ke, C, lr, key, *, k, rounds, schedule, thr, factor, projection, eval_fn,
          record_lam=False):
    """Shared scan for one binary problem (`Ke` may be None).

    Returns the final lambda, the attacker's last labels, the labels used in the last
    step, the final (coef, bias) and the per-round records (acc, nsv, b, flips, lam|None).
    """
    dtype = K.dtype
    n = K.shape[0]

    def body(carry, t):
        lam, y_adv, _, Kyl, prev, key = carry
        key, sub = jax.random.split(key)
        lr_t = lr * _lr_factor(schedule, t, dtype)
        lam, coef, b, nsv, y_new, flips, Kyl = _step(
            K, y, lam, y_adv, Kyl, prev, sub, lr_t, C, k=k, thr=thr, factor=factor,
            projection=projection)
        # evaluate inside the loop, or keep the coefficients and evaluate all rounds
        # after it with one matrix product instead of T matrix-vector products
        acc = coef if batch_eval else eval_fn(Ke, coef, b)
        return ((lam, y_new, y_adv, Kyl, flips, key),
                (acc, nsv, b, flips, lam if record_lam else None))

    zeros = jnp.zeros(n, dtype)
    carry0 = (zeros, y, y, zeros, -jnp.ones(k, jnp.int32), key)
    batch_eval = Ke is not None and rounds * n <= _BATCH_EVAL_MAX
    (lam, y_adv, y_last, _, _, _), (acc, nsv, b, flips, lams) = jax.lax.scan(
        body, carry0, jnp.arange(1, rounds + 1))
    if batch_eval:
        acc = eval_fn(Ke, acc, b)
    coef = jnp.where(lam > thr, lam * y_last, 0.0)
    return lam, y_adv, y_last, coef, b[-1], (acc, nsv, b, flips, lams)


# up to this many (rounds x n) coefficients are kept to evaluate all rounds after the scan
_BATCH_EVAL_MAX = 2 ** 24


def _accuracy_fn(ye):
    if ye is None:
        return lambda Ke, coef, b: jnp.asarray(jnp.nan, coef.dtype)
    yf = ye.astype(jnp.float64 if jax.config.jax_enable_x64 else jnp.float32)

    def acc(Ke, coef, b):
        """Accuracy of `coef` `(n,)` or of every round's `(T, n)` (bias `b`)."""
        pred = jnp.where(coef @ Ke.T + jnp.asarray(b)[..., None] > 0, 1.0, -1.0)
        return jnp.mean((pred == yf).astype(coef.dtype), axis=-1)

    return acc


@functools.partial(jax.jit, static_argnames=(
    "k", "rounds", "schedule", "kernel", "degree", "factor", "projection", "has_eval",
    "record_lam"))
def _floral_jit(X, y, Xe, ye, C, gamma, coef0, lr, thr, key, *, k, rounds, schedule, kernel,
                degree, factor, projection, has_eval, record_lam):
    dtype = X.dtype
    yf = y.astype(dtype)
    K = kernel_matrix(X, X, gamma, kernel=kernel, degree=degree, coef0=coef0)
    Ke = kernel_matrix(Xe, X, gamma, kernel=kernel, degree=degree, coef0=coef0) \
        if has_eval else None
    eval_fn = _accuracy_fn(ye if has_eval else None)
    lam, y_adv, y_last, _, _, (acc, nsv, b, flips, lams) = _game(
        K, yf, Ke, C, lr, key, k=k, rounds=rounds, schedule=schedule, thr=thr,
        factor=factor, projection=projection, eval_fn=eval_fn, record_lam=record_lam)
    sv = lam > thr
    model = KernelSVM(
        status=jnp.asarray(0, jnp.int32), iterations=jnp.asarray(rounds, jnp.int32),
        alpha=jnp.where(sv, lam, 0.0), intercept=b[-1], X_train=X, y_train=y_last,
        gamma=jnp.asarray(gamma, dtype), coef0=jnp.asarray(coef0, dtype),
        kernel_scale=jnp.asarray(1.0, dtype),
        objective=0.5 * (lam * y_last) @ (K @ (lam * y_last)) - jnp.sum(lam),
        gap=jnp.asarray(jnp.nan, dtype), kernel=kernel, degree=degree)
    finite = jnp.all(jnp.isfinite(lam)) & jnp.all(jnp.isfinite(b))
    status = jnp.where(finite, Status.SUCCESS, Status.NUMERICAL_ERROR).astype(jnp.int32)
    best_round = jnp.argmax(jnp.where(jnp.isnan(acc), -jnp.inf, acc))
    hist = FloralHistory(accuracy=acc, num_sv=nsv, intercept=b, flips=flips,
                         lam=lams)
    return FloralResult(status=status, iterations=jnp.asarray(rounds, jnp.int32),
                        model=model, lam=lam, y_adv=y_adv.astype(jnp.int32), history=hist,
                        best_accuracy=jnp.max(acc), last_accuracy=acc[-1],
                        best_round=best_round + 1)


def _check_two_classes(y, name="y"):
    if is_concrete(y) and np.unique(np.asarray(y)).size < 2:
        raise ValueError(f"{name} must contain at least two classes; got only "
                         f"{np.unique(np.asarray(y)).tolist()}")


def _check_floral_args(X, y, C, gamma, k, rounds, lr, key, X_eval, y_eval, kernel,
                       lr_schedule, candidate_factor, projection, allowed):
    X = v.as_float_array(X, "X", ndim=2)
    y = v.as_label_array(y, "y", allowed=allowed)
    v.check_same_length(X, "X", y, "y")
    _check_two_classes(y)
    v.check_choice(kernel, "kernel", KERNELS)
    gamma = resolve_gamma(gamma, X)
    v.check_positive(gamma, "gamma")
    v.check_positive(C, "C")
    v.check_positive(lr, "lr")
    k = v.check_int(k, "k", low=0, high=X.shape[0])
    rounds = v.check_int(rounds, "rounds", low=1)
    v.check_int(candidate_factor, "candidate_factor", low=1)
    v.check_key(key)
    v.check_choice(projection, "projection", ("sort", "bisect"))
    if not callable(lr_schedule):
        v.check_choice(lr_schedule, "lr_schedule", LR_SCHEDULES)
    if (X_eval is None) != (y_eval is None):
        raise ValueError("X_eval and y_eval must be given together (or both left out)")
    if X_eval is not None:
        X_eval = v.as_float_array(X_eval, "X_eval", ndim=2, dtype=X.dtype)
        y_eval = v.as_label_array(y_eval, "y_eval", allowed=allowed)
        v.check_same_length(X_eval, "X_eval", y_eval, "y_eval")
        if X_eval.shape[1] != X.shape[1]:
            raise ValueError(f"X_eval must have {X.shape[1]} columns like X; got "
                             f"{X_eval.shape[1]}")
    return X, y, gamma, k, rounds, X_eval, y_eval


def floral(
    X: Float[Array, "n d"],
    y,
    *,
    C: float = 10.0,
    gamma: float | str = 1.0,
    k: int,
    rounds: int = 500,
    lr: float = 1e-3,
    lr_schedule: str | Callable = "constant",
    key: jax.Array,
    X_eval: Float[Array, "m d"] | None = None,
    y_eval=None,
    kernel: str = "rbf",
    degree: int = 3,
    coef0: float = 0.0,
    sv_threshold: float = 1e-5,
    candidate_factor: int = 2,
    projection: str = "bisect",
    record_lam: bool = False,
    throw: bool = True,
) -> FloralResult:
    r"""Run FLORAL (Algorithm 1 of Bal et al., ICLR 2025) for `rounds` rounds.

    Args:
        X: training points `(n, d)`; y: (possibly poisoned) labels in $\{-1,+1\}$.
        C: box bound of the SVM dual. gamma: kernel parameter (sklearn semantics).
        k: the attacker's per-round flip budget (`0 <= k <= n`).
        rounds: number of rounds $T$ (static).
        lr: learning rate $\eta$ of the projected-gradient step (traceable).
        lr_schedule: `"constant"`, `"authors"` (the authors' code: $\eta/10$
            on rounds 100, 200, ...), `"step"` ($\eta\,0.1^{\lfloor t/100
            \rfloor}$), `"inverse_sqrt"`, or a callable `t -> factor` (static).
        key: PRNG key for the attacker's draws (keyword-only).
        X_eval, y_eval: optional evaluation data; accuracy is recorded every round.
        kernel, degree, coef0: kernel choice (see `jaxpoison.models.kernel_matrix`).
        sv_threshold: support-vector threshold on $\lambda$ (authors: `1e-5`).
        candidate_factor: the attacker draws from the top `candidate_factor * k` SVs.
        projection: root finder of the projection, `"bisect"` (default) or `"sort"`;
            both are exact up to rounding (see `jaxpoison.solvers.project_box_hyperplane`),
            but XLA's CPU sort makes `"sort"` about 5x slower at n = 500 (a whole
            FLORAL round about 2x slower).
        record_lam: also keep $\\lambda^t$ of every round in `history.lam`.
        throw: raise on a non-finite result (skipped under transformations).

    Returns:
        `FloralResult` with the final model, history, `best_accuracy`
        (max over rounds) and `last_accuracy`.

    `jax.vmap(lambda key: floral(X, y, k=25, key=key, throw=False))(keys)` runs
    replications in one call; vmapping over `X`/`y` runs several data sets.
    """
    X, y, gamma, k, rounds, X_eval, y_eval = _check_floral_args(
        X, y, C, gamma, k, rounds, lr, key, X_eval, y_eval, kernel, lr_schedule,
        candidate_factor, projection, (-1, 1))
    dtype = X.dtype
    has_eval = X_eval is not None
    Xe = X_eval if has_eval else jnp.zeros((1, X.shape[1]), dtype)
    ye = y_eval if has_eval else jnp.zeros((1,), jnp.int32)
    res = _floral_jit(X, y, Xe, ye, jnp.asarray(C, dtype), jnp.asarray(gamma, dtype),
                      jnp.asarray(coef0, dtype), jnp.asarray(lr, dtype),
                      jnp.asarray(sv_threshold, dtype), key, k=k, rounds=rounds,
                      schedule=lr_schedule, kernel=kernel, degree=degree,
                      factor=int(candidate_factor), projection=projection,
                      has_eval=has_eval, record_lam=bool(record_lam))
    return raise_if_failed(res, "floral", throw=throw)


# ---------------------------------------------------------------------------------------
# Multi-class (one-vs-rest), Algorithm 3


class FloralMultiResult(Result):
    """Outcome of `floral_multiclass` (leading axis of `lam`/`coef` = class).

    Attributes:
        classes: the class labels, `(c,)`.
        coef: final $\\lambda_i y^{(c)}_i$ on the support, `(c, n)`.
        intercept: `(c,)`. X_train: training points.
        accuracy: per-round multi-class evaluation accuracy `(T,)`.
        best_accuracy, last_accuracy: as in `FloralResult`.
    """

    classes: jax.Array
    coef: jax.Array
    intercept: jax.Array
    X_train: jax.Array
    gamma: jax.Array
    accuracy: jax.Array
    best_accuracy: jax.Array
    last_accuracy: jax.Array

    def decision_function(self, X, *, kernel: str = "rbf"):
        """One-vs-rest decision values `(m, c)`."""
        Kx = kernel_matrix(jnp.asarray(X, self.X_train.dtype), self.X_train, self.gamma,
                           kernel=kernel)
        return Kx @ self.coef.T + self.intercept

    def predict(self, X, *, kernel: str = "rbf"):
        return self.classes[jnp.argmax(self.decision_function(X, kernel=kernel), axis=1)]


@functools.partial(jax.jit, static_argnames=("k", "rounds", "schedule", "kernel", "factor",
                                             "has_eval"))
def _floral_multi_jit(X, Y, Xe, ye_idx, C, gamma, lr, thr, key, *, k, rounds, schedule,
                      kernel, factor, has_eval):
    dtype = X.dtype
    c, n = Y.shape
    K = kernel_matrix(X, X, gamma, kernel=kernel)
    Ke = kernel_matrix(Xe, X, gamma, kernel=kernel)
    step = jax.vmap(functools.partial(_step, k=k, thr=thr, factor=factor, projection="bisect"),
                    in_axes=(None, 0, 0, 0, 0, 0, 0, None, None))

    def body(carry, t):
        lam, y_adv, _, Kyl, prev, key = carry
        key, sub = jax.random.split(key)
        lr_t = lr * _lr_factor(schedule, t, dtype)
        lam, coef, b, _, y_new, flips, Kyl = step(K, Y, lam, y_adv, Kyl, prev,
                                                   jax.random.split(sub, c), lr_t, C)
        pred = jnp.argmax(Ke @ coef.T + b, axis=1)
        acc = jnp.mean((pred == ye_idx).astype(dtype)) if has_eval else jnp.asarray(
            jnp.nan, dtype)
        return (lam, y_new, y_adv, Kyl, flips, key), (acc, b)

    zeros = jnp.zeros((c, n), dtype)
    carry0 = (zeros, Y, Y, zeros, -jnp.ones((c, k), jnp.int32), key)
    (lam, _, y_used, *_), (acc, b) = jax.lax.scan(body, carry0, jnp.arange(1, rounds + 1))
    coef = jnp.where(lam > thr, lam * y_used, 0.0)
    return lam, coef, b[-1], acc


def floral_multiclass(
    X, y, *, C: float = 10.0, gamma: float | str = 1.0, k: int, rounds: int = 500,
    lr: float = 1e-3, lr_schedule="constant", key, X_eval=None, y_eval=None,
    kernel: str = "rbf", sv_threshold: float = 1e-5, candidate_factor: int = 2,
    throw: bool = True,
) -> FloralMultiResult:
    r"""Multi-class FLORAL (Algorithm 3): one binary FLORAL game per class, one-vs-rest.

    For each class $c$ the labels are $y^{(c)}_i = +1$ if $y_i = c$
    else $-1$; the $c$ games run in parallel (`vmap`) inside one
    `lax.scan`, each with its own attacker of budget `k`, and the classifier predicts
    $\arg\max_c f_c(x)$. Arguments as in `floral`; `y` holds integer class
    labels (at least two distinct values).
    """
    yv = v.as_int_array(y, "y", ndim=1)
    classes = jnp.unique(yv) if v.is_concrete(yv) else None
    if classes is None or classes.shape[0] < 2:
        raise ValueError("y must contain at least two classes")
    X, _, gamma, k, rounds, X_eval, y_eval = _check_floral_args(
        X, yv, C, gamma, k, rounds, lr, key, X_eval, y_eval, kernel, lr_schedule,
        candidate_factor, "sort", tuple(int(c) for c in classes))
    dtype = X.dtype
    Y = jnp.where(yv[None, :] == classes[:, None], 1.0, -1.0).astype(dtype)
    has_eval = X_eval is not None
    Xe = X_eval if has_eval else X[:1]
    ye_idx = jnp.searchsorted(classes, y_eval) if has_eval else jnp.zeros((1,), jnp.int32)
    lam, coef, b, acc = _floral_multi_jit(
        X, Y, Xe, ye_idx, jnp.asarray(C, dtype), jnp.asarray(gamma, dtype),
        jnp.asarray(lr, dtype), jnp.asarray(sv_threshold, dtype), key, k=k, rounds=rounds,
        schedule=lr_schedule, kernel=kernel, factor=int(candidate_factor),
        has_eval=has_eval)
    finite = jnp.all(jnp.isfinite(lam))
    res = FloralMultiResult(
        status=jnp.where(finite, Status.SUCCESS, Status.NUMERICAL_ERROR).astype(jnp.int32),
        iterations=jnp.asarray(rounds, jnp.int32), classes=classes, coef=coef, intercept=b,
        X_train=X, gamma=jnp.asarray(gamma, dtype), accuracy=acc,
        best_accuracy=jnp.max(acc), last_accuracy=acc[-1])
    return raise_if_failed(res, "floral_multiclass", throw=throw)


# ---------------------------------------------------------------------------------------
# Differentiable validation loss for meta-experiments


@functools.partial(jax.jit, static_argnames=("k", "rounds", "loss", "schedule", "kernel"))
def floral_validation_loss(
    X: Float[Array, "n d"], y, X_val: Float[Array, "m d"], y_val, *, C, gamma, lr,
    k: int, rounds: int, key, loss: str = "logistic", schedule: str = "constant",
    kernel: str = "rbf", sv_threshold: float = 1e-5,
) -> Float[Array, ""]:
    r"""Validation loss of the FLORAL model after `rounds` rounds; differentiable.

    $$
    L(C, \gamma, \eta) = \frac1m \sum_{j=1}^m \ell\bigl(y^{val}_j f_T(x^{val}_j;
    C, \gamma, \eta)\bigr), \quad \ell(z) = \log(1 + e^{-z}) \text{ (`"logistic"`)}
    \text{ or the smooth hinge (`"smooth_hinge"`)}.
    $$

    `jax.grad` with respect to `C`, `gamma` and `lr` differentiates through
    every round (projection, bias) with the attacker's choices (a function of the key
    and of the ordering of $\lambda$) held fixed -- exact wherever those choices
    and the support set are locally constant. No input validation (use inside
    transformations); labels in $\{-1, +1\}$.
    """
    dtype = X.dtype
    yf = jnp.asarray(y).astype(dtype)
    K = kernel_matrix(X, X, gamma, kernel=kernel)
    _, _, _, coef, b, _ = _game(
        K, yf, None, C, lr, key, k=k, rounds=rounds, schedule=schedule,
        thr=jnp.asarray(sv_threshold, dtype), factor=2, projection="bisect",
        eval_fn=lambda Ke, coef, b: jnp.asarray(0.0, dtype))
    f = kernel_matrix(X_val, X, gamma, kernel=kernel) @ coef + b
    z = jnp.asarray(y_val).astype(dtype) * f
    if loss == "logistic":
        return jnp.mean(jax.nn.softplus(-z))
    if loss == "smooth_hinge":
        return jnp.mean(jnp.where(z >= 1, 0.0, jnp.where(z <= 0, 0.5 - z, 0.5 * (1 - z) ** 2)))
    raise ValueError(f"loss must be 'logistic' or 'smooth_hinge'; got {loss!r}")
