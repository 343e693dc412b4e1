"""Linear operators for the LP solvers: a dense matrix and the PCM pair `[Phi, -Phi]`.

The LP solvers touch the constraint matrix `A` (m x n) only through these methods, so a
structured `A` costs what its structure costs: `PairOperator` forms the normal matrix
`A D A^T = Phi (D_p + D_q) Phi^T` in `m^2 N` flops instead of `2 m^2 N`. Row and column
scalings (`scale`) are kept as vectors and applied on the fly, so no scaled copy of the
matrix is ever made.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp

__all__ = ["DenseOperator", "PairOperator", "abs_matvec_by_chunks", "row_abs_max_by_chunks"]


def _by_column_chunks(part, combine, M, v, chunk):
    """`part(M, v)` (an m-vector from the columns of `M` and the matching entries of `v`,
    which may be `None`) folded with `combine` over `chunk` columns at a time (a
    `fori_loop` over column slices, then the remainder), so that no full-size transient of
    `M` (such as `|M|`, which XLA on CPU would materialise) is ever built."""
    m, n = M.shape
    if n <= chunk:
        return part(M, v)
    k = n // chunk

    def body(j, acc):
        Mc = jax.lax.dynamic_slice_in_dim(M, j * chunk, chunk, axis=1)
        vc = None if v is None else jax.lax.dynamic_slice_in_dim(v, j * chunk, chunk)
        return combine(acc, part(Mc, vc))

    dtype = M.dtype if v is None else jnp.result_type(M, v)
    acc = jax.lax.fori_loop(0, k, body, jnp.zeros((m,), dtype))
    if k * chunk < n:
        acc = combine(acc, part(M[:, k * chunk:], None if v is None else v[k * chunk:]))
    return acc


def abs_matvec_by_chunks(M: jax.Array, v: jax.Array, chunk: int = 16_384) -> jax.Array:
    """`|M| @ v` taking `chunk` columns at a time, so that `|M|` is never materialised
    (XLA on CPU would otherwise build it: a full-size temporary)."""
    return _by_column_chunks(lambda Mc, vc: jnp.abs(Mc) @ vc, jnp.add, M, v, chunk)


def row_abs_max_by_chunks(M: jax.Array, col: jax.Array | None = None,
                          chunk: int = 16_384) -> jax.Array:
    """`max_j |M_ij col_j|` per row, taking `chunk` columns at a time, so that `|M|` is never
    materialised (a full-size temporary on CPU otherwise)."""

    def part(Mc, cc):
        a = jnp.abs(Mc)
        return jnp.max(a if cc is None else a * jnp.abs(cc)[None, :], axis=1, initial=0.0)

    return _by_column_chunks(part, jnp.maximum, M, col, chunk)


def _row(v, r):
    return v if r is None else r * v


def _rows(M, r):
    return M if r is None else r[:, None] * M


def _normal(M, d, row, col):
    """`diag(row) M diag(col^2 d) M^T diag(row)` for a stored matrix `M` (either scaling
    may be `None`)."""
    d = d if col is None else d * col ** 2
    N = (M * d) @ M.T
    return N if row is None else row[:, None] * N * row[None, :]


def _abs_scaled(M, row, col):
    """`|diag(row) M diag(col)|`, materialised."""
    a = jnp.abs(M)
    a = a if col is None else a * jnp.abs(col)[None, :]
    return _rows(a, None if row is None else jnp.abs(row))


class DenseOperator(eqx.Module):
    r"""`A` stored as a dense (m, n) array, optionally with *lazy* row and column scalings:
    the operator is $\operatorname{diag}(r)\,A\,\operatorname{diag}(s)$ with `r = row`,
    `s = col` (`None` = 1), applied to vectors on the fly so that scaling never copies `A`.
    """

    A: jax.Array
    row: jax.Array | None = None
    col: jax.Array | None = None

    @property
    def shape(self) -> tuple[int, int]:
        return self.A.shape

    def matvec(self, x):
        return _row(self.A @ _row(x, self.col), self.row)

    def rmatvec(self, y):
        return _row(_row(y, self.row) @ self.A, self.col)

    def abs_matvec(self, x):
        """`|A| |x|` (elementwise absolute values; the scale of the rounding error of
        `A x`), without materialising `|A|`."""
        r = None if self.row is None else jnp.abs(self.row)
        c = None if self.col is None else jnp.abs(self.col)
        return _row(abs_matvec_by_chunks(self.A, _row(jnp.abs(x), c)), r)

    def normal(self, d):
        """`A diag(d) A^T`."""
        return _normal(self.A, d, self.row, self.col)

    def _abs(self):
        return _abs_scaled(self.A, self.row, self.col)

    def row_abs_max(self):
        r = row_abs_max_by_chunks(self.A, self.col)
        return r if self.row is None else jnp.abs(self.row) * r

    def col_abs_max(self):
        return jnp.max(self._abs(), axis=0)

    def row_abs_sum(self):
        return jnp.sum(self._abs(), axis=1)

    def col_abs_sum(self):
        return jnp.sum(self._abs(), axis=0)

    def scale(self, r, c=None):
        """The operator `diag(r) A diag(c)` (`c = None`: no column scaling), kept lazy: the
        scalings are stored as vectors, `A` is shared, not copied."""
        row = r if self.row is None else self.row * r
        col = self.col if c is None else (c if self.col is None else self.col * c)
        return DenseOperator(self.A, row, col)


class PairOperator(eqx.Module):
    r"""`A = [Phi, -Phi]` (m, 2N) from `Phi` (m, N), never materialised, optionally with lazy
    row scaling `row` (m,) and column scaling `col` (N,), shared by the two halves:
    $A = \operatorname{diag}(r)\,[\Phi, -\Phi]\,\operatorname{diag}(s, s)$.

    Column scalings must be equal on the two halves (they are for Ruiz and Pock--Chambolle
    scaling, whose column statistics agree on both halves); `scale` uses the first half.
    Scaling stores vectors and never copies `Phi` (at the paper's size a copy is 5 GB).
    """

    Phi: jax.Array
    row: jax.Array | None = None
    col: jax.Array | None = None

    @property
    def shape(self) -> tuple[int, int]:
        m, n = self.Phi.shape
        return m, 2 * n

    def matvec(self, x):
        n = self.Phi.shape[1]
        return _row(self.Phi @ _row(x[:n] - x[n:], self.col), self.row)

    def rmatvec(self, y):
        t = _row(_row(y, self.row) @ self.Phi, self.col)
        return jnp.concatenate([t, -t])

    def abs_matvec(self, x):
        """`|A| |x| = |Φ| (|x_1| + |x_2|)` (scaled), without materialising `|Φ|`."""
        n = self.Phi.shape[1]
        r = None if self.row is None else jnp.abs(self.row)
        c = None if self.col is None else jnp.abs(self.col)
        v = _row(jnp.abs(x[:n]) + jnp.abs(x[n:]), c)
        return _row(abs_matvec_by_chunks(self.Phi, v), r)

    def normal(self, d):
        n = self.Phi.shape[1]
        return _normal(self.Phi, d[:n] + d[n:], self.row, self.col)

    def _abs(self):
        return _abs_scaled(self.Phi, self.row, self.col)

    def row_abs_max(self):
        r = row_abs_max_by_chunks(self.Phi, self.col)
        return r if self.row is None else jnp.abs(self.row) * r

    def col_abs_max(self):
        t = jnp.max(self._abs(), axis=0)
        return jnp.concatenate([t, t])

    def row_abs_sum(self):
        return 2.0 * jnp.sum(self._abs(), axis=1)

    def col_abs_sum(self):
        t = jnp.sum(self._abs(), axis=0)
        return jnp.concatenate([t, t])

    def scale(self, r, c=None):
        """`diag(r) A diag(c)` (`c` of length 2N, first half used; `None`: no column
        scaling), kept lazy: `Phi` is shared, not copied."""
        n = self.Phi.shape[1]
        row = r if self.row is None else self.row * r
        cc = None if c is None else c[:n]
        col = self.col if cc is None else (cc if self.col is None else self.col * cc)
        return PairOperator(self.Phi, row, col)
