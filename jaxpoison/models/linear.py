r"""L2-regularised linear SVM (hinge loss) and logistic regression, differentiable.

Both models are trained on the objective

$$
\min_{w, b}\; J(w, b) = \sum_{i=1}^n s_i\,\ell\big(y_i (w^\top x_i + b)\big)
+ \frac{N\lambda}{2}\,\big(\lVert w\rVert^2 + b^2\big), \qquad N = \sum_i s_i,
$$

with $\ell(m) = \max(0, 1 - m)$ (hinge) or $\log(1 + e^{-m})$ (logistic),
sample weights $s_i \ge 0$ (default 1, so $N$ is the number of rows; integer
weights act as copies of a row) and the intercept regularised like a weight. Dividing by
$N\lambda$ shows this is liblinear's problem with $C = 1/(N\lambda)$ and a bias
feature of value 1:
`sklearn.svm.LinearSVC(loss="hinge", C=1/(N*lam), fit_intercept=True, intercept_scaling=1)`
and `sklearn.linear_model.LogisticRegression(solver="liblinear", C=1/(N*lam),
fit_intercept=True, intercept_scaling=1)` (with `sample_weight=s`). This is the training
problem of Suya et al. (ICML 2021), whose code uses `C = 1 / (n * weight_decay)`.

Solvers (all inside `lax.while_loop`, so they `jit` and `vmap`):

* hinge: on a warm start (the previous dual $\alpha$; new rows start at 0), a
  feasible active-set method on the dual (`_hinge_active_set`): the rows are split into
  bound $B$ ($\alpha_i = U_i$), free $M$ and zero sets; each step solves the (slightly
  proximal, so that dependent margin vectors -- one-hot data -- are harmless) subproblem
  on the sets, moves towards it as far as the box allows (ratio test) and, after a full
  step, frees the worst KKT violators. The dual objective never decreases, so the method
  does not cycle (the primal-dual semismooth-Newton rule used before did, on most
  refits of the Adult attack); a step costs $O(nd + |M|^2 d + |M|^3)$. A cold float64
  start with $d+1\le512$ starts it from the dual point of a smoothed primal solved by a
  few Newton steps (`_hinge_smoothed_start`). If it has not
  converged within `ACTIVE_SET_STEPS` steps, or on another cold start: dual coordinate descent
  (Hsieh et al. 2008, as in liblinear) on
  $\max_{0\le\alpha_i\le U_i} \sum_i\alpha_i - \tfrac12\lVert\sum_i\alpha_i y_i\tilde x_i
  \rVert^2$, $U_i = s_i/(N\lambda)$, $\tilde x_i = (x_i, 1)$, with a new
  active-set attempt every two epochs. Either way it stops when the largest
  projected-gradient violation, row $i$ divided by its margin scale
  $r_i = 1 + \sum_j|\tilde x_{ij}\theta_j|$, is $\le$ `tol` (an active-set solution
  is then exact up to rounding). `iterations` counts epochs plus active-set steps.
* logistic: Newton-CG with Armijo backtracking (allowing the objective's rounding noise,
  so steps near the optimum are not rejected for want of precision); stops when
  $\max_j |\nabla_j J|/c_j \le$ `tol`, $c_j$ the sum of the magnitudes of the terms of
  $\nabla_j J$. Warm start: the previous $(w, b)$.

Both stopping tests are scale-free and precision-aware: a `tol` below what the working
precision resolves (about $16\varepsilon_{\text{mach}}$ times the margins' scale) is
raised to that floor, so the test is reachable in float32 and float64 (`LinearSolver`).

Differentiation (reverse mode) of the solution w.r.t. `X`, `y` (as real numbers),
`sample_weight` and `reg`:

* logistic: implicit function theorem on $\nabla J = 0$
  (`jaxpoison.solvers.implicit.attach_implicit_grad`, adjoint solved by CG).
* hinge: the solution is piecewise smooth. With the margin set
  $M = \{0 < \alpha_i < U_i\}$ and bound set $B = \{\alpha_i = U_i\}$ held
  fixed, $\theta = \theta_B + Z_M^\top\beta$ with $\theta_B = \sum_{B} U_i z_i$,
  $z_i = y_i\tilde x_i$ and $Z_M\theta = \mathbf 1$, i.e.
  $(Z_M Z_M^\top)\beta = \mathbf 1 - Z_M\theta_B$. We differentiate this closed form.
  It is the true derivative wherever the active sets are locally constant (strict
  complementarity and linearly independent margin vectors); elsewhere it is one element
  of the generalised Jacobian. At most $\min(d+1, 256)$ margin vectors are used.
"""

from __future__ import annotations

from functools import partial

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from jaxpoison import _validate as V
from jaxpoison._result import Result, Status, raise_if_failed
from jaxpoison.models.classifier import Classifier
from jaxpoison.solvers.implicit import attach_implicit_grad

__all__ = [
    "LinearModel",
    "LinearFit",
    "LinearSolver",
    "fit_linear",
    "linear_losses",
    "linear_objective",
    "LOSSES",
]

LOSSES = ("hinge", "logistic")
# at most this many margin support vectors are used by the exact active-set solve (and
# its derivative); with more, coordinate descent alone finishes the solve.
MAX_MARGIN_SET = 256
# active-set steps tried on a warm start before falling back to coordinate descent
ACTIVE_SET_STEPS = 200
# rows added to the free set per active-set step (the worst KKT violators)
ADD_PER_STEP = 16
# margin-set solves up to this size use Gauss-Jordan elimination, larger ones CG
DIRECT_SOLVE_MAX = 96


class LinearModel(Classifier):
    """A linear classifier $x \\mapsto w^\\top x + b$ (a pytree: jit/vmap/grad safe).

    `predict` (labels in $\\{-1, +1\\}$, a score of exactly 0 maps to $+1$) and
    `accuracy` come from `jaxpoison.models.Classifier`, with its input check.
    """

    w: Float[Array, " d"]
    b: Float[Array, ""]

    def decision_function(self, X: Float[Array, "n d"]) -> Float[Array, " n"]:
        """Scores $Xw + b$."""
        return X @ self.w + self.b

    @property
    def num_features(self) -> int:
        return int(jnp.shape(self.w)[-1])

    @property
    def theta(self) -> Float[Array, " d+1"]:
        """Parameters stacked as `(w, b)`."""
        return jnp.concatenate([self.w, self.b[None]])


class LinearFit(Result):
    """Result of `fit_linear`.

    Attributes:
      model: the trained `LinearModel`.
      dual: hinge: the dual variables $\\alpha$ (pass the whole result as `init`
        to warm-start); logistic: zeros.
      objective: $J(w, b)$ at the solution.
      residual: the scaled optimality residual that `LinearSolver.tol` bounds (hinge:
        largest projected-gradient violation relative to the row's margin scale;
        logistic: largest gradient component relative to the magnitude of its terms).
      status, iterations: as in `jaxpoison.Result` (epochs for hinge, Newton steps
        for logistic).
    """

    model: LinearModel
    dual: Array
    objective: Array
    residual: Array


def _loss_fn(loss: str):
    if loss == "hinge":
        return lambda m: jnp.maximum(0.0, 1.0 - m)
    return lambda m: jnp.logaddexp(0.0, -m)


def _check_model_data(model, X, y):
    if not isinstance(model, LinearModel):
        raise TypeError(f"model must be a LinearModel; got {type(model).__name__}")
    X = model.check_X(X)
    if V.is_concrete(y):
        y = V.as_label_array(y, "y").astype(X.dtype)
    else:
        y = jnp.asarray(y).astype(X.dtype)
        V.check_ndim(y, "y", 1)
    V.check_same_length(X, "X", y, "y")
    return X, y


def linear_losses(model: LinearModel, X, y, *, loss: str = "hinge") -> Array:
    """Per-example losses $\\ell(y_i(w^\\top x_i + b))$, `(n,)`.

    jit/vmap/grad-safe: shapes are checked before tracing (`X` must have the model's
    feature count), labels in $\\{-1,+1\\}$ and finiteness only on concrete input."""
    V.check_choice(loss, "loss", LOSSES)
    X, y = _check_model_data(model, X, y)
    return _loss_fn(loss)(y * model.decision_function(X))


def linear_objective(model: LinearModel, X, y, *, loss: str = "hinge", reg,
                     sample_weight=None) -> Array:
    """The training objective $J$ of the module docstring at `model` (checks as
    `linear_losses`; `reg > 0`, `sample_weight >= 0` when concrete)."""
    V.check_choice(loss, "loss", LOSSES)
    X, y = _check_model_data(model, X, y)
    V.check_positive(reg, "reg")
    if sample_weight is None:
        s = jnp.ones(X.shape[0], X.dtype)
    else:
        s = V.as_float_array(sample_weight, "sample_weight", ndim=1, dtype=X.dtype)
        V.check_same_length(X, "X", s, "sample_weight")
        V.check_nonnegative(s, "sample_weight")
    return _objective(model.w, model.b, X, y, s, jnp.asarray(reg, X.dtype), loss)


def _objective(w, b, X, y, s, reg, loss):
    n_eff = jnp.sum(s)
    m = y * (X @ w + b)
    return jnp.sum(s * _loss_fn(loss)(m)) + 0.5 * n_eff * reg * (w @ w + b * b)


# --------------------------------------------------------------------------- hinge


def _row_scale(absX, w, b, alpha, tol):
    r"""Per-row scale of the margin violation.

    Violations are measured relative to $r_i = 1 + \sum_j |x_{ij} w_j| + |b|$ (the size of
    the terms of the margin), but never below what the precision resolves: $\theta =
    \sum_k \alpha_k z_k$ is summed from terms of size $u = \sum_k\alpha_k|\tilde z_k|$,
    so the margin carries a rounding error of order $\varepsilon_{\text{mach}} R_i$,
    $R_i = 1 + |\tilde x_i|^\top u$; the scale is $\max(r_i, c\,\varepsilon R_i/
    \text{tol})$ with $c = 64$ (rounding in the margin-set solve included), so that a
    violation below $c\,\varepsilon R_i$ always passes."""
    r = 1.0 + absX @ jnp.abs(w) + jnp.abs(b)
    u = jnp.abs(alpha) @ absX
    big_r = 1.0 + absX @ u + jnp.sum(jnp.abs(alpha))
    return jnp.maximum(r, (64 * jnp.finfo(absX.dtype).eps / tol) * big_r)


def _pg_spread(alpha, upper, margins_minus_one, scale):
    g = margins_minus_one
    pg = jnp.where(alpha <= 0.0, jnp.minimum(g, 0.0),
                   jnp.where(alpha >= upper, jnp.maximum(g, 0.0), g))
    pg = jnp.where(upper > 0, pg, 0.0)
    return jnp.max(jnp.abs(pg) / scale)


def _dual_obj(alpha, y, X):
    v = alpha * y
    w, b = X.T @ v, jnp.sum(v)
    return jnp.sum(alpha) - 0.5 * (w @ w + b * b)


def _margin_buckets(n, d):
    """Static sizes of the margin-set solve (the smallest that holds the set is used; one
    size, compiled once, when the largest is small)."""
    cap = min(n, d + 1, MAX_MARGIN_SET)
    return [cap] if cap <= DIRECT_SOLVE_MAX else [32, DIRECT_SOLVE_MAX, cap]


def _first_true(mask, k, block=128):
    """The indices of the first `k` True entries of the boolean `mask` (by index; 0 where
    there are fewer): `jnp.nonzero(mask, size=k, fill_value=0)[0]`, computed in two
    levels -- per-block counts, then a search of only the first `k` non-empty blocks --
    because XLA's CPU prefix sum over all $n$ entries dominates `jnp.nonzero` (measured on
    Adult's 15,682 rows: 40 us for `k = 16` against 125 us)."""
    n = mask.shape[0]
    r = -(-n // block)
    if r <= 2 or k >= r:
        return jnp.nonzero(mask, size=k, fill_value=0)[0]
    m2 = jnp.zeros(r * block, bool).at[:n].set(mask).reshape(r, block)
    blk = jnp.nonzero(jnp.any(m2, axis=1), size=k, fill_value=r)[0]
    sub = jnp.concatenate([m2, jnp.zeros((1, block), bool)])[blk].reshape(-1)
    j = jnp.nonzero(sub, size=k, fill_value=0)[0]
    idx = blk[j // block] * block + j % block
    return jnp.where(jnp.arange(k) < jnp.sum(sub, dtype=jnp.int32), idx, 0)


def _spd_solve(K, r):
    """Solve `K x = r` for a small symmetric positive definite `K`: a Cholesky
    factorisation (LAPACK; measured 12 us at `k = 58` on Adult's margin set against 128 us
    for the Gauss-Jordan loop used before), then one step of iterative refinement. A
    numerically singular `K` gives non-finite or infeasible values, which the caller's
    checks reject."""
    fac = jax.scipy.linalg.cho_factor(K)
    x = jax.scipy.linalg.cho_solve(fac, r)
    return x + jax.scipy.linalg.cho_solve(fac, r - K @ x)


def _solve_on_slots(X, y, sel, valid, alpha_guess, prox, theta, *, k):
    """The dual point with $\\alpha_B = U_B$, $\\alpha_Z = 0$ and the margin
    equations $z_i^\\top\\theta = 1$ on `M`, given as the row indices `sel` (the
    first `count <= k` entries `valid`; the free set is carried as this list, so no step
    searches all $n$ rows for it) and the current `theta` $=\\sum_i\\alpha^{\\text{guess}}_i
    z_i$; returns `(beta, theta)`, `beta` the new $\\alpha_M$ on the slots (padded with 0
    to `sel`'s length). The `k x k` Gram system is solved by a Cholesky factorisation for
    small `k` and by CG warm-started from `alpha_guess` above `DIRECT_SOLVE_MAX` (XLA's
    dense CPU factorisations become slow beyond about 100 rows)."""
    dtype = X.dtype
    cap = sel.shape[0]
    # unused slots hold n (out of bounds): read row n - 1 instead, masked by `valid`
    sel, valid = jnp.minimum(sel[:k], X.shape[0] - 1), valid[:k].astype(dtype)
    Zs = y[sel, None] * jnp.concatenate([X[sel], jnp.ones((k, 1), dtype)], 1)
    Zs = Zs * valid[:, None]
    guess = valid * alpha_guess[sel]
    # theta = sum_B U z + sum_M alpha_guess z: remove M's part, O(kd) not O(nd)
    theta_b = theta - Zs.T @ guess
    K = Zs @ Zs.T
    # `prox` > 0: the proximal subproblem max f(a) - delta/2 |a_M - alpha_guess_M|^2,
    # delta = prox * max diag(K), well posed when the margin vectors are dependent
    delta = prox * jnp.max(jnp.diag(K))
    ridge = (1e-13 if dtype == jnp.float64 else 1e-6) * jnp.max(jnp.diag(K)) + delta
    K = K + jnp.diag(1.0 - valid + ridge)
    rhs = valid * (1.0 - Zs @ theta_b + delta * guess)
    inv_diag = 1.0 / jnp.diag(K)

    def cg(_):
        return jax.scipy.sparse.linalg.cg(lambda v: K @ v, rhs, x0=guess,
                                          tol=1e-14 if dtype == jnp.float64 else 1e-7,
                                          maxiter=3 * k, M=lambda v: inv_diag * v)[0]

    if k > DIRECT_SOLVE_MAX:
        beta = cg(None)
    else:
        beta = _spd_solve(K, rhs)
    beta = valid * beta
    theta = theta_b + Zs.T @ beta
    return jnp.zeros(cap, dtype).at[:k].set(beta), theta


def _hinge_active_set(X, y, s, reg, alpha0, tol, max_steps, absX=None):
    r"""Feasible (monotone) active-set method on the hinge dual, warm-started from `alpha0`.

    The dual $\max_{0\le\alpha\le U} f(\alpha) = \sum_i\alpha_i - \tfrac12\lVert
    \sum_i\alpha_i z_i\rVert^2$ is a box-constrained concave QP. The rows are split into
    bound $B$ ($\alpha_i = U_i$), free $M$ and zero $Z$ ($\alpha_i = 0$) sets; $\alpha$
    stays feasible throughout. Each step

    1. solves the subproblem on the sets: $\alpha^\star_M$ maximises
       $f - \tfrac\delta2\lVert\alpha_M - \alpha_M^{\text{cur}}\rVert^2$ with $B$, $Z$
       fixed (a small proximal term $\delta$, so dependent margin vectors -- one-hot
       data -- give a well-posed system);
    2. moves along the segment towards $\alpha^\star$ as far as the box allows
       (ratio test); a row that hits its bound leaves $M$ for $B$ or $Z$;
    3. after a full step, adds up to `ADD_PER_STEP` of the rows of $Z$ / $B$ that
       violate the KKT conditions (margin $< 1$ at $\alpha = 0$, $> 1$ at $\alpha = U$)
       by at least a quarter of the worst violation to $M$.

    $f$ never decreases (concavity along the segment, and the proximal subproblem's optimum
    is at least as good as the current point), so the iteration cannot cycle the way the
    primal-dual (semismooth-Newton) active-set rule does on the attack's refits, and it
    ends when the largest scaled projected-gradient violation is $\le$ `tol` (the same test
    as coordinate descent). One step costs $O(nd + |M|^2 d + |M|^3)$.

    Returns `(alpha, w, b, gap, steps)`."""
    n, d = X.shape
    dtype = X.dtype
    f64 = dtype == jnp.float64
    absX = jnp.abs(X) if absX is None else absX
    upper = s / (jnp.sum(s) * reg)
    active = upper > 0
    rel = 1e-9 if f64 else 1e-5
    prox = 1e-10 if f64 else 1e-5
    sizes = _margin_buckets(n, d)
    cap = sizes[-1]
    alpha = jnp.where(active, jnp.clip(alpha0, 0.0, upper), 0.0)
    alpha = jnp.where(alpha >= (1 - rel) * upper, upper, jnp.where(alpha <= rel * upper, 0.0,
                                                                    alpha))
    interior = active & (alpha > 0) & (alpha < upper)
    # at most `cap` free rows: the others snap to their nearer bound (still feasible)
    depth = jnp.where(interior, jnp.minimum(alpha, upper - alpha) / jnp.where(
        active, upper, 1.0), -1.0)

    def deepest(_):
        _, keep_idx = jax.lax.top_k(depth, min(cap, n))
        return jnp.zeros(n, bool).at[keep_idx].set(True) & interior

    # (top_k is slow on long vectors: only when the free set must be cut)
    keep = jax.lax.cond(jnp.sum(interior.astype(jnp.int32)) <= cap, lambda _: interior,
                        deepest, None)
    alpha = jnp.where(interior & ~keep, jnp.where(alpha > 0.5 * upper, upper, 0.0), alpha)
    in_b = active & ~keep & (alpha >= upper)
    # the free set M as a list of `cap` row slots, the first `count` in use (unused: n,
    # out of bounds, so scatters drop them); kept in use-first order
    slot = jnp.arange(cap)
    count0 = jnp.sum(keep.astype(jnp.int32))
    sel0 = jnp.where(slot < count0, _first_true(keep, cap), n)
    branches = [partial(_solve_on_slots, k=k) for k in sizes]
    bounds = jnp.asarray(sizes[:-1], jnp.int32)
    add_k = min(ADD_PER_STEP, n)
    v = alpha * y
    w0, b0 = v @ X, jnp.sum(v)
    # the violations' scale, once per call (it only normalises the tolerance)
    scale = _row_scale(absX, w0, b0, alpha, tol)

    def step(carry):
        sel, count, in_b, alpha, w, b, _, it = carry
        sv = slot < count
        idx = jnp.sum((count > bounds).astype(jnp.int32))
        theta = jnp.concatenate([w, b[None]])
        beta, theta_new = jax.lax.switch(idx, branches, X, y, sel, sv, alpha,
                                         jnp.asarray(prox, dtype), theta)
        sel_in = jnp.minimum(sel, n - 1)  # unused slots (n) read the last row, masked
        a_m, u_m = alpha[sel_in], upper[sel_in]
        p = jnp.where(sv, beta - a_m, 0.0)
        ratio = jnp.where(sv & (p < 0), a_m / jnp.where(p < 0, -p, 1.0),
                          jnp.where(sv & (p > 0), (u_m - a_m) / jnp.where(p > 0, p, 1.0),
                                    jnp.inf))
        t = jnp.minimum(1.0, jnp.min(ratio))
        t = jnp.where(jnp.isfinite(t), t, 0.0)
        full = t >= 1.0
        hit = sv & (ratio <= t) & ~full
        a_new_m = jnp.clip(jnp.where(sv, a_m + t * p, a_m), 0.0, u_m)
        a_new_m = jnp.where(hit & (p < 0), 0.0, jnp.where(hit & (p > 0), u_m, a_new_m))
        ok = jnp.all(jnp.isfinite(a_new_m))
        a_new = jnp.where(ok, alpha.at[sel].set(a_new_m, mode="drop"), alpha)
        keep_slot = sv & ~hit
        in_b2 = in_b.at[sel].max(hit & (p > 0), mode="drop")
        # theta is linear in alpha and only M moved: theta + t (theta_new - theta), O(d)
        # instead of the O(nd) sum over all rows (rows that hit a bound are set to it
        # exactly, which differs from alpha + t p only by rounding)
        theta = jnp.where(ok, theta + t * (theta_new - theta), theta)
        w, b = theta[:-1], theta[-1]
        g = y * (X @ w + b) - 1.0
        spread = jnp.where(ok, _pg_spread(a_new, upper, g, scale), jnp.inf)

        def exact(_):  # passed on the updated theta: re-test on theta summed afresh
            v = a_new * y
            we, be = v @ X, jnp.sum(v)
            ge = y * (X @ we + be) - 1.0
            return we, be, ge, _pg_spread(a_new, upper, ge, scale)

        w, b, g, spread = jax.lax.cond(spread <= tol, exact, lambda _: (w, b, g, spread),
                                       None)
        # the slots still in M, moved to the front (in order)
        count2 = jnp.sum(keep_slot.astype(jnp.int32))
        order = jnp.nonzero(keep_slot, size=cap, fill_value=0)[0]
        sel2 = jnp.where(slot < count2, sel[order], n)
        in_m2 = jnp.zeros(n, bool).at[sel2].set(True, mode="drop")
        # after a full step, the worst KKT violators outside M join it
        in_z2 = active & ~in_m2 & ~in_b2
        viol = jnp.where((in_z2 & (g < 0)) | (in_b2 & (g > 0)), jnp.abs(g) / scale, 0.0)
        viol = jnp.where(viol > 0.5 * tol, viol, 0.0)
        # up to `add_k` of the rows violating by at least a quarter of the worst (the
        # first by index: an O(n) selection; any violator keeps the method monotone)
        big = (viol > 0) & (viol >= 0.25 * jnp.max(viol))
        add_idx = _first_true(big, add_k)
        room = cap - count2
        take = (jnp.arange(add_k) < jnp.sum(big)) & (jnp.arange(add_k) < room) & full
        n_take = jnp.sum(take.astype(jnp.int32))  # (`take` is a prefix)
        sel2 = sel2.at[count2 + jnp.arange(add_k)].set(
            jnp.where(take, add_idx, n), mode="drop")
        add = jnp.zeros(n, bool).at[add_idx].max(take)
        return sel2, count2 + n_take, in_b2 & ~add, a_new, w, b, spread, it + 1

    def cond(carry):
        return (carry[6] > tol) & (carry[7] < max_steps)

    init = (sel0, count0, in_b, alpha, w0, b0, jnp.asarray(jnp.inf, dtype),
            jnp.asarray(0, jnp.int32))
    _, _, _, alpha, w, b, gap, it = jax.lax.while_loop(cond, step, init)
    return alpha, w, b, gap, it


def _hinge_dual_cd(X, y, s, reg, alpha0, tol, max_iter, polish_every=2):
    """The hinge solver: active-set steps (`_hinge_active_set`) from the warm start,
    then, while they do not reach `tol`, dual coordinate descent epochs with a new
    active-set attempt every `polish_every` epochs (started from the CD iterate; a
    failed attempt's point is kept when it improves the dual objective). A solution found
    by the active-set steps is exact up to rounding.

    Returns `(alpha, w, b, gap, epochs + active-set steps)`."""
    n, _ = X.shape
    dtype = X.dtype
    upper = s / (jnp.sum(s) * reg)
    alpha = jnp.clip(alpha0, 0.0, upper)
    # (w, b) start at 0: the first pass of the loop either runs the active-set steps,
    # which sum theta from alpha themselves, or an epoch, which does too
    w, b = jnp.zeros(X.shape[1], dtype), jnp.zeros((), dtype)
    absX = jnp.abs(X)
    big = jnp.asarray(jnp.inf, dtype)

    def epoch(carry):
        alpha, _, _, _, it, steps = carry
        # recompute theta from alpha: incremental updates would let rounding drift build up
        # over many epochs, beyond what the stopping test allows
        v = alpha * y
        w, b = v @ X, jnp.sum(v)
        scale = _row_scale(absX, w, b, alpha, tol)  # from the start of the epoch
        # here, not before the loop: a refit that the active-set steps finish never needs it
        qdiag = jnp.sum(X * X, axis=1) + 1.0

        def step(i, inner):
            alpha, w, b, pg_max, pg_min = inner
            xi = X[i]
            yi = y[i]
            ui = upper[i]
            ai = alpha[i]
            g = yi * (xi @ w + b) - 1.0
            pg = jnp.where(ai <= 0.0, jnp.minimum(g, 0.0),
                           jnp.where(ai >= ui, jnp.maximum(g, 0.0), g))
            pg = jnp.where(ui > 0, pg, 0.0)
            new = jnp.clip(ai - g / qdiag[i], 0.0, ui)
            new = jnp.where(pg != 0.0, new, ai)
            delta = (new - ai) * yi
            pgs = pg / scale[i]
            return (alpha.at[i].set(new), w + delta * xi, b + delta,
                    jnp.maximum(pg_max, pgs), jnp.minimum(pg_min, pgs))

        alpha, w, b, pg_max, pg_min = jax.lax.fori_loop(
            0, n, step, (alpha, w, b, -big, big))
        return alpha, w, b, jnp.maximum(pg_max, -pg_min), it + 1, steps

    def body(carry):
        alpha, w, b, gap, it, steps = carry

        def try_active_set(_):
            pa, pw, pb, pgap, k = _hinge_active_set(X, y, s, reg, alpha, tol,
                                                    ACTIVE_SET_STEPS, absX)

            def improve(_):  # not exact yet: keep pa if it improves the dual objective
                better = _dual_obj(pa, y, X) > _dual_obj(alpha, y, X)
                va = jnp.where(better, pa, alpha) * y
                return jnp.where(better, pa, alpha), va @ X, jnp.sum(va)

            na, nw, nb = jax.lax.cond(pgap <= tol, lambda _: (pa, pw, pb), improve, None)
            return na, nw, nb, pgap, k

        def skip(_):
            return alpha, w, b, big, jnp.asarray(0, jnp.int32)

        attempt = (it % polish_every == 0) & jnp.any(alpha > 0)
        na, nw, nb, pgap, k = jax.lax.cond(attempt, try_active_set, skip, None)
        return jax.lax.cond(pgap <= tol, lambda c: (na, nw, nb, pgap, it, steps + k), epoch,
                            (na, nw, nb, gap, it, steps + k))

    def cond(carry):
        return (carry[3] > tol) & (carry[4] < max_iter)

    init = (alpha, w, b, big, jnp.asarray(0, jnp.int32), jnp.asarray(0, jnp.int32))
    alpha, w, b, gap, it, steps = jax.lax.while_loop(cond, body, init)
    return alpha, w, b, gap, it + steps


# a cold float64 hinge start solves a smoothed primal first when the Hessian is small
# enough to form (d + 1 <= SMOOTH_START_MAX_D); else dual coordinate descent starts from 0
SMOOTH_START_MAX_D = 512
# the smoothing schedule of `_hinge_smoothed_start`: (tau, Newton steps) per stage
SMOOTH_SCHEDULE = ((1.0, 2), (0.03, 3), (1e-3, 3), (1e-4, 2), (1e-5, 2), (1e-6, 2))
# its Hessian sums over the rows with |1 - m_i| < SMOOTH_CUTOFF * tau only (the others'
# curvature is below exp(-SMOOTH_CUTOFF) / tau), gathered into the smallest of these
# static sizes that holds them; all rows when none does
SMOOTH_GATHER_ROWS = (2048,)
SMOOTH_CUTOFF = 25.0


def _hinge_smoothed_start(X, y, s, reg, schedule=None, gather_rows=None):
    r"""A dual starting point for a cold hinge fit from a smoothed primal.

    Minimises $J_\tau(\theta)=\sum_i s_i\,\tau\,\mathrm{softplus}((1-m_i)/\tau)
    +\tfrac{N\lambda}2\lVert\theta\rVert^2$, $m_i=y_i\theta^\top\tilde x_i$, by damped
    Newton steps (the $(d+1)\times(d+1)$ Hessian formed in float32 and solved;
    backtracking on $J_\tau$ along the step, whose margins $m + t\,\Delta m$ cost $O(n)$
    per trial), for the stages of `SMOOTH_SCHEDULE` ($\tau = 1, 0.03, 10^{-3}, 10^{-4},
    10^{-5}, 10^{-6}$ with 2, 3, 3, 2, 2, 2 steps), each warm-started from the last. Its
    stationarity condition $\theta=\sum_i\alpha_i y_i\tilde x_i$ holds with
    $\alpha_i=U_i\,\sigma((1-m_i)/\tau)\in[0,U_i]$, a feasible dual point whose sets are
    those of the hinge solution up to rows within about $\tau$ of the margin; the exact
    (active-set) solver then finishes from it. Rows with $|1 - m_i| \ge 25\tau$ carry
    curvature below $e^{-25}/\tau$ and are left out of the Hessian, so the small-$\tau$
    stages sum over a few hundred gathered rows instead of all $n$ (`SMOOTH_GATHER_ROWS`).
    Measured on Adult (15,682 x 57): main's three stages down to $\tau=10^{-3}$ left the
    active-set finish 44 steps; going on to $\tau=10^{-6}$ leaves 4, for 5 more Newton
    steps on gathered rows (1-2 ms each against about 3 ms for a full-Hessian step). The
    path is sensitive: 2 steps at $\tau=10^{-3}$ left 16 steps, a $\sqrt{10}$-spaced
    schedule 26-1,387, subsampled Hessians 11-339."""
    schedule = SMOOTH_SCHEDULE if schedule is None else schedule
    gather_rows = SMOOTH_GATHER_ROWS if gather_rows is None else gather_rows
    n, d = X.shape
    dtype = X.dtype
    Xt = jnp.concatenate([X, jnp.ones((n, 1), dtype)], axis=1)
    Xt32 = Xt.astype(jnp.float32)
    nl = jnp.sum(s) * reg
    upper = s / nl

    def J(theta, m, tau):
        return jnp.sum(s * tau * jax.nn.softplus((1.0 - m) / tau)) + 0.5 * nl * theta @ theta

    gathers = [k for k in gather_rows if k < n]

    # one Newton step per entry, all stages in one loop (one traced body: compiles once)
    tau_steps = jnp.asarray([tau for tau, k in schedule for _ in range(k)], dtype)

    def step(i, carry):
        theta, m = carry
        tau = tau_steps[i]
        sig = jax.nn.sigmoid((1.0 - m) / tau)
        g = -(s * sig * y) @ Xt + nl * theta
        h = s * sig * (1.0 - sig) / tau
        # a fresh Hessian every step (reusing one per stage measured 4x more active-set
        # steps afterwards on Adult), in float32 (only the direction's quality depends
        # on it; the line search and the exact finish make up for its rounding)
        h32 = h.astype(jnp.float32)

        def full_h(_):
            return (Xt32 * h32[:, None]).T @ Xt32

        def near_h(k, _):  # only the rows near the margin carry curvature
            idx = jnp.nonzero(near, size=k, fill_value=0)[0]
            Xs = Xt32[idx] * (jnp.arange(k) < cnt)[:, None]
            return (Xs * h32[idx][:, None]).T @ Xs

        # rows with |1 - m| >= c tau have sigma(1 - sigma) < exp(-c): left out
        near = jnp.abs(1.0 - m) < SMOOTH_CUTOFF * tau
        cnt = jnp.sum(near.astype(jnp.int32))
        if gathers:
            branches = [partial(near_h, k) for k in gathers] + [full_h]
            idx = jnp.sum((cnt > jnp.asarray(gathers)).astype(jnp.int32))
            H = jax.lax.switch(idx, branches, None)
        else:
            H = full_h(None)
        H = H.astype(dtype) + nl * jnp.eye(d + 1, dtype=dtype)
        p = -jax.scipy.linalg.cho_solve(jax.scipy.linalg.cho_factor(H), g)
        # the margins move along one direction: each trial point costs O(n), not O(nd)
        dm = y * (Xt @ p)
        f0 = J(theta, m, tau)

        def ls_cond(c):
            t, k = c
            return (J(theta + t * p, m + t * dm, tau) > f0 + 1e-4 * t * (g @ p)) & (k < 30)

        t, _ = jax.lax.while_loop(ls_cond, lambda c: (0.5 * c[0], c[1] + 1),
                                  (jnp.asarray(1.0, dtype), 0))
        new, m_new = theta + t * p, m + t * dm
        ok = jnp.all(jnp.isfinite(new))
        return jnp.where(ok, new, theta), jnp.where(ok, m_new, m)

    theta, _ = jax.lax.fori_loop(0, tau_steps.shape[0], step,
                                 (jnp.zeros(d + 1, dtype), jnp.zeros(n, dtype)))
    m = y * (Xt @ theta)
    return upper * jax.nn.sigmoid((1.0 - m) / schedule[-1][0])


def _hinge_closed_form(params, masks):
    """Solution of the hinge problem as a smooth function of the data on fixed active sets."""
    X, y, s, reg = params
    bound, sel, sel_mask = masks
    upper = s / (jnp.sum(s) * reg)
    ones = jnp.ones((X.shape[0], 1), X.dtype)
    Z = y[:, None] * jnp.concatenate([X, ones], axis=1)
    theta_b = Z.T @ (bound * upper)
    Zs = Z[sel.astype(jnp.int32)] * sel_mask[:, None]
    K = Zs @ Zs.T + jnp.diag(1.0 - sel_mask)
    r = sel_mask * (1.0 - Zs @ theta_b)
    beta = jnp.linalg.solve(K, r)
    return theta_b + Zs.T @ beta


@jax.custom_vjp
def _hinge_attach(theta, params, masks):
    return theta


def _hinge_attach_fwd(theta, params, masks):
    return theta, (params, masks)


def _hinge_attach_bwd(res, g):
    params, masks = res
    _, vjp = jax.vjp(lambda p: _hinge_closed_form(p, masks), params)
    (params_ct,) = vjp(g)
    zero_masks = jax.tree_util.tree_map(jnp.zeros_like, masks)
    return jnp.zeros_like(g), params_ct, zero_masks


_hinge_attach.defvjp(_hinge_attach_fwd, _hinge_attach_bwd)


def _hinge_masks(alpha, s, reg, d, violators=None):
    upper = s / (jnp.sum(s) * reg)
    rel = 1e-6 if alpha.dtype == jnp.float64 else 1e-3
    margin = (alpha > rel * upper) & (alpha < (1 - rel) * upper)
    bound = (alpha >= (1 - rel) * upper) & (upper > 0)
    if violators is not None:  # KKT violators join the margin set (active-set step)
        margin = margin | violators
        bound = bound & ~violators
    margin = margin.astype(alpha.dtype)
    bound = bound.astype(alpha.dtype)
    k = min(alpha.shape[0], d + 1, MAX_MARGIN_SET)
    sel = _first_true(margin > 0, k)
    valid = (jnp.arange(k) < jnp.sum(margin > 0)).astype(alpha.dtype)
    return bound, sel.astype(alpha.dtype), valid


# --------------------------------------------------------------------------- logistic


def _logistic_grad(w, b, X, y, s, reg):
    m = y * (X @ w + b)
    coef = -s * y * jax.nn.sigmoid(-m)
    n_eff = jnp.sum(s)
    return X.T @ coef + n_eff * reg * w, jnp.sum(coef) + n_eff * reg * b


def _logistic_residual(w, b, X, absX, y, s, reg):
    r"""Scaled gradient residual and its rounding floor.

    Component $j$ of $\nabla J = \sum_i s_i\,(-y_i\sigma(-m_i))\,\tilde x_{ij}
    + N\lambda\theta_j$ is compared with the sum of the magnitudes of its terms,
    $c_j = \sum_i s_i\sigma(-m_i)|\tilde x_{ij}| + N\lambda|\theta_j|$ (the scale of its
    rounding error): residual $= \max_j |\nabla_j J| / c_j$. Rounding in $\theta$,
    in the margins and in the sums bounds what any solver can reach to about
    $\varepsilon_{\text{mach}}(1 + \max_i \sum_j|\tilde x_{ij}\theta_j|)$, the returned
    floor (times 16)."""
    n_eff = jnp.sum(s)
    m = y * (X @ w + b)
    sg = jax.nn.sigmoid(-m)
    coef = -s * y * sg
    gw = X.T @ coef + n_eff * reg * w
    gb = jnp.sum(coef) + n_eff * reg * b
    cw = absX.T @ (s * sg) + n_eff * reg * jnp.abs(w)
    cb = jnp.sum(s * sg) + n_eff * reg * jnp.abs(b)

    def ratio(g, c):
        return jnp.where(c > 0, jnp.abs(g) / jnp.where(c > 0, c, 1.0), 0.0)

    res = jnp.maximum(jnp.max(ratio(gw, cw), initial=0.0), ratio(gb, cb))
    eps = jnp.finfo(X.dtype).eps
    active = s > 0
    reach = jnp.max(jnp.where(active, absX @ jnp.abs(w) + jnp.abs(b), 0.0))
    return res, 16 * eps * (1.0 + reach)


def _logistic_newton(X, y, s, reg, w0, b0, tol, max_iter, cg_iter=200):
    n_eff = jnp.sum(s)
    dtype = X.dtype
    absX = jnp.abs(X)
    obj = partial(_objective, X=X, y=y, s=s, reg=reg, loss="logistic")
    # objective values are exact only to about eps * (sum of |terms|): an Armijo test
    # finer than that cannot be decided, so near the optimum that much noise is allowed
    f_noise = 8 * jnp.finfo(dtype).eps

    def hvp(curv, v_w, v_b):
        xv = X @ v_w + v_b
        t = curv * xv
        return X.T @ t + n_eff * reg * v_w, jnp.sum(t) + n_eff * reg * v_b

    def newton_step(carry):
        w, b, _, _, it = carry
        gw, gb = _logistic_grad(w, b, X, y, s, reg)
        m = y * (X @ w + b)
        sig = jax.nn.sigmoid(m)
        curv = s * sig * (1 - sig)
        gnorm = jnp.sqrt(gw @ gw + gb * gb)
        cg_tol = jnp.minimum(0.1, jnp.sqrt(gnorm / n_eff)) * gnorm

        # conjugate gradients on H p = -g
        def cg_cond(c):
            _, _, rw, rb, _, _, k, _ = c
            return (jnp.sqrt(rw @ rw + rb * rb) > cg_tol) & (k < cg_iter)

        def cg_body(c):
            pw, pb, rw, rb, dw, db, k, rr = c
            hw, hb = hvp(curv, dw, db)
            a = rr / (dw @ hw + db * hb)
            pw, pb = pw + a * dw, pb + a * db
            rw, rb = rw - a * hw, rb - a * hb
            rr_new = rw @ rw + rb * rb
            beta = rr_new / rr
            return pw, pb, rw, rb, rw + beta * dw, rb + beta * db, k + 1, rr_new

        rr0 = gw @ gw + gb * gb
        c0 = (jnp.zeros_like(w), jnp.zeros_like(b), -gw, -gb, -gw, -gb, 0, rr0)
        pw, pb, *_ = jax.lax.while_loop(cg_cond, cg_body, c0)

        f0 = obj(w, b)
        slope = gw @ pw + gb * pb
        slack = f_noise * (jnp.abs(f0) + 1.0)

        def ls_cond(c):
            t, k = c
            return (obj(w + t * pw, b + t * pb) > f0 + 1e-4 * t * slope + slack) & (k < 40)

        t, _ = jax.lax.while_loop(ls_cond, lambda c: (0.5 * c[0], c[1] + 1),
                                  (jnp.asarray(1.0, dtype), 0))
        w, b = w + t * pw, b + t * pb
        res, floor = _logistic_residual(w, b, X, absX, y, s, reg)
        return w, b, res, floor, it + 1

    def cond(carry):
        return (carry[2] > jnp.maximum(tol, carry[3])) & (carry[4] < max_iter)

    res0, floor0 = _logistic_residual(w0, b0, X, absX, y, s, reg)
    w, b, res, floor, it = jax.lax.while_loop(
        cond, newton_step, (w0, b0, res0, floor0, jnp.asarray(0, jnp.int32)))
    return w, b, res, jnp.maximum(tol, floor), it


def _logistic_optimality(theta, params):
    w, b = theta
    X, y, s, reg = params
    return _logistic_grad(w, b, X, y, s, reg)


# --------------------------------------------------------------------------- driver


class LinearSolver(eqx.Module):
    r"""Options of the training solver of `fit_linear`, held once.

    Pass one to `fit_linear` or to any attack that retrains a linear model
    (`solver=LinearSolver(tol=1e-8)`); `None` fields take the defaults below. Both fields
    are array leaves, so changing them does not recompile.

    Attributes:
      tol: stopping tolerance, relative and scale-free. Hinge: the largest
        projected-gradient violation of the dual, row $i$ measured relative to
        $r_i = 1 + \sum_j|\tilde x_{ij}\theta_j|$ (the size of the terms of its margin).
        Logistic: $\max_j |\nabla_j J| / c_j$ with $c_j$ the sum of the magnitudes of
        the terms of $\nabla_j J$. A tolerance below what the working precision can
        resolve is raised to that floor (about $16\,\varepsilon_{\text{mach}}$ times the
        scale of the margins), so the stopping test is always reachable. Default:
        `1e-5` (hinge) / `1e-10` (logistic) in float64, `1e-3` / `1e-5` in float32.
      max_iter: cap on dual coordinate-descent epochs (hinge; default 2000) or Newton
        steps (logistic; default 100).
    """

    tol: float | Array | None = None
    max_iter: int | Array | None = None

    def resolve(self, loss: str, dtype) -> LinearSolver:
        """A copy with the defaults for `loss` and the float `dtype` filled in, as
        arrays (`tol` of `dtype`, `max_iter` int32). Validates given values."""
        V.check_choice(loss, "loss", LOSSES)
        f64 = jnp.dtype(dtype) == jnp.float64
        tol = self.tol
        if tol is None:
            tol = {("hinge", True): 1e-5, ("hinge", False): 1e-3,
                   ("logistic", True): 1e-10, ("logistic", False): 1e-5}[(loss, bool(f64))]
        V.check_positive(tol, "tol")
        max_iter = self.max_iter
        if max_iter is None:
            max_iter = 2000 if loss == "hinge" else 100
        if V.is_concrete(max_iter) and not isinstance(max_iter, jax.Array):
            max_iter = V.check_int(max_iter, "max_iter", low=1)
        return LinearSolver(jnp.asarray(tol, dtype), jnp.asarray(max_iter, jnp.int32))


@partial(jax.jit, static_argnames=("loss", "cold"))
def _fit(X, y, s, reg, w0, b0, alpha0, tol, max_iter, *, loss, cold=False):
    """Jitted training core (inputs already checked). Returns a `LinearFit`."""
    dtype = X.dtype
    y = y.astype(dtype)
    s = s.astype(dtype)
    reg = jnp.asarray(reg, dtype)
    params = (X, y, s, reg)
    ps = jax.lax.stop_gradient(params)
    if loss == "hinge":
        tol = jnp.maximum(tol, 64 * jnp.finfo(dtype).eps)
        alpha0 = jax.lax.stop_gradient(alpha0)
        # float64 only: in float32 the active-set finish stops at the looser float32 `tol`
        # and from this start measured an objective 1.09e-3 (relative) above liblinear's
        # on one random instance, past the stated 1e-3; from alpha = 0 it stays within
        if cold and dtype == jnp.float64 and X.shape[1] + 1 <= SMOOTH_START_MAX_D:
            alpha0 = _hinge_smoothed_start(*ps)
        alpha, w, b, res, it = _hinge_dual_cd(*ps, alpha0, tol, max_iter)
        masks = _hinge_masks(alpha, ps[2], ps[3], X.shape[1])
        theta = _hinge_attach(jnp.concatenate([w, b[None]]), params, masks)
        w, b = theta[:-1], theta[-1]
        dual = alpha
    else:
        w, b, res, tol, it = _logistic_newton(*ps, jax.lax.stop_gradient(w0),
                                              jax.lax.stop_gradient(b0), tol, max_iter)
        w, b = attach_implicit_grad(_logistic_optimality, (w, b), params, solve="cg",
                                    tol=1e-12 if dtype == jnp.float64 else 1e-6)
        dual = jnp.zeros_like(s)
    finite = jnp.all(jnp.isfinite(w)) & jnp.isfinite(b)
    status = jnp.where(~finite, Status.NUMERICAL_ERROR,
                       jnp.where(res <= tol, Status.SUCCESS, Status.MAX_ITERATIONS))
    objective = _objective(w, b, X, y, s, reg, loss)
    return LinearFit(status=status.astype(jnp.int32), iterations=it,
                     model=LinearModel(w, b), dual=dual, objective=objective, residual=res)


def fit_linear(X: Float[Array, "n d"], y, *, loss: str = "hinge", reg,
               sample_weight=None, init: LinearFit | LinearModel | None = None,
               solver: LinearSolver | None = None, throw: bool = True) -> LinearFit:
    r"""Train an L2-regularised linear SVM or logistic regression (see module docstring).

    Solves $\min_{w,b} \sum_i s_i\ell(y_i(w^\top x_i+b)) + \tfrac{N\lambda}{2}
    (\lVert w\rVert^2+b^2)$ with $N=\sum_i s_i$. Matches liblinear
    (`LinearSVC(loss="hinge", C=1/(N*reg), intercept_scaling=1)` /
    `LogisticRegression(solver="liblinear", C=1/(N*reg), intercept_scaling=1)`).

    Works under `jax.jit`, `jax.vmap` and `jax.grad` (this is the core the attacks call
    inside their compiled rounds): shapes, the loss name and `init`'s kind are checked
    before tracing; values (labels in $\{-1,+1\}$, both classes present, finiteness,
    `reg > 0`) only on concrete input. Traced labels may be real numbers (for
    differentiating with respect to them).

    Args:
      X: features, `(n, d)`.
      y: labels in {-1, +1}, `(n,)`; both classes must have positive weight.
      loss: `"hinge"` or `"logistic"`.
      reg: $\lambda > 0$.
      sample_weight: non-negative weights $s_i$ (default ones); rows of weight 0 are
        ignored, so a padded buffer of future rows costs nothing.
      init: warm start. Hinge: a previous `LinearFit` on the same rows (its dual
        $\alpha$). Logistic: a `LinearFit` or `LinearModel`.
      solver: a `LinearSolver` (tolerance and iteration cap; default `LinearSolver()`).
      throw: raise if not converged (`jaxpoison.SolverError` on the host; under a
        caller's `jit`, an `equinox` run-time error). With `False`, read `status`.

    Returns:
      `LinearFit`; `result.model` is differentiable w.r.t. `X`, `y`,
      `sample_weight` and `reg` (implicit differentiation, reverse mode).
    """
    V.check_choice(loss, "loss", LOSSES)
    X = V.as_float_array(X, "X", ndim=2)
    dtype = X.dtype
    if not V.is_concrete(y) and jnp.issubdtype(jnp.result_type(y), jnp.floating):
        y = jnp.asarray(y).astype(dtype)
        V.check_ndim(y, "y", 1)
    else:
        y = V.as_label_array(y, "y").astype(dtype)
    V.check_same_length(X, "X", y, "y")
    if sample_weight is None:
        s = jnp.ones(X.shape[0], dtype)
    else:
        s = V.as_float_array(sample_weight, "sample_weight", ndim=1, dtype=dtype)
        V.check_same_length(X, "X", s, "sample_weight")
        V.check_nonnegative(s, "sample_weight")
        if V.is_concrete(s) and not float(jnp.sum(s)) > 0:
            raise ValueError("sample_weight must have a positive sum; got "
                             f"{float(jnp.sum(s))}")
    if V.is_concrete(y) and V.is_concrete(s):
        yv, sv = np.asarray(y), np.asarray(s)
        counts = [int(np.sum((yv == c) & (sv > 0))) for c in (-1, 1)]
        if min(counts) == 0:
            raise ValueError("y must contain both classes -1 and +1 (among rows of positive "
                             f"sample_weight); got {counts[0]} rows of -1 and {counts[1]} "
                             "of +1")
    V.check_positive(reg, "reg")
    if solver is None:
        solver = LinearSolver()
    if not isinstance(solver, LinearSolver):
        raise TypeError(f"solver must be a LinearSolver; got {type(solver).__name__}")
    solver = solver.resolve(loss, dtype)
    n, d = X.shape
    w0, b0 = jnp.zeros(d, dtype), jnp.zeros((), dtype)
    alpha0 = jnp.zeros(n, dtype)
    if init is not None:
        if isinstance(init, LinearFit):
            w0, b0 = init.model.w.astype(dtype), init.model.b.astype(dtype)
            if loss == "hinge":
                V.check_shape(init.dual, "init.dual", (n,))
                alpha0 = init.dual.astype(dtype)
        elif isinstance(init, LinearModel):
            if loss == "hinge":
                raise ValueError("init: a hinge warm start needs the previous LinearFit "
                                 "(its dual variables), not a LinearModel")
            w0, b0 = jnp.asarray(init.w, dtype), jnp.asarray(init.b, dtype)
        else:
            raise TypeError(f"init must be a LinearFit or LinearModel; got "
                            f"{type(init).__name__}")
        V.check_shape(w0, "init.model.w", (d,))
        V.check_shape(b0, "init.model.b", ())
    result = _fit(X, y, s, reg, w0, b0, alpha0, solver.tol, solver.max_iter, loss=loss,
                  cold=init is None)
    return raise_if_failed(result, f"fit_linear(loss={loss!r})", throw=throw)
