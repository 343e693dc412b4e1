r"""Cheap lower and upper bounds on the PCM optimum.

Notation: `Δ = θ_A - θ_O`, `P = Φ^+ Φ` the orthogonal projector onto the row space of `Φ`
(the range of `Φ^T`), `W = diag(w)`. In `δ = θ - θ_O` the PCM LP reads

$$
\mathrm{OPT} = \min_\delta \sum_i w_i|\delta_i| \quad\text{s.t.}\quad
\Phi\delta = \Phi\Delta,\; -\theta_O \le \delta \le 1 - \theta_O .
$$

**Lower bounds (LP duality).** For any multiplier `y` the Lagrangian dual function is a lower
bound (weak duality; no constraint on `y` is needed because the box is kept inside):

$$
g(y) = y^T\Phi\Delta + \sum_i \min_{-\theta_{O,i}\le\delta_i\le 1-\theta_{O,i}}
\big(w_i|\delta_i| - v_i\delta_i\big),\qquad v = \Phi^T y,
$$

and the inner minimum is `0` if `|v_i| <= w_i` (take `δ_i = 0`), `-(v_i - w_i)(1-θ_{O,i})`
if `v_i > w_i` and `-(-v_i - w_i)θ_{O,i}` if `v_i < -w_i`. Take `y = t y_0` with
`Φ^T y_0 = PΔ` (it exists because `PΔ` lies in the range of `Φ^T`), so `v = t PΔ` and
`y^TΦΔ = t Δ^T P Δ = t ||PΔ||_2^2`. For `t = 1/||W^{-1}PΔ||_∞` every `|v_i| <= w_i`, all
penalties vanish, and

$$
\mathrm{OPT} \ge \frac{\|P\Delta\|_2^2}{\|W^{-1} P\Delta\|_\infty}
$$

-- the paper's Theorem 2 (`w = 1`: `||PΔ||_2^2/||PΔ||_∞`). It is the dual value of the
relaxation without the box, restricted to this direction. **Sharper**: `g(t y_0)` is concave
and piecewise linear in `t` with kinks at `t_i = w_i/|(PΔ)_i|`; its exact maximum over
`t >= 0` (by sorting the kinks and cumulative sums, `O(N log N)`) keeps the box's penalties
and is never below Theorem 2's value (which is `g` at the first kink).

**Upper bounds (feasible points).** Any feasible `θ` gives `OPT <= Σ w|θ - θ_O|`.
(i) `θ_A` itself gives the naive `Σ w_i|Δ_i|`. (ii) *Null-space line search*: with
`e = (I - P)Δ`, `θ(t) = θ_A - t e` satisfies `Φθ(t) = Φθ_A` for every `t` because
`Φ(I - P) = 0`; it stays in the box on an interval `[t_lo, t_hi] ∋ 0`, and the cost
`Σ w_i|Δ_i - t e_i|` is convex in `t` and minimised by the weighted median of
`Δ_i/e_i` (weights `w_i|e_i|`) clipped to the interval. (iii) *Support restriction*: PCM
restricted to the pairs the attack changed (`Δ_i ≠ 0`, others kept at `θ_O`) is a
smaller LP whose feasible set contains `θ_A` and is contained in PCM's, so its optimum lies
between OPT and the naive cost; it is `|supp Δ|/N` times cheaper than PCM (for RLHFPoison,
5% of N). `pcm_upper_bound` returns the minimum of (ii) and (iii) (or (ii) alone with
`restrict_to_support=False`), hence always `<= Σ w|Δ|`. These bounds are ours; the paper's
Theorem 3 upper bound is a different expression.

**Rounding (float32 included).** Weak duality holds for *any* `y`, so the lower bound is
evaluated at the stored `y = t y_0` with `v = Φ^T y` recomputed, not through the identity
`y^TΦΔ = t||PΔ||^2` (which rounding breaks: in float32 the kink formula at a large `t` can
exceed the optimum). The computed `g(y)` is then lowered by a bound on its rounding error,
`(n+2)ε Σ_i (|Φ|^T|y|)_i + (N+2)ε Σ_i |terms_i|` (`g` is 1-Lipschitz in each `v_i`), so
`pcm_lower_bound` is a valid lower bound in the working precision. An upper-bound candidate
counts only if its equality residual `||Φ(θ - θ_A)||_∞` is within the LP tolerance of the
working precision (`1e-9` in float64, `1e-5` in float32) relative to `1 + || |Φ| |θ - θ_A| ||_∞`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from jaxpoison._result import Result, Status, is_concrete, raise_if_failed
from jaxpoison.attacks.pcm import check_pcm_inputs, pcm
from jaxpoison.solvers._lp_ops import abs_matvec_by_chunks
from jaxpoison.solvers.lp_wide import gram_by_blocks, is_wide

__all__ = ["pcm_lower_bound", "pcm_upper_bound", "PCMBound", "projected_difference",
           "row_space_coefficients"]


class PCMBound(Result):
    """A bound on the PCM optimum.

    Attributes:
        bound: the bound (weighted flips).
        theorem2: for `pcm_lower_bound`, the paper's Theorem 2 value (certified the same
            way); for `pcm_upper_bound`, the naive cost $\\sum_i w_i|\\Delta_i|$.
        theta: for `pcm_upper_bound`, the feasible labels achieving `bound`; for
            `pcm_lower_bound`, `None`.
        y: for `pcm_lower_bound`, the dual vector certifying `bound`; else `None`.
        status: `SUCCESS`, or `NUMERICAL_ERROR` when the inputs led to NaN/inf.
        iterations: 0 (closed form).
    """

    bound: jax.Array
    theorem2: jax.Array
    theta: jax.Array | None = None
    y: jax.Array | None = None


def row_space_coefficients(phi, delta):
    r"""$y_0$ with $\Phi^T y_0 = P\Delta$: the least-squares solution of
    $\Phi^T y \approx \Delta$.

    Dense least squares (`jnp.linalg.lstsq`, an SVD of the $N \times n$ matrix $\Phi^T$) for
    ordinary shapes. For wide ones (`jaxpoison.solvers.lp_wide.is_wide`: PCM at the paper's
    size, where that SVD would cost many GEMMs and a copy of $\Phi$) the normal equations
    $\Phi\Phi^T y = \Phi\Delta$: the Gram matrix by blocks of one triangle (half a GEMM), a
    Cholesky factor with a ridge of $\varepsilon\,\mathrm{tr}(\Phi\Phi^T)$ and two
    steps of refinement against $\Phi$ (two passes each). The bounds stay valid for an
    inexact $y_0$: the lower bound is the dual value at the stored $y$ and the upper bound's
    candidate is accepted only after its equality residual is checked (module docstring).
    """
    n, N = phi.shape
    if not is_wide(n, N):
        y, *_ = jnp.linalg.lstsq(phi.T, delta)
        return y
    eps = jnp.finfo(phi.dtype).eps
    G = gram_by_blocks(phi)
    L = jnp.linalg.cholesky(G + eps * jnp.trace(G) * jnp.eye(n, dtype=phi.dtype))
    r = phi @ delta
    y = jax.scipy.linalg.cho_solve((L, True), r)
    for _ in range(2):
        y = y + jax.scipy.linalg.cho_solve((L, True), r - phi @ (y @ phi))
    return y


def projected_difference(phi, delta):
    """$P\\Delta$: the projection of $\\Delta$ onto the row space of $\\Phi$
    (`row_space_coefficients`)."""
    return row_space_coefficients(phi, delta) @ phi


def _certified_dual_value(phi, y, delta, theta_orig, weights):
    """`g(y)` of the module docstring, minus a bound on its rounding error."""
    dtype = phi.dtype
    eps = jnp.finfo(dtype).eps
    n, N = phi.shape
    v = y @ phi
    up = jnp.maximum(v - weights, 0.0) * (1.0 - theta_orig)
    dn = jnp.maximum(-v - weights, 0.0) * theta_orig
    terms = v * delta - up - dn
    g = jnp.sum(terms)
    # sum_i (|Phi|^T |y|)_i = |y|^T (|Phi| 1), without a full-size |Phi| temporary
    err = ((n + 2) * eps * 1.01 * (jnp.abs(y) @ abs_matvec_by_chunks(phi, jnp.ones_like(v)))
           + (N + 2) * eps * jnp.sum(jnp.abs(v * delta) + up + dn))
    return jnp.maximum(g - err, 0.0)


@jax.jit
def _lower(phi, theta_orig, theta_target, weights):
    dtype = phi.dtype
    eps = jnp.finfo(dtype).eps
    delta = theta_target - theta_orig
    y0 = row_space_coefficients(phi, delta)
    pd = y0 @ phi
    a = pd @ pd
    absv = jnp.abs(pd)
    # coordinates at rounding level only choose t badly (the value is certified anyway)
    nz = absv > jnp.sqrt(eps) * jnp.max(absv, initial=0.0)
    wsafe = jnp.where(weights > 0, weights, 1.0)
    ratio = jnp.where(nz, absv / wsafe, 0.0)
    # zero-weight coordinates with PΔ_i != 0 make the first kink t = 0 (bound 0)
    ratio = jnp.where(nz & (weights <= 0), jnp.inf, ratio)
    rmax = jnp.max(ratio, initial=0.0)
    t1 = jnp.where((a > 0) & (rmax > 0) & jnp.isfinite(rmax),
                   1.0 / jnp.where(rmax > 0, rmax, 1.0), 0.0)
    kinks = jnp.where(nz, weights / jnp.where(nz, absv, 1.0), jnp.inf)
    cap = jnp.where(pd > 0, 1.0 - theta_orig, theta_orig)
    order = jnp.argsort(kinks)
    tk = kinks[order]
    s1 = jnp.cumsum((cap * absv)[order]) - (cap * absv)[order]   # exclusive sums
    s2 = jnp.cumsum((cap * weights)[order]) - (cap * weights)[order]
    vals = jnp.where(jnp.isfinite(tk), tk * (a - s1) + s2, -jnp.inf)
    tbest = jnp.where(jnp.max(vals, initial=-jnp.inf) > -jnp.inf,
                      tk[jnp.argmax(vals)], t1)
    tbest = jnp.where(jnp.isfinite(tbest), tbest, t1)
    thm2 = _certified_dual_value(phi, t1 * y0, delta, theta_orig, weights)
    sharp = _certified_dual_value(phi, tbest * y0, delta, theta_orig, weights)
    use = sharp >= thm2
    y = jnp.where(use, tbest, t1) * y0
    bound = jnp.maximum(sharp, thm2)
    ok = jnp.isfinite(bound) & jnp.isfinite(thm2)
    status = jnp.where(ok, Status.SUCCESS, Status.NUMERICAL_ERROR).astype(jnp.int32)
    return PCMBound(status=status, iterations=jnp.asarray(0, jnp.int32), bound=bound,
                    theorem2=thm2, y=y)


def pcm_lower_bound(
    phi: Float[Array, "n N"],
    theta_orig: Float[Array, " N"],
    theta_target: Float[Array, " N"],
    *,
    weights: Float[Array, " N"] | None = None,
    sharpen: bool = True,
    throw: bool = True,
) -> PCMBound:
    r"""Lower bound on the PCM optimum from LP duality (derivation in the module docstring).

    `sharpen=False` returns the paper's Theorem 2, $\|P\Delta\|_2^2 /
    \|W^{-1}P\Delta\|_\infty$, as `bound`; `sharpen=True` (default) the best value of the
    Lagrangian dual along the same dual ray, which is never smaller. Both are evaluated at
    the stored dual vector and lowered by their rounding-error bound, so they are valid lower
    bounds in float32 as in float64. Pure, `jit`- and `vmap`-able.

    Args:
        phi: feature differences $\Phi$ (n, N).
        theta_orig: original labels $\theta_O$ in $[0, 1]$ (N,).
        theta_target: the attack's labels $\theta_A$ in $[0, 1]$ (N,).
        weights: per-pair costs $w \ge 0$ (N,) or scalar; default 1.
        sharpen: see above.
        throw: raise when the status is not `SUCCESS` (NaN/inf from the data).

    Returns:
        `PCMBound` with `bound`, `theorem2` and the certifying `y`.
    """
    phi, theta_orig, theta_target, weights = check_pcm_inputs(phi, theta_orig, theta_target,
                                                              weights)
    res = _lower(phi, theta_orig, theta_target, weights)
    if not sharpen:
        res = PCMBound(status=res.status, iterations=res.iterations, bound=res.theorem2,
                       theorem2=res.theorem2, y=res.y)
    return raise_if_failed(res, "pcm_lower_bound", throw=throw)


def _feasible_tol(dtype):
    return 1e-9 if jnp.dtype(dtype) == jnp.float64 else 1e-5


def _residual_ok(phi, theta, theta_target):
    d = theta - theta_target
    r = jnp.max(jnp.abs(phi @ d), initial=0.0)
    scale = 1.0 + jnp.max(abs_matvec_by_chunks(phi, jnp.abs(d)), initial=0.0)
    return r <= _feasible_tol(phi.dtype) * scale


@jax.jit
def _line_search_upper(phi, theta_orig, theta_target, weights):
    delta = theta_target - theta_orig
    e = delta - projected_difference(phi, delta)
    ae = jnp.abs(e)
    # components at rounding level of Δ are not a null-space direction (e.g. N <= n)
    nz = ae > jnp.sqrt(jnp.finfo(phi.dtype).eps) * jnp.max(jnp.abs(delta), initial=0.0)
    esafe = jnp.where(nz, e, 1.0)
    # box: 0 <= θ_A - t e <= 1
    t_hi = jnp.min(jnp.where(nz & (e > 0), theta_target / esafe,
                             jnp.where(nz & (e < 0), (theta_target - 1.0) / esafe, jnp.inf)))
    t_lo = jnp.max(jnp.where(nz & (e > 0), (theta_target - 1.0) / esafe,
                             jnp.where(nz & (e < 0), theta_target / esafe, -jnp.inf)))
    bp = jnp.where(nz, delta / esafe, 0.0)
    wt = jnp.where(nz, weights * ae, 0.0)
    order = jnp.argsort(bp)
    cw = jnp.cumsum(wt[order])
    k = jnp.searchsorted(cw, 0.5 * cw[-1])
    t = jnp.clip(bp[order][jnp.minimum(k, bp.shape[0] - 1)], t_lo, t_hi)
    t = jnp.where(jnp.isfinite(t), t, 0.0)
    theta = jnp.clip(theta_target - t * e, 0.0, 1.0)
    ok = _residual_ok(phi, theta, theta_target)
    theta = jnp.where(ok, theta, theta_target)
    return weights @ jnp.abs(theta - theta_orig), theta


def pcm_upper_bound(
    phi: Float[Array, "n N"],
    theta_orig: Float[Array, " N"],
    theta_target: Float[Array, " N"],
    *,
    weights: Float[Array, " N"] | None = None,
    restrict_to_support: bool = True,
    method: str = "ipm",
    support_pad: int | None = None,
    throw: bool = True,
) -> PCMBound:
    r"""Upper bound on the PCM optimum from cheap feasible points (module docstring; ours,
    not the paper's Theorem 3).

    Returns the best of the null-space line search (ii) and, with `restrict_to_support` and
    concrete inputs, the support-restricted PCM (iii); always $\le \sum_i w_i|\Delta_i|$.
    A candidate counts only when it satisfies $\Phi\theta = \Phi\theta_A$ to the working
    precision's LP tolerance. The support LP is padded with inert zero columns to
    `support_pad` columns (default: the next power of two) so that repeated calls reuse
    compiled shapes.

    Args:
        phi: feature differences $\Phi$ (n, N).
        theta_orig: original labels $\theta_O$ in $[0, 1]$ (N,).
        theta_target: the attack's labels $\theta_A$ in $[0, 1]$ (N,).
        weights: per-pair costs $w \ge 0$ (N,) or scalar; default 1.
        restrict_to_support: also solve PCM on the pairs the attack changed.
        method: LP method of the support-restricted solve.
        support_pad: column count of the support LP (see above).
        throw: raise when the status is not `SUCCESS`.

    Returns:
        `PCMBound` with `bound`, the naive cost in `theorem2`, and the feasible `theta`.
    """
    phi, theta_orig, theta_target, weights = check_pcm_inputs(phi, theta_orig, theta_target,
                                                              weights)
    if support_pad is not None:
        support_pad = int(support_pad)
    naive = weights @ jnp.abs(theta_target - theta_orig)
    line, theta = _line_search_upper(phi, theta_orig, theta_target, weights)
    best = jnp.minimum(naive, line)
    if restrict_to_support and is_concrete(theta_target) and is_concrete(phi):
        supp = np.flatnonzero(np.abs(np.asarray(theta_target) - np.asarray(theta_orig)) > 0)
        if supp.size:
            # pad to a power of two with zero columns (θ_O = θ_A = 0: they stay at 0 at the
            # optimum), so that repeated calls compile few shapes
            size = max(8, 1 << int(np.ceil(np.log2(supp.size))))
            if support_pad is not None and support_pad >= supp.size:
                size = support_pad
            pad = size - supp.size
            idx = jnp.asarray(supp)
            zpad = jnp.zeros((pad,), phi.dtype)
            res = pcm(jnp.concatenate([phi[:, idx], jnp.zeros((phi.shape[0], pad), phi.dtype)],
                                      axis=1),
                      jnp.concatenate([theta_orig[idx], zpad]),
                      jnp.concatenate([theta_target[idx], zpad]),
                      weights=jnp.concatenate([weights[idx], zpad + 1.0]),
                      method=method, throw=False)
            cand = theta_target.at[idx].set(res.theta[:supp.size])
            cost = weights @ jnp.abs(cand - theta_orig)
            if bool(res.success) and bool(_residual_ok(phi, cand, theta_target)) and (
                    float(cost) < float(best)):
                best, theta = cost, cand
    ok = jnp.isfinite(best)
    status = jnp.where(ok, Status.SUCCESS, Status.NUMERICAL_ERROR).astype(jnp.int32)
    res = PCMBound(status=status, iterations=jnp.asarray(0, jnp.int32), bound=best,
                   theorem2=naive, theta=theta)
    return raise_if_failed(res, "pcm_upper_bound", throw=throw)
