r"""Kernel SVM (C-SVC with bias): fit by SMO or accelerated projected gradient.

The dual solved is

$$
\min_\alpha \tfrac12 \alpha^\top Q \alpha - \mathbf 1^\top\alpha \quad
\text{s.t.}\ y^\top\alpha = 0,\ 0 \le \alpha \le C,
\qquad Q = (y y^\top)\circ K,
$$

and the classifier is $f(x) = s \sum_i \alpha_i y_i k(x_i, x) + b$ (`s` =
`kernel_scale`, 1 except for kernels modified off the diagonal such as LN-SVM's).
`fit_kernel_svm` matches `sklearn.svm.SVC(kernel=..., C=..., gamma=...)`
(libsvm) in dual objective, intercept and predictions up to the tolerance.
"""

from __future__ import annotations

import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from jaxpoison import _validate as v
from jaxpoison._result import Result, is_concrete, raise_if_failed
from jaxpoison.models.kernels import KERNELS, kernel_matrix, resolve_gamma
from jaxpoison.solvers.svm_dual import svm_dual_pgd, svm_dual_smo_kernel

__all__ = ["KernelSVM", "fit_kernel_svm", "fit_kernel_svm_precomputed", "svm_from_dual"]


class KernelSVM(Result):
    """A fitted kernel SVM (a pytree: `vmap`-ed fits give a batched model).

    Attributes:
        alpha: dual variables `(n,)` (zero for non-support vectors).
        intercept: bias $b$.
        X_train: training points (all of them; the support is `alpha > 0`).
        y_train: training labels used in the fit, as floats in $\\{-1,+1\\}$.
        gamma, coef0: kernel parameters (arrays, so they can be traced / vmapped).
        kernel_scale: factor $s$ applied to test-train kernel values.
        objective, gap: dual objective and final KKT violation.
        kernel, degree: static kernel choice.
    """

    alpha: jax.Array
    intercept: jax.Array
    X_train: jax.Array
    y_train: jax.Array
    gamma: jax.Array
    coef0: jax.Array
    kernel_scale: jax.Array
    objective: jax.Array
    gap: jax.Array
    kernel: str = eqx.field(static=True, default="rbf")
    degree: int = eqx.field(static=True, default=3)

    @property
    def support(self) -> jax.Array:
        """Boolean mask of the support vectors (`alpha > 0`)."""
        return self.alpha > 0

    @property
    def dual_coef(self) -> jax.Array:
        """$\\alpha_i y_i$ (sklearn's `dual_coef_` scattered to all points)."""
        return self.alpha * self.y_train

    def decision_function(self, X: Float[Array, "m d"]) -> Float[Array, " m"]:
        """$f(x) = s\\sum_i \\alpha_i y_i k(x_i, x) + b$ for each row of `X`."""
        Kx = kernel_matrix(jnp.asarray(X, self.X_train.dtype), self.X_train, self.gamma,
                           kernel=self.kernel, degree=self.degree, coef0=self.coef0)
        return self.kernel_scale * (Kx @ self.dual_coef) + self.intercept

    def predict(self, X: Float[Array, "m d"]) -> Float[Array, " m"]:
        """Labels in $\\{-1,+1\\}$ (a zero decision value gives +1)."""
        return jnp.where(self.decision_function(X) >= 0, 1, -1)

    def accuracy(self, X, y) -> jax.Array:
        """Fraction of `X` classified as `y`."""
        return jnp.mean((self.predict(X) == jnp.asarray(y)).astype(self.alpha.dtype))


def _solve(K, y, C, method, tol, max_iter):
    if method == "smo":
        return svm_dual_smo_kernel(K, y, C, tol=tol, max_iter=max_iter)
    return svm_dual_pgd((y[:, None] * y[None, :]) * K, y, C, tol=tol, max_iter=max_iter)


def svm_from_dual(res, X, y, gamma, *, kernel="rbf", degree=3, coef0=0.0, kernel_scale=1.0):
    """Wrap an `jaxpoison.solvers.svm_dual.SVMDualResult` as a `KernelSVM`."""
    dtype = X.dtype
    return KernelSVM(
        status=res.status, iterations=res.iterations, alpha=res.alpha,
        intercept=res.intercept, X_train=X, y_train=jnp.asarray(y, dtype),
        gamma=jnp.asarray(gamma, dtype), coef0=jnp.asarray(coef0, dtype),
        kernel_scale=jnp.asarray(kernel_scale, dtype), objective=res.objective,
        gap=res.gap, kernel=kernel, degree=degree)


@functools.partial(jax.jit, static_argnames=("kernel", "degree", "method"))
def _fit(X, y, C, gamma, coef0, tol, *, kernel, degree, method, max_iter):
    yf = y.astype(X.dtype)
    K = kernel_matrix(X, X, gamma, kernel=kernel, degree=degree, coef0=coef0)
    res = _solve(K, yf, C, method, tol, max_iter)
    return svm_from_dual(res, X, yf, gamma, kernel=kernel, degree=degree, coef0=coef0)


def _check_common(X, y, C, method, tol, max_iter):
    X = v.as_float_array(X, "X", ndim=2)
    y = v.as_label_array(y, "y", allowed=(-1, 1))
    v.check_same_length(X, "X", y, "y")
    if is_concrete(y) and np.unique(np.asarray(y)).size < 2:
        raise ValueError("y must contain both labels -1 and +1")
    v.check_positive(C, "C")
    v.check_choice(method, "method", ("smo", "pgd"))
    v.check_positive(tol, "tol")
    max_iter = v.check_int(max_iter, "max_iter", low=1)
    if jnp.ndim(C) not in (0, 1) or (jnp.ndim(C) == 1 and jnp.shape(C)[0] != X.shape[0]):
        raise ValueError(f"C must be a scalar or have shape ({X.shape[0]},); got shape "
                         f"{tuple(jnp.shape(C))}")
    return X, y, max_iter


def fit_kernel_svm(
    X: Float[Array, "n d"],
    y,
    *,
    C: float | Float[Array, ""] = 1.0,
    kernel: str = "rbf",
    gamma: float | str = "scale",
    degree: int = 3,
    coef0: float = 0.0,
    method: str = "smo",
    tol: float = 1e-3,
    max_iter: int | None = None,
    throw: bool = True,
) -> KernelSVM:
    r"""Fit a binary kernel SVM with bias by solving its dual.

    $$
    \min_\alpha \tfrac12 \alpha^\top ((yy^\top)\circ K)\alpha - \mathbf 1^\top\alpha
    \ \text{s.t.}\ y^\top\alpha = 0,\ 0\le\alpha\le C.
    $$

    Args:
        X: training points `(n, d)`.
        y: labels in $\{-1,+1\}$ `(n,)`.
        C: box bound (positive scalar, or per-point `(n,)`; traceable, so `vmap`-able).
        kernel: `"rbf"`, `"linear"` or `"polynomial"`.
        gamma: positive number (traceable) or `"scale"` / `"auto"` (sklearn semantics).
        degree, coef0: polynomial kernel parameters.
        method: `"smo"` (WSS2 SMO, default, fast on CPU) or `"pgd"` (FISTA with exact
            projection).
        tol: stopping tolerance on the maximal KKT violation (libsvm's `tol`).
        max_iter: iteration limit (default 100,000 for SMO, 20,000 for PGD).
        throw: raise `jaxpoison.SolverError` if the solve did not converge
            (skipped under `jit`/`vmap`; then inspect `model.status`).

    Returns:
        `KernelSVM`. Equivalent to `sklearn.svm.SVC(C=C, kernel=kernel,
        gamma=gamma, tol=tol)`: same dual optimum, intercept from the same KKT rule.

    `jax.vmap` over label vectors, `C` or `gamma` works (call this function inside
    the vmapped function with `throw=False`).
    """
    v.check_choice(kernel, "kernel", KERNELS)
    if max_iter is None:
        max_iter = 100_000 if method == "smo" else 20_000
    X, y, max_iter = _check_common(X, y, C, method, tol, max_iter)
    gamma = resolve_gamma(gamma, X)
    v.check_positive(gamma, "gamma")
    v.check_int(degree, "degree", low=1)
    dtype = X.dtype
    model = _fit(X, y, jnp.asarray(C, dtype), jnp.asarray(gamma, dtype),
                 jnp.asarray(coef0, dtype), jnp.asarray(tol, dtype), kernel=kernel,
                 degree=degree, method=method, max_iter=max_iter)
    return raise_if_failed(model, "fit_kernel_svm", throw=throw)


@functools.partial(jax.jit, static_argnames=("method",))
def _fit_pre(K, y, C, tol, *, method, max_iter):
    yf = y.astype(K.dtype)
    return _solve(K, yf, C, method, tol, max_iter)


def fit_kernel_svm_precomputed(
    K: Float[Array, "n n"], y, *, C=1.0, method: str = "smo", tol: float = 1e-3,
    max_iter: int | None = None, throw: bool = True,
):
    """Solve the SVM dual for a precomputed Gram matrix `K`.

    Returns the `jaxpoison.solvers.svm_dual.SVMDualResult` (`alpha`,
    `intercept`...). Equivalent to `sklearn.svm.SVC(kernel="precomputed")`.
    """
    if max_iter is None:
        max_iter = 100_000 if method == "smo" else 20_000
    K = v.as_float_array(K, "K", ndim=2)
    v.check_shape(K, "K", (K.shape[0], K.shape[0]))
    _, y, max_iter = _check_common(K, y, C, method, tol, max_iter)
    res = _fit_pre(K, y, jnp.asarray(C, K.dtype), jnp.asarray(tol, K.dtype),
                   method=method, max_iter=max_iter)
    return raise_if_failed(res, "fit_kernel_svm_precomputed", throw=throw)
