"""Kernel functions and blocked Gram matrices (RBF, linear, polynomial).

Conventions follow scikit-learn (`sklearn.metrics.pairwise`):

* `rbf`:        $k(x, z) = \\exp(-\\gamma \\lVert x - z \\rVert^2)$
* `linear`:     $k(x, z) = x^\\top z$
* `polynomial`: $k(x, z) = (\\gamma x^\\top z + c_0)^d$

`gamma` may be a number or, at the public boundary, `"scale"`
($1 / (d \\operatorname{Var}[X])$) or `"auto"` ($1/d$), resolved by
`resolve_gamma` exactly like `sklearn.svm.SVC`.

Gram matrices are computed in row blocks (`lax.map` over blocks of `block_size`
rows) so that the temporaries never exceed `block_size x m` and `n = 20,000` fits.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from jaxpoison import _validate as v
from jaxpoison.solvers.distances import squared_distances

__all__ = ["KERNELS", "kernel_matrix", "resolve_gamma"]

KERNELS = ("rbf", "linear", "polynomial")


def resolve_gamma(gamma, X) -> float | jax.Array:
    r"""Turn `"scale"` / `"auto"` into a number (sklearn semantics); pass numbers on.

    `"scale"` is $1/(d\operatorname{Var}[X])$ (1 when `X` is constant), `"auto"` is $1/d$.
    """
    if isinstance(gamma, str):
        d = X.shape[1]
        if gamma == "scale":
            var = float(np.var(np.asarray(X)))
            return 1.0 / (d * var) if var > 0 else 1.0
        if gamma == "auto":
            return 1.0 / d
        raise ValueError(f"gamma must be a positive number, 'scale' or 'auto'; got {gamma!r}")
    return gamma


def check_kernel(kernel: str, gamma, X, *, degree: int = 3, coef0=0.0):
    """The one check of kernel parameters at the public boundary; returns `gamma` as a number.

    `kernel` must be in `KERNELS`; `gamma` a positive finite number (or traced scalar) or
    `"scale"` / `"auto"` (resolved on `X`, which must be concrete then); `degree` an
    integer >= 1; `coef0` finite. Raises `ValueError` / `TypeError` naming the argument.
    """
    v.check_choice(kernel, "kernel", KERNELS)
    if isinstance(gamma, str):
        v.check_choice(gamma, "gamma", ("scale", "auto"))
    elif jnp.ndim(gamma) != 0:
        raise ValueError(f"gamma must be a scalar; got shape {tuple(jnp.shape(gamma))}")
    gamma = resolve_gamma(gamma, X)
    v.check_positive(gamma, "gamma")
    v.check_int(degree, "degree", low=1)
    v.check_finite(jnp.asarray(coef0), "coef0")
    return gamma


def _block(X1, X2, gamma, kernel, degree, coef0):
    if kernel == "rbf":
        d2 = squared_distances(X1, X2)
        return jnp.exp(-gamma * d2)
    if kernel == "linear":
        return X1 @ X2.T
    if kernel == "polynomial":
        return (gamma * (X1 @ X2.T) + coef0) ** degree
    raise ValueError(f"kernel must be one of {list(KERNELS)}; got {kernel!r}")


@functools.partial(jax.jit, static_argnames=("kernel", "degree", "block_size"))
def kernel_matrix(
    X1: Float[Array, "n d"],
    X2: Float[Array, "m d"],
    gamma: float | Float[Array, ""] = 1.0,
    *,
    kernel: str = "rbf",
    degree: int = 3,
    coef0: float = 0.0,
    block_size: int = 2048,
) -> Float[Array, "n m"]:
    """Gram matrix $K_{ij} = k(x^{(1)}_i, x^{(2)}_j)$, computed in row blocks.

    Args:
        X1, X2: points, one per row.
        gamma: kernel width / scale (a number or a traced scalar; differentiable).
        kernel: `"rbf"`, `"linear"` or `"polynomial"` (static).
        degree, coef0: polynomial kernel parameters.
        block_size: at most this many rows per block (static); blocks only when
            `n > block_size`.

    Returns:
        `(n, m)` array; matches `sklearn.metrics.pairwise.rbf_kernel` /
        `linear_kernel` / `polynomial_kernel`.
    """
    if X1.ndim != 2 or X2.ndim != 2 or X1.shape[1] != X2.shape[1]:
        raise ValueError(f"X1 and X2 must be 2-D with the same number of columns; got shapes "
                         f"{X1.shape} and {X2.shape}")
    n = X1.shape[0]
    if n <= block_size:
        return _block(X1, X2, gamma, kernel, degree, coef0)
    # balanced blocks: when they divide n (e.g. n = 20,000 in 10 blocks of 2,000) the
    # stacked result is reshaped without padding, so no second n x m copy is made
    nb = -(-n // block_size)
    rows = -(-n // nb)
    pad = nb * rows - n
    Xp = jnp.pad(X1, ((0, pad), (0, 0))).reshape(nb, rows, X1.shape[1])
    out = jax.lax.map(lambda B: _block(B, X2, gamma, kernel, degree, coef0), Xp)
    out = out.reshape(nb * rows, X2.shape[0])
    return out[:n] if pad else out
