"""Exact Euclidean projection onto a box intersected with one half-space (generic numerics).

Used by the KKT attack to keep candidate poison points inside the feasible box and on the
required side of the target model's margin.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["project_box_halfspace"]


def project_box_halfspace(v, a, beta, lo, hi, steps: int = 80):
    r"""Euclidean projection of `v` onto $\{l\le x\le u,\ a^\top x\le\beta\}$.

    $x(\nu) = \mathrm{clip}(v-\nu a, l, u)$; $a^\top x(\nu)$ decreases in
    $\nu\ge0$, so the multiplier is found by bisection. If the set is empty the
    point of the box minimising $a^\top x$ is returned.
    """
    x0 = jnp.clip(v, lo, hi)
    feasible0 = a @ x0 <= beta
    hi_nu = (jnp.max(jnp.abs(v)) + jnp.max(jnp.abs(lo)) + jnp.max(jnp.abs(hi)) + 1.0) / \
        jnp.maximum(jnp.min(jnp.where(a != 0, jnp.abs(a), jnp.inf)), 1e-30)

    def body(_, c):
        left, right = c
        mid = 0.5 * (left + right)
        ok = a @ jnp.clip(v - mid * a, lo, hi) <= beta
        return jnp.where(ok, left, mid), jnp.where(ok, mid, right)

    _, nu = jax.lax.fori_loop(0, steps, body, (jnp.zeros_like(beta), hi_nu + 0 * beta))
    return jnp.where(feasible0, x0, jnp.clip(v - nu * a, lo, hi))
