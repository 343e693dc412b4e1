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
import numpy as np

from jaxpoison import _validate as v
from jaxpoison._result import Result, raise_if_failed
from jaxpoison.defenses.floral import Trajectory, floral_game
from jaxpoison.models.kernel_svm import SVM_DEFAULTS, KernelSVM, check_svm_inputs, kernel_svm_core
from jaxpoison.models.kernels import kernel_matrix
from jaxpoison.solvers.svm_dual import DEFAULT_SOLVER, PGD, SMO

__all__ = ["BaselineResult", "svm_baseline", "ln_svm", "curie", "ls_svm", "k_lid_svm",
           "k_lid_weights"]

_C, _KERNEL, _GAMMA = SVM_DEFAULTS["C"], SVM_DEFAULTS["kernel"], SVM_DEFAULTS["gamma"]
_Solver = SMO | PGD | Trajectory


class BaselineResult(Result):
    """A baseline defense's output.

    Attributes:
        model: the fitted `jaxpoison.models.KernelSVM` (the last step's model with a
            `Trajectory` solver).
        labels: the labels the SVM was trained on (after relabelling, for LS-SVM).
        kept: boolean mask of the points kept (all but CURIE's removed points).
        weights: per-point weights of the box bound, $C_i = C w_i$ (1 except CURIE's
            removed points, 0, and K-LID's weights).
        accuracy: evaluation accuracy after every step of a `Trajectory` (`(steps,)`), or
            of the converged fit (`(1,)`); NaN without `X_eval`.
        status, iterations: those of the SVM fit.
    """

    model: KernelSVM
    labels: jax.Array
    kept: jax.Array
    weights: jax.Array
    accuracy: jax.Array


def _check(X, y, C, gamma, kernel, solver, X_eval, y_eval):
    if not isinstance(solver, (SMO, PGD, Trajectory)):
        raise TypeError("solver must be jaxpoison.solvers.SMO(...), PGD(...) or "
                        f"jaxpoison.defenses.Trajectory(...); got {type(solver).__name__}")
    if jnp.ndim(C) != 0:
        raise ValueError(f"C must be a scalar here; got shape {tuple(jnp.shape(C))}")
    X, y, gamma = check_svm_inputs(X, y, C=C, kernel=kernel, gamma=gamma)
    if (X_eval is None) != (y_eval is None):
        raise ValueError("X_eval and y_eval must be given together (or both left out)")
    if X_eval is not None:
        X_eval = v.as_float_array(X_eval, "X_eval", ndim=2, dtype=X.dtype)
        v.check_shape(X_eval, "X_eval", (None, X.shape[1]))
        y_eval = v.as_label_array(y_eval, "y_eval", allowed=(-1, 1))
        v.check_same_length(X_eval, "X_eval", y_eval, "y_eval")
    else:
        X_eval, y_eval = X[:1], jnp.zeros((1,), jnp.int32)
    return X, y, gamma, X_eval, y_eval


def _fit(X, y, C, gamma, solver, kernel, Xe, ye, has_eval, *, K=None, scale=1.0):
    """The baselines' one fit: converged (`kernel_svm_core`) or FLORAL's loop without an
    attacker (`floral_game` with budget 0); returns (status, iterations, model, accuracy)."""
    dtype = X.dtype
    if K is None:
        K = kernel_matrix(X, X, gamma, kernel=kernel)
    Ke = scale * kernel_matrix(Xe, X, gamma, kernel=kernel)
    if isinstance(solver, Trajectory):
        g = floral_game(K, y, C, solver.lr, jax.random.key(0), budget=0, steps=solver.steps,
                        lr_schedule=solver.lr_schedule, sv_threshold=solver.sv_threshold,
                        Ke=Ke if has_eval else None, y_eval=ye)
        model = KernelSVM.from_dual_coef(X, g.coef, g.intercept, gamma, kernel=kernel,
                                         kernel_scale=scale)
        return g.status, g.iterations, model, g.history.accuracy
    fit = kernel_svm_core(X, y, C, gamma, solver, kernel=kernel, K=K, kernel_scale=scale)
    f = Ke @ fit.model.dual_coef + fit.model.intercept
    acc = jnp.mean((jnp.where(f >= 0, 1, -1) == ye).astype(dtype))
    acc = jnp.where(has_eval, acc, jnp.nan)[None]
    return fit.status, fit.iterations, fit.model, acc


def _finish(out, labels, kept, weights, throw, what):
    status, iterations, model, acc = out
    res = BaselineResult(status=status, iterations=iterations, model=model,
                         labels=labels.astype(jnp.int32), kept=kept, weights=weights,
                         accuracy=acc)
    return raise_if_failed(res, what, throw=throw)


@functools.partial(jax.jit, static_argnames=("kernel", "has_eval"))
def _svm_jit(X, y, C, gamma, mu, solver, Xe, ye, *, kernel, has_eval):
    K = kernel_matrix(X, X, gamma, kernel=kernel)
    s = 1.0 - 4.0 * mu * (1.0 - mu)
    n = X.shape[0]
    M = jnp.where(jnp.eye(n, dtype=bool), 1.0, s)
    return _fit(X, y, C, gamma, solver, kernel, Xe, ye, has_eval, K=K * M, scale=s)


def svm_baseline(X, y, *, C: float = _C, gamma=_GAMMA, kernel: str = _KERNEL,
                 solver: _Solver = DEFAULT_SOLVER, X_eval=None, y_eval=None,
                 throw: bool = True) -> BaselineResult:
    """The plain kernel SVM on the given labels.

    `solver=SMO(...)` / `PGD(...)` fits it to convergence (as
    `jaxpoison.models.fit_kernel_svm`); `solver=Trajectory(steps, lr)` runs FLORAL's
    projected-gradient loop without an attacker (the SVM column of the FLORAL paper), with
    the evaluation accuracy after every step in `accuracy` when `X_eval`, `y_eval` are
    given (reported only).
    """
    X, y, gamma, Xe, ye = _check(X, y, C, gamma, kernel, solver, X_eval, y_eval)
    out = _svm_jit(X, y, jnp.asarray(C, X.dtype), jnp.asarray(gamma, X.dtype),
                   jnp.asarray(0.0, X.dtype), solver, Xe, ye, kernel=kernel,
                   has_eval=X_eval is not None)
    n = X.shape[0]
    return _finish(out, y, jnp.ones(n, bool), jnp.ones(n, X.dtype), throw, "svm_baseline")


def ln_svm(X, y, *, C: float = _C, gamma=_GAMMA, mu: float = 0.25, kernel: str = _KERNEL,
           solver: _Solver = DEFAULT_SOLVER, X_eval=None, y_eval=None,
           throw: bool = True) -> BaselineResult:
    r"""LN-robust SVM: train on $K\circ M$ ($M_{ii}=1$,
    $M_{ij}=1-4\mu(1-\mu)$).

    At test time every test-train kernel value is off-diagonal, so the decision function
    is $(1-4\mu(1-\mu))\sum_i\alpha_i y_i k(x_i,x) + b$ (`kernel_scale`).
    `mu` is the assumed flip rate in $[0, 1/2)$ (the FLORAL code uses 0.25).
    Equivalent to `SVC(kernel="precomputed")` on $K\circ M$. `solver`, `X_eval`,
    `y_eval` as in `svm_baseline`.
    """
    X, y, gamma, Xe, ye = _check(X, y, C, gamma, kernel, solver, X_eval, y_eval)
    v.check_in_range(mu, "mu", 0.0, 0.4999)
    out = _svm_jit(X, y, jnp.asarray(C, X.dtype), jnp.asarray(gamma, X.dtype),
                   jnp.asarray(mu, X.dtype), solver, Xe, ye, kernel=kernel,
                   has_eval=X_eval is not None)
    n = X.shape[0]
    return _finish(out, y, jnp.ones(n, bool), jnp.ones(n, X.dtype), throw, "ln_svm")


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


@functools.partial(jax.jit, static_argnames=("kernel", "has_eval"))
def _curie_jit(X, y, C, gamma, eps, min_samples, omega, theta, solver, Xe, ye, *, kernel,
               has_eval):
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
    w = kept.astype(X.dtype)
    return _fit(X, yf, C * w, gamma, solver, kernel, Xe, ye, has_eval), kept, w


def curie(X, y, *, C: float = _C, gamma=_GAMMA, eps: float = 0.3, min_samples: int = 5,
          omega: float = 1.0, theta: float | None = None, kernel: str = _KERNEL,
          solver: _Solver = DEFAULT_SOLVER, X_eval=None, y_eval=None,
          throw: bool = True) -> BaselineResult:
    r"""CURIE filtering, then the SVM on the kept points.

    DBSCAN (`eps`, `min_samples`) clusters the features; for a point in a cluster its
    score is the mean distance $\|(x_i,\omega y_i)-(x_j,\omega y_j)\|$ to the other
    members; points scoring above `theta` (default: mean + one standard deviation of the
    scores) are removed (box bound 0). Noise points are kept. `solver`, `X_eval`,
    `y_eval` as in `svm_baseline`.
    """
    X, y, gamma, Xe, ye = _check(X, y, C, gamma, kernel, solver, X_eval, y_eval)
    v.check_positive(eps, "eps")
    v.check_int(min_samples, "min_samples", low=1)
    v.check_nonnegative(omega, "omega")
    if theta is not None:
        v.check_nonnegative(theta, "theta")
    dt = X.dtype
    out, kept, w = _curie_jit(X, y, jnp.asarray(C, dt), jnp.asarray(gamma, dt),
                              jnp.asarray(eps, dt), min_samples, jnp.asarray(omega, dt),
                              jnp.asarray(jnp.nan if theta is None else theta, dt), solver,
                              Xe, ye, kernel=kernel, has_eval=X_eval is not None)
    return _finish(out, y, kept, w, throw, "curie")


@functools.partial(jax.jit, static_argnames=("k", "kernel", "has_eval"))
def _ls_jit(X, y, C, gamma, eta, solver, Xe, ye, *, k, kernel, has_eval):
    yf = y.astype(X.dtype)
    sq = jnp.sum(X * X, 1)
    D = sq[:, None] + sq[None, :] - 2 * X @ X.T
    D = jnp.where(jnp.eye(X.shape[0], dtype=bool), jnp.inf, D)
    _, nb = jax.lax.top_k(-D, k)
    disagree = jnp.mean(yf[nb] != yf[:, None], axis=1)
    labels = jnp.where(disagree > eta, -yf, yf)
    return _fit(X, labels, C, gamma, solver, kernel, Xe, ye, has_eval), labels


def ls_svm(X, y, *, C: float = _C, gamma=_GAMMA, k: int = 10, eta: float = 0.5,
           kernel: str = _KERNEL, solver: _Solver = DEFAULT_SOLVER, X_eval=None,
           y_eval=None, throw: bool = True) -> BaselineResult:
    """Label sanitisation: relabel a point when more than a fraction `eta` of its `k`
    nearest neighbours (Euclidean, excluding itself) carry the other label; then the SVM.
    `solver`, `X_eval`, `y_eval` as in `svm_baseline`."""
    X, y, gamma, Xe, ye = _check(X, y, C, gamma, kernel, solver, X_eval, y_eval)
    k = v.check_int(k, "k", low=1, high=X.shape[0] - 1)
    v.check_in_range(eta, "eta", 0.0, 1.0)
    dt = X.dtype
    out, labels = _ls_jit(X, y, jnp.asarray(C, dt), jnp.asarray(gamma, dt),
                          jnp.asarray(eta, dt), solver, Xe, ye, k=k, kernel=kernel,
                          has_eval=X_eval is not None)
    n = X.shape[0]
    return _finish(out, labels, jnp.ones(n, bool), jnp.ones(n, dt), throw, "ls_svm")


@functools.partial(jax.jit, static_argnames=("k", "kernel"))
def k_lid_weights(X, y, gamma, *, k: int = 10, kernel: str = "rbf"):
    r"""K-LID weights (Weerasinghe et al., IEEE TIFS 2021): down-weight points whose
    neighbourhood in kernel space looks like that of a flipped label.

    Kernel distances $d(x_i, x_j)^2 = K_{ii} + K_{jj} - 2K_{ij}$; the local intrinsic
    dimensionality by the maximum-likelihood estimate over the $k$ nearest neighbours
    $d_1 \le \dots \le d_k$, $\widehat{\mathrm{LID}} = -igl(rac1k\sum_{j=1}^k
    \log(d_j/d_k)igr)^{-1}$, is computed among the points with the same label
    ($\mathrm{LID}^=_i$) and among those with the other label ($\mathrm{LID}^{
e}_i$);
    the ratio $r_i = \mathrm{LID}^=_i/\mathrm{LID}^{
e}_i$ is large for a point that
    sits among the other class. The weight is a decreasing logistic function of the
    standardised ratio, $w_i = \sigmaigl(-(r_i - \operatorname{median} r)/\operatorname{std} rigr)$,
    rescaled to a maximum of 1. The paper fits the weight map from the ratio densities of
    known flipped and clean points; the FLORAL authors' code does not publish theirs, so
    this fixed logistic map is our choice (a jit-safe core, no checks).
    """
    dtype = X.dtype
    yf = y.astype(dtype)
    K = kernel_matrix(X, X, gamma, kernel=kernel)
    dg = jnp.diagonal(K)
    D = jnp.sqrt(jnp.maximum(dg[:, None] + dg[None, :] - 2 * K, 0.0))
    n = X.shape[0]
    eye = jnp.eye(n, dtype=bool)
    same = (yf[:, None] == yf[None, :]) & ~eye

    def lid(mask):
        Dm = jnp.where(mask, D, jnp.inf)
        d = -jax.lax.top_k(-Dm, k)[0]                    # k smallest, ascending
        d = jnp.maximum(d, jnp.finfo(dtype).tiny)
        ratio = jnp.log(d / d[:, -1:])
        s = jnp.mean(jnp.where(jnp.isfinite(ratio), ratio, 0.0), axis=1)
        return -1.0 / jnp.minimum(s, -jnp.finfo(dtype).eps)

    r = lid(same) / lid(~same & ~eye)
    z = (r - jnp.median(r)) / jnp.maximum(jnp.std(r), jnp.finfo(dtype).eps)
    w = jax.nn.sigmoid(-z)
    return w / jnp.max(w)


@functools.partial(jax.jit, static_argnames=("k", "kernel", "has_eval"))
def _klid_jit(X, y, C, gamma, solver, Xe, ye, *, k, kernel, has_eval):
    w = k_lid_weights(X, y, gamma, k=k, kernel=kernel)
    return _fit(X, y, C * w, gamma, solver, kernel, Xe, ye, has_eval), w


def k_lid_svm(X, y, *, C: float = _C, gamma=_GAMMA, k: int = 10, kernel: str = _KERNEL,
              solver: _Solver = DEFAULT_SOLVER, X_eval=None, y_eval=None,
              throw: bool = True) -> BaselineResult:
    """K-LID SVM: the weighted SVM with box bounds $C_i = C w_i$ and the weights of
    `k_lid_weights` (`k` nearest neighbours, `1 <= k < ` the size of the smaller class).
    `solver`, `X_eval`, `y_eval` as in `svm_baseline`; `weights` holds $w$."""
    X, y, gamma, Xe, ye = _check(X, y, C, gamma, kernel, solver, X_eval, y_eval)
    if v.is_concrete(y):
        small = int(min(np.sum(np.asarray(y) > 0), np.sum(np.asarray(y) < 0)))
        k = v.check_int(k, "k", low=1, high=max(small - 1, 1))
    else:
        k = v.check_int(k, "k", low=1, high=X.shape[0] - 1)
    dt = X.dtype
    out, w = _klid_jit(X, y, jnp.asarray(C, dt), jnp.asarray(gamma, dt), solver, Xe, ye,
                       k=k, kernel=kernel, has_eval=X_eval is not None)
    return _finish(out, y, jnp.ones(X.shape[0], bool), w, throw, "k_lid_svm")
