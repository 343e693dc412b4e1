"""Row-blocked evaluation: bound the memory of a computation over many rows."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def map_row_blocks(fn, arrays, rows: int):
    """`fn` applied to consecutive blocks of `rows` rows with `jax.lax.map`.

    `arrays` is a pytree of arrays sharing the leading axis `n`; the last block is
    zero-padded. Every output leaf of `fn` must have a leading axis of `rows`; the
    blocks' outputs are stacked back along axis 0 and cut to `n`.
    """
    n = jax.tree_util.tree_leaves(arrays)[0].shape[0]
    nb = -(-n // rows)
    pad = nb * rows - n

    def split(a):
        a = jnp.pad(a, [(0, pad)] + [(0, 0)] * (a.ndim - 1))
        return a.reshape((nb, rows) + a.shape[1:])

    out = jax.lax.map(fn, jax.tree_util.tree_map(split, arrays))
    return jax.tree_util.tree_map(lambda o: o.reshape((nb * rows,) + o.shape[2:])[:n], out)
