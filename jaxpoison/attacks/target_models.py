r"""Target models for model-targeted poisoning (the label-flipping heuristic of Koh,
Steinhardt and Liang 2018, as used by Suya et al. 2021).

A target model should reach the attacker's goal (an error rate, or misclassifying a
subpopulation) while staying as close as possible to the clean data, measured by the
regularised clean training loss
$\frac1N\sum_{D_c}\ell(\theta;x,y) + \frac\lambda2(\lVert w\rVert^2+b^2)$ (lower means
fewer poison points needed, by the Theorem-2 intuition). Candidates are produced by
training on the clean data plus label-flipped points with `fit_linear`; all
candidates of a grid share one compiled solver (the grid only changes sample weights,
so shapes are shared) and are trained one after another with warm starts.

* `indiscriminate_targets`: flip the labels of the points of a pool whose clean
  margin is below the `q`-quantile, repeat them `r` times, for every `(q, r)` of a
  grid; for each wanted error keep the lowest-loss candidate whose error on the
  evaluation data reaches it.
* `subpopulation_target`: for a subpopulation (one label), flip the labels of its
  `rate * N` points closest to the clean boundary (in place); when `rate * N` exceeds
  its size, replace the whole subpopulation by flipped copies of total weight
  `rate * N` (spread evenly -- a deterministic version of the authors' sampling with
  replacement); keep the lowest-loss candidate that misclassifies the wanted fraction
  of the subpopulation.
"""

from __future__ import annotations

from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from jaxpoison import _validate as V
from jaxpoison.models.linear import LOSSES, LinearModel, _fit, default_tol

__all__ = ["TargetModels", "indiscriminate_targets", "subpopulation_target",
           "regularized_clean_loss"]


class TargetModels(eqx.Module):
    """Candidates and the chosen target model(s).

    Attributes:
      candidates: all candidate models (a batched `LinearModel`).
      params: the grid value(s) of each candidate (`(q, r)` or `rate`), `(m, k)`.
      error: error of each candidate on the evaluation data (indiscriminate) or on the
        subpopulation (subpopulation).
      clean_loss: regularised mean clean loss of each candidate.
      chosen: index of the chosen candidate per requested error (-1 if none reached it).
      targets: the chosen models (batched, one per requested error; the highest-error
        candidate where none reached the goal).
      wanted_error: the requested error(s).
    """

    candidates: LinearModel
    params: Array
    error: Array
    clean_loss: Array
    chosen: Array
    targets: LinearModel
    wanted_error: Array

    def target(self, i: int = 0) -> LinearModel:
        return jax.tree_util.tree_map(lambda a: a[i], self.targets)


def regularized_clean_loss(model: LinearModel, X, y, *, loss: str, reg) -> Array:
    """$\\frac1N\\sum\\ell + \\frac\\lambda2(\\lVert w\\rVert^2+b^2)$ on clean data."""
    m = y * (X @ model.w + model.b)
    ell = jnp.maximum(0.0, 1.0 - m) if loss == "hinge" else jnp.logaddexp(0.0, -m)
    return jnp.mean(ell) + 0.5 * reg * (model.w @ model.w + model.b ** 2)


def _fit_many(X_all, y_all, S, reg, tol, *, loss, max_iter):
    """Fit one model per row of weights `S`, each warm-started from the previous one
    (sequential warm starts beat a vmapped batch, whose loops run to the slowest member)."""
    n, d = X_all.shape
    w, b = jnp.zeros(d, X_all.dtype), jnp.zeros((), X_all.dtype)
    alpha = jnp.zeros(n, X_all.dtype)
    fits = []
    for s in S:
        fit = _fit(X_all, y_all, s, reg, w, b, alpha, loss=loss, tol=tol, max_iter=max_iter)
        w, b, alpha = fit.model.w, fit.model.b, fit.dual
        fits.append(fit)
    return jax.tree_util.tree_map(lambda *a: jnp.stack(a), *fits)


def _check_common(X, y, loss, reg):
    V.check_choice(loss, "loss", LOSSES)
    X = V.as_float_array(X, "X", ndim=2)
    y = V.as_label_array(y, "y").astype(X.dtype)
    V.check_same_length(X, "X", y, "y")
    V.check_positive(reg, "reg")
    return X, y


def _select(errors, losses, wanted):
    chosen = []
    for e in np.atleast_1d(wanted):
        ok = errors >= e - 1e-12
        if ok.any():
            idx = np.where(ok)[0]
            chosen.append(int(idx[np.argmin(losses[idx])]))
        else:
            chosen.append(-1)
    return np.asarray(chosen)



def _fit_candidates(X, y, X_extra, y_extra, weights, params, wanted_errors, eval_X, eval_y, *,
                    loss, reg, tol, max_iter) -> TargetModels:
    """Fit one candidate per row of `weights` on `(X, y) ∪ (X_extra, y_extra)` in one
    vmapped call, measure each one's error on `(eval_X, eval_y)` and regularised clean
    loss, and pick per wanted error the lowest-loss candidate reaching it (the most
    damaging candidate where none does)."""
    dtype = X.dtype
    S = jnp.asarray(weights, dtype)
    X_all = jnp.concatenate([X, X_extra])
    y_all = jnp.concatenate([y, y_extra])
    models = _fit_many(X_all, y_all, S, reg, tol, loss=loss, max_iter=max_iter).model
    err = jax.vmap(lambda mdl: jnp.mean(
        jnp.where(eval_X @ mdl.w + mdl.b >= 0, 1.0, -1.0) != eval_y))(models)
    cl = jax.vmap(lambda mdl: regularized_clean_loss(mdl, X, y, loss=loss, reg=reg))(models)
    err_np, cl_np = np.asarray(err), np.asarray(cl)
    chosen = _select(err_np, cl_np, wanted_errors)
    pick = np.where(chosen >= 0, chosen, int(np.argmax(err_np)))
    targets = jax.tree_util.tree_map(lambda a: a[pick], models)
    return TargetModels(candidates=models, params=jnp.asarray(params, dtype), error=err,
                        clean_loss=cl, chosen=jnp.asarray(chosen), targets=targets,
                        wanted_error=jnp.asarray(np.atleast_1d(wanted_errors), dtype))

def indiscriminate_targets(
    X: Float[Array, "n d"], y, *, loss: str = "hinge", reg, target_errors: Sequence[float],
    quantiles: Sequence[float] = (0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5,
                                  0.55, 0.6),
    repeats: Sequence[int] = (1, 2, 3, 5, 8, 10, 12, 15, 20, 25, 30, 50, 60),
    pool_X=None, pool_y=None, eval_X=None, eval_y=None, tol: float | None = None,
    max_iter: int | None = None,
) -> TargetModels:
    """Indiscriminate target models by margin-quantile label flipping (module docstring).

    Args:
      X, y: clean training data.
      loss, reg: the victim's training problem (`fit_linear`).
      target_errors: wanted error rates on the evaluation data, e.g. `(0.05, 0.1, 0.15)`.
      quantiles, repeats: the grid (defaults: the authors' MNIST-17 grid).
      pool_X, pool_y: points whose flipped copies are added (default: the training data).
      eval_X, eval_y: data on which the error is measured (default: the pool).
    Returns:
      `TargetModels`; `targets` has one model per requested error.
    """
    X, y = _check_common(X, y, loss, reg)
    dtype = X.dtype
    pool_X = X if pool_X is None else V.as_float_array(pool_X, "pool_X", ndim=2, dtype=dtype)
    pool_y = y if pool_y is None else V.as_label_array(pool_y, "pool_y").astype(dtype)
    V.check_same_length(pool_X, "pool_X", pool_y, "pool_y")
    eval_X = pool_X if eval_X is None else V.as_float_array(eval_X, "eval_X", ndim=2,
                                                             dtype=dtype)
    eval_y = pool_y if eval_y is None else V.as_label_array(eval_y, "eval_y").astype(dtype)
    for e in np.atleast_1d(target_errors):
        V.check_in_range(e, "target_errors", 0.0, 1.0)
    tol = default_tol(loss, dtype) if tol is None else tol
    max_iter = (2000 if loss == "hinge" else 100) if max_iter is None else max_iter
    n = X.shape[0]
    ones = jnp.ones(n, dtype)
    clean = _fit_many(X, y, ones[None], reg, tol, loss=loss, max_iter=max_iter)
    w0, b0 = clean.model.w[0], clean.model.b[0]
    margins = np.asarray(pool_y * (pool_X @ w0 + b0))
    grid, weights = [], []
    for q in quantiles:
        thresh = np.quantile(margins, q)
        mask = (margins < thresh).astype(np.float64)
        for r in repeats:
            grid.append((q, r))
            weights.append(np.concatenate([np.ones(n), r * mask]))
    return _fit_candidates(X, y, pool_X, -pool_y, np.stack(weights), np.asarray(grid),
                           target_errors, eval_X, eval_y, loss=loss, reg=reg, tol=tol,
                           max_iter=max_iter)


def subpopulation_target(
    X: Float[Array, "n d"], y, subpop, *, loss: str = "hinge", reg,
    target_error: float = 1.0,
    rates: Sequence[float] = (0.03, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.7, 0.9, 1.0, 1.1,
                              1.2, 1.3, 1.4, 1.5),
    eval_X=None, eval_y=None, tol: float | None = None, max_iter: int | None = None,
) -> TargetModels:
    """Subpopulation target model by flipping the subpopulation's labels (module docstring).

    Args:
      X, y: clean training data.
      subpop: boolean mask over the rows of `X` selecting the subpopulation (one label).
      target_error: wanted error on the subpopulation (1.0: misclassify all of it).
      rates: poisoning rates (flipped weight / N) tried (default: the authors' grid).
      eval_X, eval_y: the subpopulation's evaluation points (default: the training
        subpopulation) on which the error is measured.
    Returns:
      `TargetModels` with one target.
    """
    X, y = _check_common(X, y, loss, reg)
    dtype = X.dtype
    mask = np.asarray(subpop, dtype=bool)
    if mask.shape != (X.shape[0],):
        raise ValueError(f"subpop must be a boolean mask of shape ({X.shape[0]},); got "
                         f"shape {mask.shape}")
    if not mask.any():
        raise ValueError("subpop must select at least one row")
    V.check_in_range(target_error, "target_error", 0.0, 1.0)
    tol = default_tol(loss, dtype) if tol is None else tol
    max_iter = (2000 if loss == "hinge" else 100) if max_iter is None else max_iter
    n = X.shape[0]
    idx = np.where(mask)[0]
    Xs, ys = X[idx], y[idx]
    eval_X = Xs if eval_X is None else V.as_float_array(eval_X, "eval_X", ndim=2, dtype=dtype)
    eval_y = ys if eval_y is None else V.as_label_array(eval_y, "eval_y").astype(dtype)
    clean = _fit_many(X, y, jnp.ones((1, n), dtype), reg, tol, loss=loss, max_iter=max_iter)
    w0, b0 = clean.model.w[0], clean.model.b[0]
    dist = np.abs(np.asarray(Xs @ w0 + b0)) / float(jnp.linalg.norm(w0))
    order = np.argsort(dist)
    weights = []
    for rate in rates:
        count = int(rate * n)
        base = np.ones(n)
        extra = np.zeros(idx.size)
        if count <= idx.size:
            flip = idx[order[:count]]
            base[flip] = 0.0
            extra[order[:count]] = 1.0
        else:
            base[idx] = 0.0
            extra[:] = count / idx.size
        weights.append(np.concatenate([base, extra]))
    return _fit_candidates(X, y, Xs, -ys, np.stack(weights), np.asarray(rates)[:, None],
                           [target_error], eval_X, eval_y, loss=loss, reg=reg, tol=tol,
                           max_iter=max_iter)
