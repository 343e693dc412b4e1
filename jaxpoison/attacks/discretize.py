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

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from jaxpoison import _validate as V
from jaxpoison._result import Result, Status, raise_if_failed

__all__ = ["discretize", "Discretized"]


class Discretized(Result):
    r"""Result of `discretize`.

    Attributes:
        theta: realised labels $k/m$.
        counts: $k$, the annotations keeping the original orientation.
        gradient_error: $\|\Phi(\theta_m - \theta)\|_2$ (NaN when `phi` is not given).
        max_error: $\max_i |\theta_{m,i} - \theta_i|$ (at most $1/(2m)$).
        flipped_annotations: $\sum_i |k_i - \mathrm{round}(m\,\theta_{O,i})|$, the
            annotations that differ from the original labels' (NaN without `theta_orig`).
        flip_rate: `flipped_annotations / (m N)`, the paper's flip rate (NaN without
            `theta_orig`).
        status: always `SUCCESS`.
        iterations: 0.
    """

    theta: jax.Array
    counts: jax.Array
    gradient_error: jax.Array
    max_error: jax.Array
    flipped_annotations: jax.Array
    flip_rate: jax.Array


def discretize(theta: Float[Array, " N"], m: int, *,
               phi: Float[Array, "n N"] | None = None,
               theta_orig: Float[Array, " N"] | None = None,
               throw: bool = True) -> Discretized:
    r"""Round soft labels to `m` annotations per pair ($\mathrm{round}(\theta m)$ keep the
    orientation).

    Args:
        theta: labels in $[0, 1]$ (N,), e.g. `pcm(...).theta`.
        m: annotations per pair (positive integer).
        phi: optional feature differences (n, N) to report $\|\Phi(\theta_m - \theta)\|_2$.
        theta_orig: optional original labels in $[0, 1]$ (N,) to count flipped annotations
            (the paper's flip rate: flipped annotations out of $m N$).
        throw: accepted for the library-wide signature; rounding cannot fail.

    Returns:
        `Discretized`.
    """
    m = V.check_int(m, "m", low=1)
    theta = V.as_float_array(theta, "theta", ndim=1)
    if theta.shape[0] == 0:
        raise ValueError("theta must have at least one entry; got shape (0,)")
    V.check_in_range(theta, "theta", 0.0, 1.0)
    if phi is not None:
        phi = V.as_float_array(phi, "phi", ndim=2, dtype=theta.dtype)
        V.check_same_length(phi, "phi", theta, "theta", axis_a=1)
    if theta_orig is not None:
        theta_orig = V.as_float_array(theta_orig, "theta_orig", ndim=1, dtype=theta.dtype)
        V.check_shape(theta_orig, "theta_orig", theta.shape)
        V.check_in_range(theta_orig, "theta_orig", 0.0, 1.0)
    return raise_if_failed(_discretize(theta, phi, theta_orig, m), "discretize", throw=throw)


@functools.partial(jax.jit, static_argnames=("m",))
def _discretize(theta, phi, theta_orig, m):
    counts = jnp.round(theta * m)
    tm = counts / m
    err = jnp.nan if phi is None else jnp.linalg.norm(phi @ (tm - theta))
    if theta_orig is None:
        flipped = jnp.asarray(jnp.nan, theta.dtype)
    else:
        flipped = jnp.sum(jnp.abs(counts - jnp.round(theta_orig * m)))
    return Discretized(status=jnp.asarray(Status.SUCCESS, jnp.int32),
                       iterations=jnp.asarray(0, jnp.int32), theta=tm,
                       counts=counts.astype(jnp.int32),
                       gradient_error=jnp.asarray(err, theta.dtype),
                       max_error=jnp.max(jnp.abs(tm - theta)), flipped_annotations=flipped,
                       flip_rate=flipped / (m * theta.shape[0]))
