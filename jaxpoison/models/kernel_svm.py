r"""Kernel SVM (C-SVC with bias): one fitting path for every kernel SVM in jaxpoison.

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

One path: `check_svm_inputs` is the single check of data, `C` and kernel parameters at the
public boundary, and `kernel_svm_core` (jit-safe, no checks) the single fit, used by
`fit_kernel_svm`, FLORAL (`jaxpoison.defenses.floral`), the label-noise baselines
(`jaxpoison.defenses.baselines`) and the label-flip attacks
(`jaxpoison.attacks.label_flip`). The solver options are held once in
`jaxpoison.solvers.SMO` / `jaxpoison.solvers.PGD` (defaults `SMO(tol=1e-3,
max_iter=100_000)`), the SVM defaults once in `SVM_DEFAULTS`.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from jaxpoison import _validate as v
from jaxpoison._result import Result, is_concrete, raise_if_failed
from jaxpoison.models.classifier import Classifier
from jaxpoison.models.kernels import check_kernel, kernel_matrix
from jaxpoison.solvers.svm_dual import (
    DEFAULT_SOLVER,
    PGD,
    SMO,
    SVMDualResult,
    check_solver,
    solve_svm_dual,
)

__all__ = ["KernelSVM", "KernelSVMFit", "SVM_DEFAULTS", "fit_kernel_svm",
           "fit_kernel_svm_precomputed", "check_svm_inputs", "kernel_svm_core"]

SVM_DEFAULTS = {"C": 1.0, "kernel": "rbf", "gamma": "scale", "degree": 3, "coef0": 0.0}
"""The defaults of every kernel-SVM based function (sklearn's `SVC` defaults)."""


class KernelSVM(Classifier):
    """A kernel SVM classifier (a pytree: `vmap`-ed fits give a batched model).

    Attributes:
        alpha: dual variables `(n,)` (zero for non-support vectors).
        intercept: bias $b$.
        X_train: training points (all of them; the support is `alpha > 0`).
        y_train: training labels used in the fit, as floats in $\\{-1,+1\\}$.
        gamma, coef0: kernel parameters (arrays, so they can be traced / vmapped).
        kernel_scale: factor $s$ applied to test-train kernel values.
        kernel, degree: static kernel choice.
    """

    alpha: jax.Array
    intercept: jax.Array
    X_train: jax.Array
    y_train: jax.Array
    gamma: jax.Array
    coef0: jax.Array
    kernel_scale: jax.Array
    kernel: str = eqx.field(static=True, default="rbf")
    degree: int = eqx.field(static=True, default=3)

    @property
    def num_features(self) -> int:
        return self.X_train.shape[-1]

    @classmethod
    def from_dual_coef(cls, X_train, coef, intercept, gamma, *, kernel: str = "rbf",
                       degree: int = 3, coef0=0.0, kernel_scale=1.0) -> KernelSVM:
        r"""The model $f(x) = s\sum_i c_i k(x_i, x) + b$ from signed coefficients
        $c_i = \alpha_i y_i$ (`alpha = |c|`, `y_train = sign c`, +1 where $c_i = 0$)."""
        dtype = X_train.dtype
        coef = jnp.asarray(coef, dtype)
        return cls(alpha=jnp.abs(coef), intercept=jnp.asarray(intercept, dtype),
                   X_train=X_train, y_train=jnp.where(coef < 0, -1.0, 1.0).astype(dtype),
                   gamma=jnp.asarray(gamma, dtype), coef0=jnp.asarray(coef0, dtype),
                   kernel_scale=jnp.asarray(kernel_scale, dtype), kernel=kernel,
                   degree=degree)

    @property
    def support(self) -> jax.Array:
        """Boolean mask of the support vectors (`alpha > 0`)."""
        return self.alpha > 0

    @property
    def dual_coef(self) -> jax.Array:
        """$\\alpha_i y_i$ (sklearn's `dual_coef_` scattered to all points)."""
        return self.alpha * self.y_train

    def decision_function(self, X: Float[Array, "m d"]) -> Float[Array, " m"]:
        """$f(x) = s\\sum_i \\alpha_i y_i k(x_i, x) + b$ for each row of `X` (checked:
        `num_features` columns, finite)."""
        X = self.check_X(X).astype(self.X_train.dtype)
        Kx = kernel_matrix(X, self.X_train, self.gamma, kernel=self.kernel,
                           degree=self.degree, coef0=self.coef0)
        return self.kernel_scale * (Kx @ self.dual_coef) + self.intercept


class KernelSVMFit(Result):
    """Result of `fit_kernel_svm`.

    Attributes:
        model: the fitted `KernelSVM`.
        objective: dual objective $\\tfrac12\\alpha^\\top Q\\alpha - \\mathbf 1^\\top\\alpha$.
        gap: final maximal KKT violation (libsvm's stopping value).
        status, iterations: as in `jaxpoison.Result`.
    """

    model: KernelSVM
    objective: jax.Array
    gap: jax.Array


def check_svm_inputs(X, y, *, C, kernel: str = "rbf", gamma="scale", degree: int = 3,
                     coef0=0.0, solver: SMO | PGD | None = None, y_name: str = "y",
                     allowed=(-1, 1), X_name: str = "X"):
    """The one boundary check of every kernel-SVM based public function.

    Checks `X` (2-D, finite, at least one row), the labels (1-D, in `allowed`, as many as
    rows of `X`, at least two classes), `C` (positive finite scalar or `(n,)`), the kernel
    (`jaxpoison.models.kernels.check_kernel`) and `solver`. Returns `(X, y, gamma)`
    with `gamma` resolved to a number. Value checks are skipped on tracers.
    """
    X = v.as_float_array(X, X_name, ndim=2)
    if X.shape[0] == 0:
        raise ValueError(f"{X_name} must have at least one row; got shape {tuple(X.shape)}")
    y = v.as_label_array(y, y_name, allowed=allowed)
    v.check_same_length(X, X_name, y, y_name)
    if is_concrete(y) and np.unique(np.asarray(y)).size < 2:
        raise ValueError(f"{y_name} must contain at least two classes; got only "
                         f"{np.unique(np.asarray(y)).tolist()}")
    if jnp.ndim(C) not in (0, 1) or (jnp.ndim(C) == 1 and jnp.shape(C)[0] != X.shape[0]):
        raise ValueError(f"C must be a scalar or have shape ({X.shape[0]},); got shape "
                         f"{tuple(jnp.shape(C))}")
    v.check_positive(C, "C")
    gamma = check_kernel(kernel, gamma, X, degree=degree, coef0=coef0)
    if solver is not None:
        check_solver(solver)
    return X, y, gamma


def kernel_svm_core(X, y, C, gamma, solver: SMO | PGD = DEFAULT_SOLVER, *, kernel: str = "rbf",
                    degree: int = 3, coef0=0.0, K=None, kernel_scale=1.0) -> KernelSVMFit:
    """Fit a kernel SVM with no checks (jit-safe; call inside `jit`/`vmap`).

    `K` is the Gram matrix (computed from `X` when `None`, or a modified one such as
    LN-SVM's $K\\circ M$); `kernel_scale` multiplies test-train kernel values. `C` may be
    `(n,)` (a zero removes a point). Returns `KernelSVMFit`.
    """
    dtype = X.dtype
    yf = jnp.asarray(y).astype(dtype)
    if K is None:
        K = kernel_matrix(X, X, gamma, kernel=kernel, degree=degree, coef0=coef0)
    res = solve_svm_dual(K, yf, jnp.asarray(C, dtype), solver)
    model = KernelSVM(alpha=res.alpha, intercept=res.intercept, X_train=X, y_train=yf,
                      gamma=jnp.asarray(gamma, dtype), coef0=jnp.asarray(coef0, dtype),
                      kernel_scale=jnp.asarray(kernel_scale, dtype), kernel=kernel,
                      degree=degree)
    return KernelSVMFit(status=res.status, iterations=res.iterations, model=model,
                        objective=res.objective, gap=res.gap)


_fit_jit = jax.jit(kernel_svm_core, static_argnames=("kernel", "degree"))


def fit_kernel_svm(
    X: Float[Array, "n d"],
    y,
    *,
    C: float | Float[Array, ""] = SVM_DEFAULTS["C"],
    kernel: str = SVM_DEFAULTS["kernel"],
    gamma: float | str = SVM_DEFAULTS["gamma"],
    degree: int = SVM_DEFAULTS["degree"],
    coef0: float = SVM_DEFAULTS["coef0"],
    solver: SMO | PGD = DEFAULT_SOLVER,
    throw: bool = True,
) -> KernelSVMFit:
    r"""Fit a binary kernel SVM with bias by solving its dual.

    $$
    \min_\alpha \tfrac12 \alpha^\top ((yy^\top)\circ K)\alpha - \mathbf 1^\top\alpha
    \ \text{s.t.}\ y^\top\alpha = 0,\ 0\le\alpha\le C.
    $$

    Args:
        X: training points `(n, d)`.
        y: labels in $\{-1,+1\}$ `(n,)`, both present.
        C: box bound (positive scalar, or per-point `(n,)`; traceable, so `vmap`-able).
        kernel: `"rbf"`, `"linear"` or `"polynomial"`.
        gamma: positive number (traceable) or `"scale"` / `"auto"` (sklearn semantics).
        degree, coef0: polynomial kernel parameters.
        solver: `jaxpoison.solvers.SMO(tol, max_iter)` (default, WSS2 SMO, fast on CPU)
            or `jaxpoison.solvers.PGD(tol, max_iter, projection)` (FISTA with exact
            projection); `tol` bounds the maximal KKT violation (libsvm's `tol`).
        throw: raise `jaxpoison.SolverError` if the solve did not converge (under a
            caller's `jit`/`vmap` through `equinox.error_if`); with `False` read `status`.

    Returns:
        `KernelSVMFit` (`.model` is the `KernelSVM`). Equivalent to
        `sklearn.svm.SVC(C=C, kernel=kernel, gamma=gamma, tol=tol)`: same dual optimum,
        intercept from the same KKT rule.

    `jax.vmap` over label vectors, `C` or `gamma` works.
    """
    X, y, gamma = check_svm_inputs(X, y, C=C, kernel=kernel, gamma=gamma, degree=degree,
                                   coef0=coef0, solver=solver)
    dtype = X.dtype
    fit = _fit_jit(X, y, jnp.asarray(C, dtype), jnp.asarray(gamma, dtype), solver,
                   kernel=kernel, degree=degree, coef0=jnp.asarray(coef0, dtype))
    return raise_if_failed(fit, "fit_kernel_svm", throw=throw)


@jax.jit
def _fit_pre(K, y, C, solver):
    return solve_svm_dual(K, y.astype(K.dtype), C, solver)


def fit_kernel_svm_precomputed(
    K: Float[Array, "n n"], y, *, C=SVM_DEFAULTS["C"], solver: SMO | PGD = DEFAULT_SOLVER,
    throw: bool = True,
) -> SVMDualResult:
    """Solve the SVM dual for a precomputed Gram matrix `K` (square, finite).

    Returns the `jaxpoison.solvers.SVMDualResult` (`alpha`, `intercept`...).
    Equivalent to `sklearn.svm.SVC(kernel="precomputed")`.
    """
    K = v.as_float_array(K, "K", ndim=2)
    v.check_shape(K, "K", (K.shape[0], K.shape[0]))
    K, y, _ = check_svm_inputs(K, y, C=C, kernel="linear", gamma=1.0, solver=solver,
                               X_name="K")
    res = _fit_pre(K, y, jnp.asarray(C, K.dtype), solver)
    return raise_if_failed(res, "fit_kernel_svm_precomputed", throw=throw)
