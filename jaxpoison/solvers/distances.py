r"""Pairwise distances between the rows of two matrices (generic numerics, jit-safe).

`squared_distances` is the one implementation used by the nearest-neighbour learners,
the kNN / rNN certificates and anything else that needs all pairwise squared Euclidean
distances:

$$
D_{ij} = \lVert a_i - b_j \rVert_2^2 = \lVert a_i\rVert^2 + \lVert b_j\rVert^2
- 2\, a_i^\top b_j ,
$$

computed with one matrix product (GEMM) and clamped at 0 (the expansion can round to a
tiny negative number for (near-)identical rows). `l1_distances` is the
$\ell_1$ analogue $\sum_f |a_{if} - b_{jf}|$, computed in blocks of rows so the
`(n_a, n_b, features)` difference tensor stays bounded.
"""

from __future__ import annotations

import jax.numpy as jnp
from jaxtyping import Array, Float

from jaxpoison._blocks import map_row_blocks

__all__ = ["squared_distances", "l1_distances"]


def squared_distances(A: Float[Array, "n f"], B: Float[Array, "m f"]) -> Float[Array, "n m"]:
    r"""`(n, m)` squared Euclidean distances $\max(\lVert a_i\rVert^2 + \lVert b_j\rVert^2
    - 2 a_i^\top b_j, 0)$ between the rows of `A` `(n, f)` and `B` `(m, f)`.

    Pure `jnp` (jit, vmap and grad work; no input checks: callers validate). Exact for
    integer-valued inputs whose squared norms are representable in the working precision.
    """
    d2 = (jnp.sum(A * A, axis=1)[:, None] + jnp.sum(B * B, axis=1)[None, :]
          - 2 * A @ B.T)
    return jnp.maximum(d2, 0)


def l1_distances(A: Float[Array, "n f"], B: Float[Array, "m f"], *,
                 block: int = 64) -> Float[Array, "n m"]:
    r"""`(n, m)` $\ell_1$ distances $\sum_f |a_{if} - b_{jf}|$ between the rows of `A`
    and `B`, `block` rows of `A` at a time (memory `block * m * f`). Pure `jnp`."""
    block = max(1, min(int(block), A.shape[0]))

    def one(a):
        return jnp.sum(jnp.abs(a[:, None, :] - B[None, :, :]), axis=-1)

    if block >= A.shape[0]:
        return one(A)
    return map_row_blocks(one, A, block)
