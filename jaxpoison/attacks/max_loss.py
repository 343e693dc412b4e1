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
Adam ascent from many random starts (plus the hinge maximiser) in one vmapped call, each
start stopping when the objective changes by at most `tol` or the projected gradient
falls below `tol` (`LogisticSearch`; `LogisticSearch.authors()` is the authors' depth). The
result is a lower estimate of the maximum, so bounds built from it are not certified.

**Ties.** For both losses an exact tie between the two labels' maxima goes to $y=-1$, as
in the authors' code (`classes = [-1, 1]`, replaced only by a strictly larger value).

**Discrete features.** With `DiscreteFeatures` some features take one of a finite list of
values (binary, or one-hot blocks); the hinge maximum over that mixed set is exact too
(`_hinge_label_discrete`: a Pareto-frontier search over the blocks).
"""

from __future__ import annotations

from functools import partial

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, Float

from jaxpoison import _validate as V
from jaxpoison._result import Result, Status, raise_if_failed
from jaxpoison.attacks._poisoning import as_box, as_linear_model
from jaxpoison.models.linear import LOSSES, LinearModel

__all__ = ["DiscreteFeatures", "LogisticSearch", "MaxLossPoint", "check_discrete", "check_search",
           "max_loss_difference"]


class DiscreteFeatures(eqx.Module):
    r"""Discrete features of the attack's feasible set: blocks of features that take one
    of a finite list of values (the rest stay continuous in the box).

    The feasible set is $\mathcal X = \prod_b \mathcal O_b \times [l, u]_{\text{rest}}$:
    block $b$ (a tuple of feature indices) takes one of its option vectors
    $\mathcal O_b$, and every feature in no block is continuous in `[lower, upper]`
    (the box bounds of discrete features are ignored). Build it with

    * `DiscreteFeatures.one_hot(blocks, num_features=d)`: each block is a one-hot group,
      exactly one of its features is 1 (`drop_first=True`: the encoding dropped a level,
      so *at most* one is 1 -- the all-zero row is also an option, as in
      `jaxpoison.datasets.load_adult`);
    * `DiscreteFeatures.binary(features, num_features=d)`: each listed feature is 0 or 1
      independently, no sum constraint -- the feasible set of the authors' Adult MIP
      (`cvx.Bool` on the 53 categorical features, the one-hot sums left out).

    Its convex relaxation (every discrete feature in $[\min, \max]$ of its options, i.e.
    $[0, 1]$) is what `max_loss_difference` reports as `relaxed_bound` (the authors'
    "conservative" bound). Hashable (all fields static), so it can be a static argument.
    """

    num_features: int = eqx.field(static=True)
    blocks: tuple[tuple[int, ...], ...] = eqx.field(static=True)
    options: tuple[tuple[tuple[float, ...], ...], ...] = eqx.field(static=True)
    kind: str = eqx.field(static=True)

    @classmethod
    def _make(cls, blocks, options, num_features, kind):
        d = V.check_int(num_features, "num_features", low=1)
        seen: set[int] = set()
        for blk in blocks:
            for j in blk:
                if not 0 <= j < d:
                    raise ValueError(f"blocks: feature index {j} is outside [0, {d}) "
                                     f"(num_features={d})")
                if j in seen:
                    raise ValueError(f"blocks: feature {j} appears in more than one block")
                seen.add(j)
        return cls(num_features=d, blocks=blocks, options=options, kind=kind)

    @staticmethod
    def _index_tuple(block, what: str) -> tuple[int, ...]:
        if isinstance(block, (str, bytes)) or not hasattr(block, "__iter__"):
            raise TypeError(f"{what} must be a sequence of feature indices; got "
                            f"{type(block).__name__}")
        out = []
        for j in block:
            if isinstance(j, (bool, np.bool_)) or not isinstance(j, (int, np.integer)):
                raise TypeError(f"{what}: feature indices must be integers; got "
                                f"{type(j).__name__}")
            out.append(int(j))
        if not out:
            raise ValueError(f"{what}: a block must contain at least one feature")
        return tuple(out)

    @classmethod
    def one_hot(cls, blocks, *, num_features: int, drop_first: bool = False
                ) -> DiscreteFeatures:
        """One-hot groups: in each block exactly one feature is 1 (at most one with
        `drop_first=True`), the others 0.

        Args:
          blocks: sequence of blocks, each a non-empty sequence of feature indices;
            blocks must not overlap.
          num_features: $d$, the number of features of the models.
          drop_first: the encoding dropped one level per group, so the all-zero value is
            allowed too.
        """
        if isinstance(blocks, (str, bytes)) or not hasattr(blocks, "__iter__"):
            raise TypeError(f"blocks must be a sequence of blocks; got {type(blocks).__name__}")
        idx = tuple(cls._index_tuple(b, "blocks") for b in blocks)
        if not idx:
            raise ValueError("blocks: need at least one block")
        opts = []
        for blk in idx:
            m = len(blk)
            rows = [tuple(1.0 if i == k else 0.0 for i in range(m)) for k in range(m)]
            if drop_first:
                rows = [tuple(0.0 for _ in range(m))] + rows
            opts.append(tuple(rows))
        kind = "one_hot_drop_first" if drop_first else "one_hot"
        return cls._make(idx, tuple(opts), num_features, kind)

    @classmethod
    def binary(cls, features, *, num_features: int) -> DiscreteFeatures:
        """Independent binary features: each listed feature is 0 or 1 (the authors'
        Adult MIP: no one-hot sum constraint).

        Args:
          features: non-empty sequence of feature indices (no repeats).
          num_features: $d$, the number of features of the models.
        """
        idx = cls._index_tuple(features, "features")
        return cls._make(tuple((j,) for j in idx), tuple(((0.0,), (1.0,)) for _ in idx),
                         num_features, "binary")

    # --- dense forms used by the solvers (numpy, built at trace time from static data)
    def option_matrix(self) -> tuple[np.ndarray, np.ndarray]:
        """`(O, valid)`: `O[b, k]` is option k of block b as a full `(d,)` vector (zeros
        outside the block), padded to the largest option count; `valid[b, k]` marks real
        options."""
        nb = len(self.blocks)
        m = max(len(o) for o in self.options)
        O = np.zeros((nb, m, self.num_features))
        valid = np.zeros((nb, m), bool)
        for b, (blk, opts) in enumerate(zip(self.blocks, self.options, strict=True)):
            for k, row in enumerate(opts):
                O[b, k, list(blk)] = row
                valid[b, k] = True
        return O, valid

    def continuous_mask(self) -> np.ndarray:
        """`(d,)` bool: True for the features in no block."""
        mask = np.ones(self.num_features, bool)
        for blk in self.blocks:
            mask[list(blk)] = False
        return mask

    def relaxed_box(self, lower, upper):
        """The box of the convex relaxation: discrete features in [min, max] of their
        options, the others in `[lower, upper]` (arrays of shape `(d,)`)."""
        O, valid = self.option_matrix()
        big = np.where(valid[..., None], O, np.inf).min(axis=1)     # (nb, d)
        top = np.where(valid[..., None], O, -np.inf).max(axis=1)
        cm = self.continuous_mask()
        dlo = np.zeros(self.num_features)
        dhi = np.zeros(self.num_features)
        for b, blk in enumerate(self.blocks):
            dlo[list(blk)] = big[b, list(blk)]
            dhi[list(blk)] = top[b, list(blk)]
        return (jnp.where(cm, lower, jnp.asarray(dlo, lower.dtype)),
                jnp.where(cm, upper, jnp.asarray(dhi, upper.dtype)))

    def project(self, x):
        """The nearest feasible point (Euclidean): each block set to its nearest option,
        continuous features unchanged (clip them to the box separately). jit-safe."""
        O, valid = self.option_matrix()
        Oj = jnp.asarray(O, x.dtype)
        sq = jnp.asarray((O ** 2).sum(-1), x.dtype)                    # (nb, m)
        score = jnp.where(jnp.asarray(valid), sq - 2.0 * (Oj @ x), jnp.inf)
        k = jnp.argmin(score, axis=1)
        xd = jnp.sum(Oj[jnp.arange(Oj.shape[0]), k], axis=0)
        return jnp.where(jnp.asarray(self.continuous_mask()), x, xd)

    def contains(self, x, lower=None, upper=None) -> bool:
        """Host check: is `x` in the feasible set (continuous part within the box if
        given)? For tests and reports."""
        x = np.asarray(x, np.float64)
        for blk, opts in zip(self.blocks, self.options, strict=True):
            if not any(np.array_equal(x[list(blk)], np.asarray(o)) for o in opts):
                return False
        cm = self.continuous_mask()
        if lower is not None and np.any(x[cm] < np.broadcast_to(lower, x.shape)[cm]):
            return False
        return not (upper is not None and np.any(x[cm] > np.broadcast_to(upper, x.shape)[cm]))


class MaxLossPoint(Result):
    """Result of `max_loss_difference`.

    Attributes:
      x: the maximising point, `(d,)`.
      y: its label (+1 or -1, int32).
      value: the loss difference $\\ell(\\theta_t;x,y)-\\ell(\\theta_p;x,y)$ at `(x, y)`.
      bound: hinge: a certified upper bound on the exact maximum (the dual value rounded
        up by a bound on its rounding error; equal to `value` up to that when `exact`);
        logistic: NaN (the search is local).
      relaxed_value, relaxed_bound: the same over the convex relaxation of the feasible
        set (discrete features in $[0, 1]$; equal to `value`/`bound` without
        `discrete`). Logistic: the relaxed search's best value, and NaN.
      exact: hinge: True unless a Pareto frontier exceeded `capacity` (then `value` is a
        feasible value and `bound` the relaxed bound); logistic: False.
      status: SUCCESS, or NUMERICAL_ERROR on a non-finite result; iterations: 1 (hinge)
        or the most Adam steps any start took (logistic).
    """

    x: Array
    y: Array
    value: Array
    bound: Array
    relaxed_value: Array
    relaxed_bound: Array
    exact: Array


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


def _hinge_label_discrete(wt, bt, wp, bp, y, lo, hi, disc: DiscreteFeatures, capacity: int):
    r"""Exact max of hinge(theta_t) - hinge(theta_p) over the discrete feasible set, label y.

    With $A = a(x)$, $C = c(x)$ the objective $h = \max(0, A) - \max(0, C)$ is
    non-decreasing in $A$ and non-increasing in $C$, and $(A, C)$ is a sum of one
    2-vector per block (its chosen option) plus the continuous part. So a point whose
    partial sum is dominated (another has $A' \ge A$, $C' \le C$ on the same blocks) can
    be dropped: the blocks are scanned one at a time keeping the Pareto frontier of the
    partial sums (Nemhauser-Ullmann), pruned by the upper bound
    $\max(0, A+\bar A_{\text{rest}}) - \max(0, C+\underline C_{\text{rest}})$ against the
    best feasible value known; for each frontier point the continuous features are then
    maximised exactly (`_hinge_label` with the discrete part folded into the biases).

    Returns `(x, value, bound, overflow)`: `bound` is a valid upper bound on the maximum
    (the exact value when no frontier exceeded `capacity`; else the relaxation's dual).
    """
    dtype = wt.dtype
    O_np, valid_np = disc.option_matrix()
    # blocks with many options first: the frontier is small while it is multiplied by many
    perm = np.argsort(-valid_np.sum(1), kind="stable")
    O_np, valid_np = O_np[perm], valid_np[perm]
    O = jnp.asarray(O_np, dtype)
    valid = jnp.asarray(valid_np)
    cm = jnp.asarray(disc.continuous_mask())
    nb, m = valid_np.shape
    zero = jnp.zeros((), dtype)
    lo_c, hi_c = jnp.where(cm, lo, zero), jnp.where(cm, hi, zero)
    wt_c, wp_c = jnp.where(cm, wt, zero), jnp.where(cm, wp, zero)
    dt, dp = O @ wt, O @ wp                                        # (nb, m)
    alpha = jnp.where(valid, -y * dt, -jnp.inf)                    # contribution to a
    gamma = jnp.where(valid, -y * dp, jnp.inf)                     # contribution to c

    def h_of(x):
        a = 1.0 - y * (wt @ x + bt)
        c = 1.0 - y * (wp @ x + bp)
        return jnp.maximum(0.0, a) - jnp.maximum(0.0, c)

    # relaxation (discrete features in [min, max] of their options): a valid upper bound,
    # and its maximiser projected onto the feasible set is a first incumbent
    rlo, rhi = disc.relaxed_box(lo, hi)
    xr, _, relaxed_ub = _hinge_label(wt, bt, wp, bp, y, rlo, rhi)
    # incumbents: the projected relaxed maximiser with its continuous part re-optimised,
    # the point minimising c (the case max(0,a) - max(0,c) = -c) and the one maximising a
    ka = jnp.argmax(alpha, axis=1)
    kc = jnp.argmin(gamma, axis=1)
    rows = jnp.arange(nb)

    def with_choice(k):
        return jnp.sum(O[rows, k], axis=0), jnp.sum(dt[rows, k]), jnp.sum(dp[rows, k])

    def cont_best(k):
        xd, st, sp = with_choice(k)
        xc, v, ub = _hinge_label(wt_c, bt + st, wp_c, bp + sp, y, lo_c, hi_c)
        return jnp.where(cm, xc, xd), v, ub

    O_sq = jnp.asarray((O_np ** 2).sum(-1), dtype)
    kr = jnp.argmin(jnp.where(valid, O_sq - 2.0 * (O @ xr), jnp.inf), axis=1)
    inc_x = jnp.stack([cont_best(kr)[0], cont_best(ka)[0], cont_best(kc)[0]])
    inc_v = jax.vmap(h_of)(inc_x)
    j0 = jnp.argmax(inc_v)
    inc_x, inc = inc_x[j0], inc_v[j0]

    # bounds on what the blocks after b (and the continuous part) can add: for the
    # piece max(0, -c) <= 0 the smallest c; for min(a, a - c) the Lagrangian
    # max_rest [a - lam c] at a few lam in [0, 1] (each lam gives an upper bound), among
    # them the relaxation's optimal multiplier
    lam_star = _argmin_breakpoint(wt, bt, wp, bp, y, rlo, rhi)[0]
    lams = jnp.concatenate([jnp.linspace(0.0, 1.0, 5, dtype=dtype), lam_star[None]])
    c_cont = jnp.sum(jnp.minimum(-y * wp_c * lo_c, -y * wp_c * hi_c))
    cmin = jnp.min(gamma, axis=1)
    rest_c = jnp.cumsum(cmin[::-1])[::-1] - cmin + c_cont               # sum over b' > b
    k_lam = -y * (wt_c[None, :] - lams[:, None] * wp_c[None, :])          # (G, d)
    cont_lam = jnp.sum(jnp.maximum(k_lam * lo_c, k_lam * hi_c), axis=1)   # (G,)
    blk_lam = jnp.max(jnp.where(valid[None], -y * (dt[None] - lams[:, None, None] * dp[None]),
                                -jnp.inf), axis=2)                        # (G, nb)
    rest_lam = (jnp.cumsum(blk_lam[:, ::-1], axis=1)[:, ::-1] - blk_lam
                + cont_lam[:, None]).T                                    # (nb, G)

    def frontier(inc, K):
        A0 = jnp.full(K, -jnp.inf, dtype).at[0].set(1.0 - y * bt)
        C0 = jnp.full(K, jnp.inf, dtype).at[0].set(1.0 - y * bp)
        alive0 = jnp.zeros(K, bool).at[0].set(True)
        choice0 = jnp.zeros((K, nb), jnp.int32)

        def body(carry, xs):
            A, C, alive, choice, over = carry
            b, al, ga, rl, rc = xs
            cA = (A[:, None] + al[None, :]).reshape(-1)
            cC = (C[:, None] + ga[None, :]).reshape(-1)
            live = (alive[:, None] & jnp.isfinite(al)[None, :]).reshape(-1)
            ub_lag = jnp.min(cA[:, None] - lams[None, :] * cC[:, None] + rl[None, :], axis=1)
            ub = jnp.maximum(jnp.minimum(0.0, -(cC + rc)), ub_lag)
            live = live & (ub >= inc)
            sA = jnp.where(live, cA, -jnp.inf)
            sC = jnp.where(live, cC, jnp.inf)
            order = jnp.lexsort((sC, -sA))             # A descending, then C ascending
            oA, oC, olive = sA[order], sC[order], live[order]
            prev = jnp.concatenate([jnp.full(1, jnp.inf, dtype),
                                    jax.lax.cummin(oC)[:-1]])
            keep = olive & (oC < prev)                 # not dominated by an earlier one
            count = jnp.sum(keep)
            sel = jnp.nonzero(keep, size=K, fill_value=0)[0]
            new_alive = jnp.arange(K) < count
            src = order[sel]
            parent, opt = src // m, (src % m).astype(jnp.int32)
            nch = choice[parent].at[:, b].set(opt)
            nA = jnp.where(new_alive, oA[sel], -jnp.inf)
            nC = jnp.where(new_alive, oC[sel], jnp.inf)
            return (nA, nC, new_alive, nch, over | (count > K)), None

        (_, _, alive, choice, over), _ = jax.lax.scan(
            body, (A0, C0, alive0, choice0, jnp.asarray(False)),
            (jnp.arange(nb), alpha, gamma, rest_lam, rest_c))
        # the continuous part, exactly, for every frontier point (the survivors of the
        # last block are complete choices)
        st = jnp.sum(dt[rows[None, :], choice], axis=1)
        sp = jnp.sum(dp[rows[None, :], choice], axis=1)
        xc, v, ub = jax.vmap(_hinge_label, in_axes=(None, 0, None, 0, None, None, None))(
            wt_c, bt + st, wp_c, bp + sp, y, lo_c, hi_c)
        v = jnp.where(alive, v, -jnp.inf)
        ub = jnp.where(alive, ub, -jnp.inf)
        j = jnp.argmax(v)
        xd = jnp.sum(O[rows, choice[j]], axis=0)
        x_f = jnp.where(cm, xc[j], xd)
        v_f = h_of(x_f)
        better = v_f > inc
        return (jnp.where(better, x_f, inc_x0), jnp.where(better, v_f, inc), jnp.max(ub),
                over)

    # a small first pass finds a good feasible value, which prunes the exact pass
    inc_x0 = inc_x
    if capacity > 32:
        inc_x0, inc, _, _ = frontier(inc, 32)
    x_best, v_best, ub_max, over = frontier(inc, capacity)
    exact_ub = jnp.maximum(ub_max, v_best)
    bound = jnp.where(over, relaxed_ub, jnp.minimum(exact_ub, relaxed_ub))
    return x_best, v_best, bound, relaxed_ub, over


def _rounding_slack(model_t, model_p, lo, hi):
    # the dual value is computed in working precision: round it up by a bound on its
    # rounding error, (d + 4) eps times the magnitude of the terms it sums, so that a
    # bound is an upper bound on the exact maximum in float32 too
    d = lo.shape[0]
    box = jnp.maximum(jnp.abs(lo), jnp.abs(hi))
    terms = (2.0 + jnp.abs(model_t.b) + jnp.abs(model_p.b)
             + (jnp.abs(model_t.w) + jnp.abs(model_p.w)) @ box)
    return (d + 4) * jnp.finfo(lo.dtype).eps * terms


def _hinge_max(model_t, model_p, lo, hi, disc=None, capacity=256):
    """Both labels; returns (x, y, value, bound, relaxed value, relaxed bound, exact).
    Label -1 first, so that an exact tie goes to -1 (as in the authors' code)."""
    labels = jnp.array([-1.0, 1.0], lo.dtype)
    args = (model_t.w, model_t.b, model_p.w, model_p.b)
    if disc is None:
        xs, vals, bounds = jax.vmap(_hinge_label, in_axes=(None,) * 4 + (0, None, None))(
            *args, labels, lo, hi)
        j = jnp.argmax(vals)
        ub = jnp.max(bounds) + _rounding_slack(model_t, model_p, lo, hi)
        return xs[j], labels[j], vals[j], ub, vals[j], ub, jnp.asarray(True)
    xs, vals, bounds, rbounds, over = jax.vmap(
        lambda yy: _hinge_label_discrete(*args, yy, lo, hi, disc, capacity))(labels)
    rlo, rhi = disc.relaxed_box(lo, hi)
    _, rvals, _ = jax.vmap(_hinge_label, in_axes=(None,) * 4 + (0, None, None))(
        *args, labels, rlo, rhi)
    slack = _rounding_slack(model_t, model_p, rlo, rhi)
    j = jnp.argmax(vals)
    return (xs[j], labels[j], vals[j], jnp.max(bounds) + slack, jnp.max(rvals),
            jnp.max(rbounds) + slack, ~jnp.any(over))


def _logistic_diff(x, y, model_t, model_p):
    return (jnp.logaddexp(0.0, -y * (x @ model_t.w + model_t.b))
            - jnp.logaddexp(0.0, -y * (x @ model_p.w + model_p.b)))


class LogisticSearch(eqx.Module):
    r"""Options of the logistic inner search, held once (a small config).

    Projected Adam ascent of $\ell(\theta_t;x,y)-\ell(\theta_p;x,y)$ in box-normalised
    coordinates from `restarts` uniform random starts per label plus the exact hinge
    maximiser; each start runs until the objective changes by less than `tol` between
    steps (the authors' rule, absolute) or the projected gradient's largest component is
    below `tol`, or `max_iter` steps; the best point visited is kept. An exact tie
    between the labels' maxima goes to $y=-1$ (the authors' code searches label $-1$
    first and replaces only on a strictly larger value).

    Presets: `LogisticSearch()` (16 restarts, at most 300 steps, `lr` 0.05,
    `tol` $10^{-7}$) and `LogisticSearch.authors()` (the authors' depth:
    `lr_search_max_loss_pt` with 10 trials of up to 20,000 Adam steps, `lr` 0.1, stop at an
    objective change below $10^{-7}$).

    Attributes:
      restarts: random starts per label (static, $\ge 1$).
      max_iter: most Adam steps per start (static, $\ge 1$).
      lr: Adam step size ($>0$; traced).
      tol: stopping tolerance ($\ge 0$; traced; 0 runs every start for `max_iter` steps).
    """

    restarts: int = eqx.field(static=True, default=16)
    max_iter: int = eqx.field(static=True, default=300)
    lr: float | Array = 0.05
    tol: float | Array = 1e-7

    @classmethod
    def authors(cls) -> LogisticSearch:
        """The authors' depth: 10 trials x up to 20,000 steps, lr 0.1, tol 1e-7."""
        return cls(restarts=10, max_iter=20000, lr=0.1, tol=1e-7)

    def resolve(self, dtype) -> LogisticSearch:
        """Checked (on concrete values) and with `lr`, `tol` as arrays of `dtype`."""
        restarts = V.check_int(self.restarts, "search.restarts", low=1)
        max_iter = V.check_int(self.max_iter, "search.max_iter", low=1)
        V.check_positive(self.lr, "search.lr")
        V.check_nonnegative(self.tol, "search.tol")
        return LogisticSearch(restarts=restarts, max_iter=max_iter,
                              lr=jnp.asarray(self.lr, dtype), tol=jnp.asarray(self.tol, dtype))


def check_search(search, dtype) -> LogisticSearch:
    """`search` checked to be `None` (the default `LogisticSearch()`) or a
    `LogisticSearch`, resolved for `dtype`."""
    if search is None:
        search = LogisticSearch()
    if not isinstance(search, LogisticSearch):
        raise TypeError(f"search must be a LogisticSearch or None; got "
                        f"{type(search).__name__}")
    return search.resolve(dtype)


def _logistic_max(model_t, model_p, lo, hi, key, search: LogisticSearch, disc=None,
                  capacity=256):
    """Returns (x, y, value, relaxed value, steps): with `disc`, the ascent runs in the
    relaxed box and every end point is projected onto the feasible set (nearest option per
    block, as the authors round their binary features), the exact hinge maximisers of the
    feasible set joining as candidates."""
    d = lo.shape[0]
    # label -1 first: an exact tie between the labels goes to -1, as in the authors' code
    labels = jnp.array([-1.0, 1.0], lo.dtype)
    if disc is not None:
        lo, hi = disc.relaxed_box(lo, hi)
    starts = lo + (hi - lo) * jax.random.uniform(key, (2, search.restarts, d), lo.dtype)
    # add the exact hinge maximiser of each label as one more start
    hx = jax.vmap(_hinge_label, in_axes=(None, None, None, None, 0, None, None))(
        model_t.w, model_t.b, model_p.w, model_p.b, labels, lo, hi)[0]
    starts = jnp.concatenate([starts, hx[:, None, :]], axis=1)
    width = hi - lo
    opt = optax.adam(search.lr)
    tol = search.tol

    def ascend(x0, y):
        def neg(u):  # optimise in box-normalised coordinates
            return -_logistic_diff(lo + u * width, y, model_t, model_p)

        u0 = jnp.where(width > 0, (x0 - lo) / jnp.where(width > 0, width, 1.0), 0.0)

        def cond(c):
            return (c[2] < search.max_iter) & ~c[6]

        def body(c):
            u, state, k, v_prev, bu, bv, _ = c
            nv, g = jax.value_and_grad(neg)(u)
            v = -nv
            better = v > bv
            bu, bv = jnp.where(better, u, bu), jnp.where(better, v, bv)
            # projected gradient of the ascent: components that the box does not block
            pg = jnp.where((u <= 0.0) & (g > 0), 0.0, jnp.where((u >= 1.0) & (g < 0), 0.0, g))
            done = (jnp.abs(v - v_prev) < tol) | (jnp.max(jnp.abs(pg)) < tol)
            upd, state = opt.update(g, state, u)
            u = jnp.clip(optax.apply_updates(u, upd), 0.0, 1.0)
            return u, state, k + 1, v, bu, bv, done

        inf = jnp.asarray(jnp.inf, lo.dtype)
        u, _, k, _, bu, bv, _ = jax.lax.while_loop(
            cond, body, (u0, opt.init(u0), jnp.asarray(0, jnp.int32), inf, u0, -inf,
                         jnp.asarray(False)))
        v_end = -neg(u)
        better = v_end > bv
        bu, bv = jnp.where(better, u, bu), jnp.where(better, v_end, bv)
        return lo + bu * width, bv, k

    xs, vs, ks = jax.vmap(lambda s, y: jax.vmap(lambda x0: ascend(x0, y))(s))(starts, labels)
    relaxed = jnp.max(vs)
    if disc is not None:
        hd = jax.vmap(lambda yy: _hinge_label_discrete(
            model_t.w, model_t.b, model_p.w, model_p.b, yy, lo, hi, disc, capacity)[0])(
            labels)
        xs = jnp.concatenate([jax.vmap(jax.vmap(disc.project))(xs), hd[:, None, :]], axis=1)
        vs = jax.vmap(lambda s, y: jax.vmap(lambda x: _logistic_diff(x, y, model_t, model_p))(
            s))(xs, labels)
    # argmax returns the first maximum: label -1 (row 0) wins an exact tie
    flat = jnp.argmax(vs.reshape(-1))
    li, ri = flat // vs.shape[1], flat % vs.shape[1]
    return xs[li, ri], labels[li], vs[li, ri], relaxed, jnp.max(ks)


@partial(jax.jit, static_argnames=("loss", "discrete", "capacity"))
def _max_loss(model_t, model_p, lo, hi, key, search, *, loss, discrete=None, capacity=256):
    """Jitted core: returns a `MaxLossPoint`."""
    if loss == "hinge":
        x, y, v, ub, rv, rub, exact = _hinge_max(model_t, model_p, lo, hi, discrete,
                                                 capacity)
    else:
        x, y, v, rv, steps = _logistic_max(model_t, model_p, lo, hi, key, search, discrete,
                                           capacity)
        ub = rub = jnp.asarray(jnp.nan, v.dtype)
        exact = jnp.asarray(False)
    ok = jnp.all(jnp.isfinite(x)) & jnp.isfinite(v)
    status = jnp.where(ok, Status.SUCCESS, Status.NUMERICAL_ERROR).astype(jnp.int32)
    iters = jnp.asarray(1, jnp.int32) if loss == "hinge" else steps.astype(jnp.int32)
    return MaxLossPoint(status=status, iterations=iters, x=x, y=y.astype(jnp.int32), value=v,
                        bound=ub, relaxed_value=rv, relaxed_bound=rub, exact=exact)


def check_discrete(discrete, d: int) -> DiscreteFeatures | None:
    """`discrete` checked to be `None` or a `DiscreteFeatures` for `d` features."""
    if discrete is None:
        return None
    if not isinstance(discrete, DiscreteFeatures):
        raise TypeError(f"discrete must be a DiscreteFeatures or None; got "
                        f"{type(discrete).__name__}")
    if discrete.num_features != d:
        raise ValueError(f"discrete: built for {discrete.num_features} features, the models "
                         f"have {d}")
    return discrete


def max_loss_difference(model_t: LinearModel, model_p: LinearModel, *, loss: str = "hinge",
                        lower: Float[Array, " d"] | float,
                        upper: Float[Array, " d"] | float, key=None,
                        search: LogisticSearch | None = None,
                        discrete: DiscreteFeatures | None = None, capacity: int = 256,
                        throw: bool = True) -> MaxLossPoint:
    r"""Find $\arg\max_{x\in\mathcal X,\,y\in\{\pm1\}} \ell(\theta_t;x,y)-\ell(\theta_p;x,y)$.

    $\mathcal X$ is the box $[l, u]$, or with `discrete` the product of the discrete
    blocks' options and the box on the other features.

    Works under `jax.jit` and `jax.vmap` (the attacks call it inside their compiled
    rounds): the models' shapes, the box's shape and the options are checked before
    tracing; `lower < upper`, finiteness and the search's values only on concrete input.

    Args:
      model_t: the current model $\theta_t$.
      model_p: the target model $\theta_p$ (same number of features).
      loss: `"hinge"` (exact, see module docstring; deterministic, `key` is not used) or
        `"logistic"` (multi-start projected Adam with convergence-based stopping, see
        `LogisticSearch`).
      lower, upper: box bounds, scalars or per-feature `(d,)` arrays, `lower < upper`.
      key: PRNG key; required for `"logistic"`.
      search: `LogisticSearch` options of the logistic search (default
        `LogisticSearch()`; `LogisticSearch.authors()` for the authors' depth). Not used
        for hinge.
      discrete: `DiscreteFeatures` (for the same $d$) or `None` (all features continuous).
        Hinge: the exact maximum over the mixed set (Pareto-frontier search, see
        `_hinge_label_discrete`); logistic: the relaxed search's end points projected onto
        the set, plus the hinge maximisers.
      capacity: most Pareto points kept per block in the hinge search (static; a larger
        frontier sets `exact=False` and `bound` falls back to the relaxation's bound).
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
    discrete = check_discrete(discrete, d)
    capacity = V.check_int(capacity, "capacity", low=1)
    if loss == "logistic":
        V.check_key(key)
        search = check_search(search, dtype)
    else:  # the exact hinge search uses no randomness and no step size
        key, search = jax.random.key(0), None
    out = _max_loss(model_t, model_p, lo, hi, key, search, loss=loss, discrete=discrete,
                    capacity=capacity)
    return raise_if_failed(out, f"max_loss_difference(loss={loss!r})", throw=throw)
