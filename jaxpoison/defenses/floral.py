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
2. the attacker (`floral_attack`) sorts the support vectors by $\lambda^t$, keeps the
   top $\min(|S|, 2k)$, draws $k$ (= `budget`) of them uniformly without replacement and flips
   those labels of the *original* training labels, giving $y^t$ (flips are
   rebuilt every round, not accumulated).

The whole game is one `lax.scan` (`floral_game`, the jit-safe core shared with the
projected-gradient baselines); the result records per-round evaluation accuracy, the
number of support vectors, the intercept and the flipped indices. Given validation data
(`X_val`, `y_val`) the round with the best validation accuracy is kept as
`selected_model` (its test accuracy, `selected_accuracy`, is the honest number to
report; `best_accuracy`, the maximum over rounds of the *evaluation* accuracy, is chosen
on the evaluation data and is optimistic). Everything is
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
from jaxpoison._result import Result, Status, raise_if_failed
from jaxpoison.models.classifier import Classifier
from jaxpoison.models.kernel_svm import SVM_DEFAULTS, KernelSVM, check_svm_inputs
from jaxpoison.models.kernels import kernel_matrix
from jaxpoison.solvers.box_hyperplane import project_box_hyperplane

__all__ = ["curve_best_last", "Trajectory", "FloralHistory", "FloralGame", "FloralResult",
           "FloralMultiResult", "OneVsRestKernelSVM", "floral", "floral_multiclass",
           "floral_validation_loss", "floral_game", "floral_attack",
           "LR_SCHEDULES"]

LR_SCHEDULES = ("constant", "authors", "step", "inverse_sqrt")

_C, _KERNEL, _GAMMA = SVM_DEFAULTS["C"], SVM_DEFAULTS["kernel"], SVM_DEFAULTS["gamma"]
_STEPS, _LR, _THR, _FACTOR = 500, 1e-3, 1e-5, 2


def curve_best_last(curves, name: str = "curves") -> tuple[float, float]:
    r"""Best and Last as the FLORAL paper defines them: the maximum and the final value of
    the **seed-averaged** accuracy curve.

    Args:
        curves: per-seed accuracy curves, a sequence of equal-length 1-D arrays (one per
            replication) or a `(seeds, steps)` array.
        name: the argument name used in error messages.

    Returns:
        `(best, last)` = $(\max_t \bar a_t, \bar a_T)$ with $\bar a_t$ the mean over
        seeds. (The mean of each run's maximum is larger in general: it picks the best
        step per seed.) Raises `ValueError` naming `name` for curves of different lengths,
        empty curves or NaN values.
    """
    rows = [np.asarray(c, dtype=float).reshape(-1) for c in curves]
    if not rows:
        raise ValueError(f"{name} must hold at least one curve; got none")
    lengths = sorted({r.size for r in rows})
    if len(lengths) != 1:
        raise ValueError(f"{name} must all have the same length; got lengths {lengths}")
    if lengths[0] == 0:
        raise ValueError(f"{name} must not be empty")
    mean = np.mean(np.stack(rows), axis=0)
    if not np.all(np.isfinite(mean)):
        raise ValueError(f"{name} must be finite (evaluation data given to every run); "
                         "got NaN/inf")
    return float(np.max(mean)), float(mean[-1])


class Trajectory(eqx.Module):
    r"""FLORAL's learner loop without an attacker, as an SVM "solver" for the baselines.

    `steps` projected-gradient steps of size `lr` (schedule `lr_schedule`) on the SVM dual
    from $\lambda = 0$, bias from the support vectors above `sv_threshold` -- the SVM
    column of the FLORAL paper's Table 1, and the LN-SVM, Curie, LS-SVM and K-LID columns
    when passed as `solver` to those baselines (`jaxpoison.defenses.svm_baseline`, ...).
    Not run to convergence: its Best and Last accuracies differ.

    Attributes:
        steps: number of steps (static).
        lr: step size (traced).
        lr_schedule: as in `floral` (static).
        sv_threshold: support-vector threshold on $\lambda$.
    """

    steps: int = eqx.field(static=True, default=_STEPS)
    lr: float | jax.Array = _LR
    lr_schedule: str = eqx.field(static=True, default="constant")
    sv_threshold: float | jax.Array = _THR

    def __check_init__(self):
        v.check_int(self.steps, "Trajectory.steps", low=1)
        v.check_positive(self.lr, "Trajectory.lr")
        if not callable(self.lr_schedule):
            v.check_choice(self.lr_schedule, "Trajectory.lr_schedule", LR_SCHEDULES)
        v.check_nonnegative(self.sv_threshold, "Trajectory.sv_threshold")


class FloralHistory(eqx.Module):
    """Per-round records (leading axis = round `1..T`).

    Attributes:
        accuracy: evaluation accuracy after each round (NaN without evaluation data).
        val_accuracy: validation accuracy after each round (NaN without validation data).
        num_sv: number of support vectors ($\\lambda_i > $ threshold).
        intercept: bias after each round.
        flips: indices flipped by the attacker after each round, `(T, budget)` (`-1` when
            fewer than `budget` support vectors were available).
        lam: $\\lambda^t$ for every round `(T, n)` if `record_lam` else `None`.
    """

    accuracy: jax.Array
    val_accuracy: jax.Array
    num_sv: jax.Array
    intercept: jax.Array
    flips: jax.Array
    lam: jax.Array | None = None


class FloralGame(Result):
    """Outcome of the jit-safe core `floral_game` (no model objects, only arrays).

    Attributes:
        lam: final dual iterate $\\lambda^T$.
        y_adv: the attacker's last labels $y^T$; y_last: the labels of the last step.
        coef, intercept: final $\\lambda_i y_i$ on the support and bias.
        selected_coef, selected_intercept, selected_round: the round with the best
            validation accuracy (the last round without validation data).
        history: `FloralHistory`.
    """

    lam: jax.Array
    y_adv: jax.Array
    y_last: jax.Array
    coef: jax.Array
    intercept: jax.Array
    selected_coef: jax.Array
    selected_intercept: jax.Array
    selected_round: jax.Array
    history: FloralHistory


class FloralResult(Result):
    """Outcome of `floral`.

    Attributes:
        model: the last-round `jaxpoison.models.KernelSVM` (`alpha` = final
            $\\lambda$ on its support, `y_train` = labels of the last step).
        selected_model: the model of round `selected_round` (best validation accuracy;
            the last round without validation data).
        lam: final dual iterate $\\lambda^T$ (including values below the threshold).
        y_adv: the attacker's last label vector $y^T$.
        history: `FloralHistory`.
        last_accuracy: evaluation accuracy after the last round.
        selected_accuracy: evaluation accuracy of `selected_model` (chosen without the
            evaluation data: the number to report).
        selected_round: 1-based round of `selected_model`.
        best_accuracy: max over rounds of the evaluation accuracy (chosen *on* the
            evaluation data, hence optimistic; the paper's per-run "Best").
        best_round: 1-based round of `best_accuracy`.
    """

    model: KernelSVM
    selected_model: KernelSVM
    lam: jax.Array
    y_adv: jax.Array
    history: FloralHistory
    last_accuracy: jax.Array
    selected_accuracy: jax.Array
    selected_round: jax.Array
    best_accuracy: jax.Array
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


def floral_attack(lam, y, key, *, budget: int, sv_threshold=_THR,
                  candidate_factor: int = _FACTOR):
    r"""FLORAL's attacker (one round): flip `budget` labels among the top support vectors.

    The support vectors $S = \{i : \lambda_i > $ `sv_threshold`$\}$ are sorted by
    $\lambda$ (ties: smaller index first), the top $m = \min(|S|,$
    `candidate_factor`$\cdot$`budget`$)$ are kept, and `budget` of them are drawn
    uniformly without replacement (all of them when $m <$ `budget`); their labels in `y`
    are flipped. A jit-safe core (no checks; `budget`, `candidate_factor` static).

    Returns:
        `(labels, flips)`: the flipped labels and the `(budget,)` flipped indices (`-1`
        for the draws beyond $|S|$).
    """
    n = lam.shape[0]
    if budget == 0:
        return y, jnp.zeros((0,), jnp.int32)
    sv = lam > sv_threshold
    m_max = min(candidate_factor * budget, n)
    scores = jnp.where(sv, lam, -jnp.inf)
    # top_k is stable: among equal lambdas the smaller index comes first (as Python's
    # sorted in the authors' code); non-support vectors (-inf) come last.
    _, cand = jax.lax.top_k(scores, m_max)
    m = jnp.minimum(jnp.sum(sv), m_max)
    u = jax.random.uniform(key, (m_max,), dtype=lam.dtype)
    u = jnp.where(jnp.arange(m_max) < m, u, jnp.inf)
    _, pos = jax.lax.top_k(-u, budget)
    valid = pos < m
    idx = cand[pos]
    flip = jnp.zeros(n, bool).at[idx].max(valid)
    return jnp.where(flip, -y, y), jnp.where(valid, idx, -1).astype(jnp.int32)


def _step(K, y, lam, y_adv, Kyl, prev_flips, key, lr_t, C, *, budget, thr, factor,
          projection):
    """One round. `Kyl` = K (y_adv * lam) is carried so that each round reads K once.

    After the step, K [y_adv * lam_new, coef] is one pass over K (two right-hand sides);
    the attacker changes at most 2 budget labels (its previous and new flips), so
    K (y_new * lam_new) is that plus a correction from 2 budget gathered rows (K symmetric).
    """
    grad = y_adv * Kyl - 1.0
    lam = project_box_hyperplane(lam - lr_t * grad, y_adv, C, method=projection)
    sv = lam > thr
    coef = jnp.where(sv, lam * y_adv, 0.0)
    nsv = jnp.sum(sv)
    AB = K @ jnp.stack([y_adv * lam, coef], axis=1)
    b = jnp.where(nsv > 0, jnp.sum(jnp.where(sv, y_adv - AB[:, 1], 0.0))
                  / jnp.maximum(nsv, 1), 0.0)
    y_new, flips = floral_attack(lam, y, key, budget=budget, sv_threshold=thr,
                                 candidate_factor=factor)
    if budget == 0:
        Kyl_new = AB[:, 0]
    else:
        idx = jnp.concatenate([prev_flips, flips])
        valid = idx >= 0
        idx = jnp.where(valid, idx, 0)
        w = jnp.where(valid, (y_new[idx] - y_adv[idx]) * lam[idx], 0.0)
        Kyl_new = AB[:, 0] + w @ K[idx]  # K symmetric: contiguous rows, not columns
    return lam, coef, b, nsv, y_new, flips, Kyl_new


# up to this many (rounds x n) coefficients are kept to evaluate all rounds after the scan
_BATCH_EVAL_MAX = 2 ** 24


def _accuracy(Ke, ye, coef, b, scale):
    """Accuracy of `coef` `(n,)` or of every round's `(T, n)` (bias `b`)."""
    pred = jnp.where(scale * (coef @ Ke.T) + jnp.asarray(b)[..., None] > 0, 1.0, -1.0)
    return jnp.mean((pred == ye.astype(coef.dtype)).astype(coef.dtype), axis=-1)


def floral_game(K, y, C, lr, key, *, budget: int, steps: int, lr_schedule="constant",
                sv_threshold=_THR, candidate_factor: int = _FACTOR,
                projection: str = "bisect", Ke=None, y_eval=None, Kv=None, y_val=None,
                kernel_scale=1.0, record_lam: bool = False) -> FloralGame:
    r"""The FLORAL game on a Gram matrix: the jit-safe core of `floral`.

    With `budget=0` it is the projected-gradient SVM loop without an attacker (the
    paper's SVM baseline; with a modified `K`, per-point `C` or relabelled `y` also its
    LN-SVM, Curie and LS-SVM baselines, see `jaxpoison.defenses.svm_baseline`).
    `Ke` `(m, n)` / `Kv` `(m_v, n)` are evaluation / validation kernels against the
    training points, `kernel_scale` multiplies them (LN-SVM). No input checks: call
    `floral` for a checked call; `budget`, `steps`, `lr_schedule`, `candidate_factor`,
    `projection`, `record_lam` are static.
    """
    dtype = K.dtype
    n = K.shape[0]
    yf = jnp.asarray(y).astype(dtype)
    C = jnp.broadcast_to(jnp.asarray(C, dtype), (n,))
    thr = jnp.asarray(sv_threshold, dtype)
    scale = jnp.asarray(kernel_scale, dtype)
    has_eval, has_val = Ke is not None, Kv is not None
    batch_eval = has_eval and steps * n <= _BATCH_EVAL_MAX
    nan = jnp.asarray(jnp.nan, dtype)

    def body(carry, t):
        lam, y_adv, _, Kyl, prev, key, best = carry
        key, sub = jax.random.split(key)
        lr_t = lr * _lr_factor(lr_schedule, t, dtype)
        lam, coef, b, nsv, y_new, flips, Kyl = _step(
            K, yf, lam, y_adv, Kyl, prev, sub, lr_t, C, budget=budget, thr=thr,
            factor=candidate_factor, projection=projection)
        # evaluate inside the loop, or keep the coefficients and evaluate all rounds
        # after it with one matrix product instead of T matrix-vector products
        if batch_eval:
            acc = coef
        else:
            acc = _accuracy(Ke, y_eval, coef, b, scale) if has_eval else nan
        if has_val:
            vacc = _accuracy(Kv, y_val, coef, b, scale)
            better = vacc > best[0]
            best = (jnp.where(better, vacc, best[0]), jnp.where(better, coef, best[1]),
                    jnp.where(better, b, best[2]), jnp.where(better, t, best[3]))
        else:
            vacc = nan
        return ((lam, y_new, y_adv, Kyl, flips, key, best),
                (acc, vacc, nsv, b, flips, lam if record_lam else None))

    zeros = jnp.zeros(n, dtype)
    best0 = (jnp.asarray(-jnp.inf, dtype), zeros, jnp.asarray(0.0, dtype),
             jnp.asarray(steps, jnp.int32))
    carry0 = (zeros, yf, yf, zeros, -jnp.ones(budget, jnp.int32), key, best0)
    (lam, y_adv, y_last, *_, best), (acc, vacc, nsv, b, flips, lams) = jax.lax.scan(
        body, carry0, jnp.arange(1, steps + 1, dtype=jnp.int32))
    if batch_eval:
        acc = _accuracy(Ke, y_eval, acc, b, scale)
    coef = jnp.where(lam > thr, lam * y_last, 0.0)
    if has_val:
        sel_coef, sel_b, sel_t = best[1], best[2], best[3]
    else:
        sel_coef, sel_b, sel_t = coef, b[-1], jnp.asarray(steps, jnp.int32)
    finite = jnp.all(jnp.isfinite(lam)) & jnp.all(jnp.isfinite(b))
    status = jnp.where(finite, Status.SUCCESS, Status.NUMERICAL_ERROR).astype(jnp.int32)
    hist = FloralHistory(accuracy=acc, val_accuracy=vacc, num_sv=nsv, intercept=b,
                         flips=flips, lam=lams)
    return FloralGame(status=status, iterations=jnp.asarray(steps, jnp.int32), lam=lam,
                      y_adv=y_adv.astype(jnp.int32), y_last=y_last, coef=coef,
                      intercept=b[-1], selected_coef=sel_coef, selected_intercept=sel_b,
                      selected_round=sel_t, history=hist)


@functools.partial(jax.jit, static_argnames=(
    "budget", "steps", "lr_schedule", "kernel", "degree", "candidate_factor", "projection",
    "has_eval", "has_val", "record_lam"))
def _floral_jit(X, y, Xe, ye, Xv, yv, C, gamma, coef0, lr, thr, key, *, budget, steps,
                lr_schedule, kernel, degree, candidate_factor, projection, has_eval, has_val,
                record_lam):
    def kern(A):
        return kernel_matrix(A, X, gamma, kernel=kernel, degree=degree, coef0=coef0)

    g = floral_game(kern(X), y, C, lr, key, budget=budget, steps=steps,
                    lr_schedule=lr_schedule, sv_threshold=thr,
                    candidate_factor=candidate_factor, projection=projection,
                    Ke=kern(Xe) if has_eval else None, y_eval=ye,
                    Kv=kern(Xv) if has_val else None, y_val=yv, record_lam=record_lam)
    # the last model keeps the labels of the last step (also for points off the support)
    last = KernelSVM(alpha=jnp.where(g.lam > thr, g.lam, 0.0), intercept=g.intercept,
                     X_train=X, y_train=g.y_last, gamma=jnp.asarray(gamma, X.dtype),
                     coef0=jnp.asarray(coef0, X.dtype),
                     kernel_scale=jnp.asarray(1.0, X.dtype), kernel=kernel, degree=degree)
    sel = KernelSVM.from_dual_coef(X, g.selected_coef, g.selected_intercept, gamma,
                                   kernel=kernel, degree=degree, coef0=coef0)
    acc = g.history.accuracy
    best_round = jnp.argmax(jnp.where(jnp.isnan(acc), -jnp.inf, acc))
    sel_acc = acc[g.selected_round - 1] if has_eval else jnp.asarray(jnp.nan, X.dtype)
    return FloralResult(status=g.status, iterations=g.iterations, model=last,
                        selected_model=sel, lam=g.lam, y_adv=g.y_adv, history=g.history,
                        last_accuracy=acc[-1], selected_accuracy=sel_acc,
                        selected_round=g.selected_round, best_accuracy=jnp.max(acc),
                        best_round=best_round + 1)


def _check_data(X_, y_, X_name, y_name, X, allowed):
    if (X_ is None) != (y_ is None):
        raise ValueError(f"{X_name} and {y_name} must be given together (or both left out)")
    if X_ is None:
        return None, None
    X_ = v.as_float_array(X_, X_name, ndim=2, dtype=X.dtype)
    v.check_shape(X_, X_name, (None, X.shape[1]))
    if X_.shape[0] == 0:
        raise ValueError(f"{X_name} must have at least one row; got shape {tuple(X_.shape)}")
    y_ = v.as_label_array(y_, y_name, allowed=allowed)
    v.check_same_length(X_, X_name, y_, y_name)
    return X_, y_


def check_floral_options(*, budget, steps, lr, key, lr_schedule, sv_threshold,
                         candidate_factor, n: int, projection: str = "bisect"):
    """The one check of FLORAL's loop options (shared by `floral`, `floral_multiclass`
    and the projected-gradient baselines); returns `(budget, steps, candidate_factor)`.

    `budget` an integer in `[0, n]`, `steps` >= 1, `lr` positive, `key` a PRNG key,
    `lr_schedule` in `LR_SCHEDULES` or a callable, `sv_threshold` >= 0, `candidate_factor`
    >= 1, `projection` `"sort"` or `"bisect"`.
    """
    budget = v.check_int(budget, "budget", low=0, high=n)
    steps = v.check_int(steps, "steps", low=1)
    v.check_positive(lr, "lr")
    v.check_key(key)
    if not callable(lr_schedule):
        v.check_choice(lr_schedule, "lr_schedule", LR_SCHEDULES)
    v.check_nonnegative(sv_threshold, "sv_threshold")
    candidate_factor = v.check_int(candidate_factor, "candidate_factor", low=1)
    v.check_choice(projection, "projection", ("sort", "bisect"))
    return budget, steps, candidate_factor


def floral(
    X: Float[Array, "n d"],
    y,
    *,
    budget: int,
    key: jax.Array,
    steps: int = _STEPS,
    lr: float = _LR,
    lr_schedule: str | Callable = "constant",
    C: float = _C,
    gamma: float | str = _GAMMA,
    kernel: str = _KERNEL,
    degree: int = SVM_DEFAULTS["degree"],
    coef0: float = SVM_DEFAULTS["coef0"],
    X_eval: Float[Array, "m d"] | None = None,
    y_eval=None,
    X_val: Float[Array, "m d"] | None = None,
    y_val=None,
    sv_threshold: float = _THR,
    candidate_factor: int = _FACTOR,
    projection: str = "bisect",
    record_lam: bool = False,
    throw: bool = True,
) -> FloralResult:
    r"""Run FLORAL (Algorithm 1 of Bal et al., ICLR 2025) for `steps` rounds.

    Args:
        X: training points `(n, d)`; y: (possibly poisoned) labels in $\{-1,+1\}$.
        budget: the attacker's per-round flip budget $k$ (`0 <= budget <= n`).
        key: PRNG key for the attacker's draws (keyword-only, required).
        steps: number of rounds $T$ (static).
        lr: learning rate $\eta$ of the projected-gradient step (traceable).
        lr_schedule: `"constant"`, `"authors"` (the authors' code: $\eta/10$
            on rounds 100, 200, ...), `"step"` ($\eta\,0.1^{\lfloor t/100
            \rfloor}$), `"inverse_sqrt"`, or a callable `t -> factor` (static).
        C: box bound of the SVM dual. gamma: kernel parameter (sklearn semantics).
        kernel, degree, coef0: kernel choice (see `jaxpoison.models.kernel_matrix`).
        X_eval, y_eval: optional evaluation data (reported only); accuracy every round.
        X_val, y_val: optional validation data: the round with the best validation
            accuracy (first on ties) is returned as `selected_model`.
        sv_threshold: support-vector threshold on $\lambda$ (authors: `1e-5`).
        candidate_factor: the attacker draws from the top `candidate_factor * budget` SVs.
        projection: root finder of the projection, `"bisect"` (default) or `"sort"`;
            both are exact up to rounding (see `jaxpoison.solvers.project_box_hyperplane`),
            but XLA's CPU sort makes `"sort"` about 5x slower at n = 500 (a whole
            FLORAL round about 2x slower).
        record_lam: also keep $\lambda^t$ of every round in `history.lam`.
        throw: raise on a non-finite result (under a caller's `jit` through
            `equinox.error_if`).

    Returns:
        `FloralResult` with the last and the validation-selected models, the history,
        `last_accuracy`, `selected_accuracy` and `best_accuracy` (max over rounds of the
        evaluation accuracy: chosen on the evaluation data, optimistic).

    `jax.vmap(lambda key: floral(X, y, budget=25, key=key))(keys)` runs replications in
    one call; vmapping over `X`/`y` runs several data sets.
    """
    X, y, gamma = check_svm_inputs(X, y, C=C, kernel=kernel, gamma=gamma, degree=degree,
                                   coef0=coef0)
    budget, steps, candidate_factor = check_floral_options(
        budget=budget, steps=steps, lr=lr, key=key, lr_schedule=lr_schedule,
        sv_threshold=sv_threshold, candidate_factor=candidate_factor, n=X.shape[0],
        projection=projection)
    X_eval, y_eval = _check_data(X_eval, y_eval, "X_eval", "y_eval", X, (-1, 1))
    X_val, y_val = _check_data(X_val, y_val, "X_val", "y_val", X, (-1, 1))
    dtype = X.dtype
    has_eval, has_val = X_eval is not None, X_val is not None
    dummy_X, dummy_y = jnp.zeros((1, X.shape[1]), dtype), jnp.zeros((1,), jnp.int32)
    res = _floral_jit(
        X, y, X_eval if has_eval else dummy_X, y_eval if has_eval else dummy_y,
        X_val if has_val else dummy_X, y_val if has_val else dummy_y,
        jnp.asarray(C, dtype), jnp.asarray(gamma, dtype), jnp.asarray(coef0, dtype),
        jnp.asarray(lr, dtype), jnp.asarray(sv_threshold, dtype), key, budget=budget,
        steps=steps, lr_schedule=lr_schedule, kernel=kernel, degree=degree,
        candidate_factor=candidate_factor, projection=projection, has_eval=has_eval,
        has_val=has_val, record_lam=bool(record_lam))
    return raise_if_failed(res, "floral", throw=throw)


# ---------------------------------------------------------------------------------------
# Multi-class (one-vs-rest), Algorithm 3


class OneVsRestKernelSVM(Classifier):
    """One-vs-rest kernel SVMs: scores $f_c(x) = \\sum_i \\text{coef}_{ci} k(x_i, x) + b_c$,
    prediction $\\arg\\max_c f_c(x)$ (a class index in `[0, num_classes)`).

    Attributes:
        coef: $\\lambda_i y^{(c)}_i$ on the support, `(num_classes, n)`.
        intercept: `(num_classes,)`. X_train: training points. gamma: RBF parameter.
        kernel: static kernel name.
    """

    coef: jax.Array
    intercept: jax.Array
    X_train: jax.Array
    gamma: jax.Array
    kernel: str = eqx.field(static=True, default="rbf")

    @property
    def num_features(self) -> int:
        return self.X_train.shape[-1]

    def decision_function(self, X: Float[Array, "m d"]) -> Float[Array, "m c"]:
        """One-vs-rest decision values `(m, num_classes)` (checked input)."""
        X = self.check_X(X).astype(self.X_train.dtype)
        Kx = kernel_matrix(X, self.X_train, self.gamma, kernel=self.kernel)
        return Kx @ self.coef.T + self.intercept


class FloralMultiResult(Result):
    """Outcome of `floral_multiclass`.

    Attributes:
        model: the last-round `OneVsRestKernelSVM`.
        accuracy: per-round multi-class evaluation accuracy `(T,)` (NaN without data).
        best_accuracy, last_accuracy: as in `FloralResult`.
    """

    model: OneVsRestKernelSVM
    accuracy: jax.Array
    best_accuracy: jax.Array
    last_accuracy: jax.Array


@functools.partial(jax.jit, static_argnames=("budget", "steps", "lr_schedule", "kernel",
                                             "candidate_factor", "has_eval"))
def _floral_multi_jit(X, Y, Xe, ye, C, gamma, lr, thr, key, *, budget, steps, lr_schedule,
                      kernel, candidate_factor, has_eval):
    dtype = X.dtype
    c, n = Y.shape
    K = kernel_matrix(X, X, gamma, kernel=kernel)
    Ke = kernel_matrix(Xe, X, gamma, kernel=kernel)
    Cv = jnp.broadcast_to(C, (n,))
    step = jax.vmap(functools.partial(_step, budget=budget, thr=thr, factor=candidate_factor,
                                      projection="bisect"),
                    in_axes=(None, 0, 0, 0, 0, 0, 0, None, None))

    def body(carry, t):
        lam, y_adv, _, Kyl, prev, key = carry
        key, sub = jax.random.split(key)
        lr_t = lr * _lr_factor(lr_schedule, t, dtype)
        lam, coef, b, _, y_new, flips, Kyl = step(K, Y, lam, y_adv, Kyl, prev,
                                                   jax.random.split(sub, c), lr_t, Cv)
        pred = jnp.argmax(Ke @ coef.T + b, axis=1)
        acc = jnp.mean((pred == ye).astype(dtype)) if has_eval else jnp.asarray(
            jnp.nan, dtype)
        return (lam, y_new, y_adv, Kyl, flips, key), (acc, b)

    zeros = jnp.zeros((c, n), dtype)
    carry0 = (zeros, Y, Y, zeros, -jnp.ones((c, budget), jnp.int32), key)
    (lam, _, y_used, *_), (acc, b) = jax.lax.scan(body, carry0, jnp.arange(1, steps + 1))
    coef = jnp.where(lam > thr, lam * y_used, 0.0)
    return lam, coef, b[-1], acc


def floral_multiclass(
    X, y, *, num_classes: int, budget: int, key, steps: int = _STEPS, lr: float = _LR,
    lr_schedule="constant", C: float = _C, gamma: float | str = _GAMMA,
    kernel: str = _KERNEL, X_eval=None, y_eval=None, sv_threshold: float = _THR,
    candidate_factor: int = _FACTOR, throw: bool = True,
) -> FloralMultiResult:
    r"""Multi-class FLORAL (Algorithm 3): one binary FLORAL game per class, one-vs-rest.

    For each class $c$ the labels are $y^{(c)}_i = +1$ if $y_i = c$
    else $-1$; the `num_classes` games run in parallel (`vmap`) inside one
    `lax.scan`, each with its own attacker of budget `budget`, and the classifier predicts
    $\arg\max_c f_c(x)$. Arguments as in `floral`; `y` (and `y_eval`) hold class indices
    in `[0, num_classes)`, with at least two classes present in `y`.
    """
    num_classes = v.check_int(num_classes, "num_classes", low=2)
    classes = tuple(range(num_classes))
    yv = v.as_label_array(y, "y", allowed=classes)
    X, yv, gamma = check_svm_inputs(X, yv, C=C, kernel=kernel, gamma=gamma,
                                    allowed=classes)
    if jnp.ndim(C) != 0:
        raise ValueError(f"C must be a scalar here; got shape {tuple(jnp.shape(C))}")
    budget, steps, candidate_factor = check_floral_options(
        budget=budget, steps=steps, lr=lr, key=key, lr_schedule=lr_schedule,
        sv_threshold=sv_threshold, candidate_factor=candidate_factor, n=X.shape[0])
    X_eval, y_eval = _check_data(X_eval, y_eval, "X_eval", "y_eval", X, classes)
    dtype = X.dtype
    Y = jnp.where(yv[None, :] == jnp.arange(num_classes)[:, None], 1.0, -1.0).astype(dtype)
    has_eval = X_eval is not None
    lam, coef, b, acc = _floral_multi_jit(
        X, Y, X_eval if has_eval else X[:1], y_eval if has_eval else jnp.zeros((1,), jnp.int32),
        jnp.asarray(C, dtype), jnp.asarray(gamma, dtype), jnp.asarray(lr, dtype),
        jnp.asarray(sv_threshold, dtype), key, budget=budget, steps=steps,
        lr_schedule=lr_schedule, kernel=kernel, candidate_factor=candidate_factor,
        has_eval=has_eval)
    finite = jnp.all(jnp.isfinite(lam)) & jnp.all(jnp.isfinite(b))
    model = OneVsRestKernelSVM(coef=coef, intercept=b, X_train=X,
                               gamma=jnp.asarray(gamma, dtype), kernel=kernel)
    res = FloralMultiResult(
        status=jnp.where(finite, Status.SUCCESS, Status.NUMERICAL_ERROR).astype(jnp.int32),
        iterations=jnp.asarray(steps, jnp.int32), model=model, accuracy=acc,
        best_accuracy=jnp.max(acc), last_accuracy=acc[-1])
    return raise_if_failed(res, "floral_multiclass", throw=throw)


# ---------------------------------------------------------------------------------------
# Differentiable validation loss for meta-experiments


@functools.partial(jax.jit, static_argnames=("budget", "steps", "loss", "lr_schedule",
                                             "kernel"))
def floral_validation_loss(
    X: Float[Array, "n d"], y, X_val: Float[Array, "m d"], y_val, *, C, gamma, lr,
    budget: int, steps: int, key, loss: str = "logistic", lr_schedule: str = "constant",
    kernel: str = _KERNEL, sv_threshold: float = _THR,
) -> Float[Array, ""]:
    r"""Validation loss of the FLORAL model after `steps` rounds; differentiable.

    $$
    L(C, \gamma, \eta) = \frac1m \sum_{j=1}^m \ell\bigl(y^{val}_j f_T(x^{val}_j;
    C, \gamma, \eta)\bigr), \quad \ell(z) = \log(1 + e^{-z}) \text{ (`"logistic"`)}
    \text{ or the smooth hinge (`"smooth_hinge"`)}.
    $$

    `jax.grad` with respect to `C`, `gamma` and `lr` differentiates through
    every round (projection, bias) with the attacker's choices (a function of the key
    and of the ordering of $\lambda$) held fixed -- exact wherever those choices
    and the support set are locally constant. A jit-safe core: no input validation (use
    inside transformations); labels in $\{-1, +1\}$.
    """
    if loss not in ("logistic", "smooth_hinge"):
        raise ValueError(f"loss must be 'logistic' or 'smooth_hinge'; got {loss!r}")
    K = kernel_matrix(X, X, gamma, kernel=kernel)
    g = floral_game(K, y, C, lr, key, budget=budget, steps=steps, lr_schedule=lr_schedule,
                    sv_threshold=sv_threshold)
    f = kernel_matrix(X_val, X, gamma, kernel=kernel) @ g.coef + g.intercept
    z = jnp.asarray(y_val).astype(X.dtype) * f
    if loss == "logistic":
        return jnp.mean(jax.nn.softplus(-z))
    return jnp.mean(jnp.where(z >= 1, 0.0, jnp.where(z <= 0, 0.5 - z, 0.5 * (1 - z) ** 2)))
