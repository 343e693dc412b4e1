r"""Label-noise baselines that FLORAL is compared with (binary, kernel SVM based).

* `svm_baseline` -- the plain SVM on the (possibly poisoned) labels.
* `ln_svm` -- LN-robust SVM (Biggio, Nelson & Laskov, ACML 2011): the kernel is
  corrected for label noise of rate $\mu$, $\tilde K = K \circ M$ with
  $M_{ii} = 1$ and $M_{ij} = 1 - 4\mu(1-\mu)$ off the diagonal.
* `curie` -- CURIE (Laishram & Phoha 2016): DBSCAN clusters in feature space, then
  the points whose mean distance to their cluster in the augmented space
  $(x, \omega y)$ exceeds a threshold are removed before training.
* `ls_svm` -- label sanitisation (Paudice, Muñoz-González & Lupu 2018): a point
  whose $k$ nearest neighbours disagree with its label by more than a fraction
  $\eta$ is relabelled to the neighbours' majority, then the SVM is trained.

All return `BaselineResult` (model, the labels used, the points kept). Everything
is `jit`-compiled with fixed shapes (removed points get a zero box bound, so
`vmap` over label vectors works).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from jaxpoison import _validate as v
from jaxpoison._result import Result, raise_if_failed
from jaxpoison.models.kernel_svm import SVM_DEFAULTS, KernelSVM, check_svm_inputs, kernel_svm_core
from jaxpoison.models.kernels import kernel_matrix
from jaxpoison.solvers.svm_dual import DEFAULT_SOLVER, PGD, SMO

__all__ = ["BaselineResult", "svm_baseline", "ln_svm", "curie", "ls_svm", "dbscan_labels"]

_C, _KERNEL, _GAMMA = SVM_DEFAULTS["C"], SVM_DEFAULTS["kernel"], SVM_DEFAULTS["gamma"]


class BaselineResult(Result):
    """A baseline defense's output.

    Attributes:
        model: the fitted `jaxpoison.models.KernelSVM`.
        labels: the labels the SVM was trained on (after relabelling, for LS-SVM).
        kept: boolean mask of the points kept (all but CURIE's removed points).
        status, iterations: those of the SVM fit.
    """

    model: KernelSVM
    labels: jax.Array
    kept: jax.Array


def _check(X, y, C, gamma, kernel, solver):
    return check_svm_inputs(X, y, C=C, kernel=kernel, gamma=gamma, solver=solver)


def _finish(fit, labels, kept, throw, what):
    out = BaselineResult(status=fit.status, iterations=fit.iterations, model=fit.model,
                         labels=labels.astype(jnp.int32), kept=kept)
    return raise_if_failed(out, what, throw=throw)


@functools.partial(jax.jit, static_argnames=("kernel",))
def _svm_jit(X, y, C, gamma, mu, solver, *, kernel):
    K = kernel_matrix(X, X, gamma, kernel=kernel)
    s = 1.0 - 4.0 * mu * (1.0 - mu)
    n = X.shape[0]
    M = jnp.where(jnp.eye(n, dtype=bool), 1.0, s)
    return kernel_svm_core(X, y, C, gamma, solver, kernel=kernel, K=K * M, kernel_scale=s)


def svm_baseline(X, y, *, C: float = _C, gamma=_GAMMA, kernel: str = _KERNEL,
                 solver: SMO | PGD = DEFAULT_SOLVER, throw: bool = True) -> BaselineResult:
    """The plain kernel SVM on the given labels (as `jaxpoison.models.fit_kernel_svm`)."""
    X, y, gamma = _check(X, y, C, gamma, kernel, solver)
    fit = _svm_jit(X, y, jnp.asarray(C, X.dtype), jnp.asarray(gamma, X.dtype),
                   jnp.asarray(0.0, X.dtype), solver, kernel=kernel)
    return _finish(fit, y, jnp.ones(X.shape[0], bool), throw, "svm_baseline")


def ln_svm(X, y, *, C: float = _C, gamma=_GAMMA, mu: float = 0.25, kernel: str = _KERNEL,
           solver: SMO | PGD = DEFAULT_SOLVER, throw: bool = True) -> BaselineResult:
    r"""LN-robust SVM: train on $K\circ M$ ($M_{ii}=1$,
    $M_{ij}=1-4\mu(1-\mu)$).

    At test time every test-train kernel value is off-diagonal, so the decision function
    is $(1-4\mu(1-\mu))\sum_i\alpha_i y_i k(x_i,x) + b$ (`kernel_scale`).
    `mu` is the assumed flip rate in $[0, 1/2)$ (the FLORAL code uses 0.25).
    Equivalent to `SVC(kernel="precomputed")` on $K\circ M$.
    """
    X, y, gamma = _check(X, y, C, gamma, kernel, solver)
    v.check_in_range(mu, "mu", 0.0, 0.4999)
    fit = _svm_jit(X, y, jnp.asarray(C, X.dtype), jnp.asarray(gamma, X.dtype),
                   jnp.asarray(mu, X.dtype), solver, kernel=kernel)
    return _finish(fit, y, jnp.ones(X.shape[0], bool), throw, "ln_svm")


@jax.jit
def dbscan_labels(X, eps, min_samples):
    """DBSCAN cluster labels (`-1` = noise); clusters are labelled by their smallest
    core-point index. Equivalent to `sklearn.cluster.DBSCAN` up to cluster numbering
    (border points reachable from two clusters go to the one with the smaller label)."""
    n = X.shape[0]
    sq = jnp.sum(X * X, 1)
    D = jnp.maximum(sq[:, None] + sq[None, :] - 2 * X @ X.T, 0.0)
    N = D <= eps * eps
    core = jnp.sum(N, 1) >= min_samples
    idx = jnp.arange(n)
    big = n
    lab = jnp.where(core, idx, big)
    E = N & core[:, None] & core[None, :]

    def body(state):
        lab, _ = state
        new = jnp.min(jnp.where(E, lab[None, :], big), axis=1)
        new = jnp.where(core, jnp.minimum(new, lab), big)
        return new, jnp.any(new != lab)

    lab, _ = jax.lax.while_loop(lambda s: s[1], body, (lab, jnp.asarray(True)))
    border = jnp.min(jnp.where(N & core[None, :], lab[None, :], big), axis=1)
    lab = jnp.where(core, lab, border)
    return jnp.where(lab >= big, -1, lab)


@functools.partial(jax.jit, static_argnames=("kernel",))
def _curie_jit(X, y, C, gamma, eps, min_samples, omega, theta, solver, *, kernel):
    yf = y.astype(X.dtype)
    lab = dbscan_labels(X, eps, min_samples)
    sq = jnp.sum(X * X, 1)
    D = jnp.maximum(sq[:, None] + sq[None, :] - 2 * X @ X.T, 0.0)
    Da = jnp.sqrt(D + (omega * (yf[:, None] - yf[None, :])) ** 2)
    same = (lab[:, None] == lab[None, :]) & (lab[:, None] >= 0)
    same = same & ~jnp.eye(X.shape[0], dtype=bool)
    cnt = jnp.sum(same, 1)
    score = jnp.where(cnt > 0, jnp.sum(jnp.where(same, Da, 0.0), 1) / jnp.maximum(cnt, 1),
                      0.0)
    has = cnt > 0
    mean = jnp.sum(jnp.where(has, score, 0.0)) / jnp.maximum(jnp.sum(has), 1)
    std = jnp.sqrt(jnp.sum(jnp.where(has, (score - mean) ** 2, 0.0))
                   / jnp.maximum(jnp.sum(has), 1))
    thr = jnp.where(jnp.isnan(theta), mean + std, theta)
    kept = ~(has & (score > thr))
    return kernel_svm_core(X, yf, C * kept, gamma, solver, kernel=kernel), kept


def curie(X, y, *, C: float = _C, gamma=_GAMMA, eps: float = 0.3, min_samples: int = 5,
          omega: float = 1.0, theta: float | None = None, kernel: str = _KERNEL,
          solver: SMO | PGD = DEFAULT_SOLVER, throw: bool = True) -> BaselineResult:
    r"""CURIE filtering, then the SVM on the kept points.

    DBSCAN (`eps`, `min_samples`) clusters the features; for a point in a cluster its
    score is the mean distance $\|(x_i,\omega y_i)-(x_j,\omega y_j)\|$ to the other
    members; points scoring above `theta` (default: mean + one standard deviation of the
    scores) are removed (box bound 0). Noise points are kept.
    """
    X, y, gamma = _check(X, y, C, gamma, kernel, solver)
    v.check_positive(eps, "eps")
    v.check_int(min_samples, "min_samples", low=1)
    v.check_nonnegative(omega, "omega")
    if theta is not None:
        v.check_nonnegative(theta, "theta")
    dt = X.dtype
    fit, kept = _curie_jit(X, y, jnp.asarray(C, dt), jnp.asarray(gamma, dt),
                           jnp.asarray(eps, dt), min_samples, jnp.asarray(omega, dt),
                           jnp.asarray(jnp.nan if theta is None else theta, dt), solver,
                           kernel=kernel)
    return _finish(fit, y, kept, throw, "curie")


@functools.partial(jax.jit, static_argnames=("k", "kernel"))
def _ls_jit(X, y, C, gamma, eta, solver, *, k, kernel):
    yf = y.astype(X.dtype)
    sq = jnp.sum(X * X, 1)
    D = sq[:, None] + sq[None, :] - 2 * X @ X.T
    D = jnp.where(jnp.eye(X.shape[0], dtype=bool), jnp.inf, D)
    _, nb = jax.lax.top_k(-D, k)
    disagree = jnp.mean(yf[nb] != yf[:, None], axis=1)
    labels = jnp.where(disagree > eta, -yf, yf)
    return kernel_svm_core(X, labels, C, gamma, solver, kernel=kernel), labels


def ls_svm(X, y, *, C: float = _C, gamma=_GAMMA, k: int = 10, eta: float = 0.5,
           kernel: str = _KERNEL, solver: SMO | PGD = DEFAULT_SOLVER,
           throw: bool = True) -> BaselineResult:
    """Label sanitisation: relabel a point when more than a fraction `eta` of its `k`
    nearest neighbours (Euclidean, excluding itself) carry the other label; then the SVM."""
    X, y, gamma = _check(X, y, C, gamma, kernel, solver)
    k = v.check_int(k, "k", low=1, high=X.shape[0] - 1)
    v.check_in_range(eta, "eta", 0.0, 1.0)
    dt = X.dtype
    fit, labels = _ls_jit(X, y, jnp.asarray(C, dt), jnp.asarray(gamma, dt),
                          jnp.asarray(eta, dt), solver, k=k, kernel=kernel)
    return _finish(fit, labels, jnp.ones(X.shape[0], bool), throw, "ls_svm")
