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

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from jaxpoison import _validate as V
from jaxpoison._result import Result, Status, raise_if_failed
from jaxpoison.attacks._poisoning import as_eval_data, as_labels, as_linear_model
from jaxpoison.models.linear import (
    LOSSES,
    LinearModel,
    LinearSolver,
    fit_linear,
    linear_losses,
)

__all__ = ["TargetModels", "indiscriminate_targets", "subpopulation_target"]


class TargetModels(Result):
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
      status: SUCCESS when every requested error was reached; BUDGET_EXHAUSTED when some
        was not (the grid was used up); a candidate fit's failure status otherwise.
      iterations: number of candidates fitted.
    """

    candidates: LinearModel
    params: Array
    error: Array
    clean_loss: Array
    chosen: Array
    targets: LinearModel
    wanted_error: Array

    def target(self, i: int = 0) -> LinearModel:
        """The `i`-th chosen target model."""
        return jax.tree_util.tree_map(lambda a: a[i], self.targets)


def regularized_clean_loss(model: LinearModel, X, y, *, loss: str, reg) -> Array:
    """$\\frac1N\\sum\\ell + \\frac\\lambda2(\\lVert w\\rVert^2+b^2)$ on clean data
    (jit/vmap-safe; shapes checked before tracing, values when concrete)."""
    V.check_positive(reg, "reg")
    X = V.as_float_array(X, "X", ndim=2)
    model = as_linear_model(model, "model", X.shape[1], X.dtype)
    ell = linear_losses(model, X, y, loss=loss)
    return jnp.mean(ell) + 0.5 * reg * (model.w @ model.w + model.b ** 2)


def _fit_many(X_all, y_all, S, reg, solver, *, loss):
    """Fit one model per row of weights `S`, each warm-started from the previous one
    (sequential warm starts beat a vmapped batch, whose loops run to the slowest member)."""
    fits, init = [], None
    for s in S:
        fit = fit_linear(X_all, y_all, loss=loss, reg=reg, sample_weight=s, init=init,
                         solver=solver, throw=False)
        init = fit
        fits.append(fit)
    return jax.tree_util.tree_map(lambda *a: jnp.stack(a), *fits)


def _check_common(X, y, loss, reg, solver):
    V.check_choice(loss, "loss", LOSSES)
    X = V.as_float_array(X, "X", ndim=2)
    y = as_labels(y, "y", X.dtype)
    V.check_same_length(X, "X", y, "y")
    V.check_positive(reg, "reg")
    if solver is None:
        solver = LinearSolver()
    if not isinstance(solver, LinearSolver):
        raise TypeError(f"solver must be a LinearSolver; got {type(solver).__name__}")
    return X, y, solver.resolve(loss, X.dtype)


SELECTIONS = ("ours", "authors")


def _select(errors, losses, wanted, strict=False):
    chosen = []
    for e in np.atleast_1d(wanted):
        ok = errors > e if strict else errors >= e - 1e-12
        if ok.any():
            idx = np.where(ok)[0]
            chosen.append(int(idx[np.argmin(losses[idx])]))
        else:
            chosen.append(-1)
    return np.asarray(chosen)



def _fit_candidates(X, y, X_extra, y_extra, weights, params, wanted_errors, X_eval, y_eval,
                    *, loss, reg, solver, throw, what, selection="ours") -> TargetModels:
    """Fit one candidate per row of `weights` on `(X, y) ∪ (X_extra, y_extra)` (warm
    started one after another), measure each one's error on `(X_eval, y_eval)` and
    regularised clean loss, and pick per wanted error the lowest-loss candidate reaching it
    (the most damaging candidate where none does)."""
    dtype = X.dtype
    S = jnp.asarray(weights, dtype)
    X_all = jnp.concatenate([X, X_extra])
    y_all = jnp.concatenate([y, y_extra])
    fits = _fit_many(X_all, y_all, S, reg, solver, loss=loss)
    models = fits.model
    err = jax.vmap(lambda mdl: jnp.mean(
        jnp.where(X_eval @ mdl.w + mdl.b >= 0, 1.0, -1.0) != y_eval))(models)
    if selection == "authors":  # hinge loss + lambda/2 |w|^2, the bias left out
        cl = jax.vmap(lambda mdl: jnp.mean(jnp.maximum(0.0, 1.0 - y * (X @ mdl.w + mdl.b)))
                      + 0.5 * reg * mdl.w @ mdl.w)(models)
    else:
        cl = jax.vmap(lambda mdl: regularized_clean_loss(mdl, X, y, loss=loss, reg=reg))(
            models)
    err_np, cl_np = np.asarray(err), np.asarray(cl)
    chosen = _select(err_np, cl_np, wanted_errors, strict=selection == "authors")
    pick = np.where(chosen >= 0, chosen, int(np.argmax(err_np)))
    targets = jax.tree_util.tree_map(lambda a: a[pick], models)
    fit_status = np.asarray(fits.status)
    if np.any(fit_status != Status.SUCCESS):
        status = int(fit_status[fit_status != Status.SUCCESS][0])
    elif np.any(chosen < 0):
        status = int(Status.BUDGET_EXHAUSTED)
    else:
        status = int(Status.SUCCESS)
    result = TargetModels(status=jnp.asarray(status, jnp.int32),
                          iterations=jnp.asarray(len(weights), jnp.int32),
                          candidates=models, params=jnp.asarray(params, dtype), error=err,
                          clean_loss=cl, chosen=jnp.asarray(chosen), targets=targets,
                          wanted_error=jnp.asarray(np.atleast_1d(wanted_errors), dtype))
    return raise_if_failed(result, what, throw=throw)

def indiscriminate_targets(
    X: Float[Array, "n d"], y, *, loss: str = "hinge", reg, target_errors: Sequence[float],
    quantiles: Sequence[float] = (0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5,
                                  0.55, 0.6),
    repeats: Sequence[int] = (1, 2, 3, 5, 8, 10, 12, 15, 20, 25, 30, 50, 60),
    X_pool=None, y_pool=None, X_eval=None, y_eval=None,
    solver: LinearSolver | None = None, selection: str = "ours", throw: bool = True,
) -> TargetModels:
    """Indiscriminate target models by margin-quantile label flipping (module docstring).

    Args:
      X, y: clean training data.
      loss, reg: the victim's training problem (`fit_linear`).
      target_errors: wanted error rates on the evaluation data, e.g. `(0.05, 0.1, 0.15)`,
        each in $[0, 1]$.
      quantiles, repeats: the grid (defaults: the authors' MNIST-17 grid); quantiles in
        $[0, 1]$, repeats positive integers.
      X_pool, y_pool: points whose flipped copies are added (default: the training data).
      X_eval, y_eval: data on which the error is measured (default: the pool).
      solver: `LinearSolver` for the candidate fits.
      selection: `"ours"`: per wanted error, the candidate of lowest regularised clean
        loss of the model's own kind ($\\frac1N\\sum\\ell + \\frac\\lambda2(\\lVert w
        \\rVert^2 + b^2)$) among those with error $\\ge$ the goal; `"authors"`: as the
        authors' `generate_target_theta.py`, error strictly above the goal and the score
        $\\frac1N\\sum \\text{hinge} + \\frac\\lambda2\\lVert w\\rVert^2$ (hinge loss
        for either model, no bias term). `clean_loss` holds the score used.
      throw: raise `jaxpoison.SolverError` unless every wanted error was reached
        (BUDGET_EXHAUSTED) and every fit converged. With `False`, read `status` and
        `chosen` (-1 where not reached).
    Returns:
      `TargetModels`; `targets` has one model per requested error.
    """
    X, y, solver = _check_common(X, y, loss, reg, solver)
    V.check_choice(selection, "selection", SELECTIONS)
    dtype = X.dtype
    d = X.shape[1]
    pool = as_eval_data(X_pool, y_pool, d, dtype, names=("X_pool", "y_pool"))
    pool_X, pool_y = (X, y) if pool[0] is None else pool
    ev = as_eval_data(X_eval, y_eval, d, dtype)
    X_eval, y_eval = (pool_X, pool_y) if ev[0] is None else ev
    target_errors = np.atleast_1d(np.asarray(target_errors, float))
    V.check_ndim(target_errors, "target_errors", 1)
    V.check_in_range(target_errors, "target_errors", 0.0, 1.0)
    V.check_in_range(np.asarray(quantiles, float), "quantiles", 0.0, 1.0)
    repeats = [V.check_int(r, "repeats", low=1) for r in repeats]
    if len(quantiles) == 0 or len(repeats) == 0:
        raise ValueError(f"quantiles and repeats must be non-empty; got {len(quantiles)} "
                         f"quantiles and {len(repeats)} repeats")
    n = X.shape[0]
    ones = jnp.ones(n, dtype)
    clean = fit_linear(X, y, loss=loss, reg=reg, solver=solver,
                       throw=throw).model
    w0, b0 = clean.w, clean.b
    margins = np.asarray(pool_y * (pool_X @ w0 + b0))
    grid, weights = [], []
    for q in quantiles:
        thresh = np.quantile(margins, q)
        mask = (margins < thresh).astype(np.float64)
        for r in repeats:
            grid.append((q, r))
            weights.append(np.concatenate([np.asarray(ones), r * mask]))
    return _fit_candidates(X, y, pool_X, -pool_y, np.stack(weights), np.asarray(grid),
                           target_errors, X_eval, y_eval, loss=loss, reg=reg, solver=solver,
                           throw=throw, what="indiscriminate_targets", selection=selection)


def subpopulation_target(
    X: Float[Array, "n d"], y, subpop, *, loss: str = "hinge", reg,
    target_error: float = 1.0,
    rates: Sequence[float] = (0.03, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.7, 0.9, 1.0, 1.1,
                              1.2, 1.3, 1.4, 1.5),
    X_eval=None, y_eval=None, solver: LinearSolver | None = None, selection: str = "ours",
    throw: bool = True,
) -> TargetModels:
    """Subpopulation target model by flipping the subpopulation's labels (module docstring).

    Args:
      X, y: clean training data.
      subpop: boolean mask over the rows of `X` selecting the subpopulation (one label).
      target_error: wanted error on the subpopulation (1.0: misclassify all of it).
      rates: poisoning rates (flipped weight / N) tried (default: the authors' grid),
        each positive.
      X_eval, y_eval: the subpopulation's evaluation points (default: the training
        subpopulation) on which the error is measured.
      solver: `LinearSolver` for the candidate fits.
      selection: `"ours"` or `"authors"`, as in `indiscriminate_targets`.
      throw: as in `indiscriminate_targets`.
    Returns:
      `TargetModels` with one target.
    """
    X, y, solver = _check_common(X, y, loss, reg, solver)
    V.check_choice(selection, "selection", SELECTIONS)
    dtype = X.dtype
    mask = np.asarray(subpop)
    if mask.dtype != bool:
        raise TypeError(f"subpop must be a boolean mask; got dtype {mask.dtype}")
    if mask.shape != (X.shape[0],):
        raise ValueError(f"subpop must be a boolean mask of shape ({X.shape[0]},); got "
                         f"shape {mask.shape}")
    if not mask.any():
        raise ValueError("subpop must select at least one row; got an all-False mask")
    V.check_in_range(target_error, "target_error", 0.0, 1.0)
    rates = np.asarray(rates, float)
    V.check_ndim(rates, "rates", 1)
    V.check_positive(rates, "rates")
    n = X.shape[0]
    idx = np.where(mask)[0]
    Xs, ys = X[idx], y[idx]
    ev = as_eval_data(X_eval, y_eval, X.shape[1], dtype)
    X_eval, y_eval = (Xs, ys) if ev[0] is None else ev
    clean = fit_linear(X, y, loss=loss, reg=reg, solver=solver, throw=throw).model
    w0, b0 = clean.w, clean.b
    dist = np.abs(np.asarray(Xs @ w0 + b0)) / max(float(jnp.linalg.norm(w0)), 1e-300)
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
                           [target_error], X_eval, y_eval, loss=loss, reg=reg, solver=solver,
                           throw=throw, what="subpopulation_target", selection=selection)
