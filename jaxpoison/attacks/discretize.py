r"""Discretisation of soft PCM labels into `m` annotations per pair.

The PCM optimum `θ*` is soft on at most `n` pairs (a vertex of the LP has at most `n`
coordinates strictly inside the box). With `m` annotators per pair, `k_i = round(θ*_i m)` of
them keep the original orientation (prefer the first response) and `m - k_i` flip it, so
the realised label is `θ_m = k/m` and `|θ_m - θ*| <= 1/(2m)` coordinate-wise. The reward
model then sees `Φθ_m` instead of `Φθ*`; the *reward-gradient error*
`||Φ(θ_m - θ*)||_2 <= ||Φ||_{2} ||θ_m - θ*||_2` measures the damage, and vanishes for the
coordinates that are already 0 or 1.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from jaxpoison import _validate as V

__all__ = ["discretize", "Discretized"]


class Discretized(NamedTuple):
    """`theta`: realised labels `k/m`; `counts`: `k` annotations keeping the original
    orientation; `gradient_error`: `||Φ(θ_m - θ)||_2` (NaN when `phi` is not given);
    `max_error`: `max_i |θ_m,i - θ_i|` (at most `1/(2m)`)."""

    theta: jax.Array
    counts: jax.Array
    gradient_error: jax.Array
    max_error: jax.Array


def discretize(theta: Float[Array, " N"], m: int, *,
               phi: Float[Array, "n N"] | None = None) -> Discretized:
    """Round soft labels to `m` annotations per pair (`round(θ m)` keep the orientation).

    Args:
        theta: labels in `[0, 1]` (N,), e.g. `pcm(...).theta`.
        m: annotations per pair (positive integer).
        phi: optional feature differences (n, N) to report `||Φ(θ_m - θ)||_2`.
    """
    m = V.check_int(m, "m", low=1)
    theta = V.as_float_array(theta, "theta", ndim=1)
    V.check_in_range(theta, "theta", 0.0, 1.0)
    if phi is not None:
        phi = V.as_float_array(phi, "phi", ndim=2, dtype=theta.dtype)
        V.check_same_length(phi, "phi", theta, "theta", axis_a=1)
    return _discretize(theta, phi, m)


@functools.partial(jax.jit, static_argnames=("m",))
def _discretize(theta, phi, m):
    counts = jnp.round(theta * m)
    tm = counts / m
    err = jnp.nan if phi is None else jnp.linalg.norm(phi @ (tm - theta))
    return Discretized(tm, counts.astype(jnp.int32), jnp.asarray(err, theta.dtype),
                       jnp.max(jnp.abs(tm - theta)))
