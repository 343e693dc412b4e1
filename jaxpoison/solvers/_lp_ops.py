"""Linear operators for the LP solvers: a dense matrix and the PCM pair `[Phi, -Phi]`.

The LP solvers touch the constraint matrix `A` (m x n) only through these methods, so a
structured `A` costs what its structure costs: `PairOperator` forms the normal matrix
`A D A^T = Phi (D_p + D_q) Phi^T` in `m^2 N` flops instead of `2 m^2 N`.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp

__all__ = ["DenseOperator", "PairOperator"]


class DenseOperator(eqx.Module):
    """`A` stored as a dense (m, n) array."""

    A: jax.Array

    @property
    def shape(self) -> tuple[int, int]:
        return self.A.shape

    def matvec(self, x):
        return self.A @ x

    def rmatvec(self, y):
        return y @ self.A

    def normal(self, d):
        """`A diag(d) A^T`."""
        return (self.A * d) @ self.A.T

    def row_abs_max(self):
        return jnp.max(jnp.abs(self.A), axis=1)

    def col_abs_max(self):
        return jnp.max(jnp.abs(self.A), axis=0)

    def row_abs_sum(self):
        return jnp.sum(jnp.abs(self.A), axis=1)

    def col_abs_sum(self):
        return jnp.sum(jnp.abs(self.A), axis=0)

    def scale(self, r, c):
        """The operator `diag(r) A diag(c)`."""
        return DenseOperator(r[:, None] * self.A * c[None, :])


class PairOperator(eqx.Module):
    """`A = [Phi, -Phi]` (m, 2N) from `Phi` (m, N), never materialised.

    Column scalings must be equal on the two halves (they are for Ruiz and Pock--Chambolle
    scaling, whose column statistics agree on both halves); `scale` uses the first half.
    """

    Phi: jax.Array

    @property
    def shape(self) -> tuple[int, int]:
        m, n = self.Phi.shape
        return m, 2 * n

    def matvec(self, x):
        n = self.Phi.shape[1]
        return self.Phi @ (x[:n] - x[n:])

    def rmatvec(self, y):
        t = y @ self.Phi
        return jnp.concatenate([t, -t])

    def normal(self, d):
        n = self.Phi.shape[1]
        return (self.Phi * (d[:n] + d[n:])) @ self.Phi.T

    def row_abs_max(self):
        return jnp.max(jnp.abs(self.Phi), axis=1)

    def col_abs_max(self):
        t = jnp.max(jnp.abs(self.Phi), axis=0)
        return jnp.concatenate([t, t])

    def row_abs_sum(self):
        return 2.0 * jnp.sum(jnp.abs(self.Phi), axis=1)

    def col_abs_sum(self):
        t = jnp.sum(jnp.abs(self.Phi), axis=0)
        return jnp.concatenate([t, t])

    def scale(self, r, c):
        n = self.Phi.shape[1]
        return PairOperator(r[:, None] * self.Phi * c[None, :n])
