r"""The inner step of the model-targeted attack: the point of largest loss difference.

For two linear models $\theta_t$ (current) and $\theta_p$ (target) and a box
$\mathcal X = [l, u]$ (per-feature bounds), find

$$
\max_{x\in\mathcal X,\; y\in\{-1,+1\}}\; \ell(\theta_t; x, y) - \ell(\theta_p; x, y).
$$

**Hinge loss (exact).** With $a(x) = 1 - y(w_t^\top x + b_t)$ and
$c(x) = 1 - y(w_p^\top x + b_p)$ the objective is
$\max(0,a) - \max(0,c) = \max\{\min(0,-c),\ \min(a, a-c)\}$, so the maximum over the
box is the larger of

* $\min(0, -\min_x c(x))$ -- a linear minimisation over a box (closed form), and
* $\max_x \min(a(x), a(x) - c(x))$ -- a linear program with one epigraph variable.
  By LP duality it equals $\min_{\mu\in[0,1]} g(\mu)$ with
  $g(\mu) = \max_{x\in\mathcal X} a(x) - \mu c(x)
  = (1-\mu) - y(b_t - \mu b_p) + \sum_j \max(k_j(\mu) l_j, k_j(\mu) u_j)$,
  $k(\mu) = -y(w_t - \mu w_p)$. $g$ is convex and piecewise linear with
  breakpoints $\mu_j = w_{t,j}/w_{p,j}$; its minimiser is one of
  $\{0, 1\}\cup\{\mu_j\}\cap(0,1)$, found without sorting by a search over the
  breakpoint values on the sign of the right derivative (randomised pivots: $O(d)$
  per step, $O(\log d)$ steps expected), and $g$ is then evaluated exactly
  there. A primal maximiser is recovered from the box
  maximisers just left and right of $\mu^\star$, mixed so that $c(x)=0$ when
  $\mu^\star$ is interior.

No sampling is involved: the answer is exact up to floating-point rounding (tests compare
it with HiGHS and with enumeration of the box's vertices). Cost $O(d\log d)$
expected per label.

**Logistic loss.** The difference of two softplus terms is not concave; we run projected
Adam ascent from many random starts (plus the hinge maximiser) in one vmapped call. An
exact tie between the two labels' maxima goes to $y=-1$, as in the authors' code (the
hinge search breaks ties toward $+1$). The
result is a lower estimate of the maximum, so bounds built from it are not certified.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, Float

from jaxpoison import _validate as V
from jaxpoison._result import Result, Status, raise_if_failed
from jaxpoison.attacks._poisoning import as_box, as_linear_model
from jaxpoison.models.linear import LOSSES, LinearModel

__all__ = ["MaxLossPoint", "max_loss_difference"]


class MaxLossPoint(Result):
    """Result of `max_loss_difference`.

    Attributes:
      x: the maximising point, `(d,)`.
      y: its label (+1 or -1, int32).
      value: the loss difference $\\ell(\\theta_t;x,y)-\\ell(\\theta_p;x,y)$ at `(x, y)`.
      bound: hinge: a certified upper bound on the exact maximum (the dual value rounded
        up by a bound on its rounding error; equal to `value` up to that); logistic: NaN
        (the search is local).
      status: SUCCESS, or NUMERICAL_ERROR on a non-finite result; iterations: 1 (hinge)
        or the Adam steps per start (logistic).
    """

    x: Array
    y: Array
    value: Array
    bound: Array


def _box_max_linear(k, lo, hi):
    """max_{lo<=x<=hi} k.x and the maximiser (ties -> lo)."""
    x = jnp.where(k > 0, hi, lo)
    return k @ x, x


# a fixed pseudo-random order of the coordinates: the pivot of each search step is the
# unresolved breakpoint of lowest rank (a random pivot, so O(log d) steps are expected)
def _pivot_rank(d):
    return jnp.asarray((np.arange(d, dtype=np.uint64) * np.uint64(2654435761)) % np.uint64(2**32)
                       ).astype(jnp.uint32)


def _argmin_breakpoint(wt, bt, wp, bp, y, lo, hi):
    """Exact minimiser of the convex piecewise-linear g on [0, 1] without sorting.

    Term j of g has slope $s^-_j = \\min(y w_{p,j} l_j, y w_{p,j} u_j)$ left of its
    breakpoint $\\mu_j = w_{t,j}/w_{p,j}$ and $s^+_j$ (the max) right of it
    (convexity), so the right derivative
    $R(\\mu) = -1 + y b_p + \\sum_j [\\mu \\ge \\mu_j]\\,s^+_j + [\\mu < \\mu_j]\\,s^-_j$
    is a non-decreasing step function and the minimiser is $0$ if
    $R(0)\\ge 0$, else $\\min\\{\\mu_j\\in(0,1] : R(\\mu_j)\\ge0\\}$ (or 1).
    It is found by a search over the breakpoint values (randomised pivots, O(d) per step,
    O(log d) steps expected), so it is exactly one of the candidates (no tolerance involved).

    Returns `(mu_star, left, right)`: the minimiser and its nearest distinct candidates
    in `{0, 1} U {mu_j} n (0, 1)` on each side (-1 / 2 when there is none).
    """
    dtype = wt.dtype
    d = wt.shape[0]
    nz = wp != 0
    safe = jnp.where(nz, wp, 1.0)
    bps = jnp.where(nz, wt / safe, jnp.inf)
    s_lo, s_hi = y * wp * lo, y * wp * hi
    s_minus, s_plus = jnp.minimum(s_lo, s_hi), jnp.maximum(s_lo, s_hi)
    c0 = -1.0 + y * bp

    def right_slope(mu):
        return c0 + jnp.sum(jnp.where(mu >= bps, s_plus, s_minus))

    rank = _pivot_rank(d)
    inside = (bps > 0) & (bps < 1)
    big = jnp.asarray(np.iinfo(np.uint32).max, jnp.uint32)
    one, zero = jnp.ones((), dtype), jnp.zeros((), dtype)

    # invariant: R(a) < 0 <= R(b) (b = 1 stands for "1 or no breakpoint"), answer in (a, b]
    def cond(c):
        a, b = c
        return jnp.any(inside & (bps > a) & (bps < b))

    def body(c):
        a, b = c
        open_ = inside & (bps > a) & (bps < b)
        j = jnp.argmin(jnp.where(open_, rank, big))
        p = bps[j]
        ok = right_slope(p) >= 0
        return jnp.where(ok, a, p), jnp.where(ok, p, b)

    r0 = right_slope(zero)
    a, b = jax.lax.while_loop(cond, body, (zero, one))
    mu = jnp.where(r0 >= 0, zero, b)
    cand = jnp.where(inside, bps, -1.0)
    left = jnp.maximum(jnp.max(jnp.where(cand < mu, cand, -1.0)), jnp.where(mu > 0, 0.0, -1.0))
    right = jnp.minimum(jnp.min(jnp.where(inside & (bps > mu), bps, 2.0)),
                        jnp.where(mu < 1, 1.0, 2.0))
    return mu, left.astype(dtype), right.astype(dtype)



def _hinge_label(wt, bt, wp, bp, y, lo, hi):
    """Exact max over the box of hinge(theta_t) - hinge(theta_p) for a fixed label y.

    Returns (x, primal value, dual upper bound)."""

    def a_fn(x):
        return 1.0 - y * (wt @ x + bt)

    def c_fn(x):
        return 1.0 - y * (wp @ x + bp)

    def h_fn(x):
        a, c = a_fn(x), c_fn(x)
        return jnp.maximum(0.0, a) - jnp.maximum(0.0, c)

    # part 1: min(0, -min_x c(x)): minimise c <=> maximise y wp.x
    _, x1 = _box_max_linear(y * wp, lo, hi)
    v1 = jnp.minimum(0.0, -c_fn(x1))

    # part 2: min_{mu in [0,1]} g(mu)
    def g(mu):
        k = -y * (wt - mu * wp)
        lin, _ = _box_max_linear(k, lo, hi)
        return (1.0 - mu) - y * (bt - mu * bp) + lin

    mu, left, right = _argmin_breakpoint(wt, bt, wp, bp, y, lo, hi)
    g_star = g(mu)
    mu_l = 0.5 * (left + mu)
    mu_r = 0.5 * (right + mu)

    def x_at(m):
        return _box_max_linear(-y * (wt - m * wp), lo, hi)[1]

    x_l, x_r = x_at(mu_l), x_at(mu_r)
    c_l, c_r = c_fn(x_l), c_fn(x_r)
    den = c_l - c_r
    tau = jnp.clip(jnp.where(den != 0, c_l / jnp.where(den != 0, den, 1.0), 0.0), 0.0, 1.0)
    x_m = x_l + tau * (x_r - x_l)
    xs = jnp.stack([x1, x_l, x_r, x_m])
    hv = jax.vmap(h_fn)(xs)
    j = jnp.argmax(hv)
    return xs[j], hv[j], jnp.maximum(v1, g_star)


def _hinge_max(model_t, model_p, lo, hi):
    labels = jnp.array([1.0, -1.0], lo.dtype)
    xs, vals, bounds = jax.vmap(_hinge_label, in_axes=(None, None, None, None, 0, None, None))(
        model_t.w, model_t.b, model_p.w, model_p.b, labels, lo, hi)
    j = jnp.argmax(vals)
    # the dual value is computed in working precision: round it up by a bound on its
    # rounding error, (d + 4) eps times the magnitude of the terms it sums, so that `bound`
    # is an upper bound on the exact maximum in float32 too
    d = lo.shape[0]
    box = jnp.maximum(jnp.abs(lo), jnp.abs(hi))
    terms = (2.0 + jnp.abs(model_t.b) + jnp.abs(model_p.b)
             + (jnp.abs(model_t.w) + jnp.abs(model_p.w)) @ box)
    slack = (d + 4) * jnp.finfo(lo.dtype).eps * terms
    return xs[j], labels[j], vals[j], jnp.max(bounds) + slack


def _logistic_diff(x, y, model_t, model_p):
    return (jnp.logaddexp(0.0, -y * (x @ model_t.w + model_t.b))
            - jnp.logaddexp(0.0, -y * (x @ model_p.w + model_p.b)))


def _logistic_max(model_t, model_p, lo, hi, key, restarts, steps, lr):
    d = lo.shape[0]
    # label -1 first: an exact tie between the labels goes to -1, as in the authors' code
    labels = jnp.array([-1.0, 1.0], lo.dtype)
    starts = lo + (hi - lo) * jax.random.uniform(key, (2, restarts, d), lo.dtype)
    # add the exact hinge maximiser of each label as one more start
    hx = jax.vmap(_hinge_label, in_axes=(None, None, None, None, 0, None, None))(
        model_t.w, model_t.b, model_p.w, model_p.b, labels, lo, hi)[0]
    starts = jnp.concatenate([starts, hx[:, None, :]], axis=1)
    width = hi - lo
    opt = optax.adam(lr)

    def ascend(x0, y):
        def neg(u):  # optimise in box-normalised coordinates
            return -_logistic_diff(lo + u * width, y, model_t, model_p)

        u0 = jnp.where(width > 0, (x0 - lo) / jnp.where(width > 0, width, 1.0), 0.0)

        def body(carry, _):
            u, state = carry
            g = jax.grad(neg)(u)
            upd, state = opt.update(g, state, u)
            u = jnp.clip(optax.apply_updates(u, upd), 0.0, 1.0)
            return (u, state), None

        (u, _), _ = jax.lax.scan(body, (u0, opt.init(u0)), None, length=steps)
        x = lo + u * width
        # keep the start if ascent made things worse
        v, v0 = -neg(u), _logistic_diff(x0, y, model_t, model_p)
        return jnp.where(v >= v0, x, x0), jnp.maximum(v, v0)

    xs, vs = jax.vmap(lambda s, y: jax.vmap(lambda x0: ascend(x0, y))(s))(starts, labels)
    flat = jnp.argmax(vs.reshape(-1))
    li, ri = flat // vs.shape[1], flat % vs.shape[1]
    return xs[li, ri], labels[li], vs[li, ri]


@partial(jax.jit, static_argnames=("loss", "restarts", "steps"))
def _max_loss(model_t, model_p, lo, hi, key, lr, *, loss, restarts, steps):
    """Jitted core: returns a `MaxLossPoint`."""
    if loss == "hinge":
        x, y, v, ub = _hinge_max(model_t, model_p, lo, hi)
    else:
        x, y, v = _logistic_max(model_t, model_p, lo, hi, key, restarts, steps, lr)
        ub = jnp.asarray(jnp.nan, v.dtype)
    ok = jnp.all(jnp.isfinite(x)) & jnp.isfinite(v)
    status = jnp.where(ok, Status.SUCCESS, Status.NUMERICAL_ERROR).astype(jnp.int32)
    iters = jnp.asarray(1 if loss == "hinge" else steps, jnp.int32)
    return MaxLossPoint(status=status, iterations=iters, x=x, y=y.astype(jnp.int32), value=v,
                        bound=ub)


def max_loss_difference(model_t: LinearModel, model_p: LinearModel, *, loss: str = "hinge",
                        lower: Float[Array, " d"] | float,
                        upper: Float[Array, " d"] | float, key=None, restarts: int = 32,
                        steps: int = 300, lr: float = 0.05,
                        throw: bool = True) -> MaxLossPoint:
    r"""Find $\arg\max_{x\in[l,u],\,y\in\{\pm1\}} \ell(\theta_t;x,y)-\ell(\theta_p;x,y)$.

    Works under `jax.jit` and `jax.vmap` (the attacks call it inside their compiled
    rounds): the models' shapes, the box's shape and the options are checked before
    tracing; `lower < upper`, finiteness and `lr > 0` only on concrete input.

    Args:
      model_t: the current model $\theta_t$.
      model_p: the target model $\theta_p$ (same number of features).
      loss: `"hinge"` (exact, see module docstring; deterministic, `key` is not used) or
        `"logistic"` (projected Adam from `restarts` random starts per label plus the
        hinge maximiser, `steps` steps of size `lr` in box-normalised coordinates).
      lower, upper: box bounds, scalars or per-feature `(d,)` arrays, `lower < upper`.
      key: PRNG key; required for `"logistic"`.
      restarts, steps, lr: the logistic search (integers $\ge 1$; `lr > 0`).
      throw: raise if the result is not finite (NUMERICAL_ERROR).

    Returns:
      `MaxLossPoint`.
    """
    V.check_choice(loss, "loss", LOSSES)
    model_t = as_linear_model(model_t, "model_t")
    d = model_t.w.shape[0]
    dtype = model_t.w.dtype
    model_p = as_linear_model(model_p, "model_p", d, dtype)
    lo, hi = as_box(lower, upper, d, dtype)
    if loss == "logistic":
        V.check_key(key)
        restarts = V.check_int(restarts, "restarts", low=1)
        steps = V.check_int(steps, "steps", low=1)
        V.check_positive(lr, "lr")
    else:  # the exact hinge search uses no randomness and no step size
        key, restarts, steps = jax.random.key(0), 1, 1
        lr = 1.0
    out = _max_loss(model_t, model_p, lo, hi, key, jnp.asarray(lr, dtype), loss=loss,
                    restarts=restarts, steps=steps)
    return raise_if_failed(out, f"max_loss_difference(loss={loss!r})", throw=throw)
