r"""Model-targeted poisoning (Suya, Mahloujifar, Suri, Evans, Tian, ICML 2021).

Given clean data $D_c$ ($N$ rows), a target model $\theta_p$ and a box
$\mathcal X$ of admissible points, Algorithm 1 ("follow the leader") repeats

1. $\theta_t = \arg\min_\theta \sum_{D_c\cup D_p}\ell(\theta;x,y)
   + (N+|D_p|)\lambda R(\theta)$, $R(\theta) = \tfrac12(\lVert w\rVert^2+b^2)$
   (the problem of `jaxpoison.models.fit_linear`, warm-started from the last round);
2. $(x^\star, y^\star) = \arg\max_{x\in\mathcal X, y}\ \ell(\theta_t;x,y)
   - \ell(\theta_p;x,y)$ (`jaxpoison.attacks.max_loss_difference`, exact for hinge);
3. stop when the maximum is $\le\epsilon$ (the induced model is
   $\epsilon$-close to the target in the loss-based distance), or another goal or the
   budget is reached; otherwise add `copies` copies of $(x^\star, y^\star)$ to
   $D_p$.

**Lower bound (Theorem 2).** For every model $\theta$, any poison set of size
$n_p$ that makes $\theta_p$ the trained model satisfies

$$
n_p \;\ge\; \frac{L(\theta_p; D_c) - L(\theta; D_c) - N\lambda\,(R(\theta) - R(\theta_p))}
{\max_{x,y}[\ell(\theta;x,y) - \ell(\theta_p;x,y)]
+ \lambda\,(R(\theta) - R(\theta_p))}
$$

whenever the denominator is positive ($L(\cdot; D_c)$ is the summed clean loss).
We evaluate it at every iterate $\theta_t$ and keep the best. For hinge loss the
denominator uses the exact (dual-certified) maximum, so the bound is certified; for
logistic loss the maximum comes from a multi-start local search that can underestimate
it, so the bound is reported but flagged as not certified.

The loop keeps the poison points in a fixed-capacity buffer appended to $D_c$ with
sample weights (0 for empty slots), so each round is one compiled, donated step; the
Python loop only checks the stopping rules. A run returns its state and can be resumed.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from jaxpoison import _validate as V
from jaxpoison._result import Result, Status, raise_if_failed
from jaxpoison.attacks._poisoning import (
    as_eval_data,
    as_labels,
    as_linear_model,
    check_poisoning_problem,
)
from jaxpoison.attacks.max_loss import (
    DiscreteFeatures,
    LogisticSearch,
    check_discrete,
    check_search,
    max_loss_difference,
)
from jaxpoison.models.linear import (
    LOSSES,
    LinearFit,
    LinearModel,
    LinearSolver,
    fit_linear,
    linear_losses,
)

__all__ = ["AttackState", "InducedBound", "ModelTargetedResult", "corollary1_lower_bound",
           "induced_lower_bound", "model_targeted_attack", "theorem2_lower_bound"]


def _reg(model: LinearModel):
    return 0.5 * (model.w @ model.w + model.b * model.b)


def _check_bound_inputs(model, target, X, y, loss, reg):
    """The boundary check shared by the Theorem-2 and Corollary-1 bounds."""
    V.check_choice(loss, "loss", LOSSES)
    X = V.as_float_array(X, "X", ndim=2)
    y = as_labels(y, "y", X.dtype)
    V.check_same_length(X, "X", y, "y")
    model = as_linear_model(model, "model", X.shape[1], X.dtype)
    target = as_linear_model(target, "target", X.shape[1], X.dtype)
    V.check_positive(reg, "reg")
    return model, target, X, y


def theorem2_lower_bound(model: LinearModel, target: LinearModel, X, y, *, loss: str,
                         reg, max_loss=None, lower=None, upper=None,
                         discrete: DiscreteFeatures | None = None) -> Array:
    r"""Theorem 2 of Suya et al. evaluated at `model` (see module docstring).

    `max_loss` is $\max_{x\in\mathcal X,y}\ell(\theta;x,y)-\ell(\theta_p;x,y)$ for this
    pair (an upper bound on it keeps the result valid). For hinge loss it may be left out
    and given as the feasible set instead: `lower`, `upper` and optionally `discrete`
    (the same arguments as `max_loss_difference`); the certified `bound` of
    `max_loss_difference` is then used. The bound holds for poison points from
    $\mathcal X$: with `discrete` it is the bound for attack points with binary / one-hot
    features (larger), without it the relaxed box's ("conservative") bound.
    Returns the real-valued bound, or 0 when
    the denominator is not positive (no information). The integer bound is its ceiling.
    The value is rounded toward zero by bounds on the rounding errors of the numerator and
    the denominator, so it is a valid bound in float32 as well as in float64.
    jit/vmap-safe (shapes checked before tracing, values when concrete).
    """
    model, target, X, y = _check_bound_inputs(model, target, X, y, loss, reg)
    if max_loss is None:
        if loss != "hinge":
            raise ValueError("max_loss: required for loss='logistic' (its maximum comes "
                             "from a local search; pass the value you found)")
        if lower is None or upper is None:
            raise ValueError("max_loss: give max_loss, or the feasible set (lower, upper "
                             "and optionally discrete) to compute it")
        max_loss = max_loss_difference(model, target, loss="hinge", lower=lower,
                                       upper=upper, discrete=discrete, throw=False).bound
    elif lower is not None or upper is not None or discrete is not None:
        raise ValueError("max_loss: give either max_loss or the feasible set (lower, upper, "
                         "discrete), not both")
    max_loss = V.as_float_array(max_loss, "max_loss", ndim=0, dtype=X.dtype)
    n, d = X.shape
    l_p = jnp.sum(linear_losses(target, X, y, loss=loss))
    l_t = jnp.sum(linear_losses(model, X, y, loss=loss))
    r_t, r_p = _reg(model), _reg(target)
    dreg = r_t - r_p
    num = l_p - l_t - n * reg * dreg
    den = max_loss + reg * dreg
    # evaluated in working precision: lower the numerator and raise the denominator by
    # bounds on their rounding errors (losses are 1-Lipschitz in the margin, whose error is
    # at most (d + 2) eps times the size of its terms), so the bound stays valid in float32
    eps = jnp.finfo(X.dtype).eps
    absX = jnp.abs(X)
    size = (jnp.sum(absX @ (jnp.abs(model.w) + jnp.abs(target.w)))
            + n * (jnp.abs(model.b) + jnp.abs(target.b) + 2.0))
    err_num = eps * ((d + 2) * size + (n + 4) * (l_p + l_t + n * reg * (r_t + r_p)))
    err_den = eps * 4 * (jnp.abs(max_loss) + reg * (r_t + r_p))
    num_lo = num - err_num
    den_hi = den + err_den
    ok = (den - err_den > 0) & (num_lo > 0)
    return jnp.where(ok, num_lo / jnp.where(ok, den_hi, 1.0), 0.0)


class AttackState(Result):
    """Everything needed to resume `model_targeted_attack` (fixed-shape buffers).

    `status` is the status of the last refit, `iterations` the rounds run."""

    X_all: Array          # (n + capacity, d): clean rows, then the poison buffer
    y_all: Array
    s_all: Array          # sample weights: 1 for clean rows, copies for used slots, 0 else
    fit: LinearFit        # current model theta_t trained on the weighted data
    count: Array          # number of rounds run (points added = count * copies)
    slots: Array          # number of buffer slots used (a repeated point reuses its slot)
    round_slot: Array     # (capacity,) slot written in each round
    next_x: Array         # current max-loss point for theta_t
    next_y: Array
    max_loss: Array       # (capacity + 1,) history, entry k = after k slots
    bound: Array          # (capacity + 1,) certified upper bound of max loss (nan logistic)
    distance: Array       # (capacity + 1,) ||theta_t - theta_p||_2
    lower_bound: Array    # (capacity + 1,) Theorem-2 bound at theta_t
    relaxed_lower_bound: Array  # (capacity + 1,) the same over the relaxed box
    accuracy: Array       # (capacity + 1,) accuracy of theta_t on the evaluation data
    key: Array


class ModelTargetedResult(Result):
    """Result of `model_targeted_attack`.

    Attributes:
      X_poison, y_poison: the poison points added (copies expanded), `(num_poison, d)`.
      model: the induced model $\\theta_t$ trained on clean + poison data.
      num_poison: number of poison points used (rows of `X_poison`; at most `budget`).
      max_loss: per iteration (entry k: after k rounds), the max loss difference.
      param_distance: per iteration, $\\lVert\\theta_t-\\theta_p\\rVert_2$
        (w and b stacked).
      lower_bound: per iteration, Theorem 2 at $\\theta_t$ (real-valued), over the
        attack's feasible set (with `discrete`: binary / one-hot features).
      relaxed_lower_bound: per iteration, Theorem 2 with the discrete features relaxed to
        $[0, 1]$ (the authors' "conservative" bound; equals `lower_bound` without
        `discrete`).
      accuracy: per iteration, accuracy of $\\theta_t$ on the evaluation data.
      best_lower_bound: $\\lceil\\max_t\\rceil$ of `lower_bound` (an integer
        count of points).
      best_relaxed_lower_bound: the same for `relaxed_lower_bound`.
      certified: True for hinge loss (exact inner maximum); False for logistic.
      state: an `AttackState` to pass back as `state=` to continue the run.
      status: SUCCESS when a goal (eps, param_distance, target_accuracy) was reached, or
        when no goal was set and the `budget` was used up; BUDGET_EXHAUSTED when a goal
        was set but the `budget` ran out first; the refit's status (MAX_ITERATIONS,
        NUMERICAL_ERROR) when a retraining failed (the run stops there).
    """

    X_poison: Array
    y_poison: Array
    model: LinearModel
    num_poison: int = eqx.field(static=True)
    max_loss: Array
    param_distance: Array
    lower_bound: Array
    relaxed_lower_bound: Array
    accuracy: Array
    best_lower_bound: int = eqx.field(static=True)
    best_relaxed_lower_bound: int = eqx.field(static=True)
    certified: bool = eqx.field(static=True)
    state: AttackState


def _metrics(fit, target, X_c, y_c, X_ev, y_ev, lo, hi, key, reg, loss, search, discrete):
    model = fit.model
    pt = max_loss_difference(model, target, loss=loss, lower=lo, upper=hi, key=key,
                             search=search, discrete=discrete, throw=False)
    cert = pt.bound if loss == "hinge" else pt.value
    rcert = pt.relaxed_bound if loss == "hinge" else pt.relaxed_value
    lb = theorem2_lower_bound(model, target, X_c, y_c, loss=loss, reg=reg, max_loss=cert)
    rlb = (lb if discrete is None else
           theorem2_lower_bound(model, target, X_c, y_c, loss=loss, reg=reg, max_loss=rcert))
    dist = jnp.sqrt(jnp.sum((model.w - target.w) ** 2) + (model.b - target.b) ** 2)
    acc = jnp.mean(jnp.where(X_ev @ model.w + model.b >= 0, 1.0, -1.0) == y_ev)
    return pt.x, pt.y.astype(X_c.dtype), pt.value, pt.bound, (lb, rlb), dist, acc


@partial(jax.jit, static_argnames=("n", "loss", "discrete"), donate_argnums=(0,))
def _step(state: AttackState, target, X_ev, y_ev, lo, hi, reg, copies, solver, search, *, n,
          loss, discrete):
    k = state.count
    buf_x = state.X_all[n:]
    used = state.s_all[n:] > 0
    same = used & (state.y_all[n:] == state.next_y) & jnp.all(
        jnp.abs(buf_x - state.next_x[None, :]) <= 1e-12 * (1 + jnp.abs(buf_x)), axis=1)
    repeat = jnp.any(same)
    slot = jnp.where(repeat, jnp.argmax(same), state.slots).astype(jnp.int32)
    row = (n + slot).astype(jnp.int32)
    X_all = jax.lax.dynamic_update_slice(state.X_all, state.next_x[None, :], (row, jnp.int32(0)))
    y_all = state.y_all.at[row].set(state.next_y)
    s_all = state.s_all.at[row].add(copies)
    slots = state.slots + jnp.where(repeat, 0, 1).astype(jnp.int32)
    fit = fit_linear(X_all, y_all, loss=loss, reg=reg, sample_weight=s_all, init=state.fit,
                     solver=solver, throw=False)
    key, sub = jax.random.split(state.key)
    x, y, v, ub, (lb, rlb), dist, acc = _metrics(fit, target, X_all[:n], y_all[:n], X_ev,
                                                 y_ev, lo, hi, sub, reg, loss, search,
                                                 discrete)
    k1 = k + 1
    return AttackState(status=fit.status, iterations=k1,
                       X_all=X_all, y_all=y_all, s_all=s_all, fit=fit, count=k1, slots=slots,
                       round_slot=state.round_slot.at[k].set(slot), next_x=x,
                       next_y=y, max_loss=state.max_loss.at[k1].set(v),
                       bound=state.bound.at[k1].set(ub),
                       distance=state.distance.at[k1].set(dist),
                       lower_bound=state.lower_bound.at[k1].set(lb),
                       relaxed_lower_bound=state.relaxed_lower_bound.at[k1].set(rlb),
                       accuracy=state.accuracy.at[k1].set(acc), key=key)


@partial(jax.jit, static_argnames=("n", "capacity", "loss", "discrete"))
def _init_state(X, y, target, X_ev, y_ev, lo, hi, reg, solver, search, key, *, n, capacity,
                loss, discrete):
    dtype = X.dtype
    d = X.shape[1]
    X_all = jnp.concatenate([X, jnp.zeros((capacity, d), dtype)])
    y_all = jnp.concatenate([y, jnp.ones(capacity, dtype)])
    s_all = jnp.concatenate([jnp.ones(n, dtype), jnp.zeros(capacity, dtype)])
    fit = fit_linear(X_all, y_all, loss=loss, reg=reg, sample_weight=s_all, solver=solver,
                     throw=False)
    key, sub = jax.random.split(key)
    x, yy, v, ub, (lb, rlb), dist, acc = _metrics(fit, target, X, y, X_ev, y_ev, lo, hi, sub,
                                                  reg, loss, search, discrete)
    hist = jnp.full(capacity + 1, jnp.nan, dtype)
    zero = jnp.asarray(0, jnp.int32)
    return AttackState(status=fit.status, iterations=zero,
                       X_all=X_all, y_all=y_all, s_all=s_all, fit=fit,
                       count=zero, slots=zero,
                       round_slot=jnp.zeros(capacity, jnp.int32), next_x=x, next_y=yy,
                       max_loss=hist.at[0].set(v), bound=hist.at[0].set(ub),
                       distance=hist.at[0].set(dist), lower_bound=hist.at[0].set(lb),
                       relaxed_lower_bound=hist.at[0].set(rlb),
                       accuracy=hist.at[0].set(acc), key=key)


def _grow(state: AttackState, capacity: int, n: int) -> AttackState:
    old = state.X_all.shape[0] - n
    extra = capacity - old
    if extra <= 0:
        return state
    dtype = state.X_all.dtype
    d = state.X_all.shape[1]

    def pad_hist(h):
        return jnp.concatenate([h, jnp.full(extra, jnp.nan, dtype)])

    fit = state.fit
    fit = eqx.tree_at(lambda f: f.dual, fit,
                      jnp.concatenate([fit.dual, jnp.zeros(extra, dtype)]))
    return AttackState(
        status=state.status, iterations=state.iterations,
        X_all=jnp.concatenate([state.X_all, jnp.zeros((extra, d), dtype)]),
        y_all=jnp.concatenate([state.y_all, jnp.ones(extra, dtype)]),
        s_all=jnp.concatenate([state.s_all, jnp.zeros(extra, dtype)]), fit=fit,
        count=state.count, slots=state.slots,
        round_slot=jnp.concatenate([state.round_slot, jnp.zeros(extra, jnp.int32)]),
        next_x=state.next_x, next_y=state.next_y,
        max_loss=pad_hist(state.max_loss), bound=pad_hist(state.bound),
        distance=pad_hist(state.distance), lower_bound=pad_hist(state.lower_bound),
        relaxed_lower_bound=pad_hist(state.relaxed_lower_bound),
        accuracy=pad_hist(state.accuracy), key=state.key)


def model_targeted_attack(
    X: Float[Array, "n d"], y, target: LinearModel, *, loss: str = "hinge", reg,
    lower, upper, eps: float | None = None, budget: int | None = None,
    copies: int = 1, target_accuracy: float | None = None,
    param_distance: float | None = None, X_eval=None, y_eval=None,
    state: AttackState | None = None, key=None, solver: LinearSolver | None = None,
    search: LogisticSearch | None = None,
    discrete: DiscreteFeatures | None = None,
    progress: Callable[[int, float, float], None] | None = None, throw: bool = True,
) -> ModelTargetedResult:
    r"""Algorithm 1 of Suya et al. (ICML 2021): poison points that induce `target`.

    A host-side loop of compiled rounds (each round: one warm-started `fit_linear` and one
    `max_loss_difference`, jitted together); the function itself is not meant to be
    traced.

    Args:
      X, y: clean training data $D_c$ (labels in {-1, +1}, both present).
      target: the target model $\theta_p$ (finite `LinearModel`).
      loss: `"hinge"` (linear SVM, exact inner maximum, certified lower bound) or
        `"logistic"`.
      reg: $\lambda > 0$ of the training problem (`fit_linear`).
      lower, upper: the feasible box for poison features (scalars or `(d,)`).
      eps: stop once $\max_{x,y}\ell(\theta_t)-\ell(\theta_p)\le\epsilon$.
      budget: most poison points to add (copies count); also the buffer capacity.
        Default: `N` (a 100% poisoning rate).
      copies: copies of each max-loss point added per round (the authors' `repeat_num`).
      target_accuracy: stop once the accuracy of $\theta_t$ on the evaluation data is
        $\le$ this (e.g. `1 - target error`).
      param_distance: stop once $\lVert\theta_t-\theta_p\rVert_2\le$ this.
      X_eval, y_eval: evaluation data for `target_accuracy` and the accuracy history
        (reporting only; default: the clean training data).
      state: a previous result's `state` to resume (same data and arguments; a larger
        `budget` extends the buffer). The run continues with the state's key.
      key: PRNG key, keyword-only; required for a new run (not with `state`). The hinge
        attack is deterministic (the key is carried but unused); the logistic inner search
        draws its random restarts from it.
      solver: `LinearSolver` for the refits (default `LinearSolver()`).
      search: `LogisticSearch`, the logistic inner search (default `LogisticSearch()`;
        `LogisticSearch.authors()`: the authors' 10 trials x up to 20,000 steps, lr 0.1,
        convergence-based stopping). Not used for hinge.
      discrete: `DiscreteFeatures` or `None`: poison points keep these features discrete
        (one-hot blocks or binary; the inner maximisation is then exact over the mixed
        set for hinge loss, see `max_loss_difference`); both Theorem-2 bounds are
        reported (`lower_bound` over this set, `relaxed_lower_bound` over the box).
      progress: optional callback `progress(points, max_loss, distance)` per round.
      throw: raise `jaxpoison.SolverError` unless the status is SUCCESS (a goal set but
        the budget used up, or a failed refit). With `False`, read `status`.

    Returns:
      `ModelTargetedResult`.
    """
    X, y, target, lo, hi = check_poisoning_problem(loss, X, y, target, reg, lower, upper)
    dtype = X.dtype
    n, d = X.shape
    if eps is not None:
        V.check_positive(eps, "eps")
    if param_distance is not None:
        V.check_positive(param_distance, "param_distance")
    if target_accuracy is not None:
        V.check_in_range(target_accuracy, "target_accuracy", 0.0, 1.0)
    copies = V.check_int(copies, "copies", low=1)
    search = check_search(search, dtype) if loss == "logistic" else None
    if budget is None:
        budget = n
    budget = V.check_int(budget, "budget", low=1)
    discrete = check_discrete(discrete, d)
    X_ev, y_ev = as_eval_data(X_eval, y_eval, d, dtype)
    if X_ev is None:
        X_ev, y_ev = X, y
    if state is None:
        V.check_key(key)
    elif key is not None:
        raise ValueError("key: a resumed run continues with state.key; pass key=None with "
                         "state")
    if solver is None:
        solver = LinearSolver()
    if not isinstance(solver, LinearSolver):
        raise TypeError(f"solver must be a LinearSolver; got {type(solver).__name__}")
    solver = solver.resolve(loss, dtype)
    # buffer slots, rounded up to a multiple of 64 so that nearby budgets share a compile
    capacity = 64 * math.ceil(math.ceil(budget / copies) / 64)
    statics = dict(n=n, loss=loss, discrete=discrete)
    if state is None:
        state = _init_state(X, y, target, X_ev, y_ev, lo, hi, reg, solver, search, key,
                            capacity=capacity, **statics)
    else:
        if not isinstance(state, AttackState):
            raise TypeError(f"state must be an AttackState; got {type(state).__name__}")
        if state.X_all.shape[1] != d or state.X_all.shape[0] < n:
            raise ValueError(f"state does not belong to this data: its buffer has shape "
                             f"{tuple(state.X_all.shape)}, X has shape {(n, d)}")
        state = _grow(state, capacity, n)
    goals = eps is not None or param_distance is not None or target_accuracy is not None

    def reached(k: int) -> bool:
        v = float(state.max_loss[k])
        if eps is not None and v <= eps:
            return True
        if param_distance is not None and float(state.distance[k]) <= param_distance:
            return True
        return target_accuracy is not None and float(state.accuracy[k]) <= target_accuracy

    k = int(state.count)
    status = Status.BUDGET_EXHAUSTED if goals else Status.SUCCESS
    while True:
        if int(state.status) != Status.SUCCESS:
            status = Status(int(state.status))
            break
        if not bool(jnp.all(jnp.isfinite(state.fit.model.w))):
            status = Status.NUMERICAL_ERROR
            break
        if goals and reached(k):
            status = Status.SUCCESS
            break
        if (k + 1) * copies > budget:
            break
        state = _step(state, target, X_ev, y_ev, lo, hi, reg, jnp.asarray(copies, dtype),
                      solver, search, **statics)
        k = int(state.count)
        if progress is not None:
            progress(k * copies, float(state.max_loss[k]), float(state.distance[k]))
    slots = np.asarray(state.round_slot[:k])
    X_p = jnp.repeat(state.X_all[n + slots], copies, axis=0)
    y_p = jnp.repeat(state.y_all[n + slots], copies).astype(jnp.int32)
    lb_hist = state.lower_bound[: k + 1]
    best = float(jnp.nanmax(lb_hist)) if k + 1 > 0 else 0.0
    best_int = math.ceil(best) if best > 0 else 0  # the bound's rounding is inside it
    rbest = float(jnp.nanmax(state.relaxed_lower_bound[: k + 1]))
    rbest_int = math.ceil(rbest) if rbest > 0 else 0
    result = ModelTargetedResult(
        status=jnp.asarray(int(status), jnp.int32), iterations=jnp.asarray(k, jnp.int32),
        X_poison=X_p, y_poison=y_p, model=state.fit.model, num_poison=int(k * copies),
        max_loss=state.max_loss[: k + 1], param_distance=state.distance[: k + 1],
        lower_bound=lb_hist, relaxed_lower_bound=state.relaxed_lower_bound[: k + 1],
        accuracy=state.accuracy[: k + 1], best_lower_bound=best_int,
        best_relaxed_lower_bound=rbest_int,
        certified=loss == "hinge", state=state)
    return raise_if_failed(result, f"model_targeted_attack(loss={loss!r})", throw=throw)


def corollary1_lower_bound(model: LinearModel, target: LinearModel, X, y, *, loss: str,
                           reg, max_loss, k_eps) -> Array:
    r"""Corollary 1 of Suya et al.: points needed for *any* model $\epsilon$-close to
    `target`, from Theorem 2 at `model` $=\theta$.

    If every model $\theta'$ that is $\epsilon$-close to $\theta_p$ has $\theta_p$ within
    $k\epsilon$ of it in the loss-based distance ($\ell(\theta_p;x,y)-\ell(\theta';x,y)
    \le k\epsilon$ for all $x, y$; bidirectional closeness, which the paper proves for the
    hinge loss with a $k$ from its Appendix B), then producing such a $\theta'$ needs at
    least

    $$
    \frac{L(\theta_p;D_c)-L(\theta;D_c)-N\lambda\bar R-Nk\epsilon}
    {\max_{x,y}[\ell(\theta;x,y)-\ell(\theta_p;x,y)]+\lambda\bar R+k\epsilon}
    $$

    points (Theorem 2 applied to $\theta'$, with $L(\theta';D_c)\ge L(\theta_p;D_c)-Nk\epsilon$,
    $\max[\ell(\theta)-\ell(\theta')]\le\max[\ell(\theta)-\ell(\theta_p)]+k\epsilon$ and
    $R(\theta')-R(\theta)\ge-\bar R$); we take $\bar R=R(\theta)$, exact for the
    $\theta$ at hand since $R\ge0$. The constant is the caller's: pass `k_eps` $=k\epsilon$
    ($\ge 0$; 0 gives the bound for $\theta_p$ itself, weaker than Theorem 2 by the
    regulariser term). Rounded toward zero for rounding errors as `theorem2_lower_bound`;
    0 when the denominator is not positive.
    """
    model, target, X, y = _check_bound_inputs(model, target, X, y, loss, reg)
    max_loss = V.as_float_array(max_loss, "max_loss", ndim=0, dtype=X.dtype)
    k_eps = V.as_float_array(k_eps, "k_eps", ndim=0, dtype=X.dtype)
    V.check_nonnegative(k_eps, "k_eps")
    n, d = X.shape
    l_p = jnp.sum(linear_losses(target, X, y, loss=loss))
    l_t = jnp.sum(linear_losses(model, X, y, loss=loss))
    r_t = _reg(model)
    num = l_p - l_t - n * reg * r_t - n * k_eps
    den = max_loss + reg * r_t + k_eps
    eps = jnp.finfo(X.dtype).eps
    size = (jnp.sum(jnp.abs(X) @ (jnp.abs(model.w) + jnp.abs(target.w)))
            + n * (jnp.abs(model.b) + jnp.abs(target.b) + 2.0))
    err_num = eps * ((d + 2) * size + (n + 4) * (l_p + l_t + n * (reg * r_t + k_eps)))
    err_den = eps * 4 * (jnp.abs(max_loss) + reg * r_t + k_eps)
    ok = (den - err_den > 0) & (num - err_num > 0)
    return jnp.where(ok, (num - err_num) / jnp.where(ok, den + err_den, 1.0), 0.0)


class InducedBound(Result):
    """Result of `induced_lower_bound` (Theorem 2 on the paper's protocol).

    Attributes:
      lower_bound: the best real-valued Theorem-2 bound over the second run's iterates,
        against the induced model (rounding-corrected as `theorem2_lower_bound`).
      rounded_down: $\\lfloor\\cdot\\rfloor$ of it, as the authors report (`int()` of each
        iterate's ratio, best over iterates).
      rounded_up: $\\lceil\\cdot\\rceil$, ours (the least integer allowed by the
        inequality).
      relaxed_lower_bound, relaxed_rounded_down, relaxed_rounded_up: the same with the
        discrete features relaxed to the box (equal without `discrete`).
      run: the second run (`ModelTargetedResult`, target = the induced model).
      status: the second run's status (SUCCESS when it got `eps`-close).
    """

    lower_bound: Array
    rounded_down: int = eqx.field(static=True)
    rounded_up: int = eqx.field(static=True)
    relaxed_lower_bound: Array
    relaxed_rounded_down: int = eqx.field(static=True)
    relaxed_rounded_up: int = eqx.field(static=True)
    run: ModelTargetedResult


def induced_lower_bound(X, y, induced: LinearModel, *, loss: str = "hinge", reg, lower,
                        upper, eps: float, budget: int | None = None,
                        discrete: DiscreteFeatures | None = None, key,
                        solver: LinearSolver | None = None,
                        search: LogisticSearch | None = None,
                        throw: bool = True) -> InducedBound:
    r"""Theorem 2 evaluated as in the paper (Section 5, "Optimality of our attack").

    The paper bounds the points needed for the model *our attack induced*, not for the
    heuristic target: it runs Algorithm 1 again with the induced model $\theta_{\rm atk}$
    as the target, stops when the iterate is `eps`-close to it, evaluates Theorem 2 at
    every iterate against $\theta_{\rm atk}$ and keeps the best, rounded down (the
    authors' `int()`). This function does that with `model_targeted_attack` and reports
    both roundings.

    Args:
      X, y: the clean training data.
      induced: $\theta_{\rm atk}$, the model induced by a first attack run
        (`result.model`).
      loss, reg, lower, upper, discrete, solver, search: as `model_targeted_attack`.
      eps: stopping tolerance of the second run (the paper: 0.01 Adult, 0.1 MNIST 1-7).
      budget: most points of the second run (default `N`).
      key: PRNG key (keyword-only, required).
      throw: raise unless the second run reached `eps` (BUDGET_EXHAUSTED) or failed.

    Returns:
      `InducedBound`. For logistic loss the bound is not certified (local inner search).
    """
    run = model_targeted_attack(X, y, induced, loss=loss, reg=reg, lower=lower, upper=upper,
                                eps=eps, budget=budget, discrete=discrete, key=key,
                                solver=solver, search=search, throw=False)
    lb = jnp.nanmax(run.lower_bound)
    rlb = jnp.nanmax(run.relaxed_lower_bound)
    lbf, rlbf = float(lb), float(rlb)
    out = InducedBound(
        status=run.status, iterations=run.iterations, lower_bound=lb,
        rounded_down=max(math.floor(lbf), 0), rounded_up=max(math.ceil(lbf), 0),
        relaxed_lower_bound=rlb, relaxed_rounded_down=max(math.floor(rlbf), 0),
        relaxed_rounded_up=max(math.ceil(rlbf), 0), run=run)
    return raise_if_failed(out, f"induced_lower_bound(loss={loss!r})", throw=throw)
