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
`restrict_to_support=False`), hence always `<= Σ w|Δ|`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from jaxpoison._result import is_concrete
from jaxpoison.attacks.pcm import check_pcm_inputs, pcm

__all__ = ["pcm_lower_bound", "pcm_upper_bound", "projected_difference"]


def projected_difference(phi, delta):
    """`PΔ`: the projection of `Δ` onto the row space of `Φ` (by least squares)."""
    y, *_ = jnp.linalg.lstsq(phi.T, delta)
    return phi.T @ y


@jax.jit
def _lower(phi, theta_orig, theta_target, weights):
    delta = theta_target - theta_orig
    pd = projected_difference(phi, delta)
    a = pd @ pd
    absv = jnp.abs(pd)
    nz = absv > 1e-12 * (1.0 + jnp.max(absv, initial=0.0))
    wsafe = jnp.where(weights > 0, weights, 1.0)
    ratio = jnp.where(nz, absv / wsafe, 0.0)
    # zero-weight coordinates with PΔ_i != 0 make the first kink t = 0 (bound 0)
    ratio = jnp.where(nz & (weights <= 0), jnp.inf, ratio)
    theorem2 = jnp.where(a > 0, a / jnp.max(ratio, initial=0.0), 0.0)
    kinks = jnp.where(nz, weights / jnp.where(nz, absv, 1.0), jnp.inf)
    cap = jnp.where(pd > 0, 1.0 - theta_orig, theta_orig)
    order = jnp.argsort(kinks)
    tk = kinks[order]
    s1 = jnp.cumsum((cap * absv)[order]) - (cap * absv)[order]   # exclusive sums
    s2 = jnp.cumsum((cap * weights)[order]) - (cap * weights)[order]
    vals = jnp.where(jnp.isfinite(tk), tk * (a - s1) + s2, -jnp.inf)
    sharp = jnp.maximum(jnp.max(vals, initial=0.0), 0.0)
    return theorem2, jnp.maximum(sharp, theorem2)


def pcm_lower_bound(
    phi: Float[Array, "n N"],
    theta_orig: Float[Array, " N"],
    theta_target: Float[Array, " N"],
    *,
    weights: Float[Array, " N"] | None = None,
    sharpen: bool = True,
) -> jax.Array:
    r"""Lower bound on the PCM optimum from LP duality (derivation in the module docstring).

    `sharpen=False` returns the paper's Theorem 2, $\|P\Delta\|_2^2 /
    \|W^{-1}P\Delta\|_\infty$; `sharpen=True` (default) the exact maximum of the Lagrangian
    dual along the same dual ray, which is never smaller. Pure and `jit`-able.
    """
    phi, theta_orig, theta_target, weights = check_pcm_inputs(phi, theta_orig, theta_target,
                                                              weights)
    thm2, sharp = _lower(phi, theta_orig, theta_target, weights)
    return sharp if sharpen else thm2


@jax.jit
def _line_search_upper(phi, theta_orig, theta_target, weights):
    delta = theta_target - theta_orig
    e = delta - projected_difference(phi, delta)
    ae = jnp.abs(e)
    nz = ae > 1e-12 * (1.0 + jnp.max(ae, initial=0.0))
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
) -> jax.Array:
    r"""Upper bound on the PCM optimum from cheap feasible points (module docstring).

    Returns `min` of the null-space line search (ii) and, with `restrict_to_support` and
    concrete inputs, the support-restricted PCM (iii); always `<= Σ w_i|Δ_i|`. The support
    LP is padded with inert zero columns to `support_pad` columns (default: the next power
    of two) so that repeated calls reuse compiled shapes.
    """
    phi, theta_orig, theta_target, weights = check_pcm_inputs(phi, theta_orig, theta_target,
                                                              weights)
    naive = weights @ jnp.abs(theta_target - theta_orig)
    line, _ = _line_search_upper(phi, theta_orig, theta_target, weights)
    best = jnp.minimum(naive, line)
    if restrict_to_support and is_concrete(theta_target) and is_concrete(phi):
        supp = np.flatnonzero(np.abs(np.asarray(theta_target) - np.asarray(theta_orig)) > 0)
        if supp.size:
            # pad to a power of two with zero columns (θ_O = θ_A = 0: they stay at 0 at the
            # optimum), so that repeated calls compile few shapes
            size = max(8, 1 << int(np.ceil(np.log2(supp.size))))
            if support_pad is not None and support_pad >= supp.size:
                size = int(support_pad)
            pad = size - supp.size
            idx = jnp.asarray(supp)
            zpad = jnp.zeros((pad,), phi.dtype)
            res = pcm(jnp.concatenate([phi[:, idx], jnp.zeros((phi.shape[0], pad), phi.dtype)],
                                      axis=1),
                      jnp.concatenate([theta_orig[idx], zpad]),
                      jnp.concatenate([theta_target[idx], zpad]),
                      weights=jnp.concatenate([weights[idx], zpad + 1.0]),
                      method=method, throw=False)
            ok = bool(res.success) and float(res.residual) <= 1e-6 * (
                1.0 + float(jnp.linalg.norm(phi @ (theta_target - theta_orig))))
            if ok:
                best = jnp.minimum(best, res.cost)
    return best
