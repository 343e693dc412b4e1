r"""Exact Euclidean projection onto the SVM-dual feasible set.

$$
P(v) = \arg\min_{\alpha} \tfrac12 \lVert \alpha - v \rVert_2^2
\quad\text{s.t.}\quad y^\top \alpha = 0,\; 0 \le \alpha \le C,
$$

with $y \in \{-1, +1\}^n$ (or any real weights, e.g. the soft labels of a smoothed
attacker) and $C$ a positive scalar or a vector of per-point upper bounds. The KKT
conditions give $\alpha(\mu) = \operatorname{clip}(v - \mu y, 0, C)$ for the
multiplier $\mu$ of the equality, and
$g(\mu) = y^\top \alpha(\mu)$ is continuous, piecewise linear and non-increasing, so
the projection is the root of a monotone 1-D function. Two root finders:

* `method="sort"` (default): the $2n$ breakpoints of $g$ are sorted, a
  binary search over them brackets the root within one linear piece, and the root is
  read off exactly by linear interpolation ($O(n \log n)$, exact up to rounding);
* `method="bisect"`: plain bisection on $\mu$ for a fixed number of halvings
  (enough to reach machine precision of the bracket).

Both are `jit`/`vmap`-able. Derivatives: the root is computed without gradient and
then corrected by one Newton step $\mu \leftarrow \mu + g(\mu)/m$
($m = \sum_{i\,\text{free}} y_i^2$, the number of free coordinates for $\pm1$ labels,
held constant), which leaves the value unchanged and gives the exact
implicit-function derivative of $\mu$ with respect to `v` and `C` wherever the
active set is locally constant (i.e. wherever the projection is differentiable).

This module imports nothing from the rest of jaxpoison.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

__all__ = ["project_box_hyperplane", "box_hyperplane_multiplier"]


def _g(mu, v, y, C):
    return jnp.sum(y * jnp.clip(v - mu * y, 0.0, C))


def _root_bisect(v, y, C, iters):
    # beyond |mu| = (|v| + C) / |y_i| every coordinate with y_i != 0 is at a bound
    ay = jnp.abs(y)
    ymin = jnp.min(jnp.where(ay > 0, ay, jnp.inf))
    ymin = jnp.where(jnp.isfinite(ymin), ymin, 1.0)
    big = (jnp.max(jnp.abs(v)) + jnp.max(C) + 1.0) / jnp.minimum(ymin, 1.0)
    lo, hi = -big, big

    def body(_, bounds):
        lo, hi = bounds
        mid = 0.5 * (lo + hi)
        pos = _g(mid, v, y, C) > 0
        return jnp.where(pos, mid, lo), jnp.where(pos, hi, mid)

    lo, hi = jax.lax.fori_loop(0, iters, body, (lo, hi))
    glo, ghi = _g(lo, v, y, C), _g(hi, v, y, C)
    den = glo - ghi
    t = jnp.where(den > 0, glo / jnp.where(den > 0, den, 1.0), 0.5)
    return lo + jnp.clip(t, 0.0, 1.0) * (hi - lo)


def _root_sort(v, y, C):
    # Breakpoints of g: mu where v_i - mu y_i hits 0 or C, i.e. mu = v_i / y_i, (v_i - C) / y_i
    # (= y_i v_i, y_i (v_i - C) for labels +-1; a coordinate with y_i = 0 has none).
    Cb = jnp.broadcast_to(C, v.shape)
    nz = y != 0
    inv = jnp.where(nz, 1.0 / jnp.where(nz, y, 1.0), 0.0)
    bps = jnp.sort(jnp.concatenate([inv * v, inv * (v - Cb)]))
    n2 = bps.shape[0]
    # g(bps) is non-increasing along the sorted breakpoints; find the last index with g > 0.
    steps = max(1, int(n2).bit_length())

    def body(_, bounds):
        lo, hi = bounds  # invariant: g(bps[lo]) > 0 >= g(bps[hi]) (virtual ends allowed)
        mid = (lo + hi) // 2
        pos = _g(bps[jnp.clip(mid, 0, n2 - 1)], v, y, C) > 0
        return jnp.where(pos, mid, lo), jnp.where(pos, hi, mid)

    lo, hi = jax.lax.fori_loop(0, steps + 1, body, (jnp.asarray(-1), jnp.asarray(n2)))
    # Root lies in [bps[lo], bps[hi]]; g is linear there. Virtual ends: g is constant
    # outside the breakpoints, so the root can only be in the interior when both classes
    # are present; fall back to the bracket's end otherwise.
    a = bps[jnp.clip(lo, 0, n2 - 1)]
    b = bps[jnp.clip(hi, 0, n2 - 1)]
    ga, gb = _g(a, v, y, C), _g(b, v, y, C)
    den = ga - gb
    t = jnp.where(den > 0, ga / jnp.where(den > 0, den, 1.0), 0.0)
    mu = a + jnp.clip(t, 0.0, 1.0) * (b - a)
    mu = jnp.where(lo < 0, b, mu)
    return jnp.where(hi >= n2, a, mu)


def box_hyperplane_multiplier(v, y, C, *, method: str = "sort", iters: int | None = None):
    """The multiplier $\\mu$ of $y^\\top\\alpha = 0$ in `project_box_hyperplane`.

    Differentiable in `v` and `C` where the active set is locally constant.
    """
    v_ng, C_ng = jax.lax.stop_gradient(v), jax.lax.stop_gradient(C)
    y = y.astype(v.dtype)
    if method == "sort":
        mu0 = _root_sort(v_ng, y, C_ng)
    elif method == "bisect":
        if iters is None:
            iters = 64 if v.dtype == jnp.float32 else 110
        mu0 = _root_bisect(v_ng, y, C_ng, iters)
    else:
        raise ValueError(f"method must be 'sort' or 'bisect'; got {method!r}")
    mu0 = jax.lax.stop_gradient(mu0)
    z = v_ng - mu0 * y
    free = (z > 0) & (z < C_ng)
    m = jnp.sum(jnp.where(free, y * y, 0.0))
    # Newton correction: value-neutral at the root, carries the implicit derivative.
    g = jnp.sum(y * jnp.where(free, v - mu0 * y, jnp.where(z >= C_ng, C, 0.0)))
    g_ng = jax.lax.stop_gradient(g)
    return mu0 + jnp.where(m > 0, (g - g_ng) / jnp.where(m > 0, m, 1.0), 0.0)


@functools.partial(jax.jit, static_argnames=("method", "iters"))
def project_box_hyperplane(
    v: Float[Array, " n"],
    y: Float[Array, " n"],
    C: float | Float[Array, " n"],
    *,
    method: str = "sort",
    iters: int | None = None,
) -> Float[Array, " n"]:
    r"""Project `v` onto $\{\alpha : y^\top\alpha = 0,\ 0 \le \alpha \le C\}$.

    Args:
        v: point to project.
        y: labels in $\{-1, +1\}$ (any numeric dtype), or real weights.
        C: upper bound, scalar or per coordinate (positive).
        method: `"sort"` (exact breakpoint search) or `"bisect"`.
        iters: bisection halvings (default 110 in float64, 64 in float32).

    Returns:
        The projection $\operatorname{clip}(v - \mu^\star y, 0, C)$. The set is
        empty only when all labels are equal (then $\alpha = 0$ is the only feasible
        point and is returned). Equivalent to solving the QP with any QP solver
        (the authors of FLORAL use CVXOPT).
    """
    if jnp.ndim(v) != 1 or jnp.shape(y) != jnp.shape(v) or jnp.ndim(C) not in (0, 1) or (
            jnp.ndim(C) == 1 and jnp.shape(C) != jnp.shape(v)):
        raise ValueError(f"v must be 1-D, y of the same shape and C a scalar or of that shape; "
                         f"got v {jnp.shape(v)}, y {jnp.shape(y)}, C {jnp.shape(C)}")
    C = jnp.asarray(C, dtype=v.dtype)
    mu = box_hyperplane_multiplier(v, y, C, method=method, iters=iters)
    return jnp.clip(v - mu * y.astype(v.dtype), 0.0, C)
