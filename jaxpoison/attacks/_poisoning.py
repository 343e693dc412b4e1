"""Input checks shared by the linear poisoning attacks (internal; its functions are the
documented internal core of `max_loss`, `model_targeted`, `kkt`, `gradient_poison` and
`target_models`).

Every check is a structure check before tracing (shapes, dtypes, option names) plus value
checks on concrete arrays only, so the public attack functions that call these stay usable
under `jax.jit` and `jax.vmap`.
"""

from __future__ import annotations

import jax.numpy as jnp

from jaxpoison import _validate as V
from jaxpoison.models.linear import LOSSES, LinearModel

__all__ = ["as_box", "as_linear_model", "check_poisoning_problem", "as_labels",
           "as_eval_data"]


def as_labels(y, name: str, dtype):
    """Labels in {-1, +1} as a float array of `dtype` (traced floats pass unchecked)."""
    if not V.is_concrete(y) and jnp.issubdtype(jnp.result_type(y), jnp.floating):
        y = jnp.asarray(y).astype(dtype)
        V.check_ndim(y, name, 1)
        return y
    return V.as_label_array(y, name).astype(dtype)


def as_box(lower, upper, d: int, dtype):
    """The feasible box `[lower, upper]` broadcast to `(d,)`; `lower < upper` when
    concrete."""
    lo = V.as_float_array(lower, "lower", ndim=(0, 1), dtype=dtype)
    hi = V.as_float_array(upper, "upper", ndim=(0, 1), dtype=dtype)
    for arr, name in ((lo, "lower"), (hi, "upper")):
        if arr.ndim == 1 and arr.shape[0] != d:
            raise ValueError(f"{name} must be a scalar or have shape ({d},); got shape "
                             f"{tuple(arr.shape)}")
    lo, hi = jnp.broadcast_to(lo, (d,)), jnp.broadcast_to(hi, (d,))
    V.check_less(lo, "lower", hi, "upper")
    return lo, hi


def as_linear_model(model, name: str, d: int | None = None, dtype=None) -> LinearModel:
    """`model` checked to be a finite `LinearModel` with `d` features, cast to `dtype`."""
    if not isinstance(model, LinearModel):
        raise TypeError(f"{name} must be a LinearModel; got {type(model).__name__}")
    w = V.as_float_array(model.w, f"{name}.w", ndim=1, dtype=dtype)
    b = V.as_float_array(model.b, f"{name}.b", ndim=0, dtype=dtype)
    if d is not None and w.shape[0] != d:
        raise ValueError(f"{name}.w must have shape ({d},); got shape {tuple(w.shape)}")
    return LinearModel(w, b)


def as_eval_data(X_eval, y_eval, d: int, dtype, names=("X_eval", "y_eval")):
    """Optional reporting data: both or neither; `d` columns; labels in {-1, +1}."""
    xn, yn = names
    if (X_eval is None) != (y_eval is None):
        raise ValueError(f"{xn} and {yn} must be given together; got only "
                         f"{xn if y_eval is None else yn}")
    if X_eval is None:
        return None, None
    X_eval = V.as_float_array(X_eval, xn, ndim=2, dtype=dtype)
    V.check_shape(X_eval, xn, (None, d))
    y_eval = as_labels(y_eval, yn, dtype)
    V.check_same_length(X_eval, xn, y_eval, yn)
    return X_eval, y_eval


def check_poisoning_problem(loss, X, y, target, reg, lower, upper):
    """Validate a poisoning problem's victim side: the loss name, the clean data `(X, y)`
    (both classes present when concrete), the target model (`None` when there is none),
    the regularisation and the feasible box.

    Returns `(X, y, target, lo, hi)` with `y` cast to `X`'s float dtype and the box
    broadcast to `(d,)`.
    """
    V.check_choice(loss, "loss", LOSSES)
    X = V.as_float_array(X, "X", ndim=2)
    dtype = X.dtype
    y = as_labels(y, "y", dtype)
    V.check_same_length(X, "X", y, "y")
    if X.shape[0] == 0:
        raise ValueError("X must have at least one row; got shape (0, d)")
    if V.is_concrete(y):
        counts = [int(jnp.sum(y == c)) for c in (-1, 1)]
        if min(counts) == 0:
            raise ValueError(f"y must contain both classes -1 and +1; got {counts[0]} rows "
                             f"of -1 and {counts[1]} of +1")
    d = X.shape[1]
    if target is not None:
        target = as_linear_model(target, "target", d, dtype)
    V.check_positive(reg, "reg")
    lo, hi = as_box(lower, upper, d, dtype)
    return X, y, target, lo, hi
