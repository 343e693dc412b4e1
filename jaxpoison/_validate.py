"""Input checks for the public boundary of every solver, attack and defense.

Each check raises a `ValueError` (or `TypeError` for a wrong kind of
object) whose message names the argument, what was expected and what was received.
Shape checks always run; checks on *values* (finiteness, ranges, label sets) run only
on concrete arrays and are skipped on tracers, so public functions stay usable under
`jit`, `vmap` and `grad` (where a bad value then shows up as a solver status).

Typical use at the top of a public function:

```python
X = as_float_array(X, "X", ndim=2)
y = as_label_array(y, "y", allowed=(-1, 1))
check_same_length(X, "X", y, "y")
check_positive(C, "C")
```
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxpoison._result import is_concrete

__all__ = [
    "as_float_array",
    "as_int_array",
    "as_label_array",
    "check_finite",
    "check_ndim",
    "check_shape",
    "check_same_length",
    "check_positive",
    "check_nonnegative",
    "check_in_range",
    "check_labels",
    "check_int",
    "check_choice",
    "check_less",
    "check_key",
]


def _describe(x) -> str:
    shape = getattr(x, "shape", None)
    dtype = getattr(x, "dtype", None)
    if shape is not None:
        return f"an array of shape {tuple(shape)} and dtype {dtype}"
    return f"{type(x).__name__} {x!r}"


def _to_array(x, name: str, dtype) -> jax.Array:
    if isinstance(x, jax.Array):
        return x.astype(dtype) if dtype is not None else x
    try:
        arr = np.asarray(x)
    except Exception as exc:  # pragma: no cover - numpy's own messages vary
        raise TypeError(f"{name} must be array-like; got {type(x).__name__}") from exc
    if arr.dtype == object or arr.dtype.kind in "USV":
        raise TypeError(f"{name} must be a numeric array; got {_describe(arr)}")
    return jnp.asarray(arr, dtype=dtype)


def _float_dtype(dtype):
    """The working float dtype: `dtype` canonicalised (float64 becomes float32 when
    `jax_enable_x64` is off, silently, as JAX itself does for its default dtype)."""
    if dtype is not None:
        return jax.dtypes.canonicalize_dtype(dtype)
    return jnp.float64 if jax.config.jax_enable_x64 else jnp.float32


def as_float_array(x, name: str, *, ndim: int | Sequence[int] | None = None,
                   dtype=None, finite: bool = True) -> jax.Array:
    """Convert `x` to a floating JAX array, checking its rank and (by default) finiteness.

    Integer and boolean input is promoted to the default float dtype (float64 under
    `jax_enable_x64`, else float32); floating input keeps its precision unless `dtype`
    is given.
    """
    if dtype is None and hasattr(x, "dtype") and jnp.issubdtype(x.dtype, jnp.floating):
        dtype = x.dtype
    arr = _to_array(x, name, _float_dtype(dtype))
    if ndim is not None:
        check_ndim(arr, name, ndim)
    if finite:
        check_finite(arr, name)
    return arr


def as_int_array(x, name: str, *, ndim: int | Sequence[int] | None = None) -> jax.Array:
    """Convert `x` to an integer JAX array; floats must hold whole numbers."""
    arr = x if isinstance(x, jax.Array) else np.asarray(x)
    if arr.dtype == object or arr.dtype.kind in "USV":
        raise TypeError(f"{name} must be an integer array; got {_describe(arr)}")
    if jnp.issubdtype(arr.dtype, jnp.floating) and is_concrete(arr):
        values = np.asarray(arr)
        if not np.all(np.isfinite(values)) or np.any(values != np.round(values)):
            raise ValueError(f"{name} must hold whole numbers; got non-integer values")
    arr = jnp.asarray(arr).astype(jnp.int32)
    if ndim is not None:
        check_ndim(arr, name, ndim)
    return arr


def as_label_array(y, name: str, *, allowed: Sequence[int] = (-1, 1),
                   ndim: int = 1) -> jax.Array:
    """Convert labels to an integer array and check every label is in `allowed`."""
    arr = as_int_array(y, name, ndim=ndim)
    check_labels(arr, name, allowed)
    return arr


def check_ndim(x, name: str, ndim: int | Sequence[int]) -> None:
    allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
    if jnp.ndim(x) not in allowed:
        want = " or ".join(f"{d}-D" for d in allowed)
        raise ValueError(f"{name} must be {want}; got {_describe(x)}")


def check_shape(x, name: str, shape: Sequence[int | None]) -> None:
    """Check `x.shape` against `shape`, where `None` matches any size."""
    got = tuple(jnp.shape(x))
    if len(got) != len(shape) or any(
            s is not None and s != g for s, g in zip(shape, got, strict=True)):
        want = "(" + ", ".join("any" if s is None else str(s) for s in shape) + ")"
        raise ValueError(f"{name} must have shape {want}; got {_describe(x)}")


def check_same_length(a, a_name: str, b, b_name: str, *, axis_a: int = 0,
                      axis_b: int = 0) -> None:
    """Check that `a` and `b` agree in size along the given axes."""
    na, nb = jnp.shape(a)[axis_a], jnp.shape(b)[axis_b]
    if na != nb:
        raise ValueError(
            f"{a_name} and {b_name} must have the same number of rows/entries; "
            f"got {a_name} with {na} (shape {tuple(jnp.shape(a))}) and {b_name} with {nb} "
            f"(shape {tuple(jnp.shape(b))})"
        )


def _all_finite(values) -> bool:
    """`np.all(np.isfinite(values))` in slices of the first axis, so a large matrix needs no
    full-size boolean temporary (at 4096 x 160,000 that would be 0.65 GB)."""
    if values.ndim == 0 or values.size <= 1 << 22:
        return bool(np.all(np.isfinite(values)))
    step = max(1, (1 << 22) // max(1, values.size // values.shape[0]))
    return all(bool(np.all(np.isfinite(values[i:i + step])))
               for i in range(0, values.shape[0], step))


def check_finite(x, name: str) -> None:
    if is_concrete(x):
        values = np.asarray(x)
        if values.dtype.kind in "fc" and not _all_finite(values):
            bad = int(np.size(values) - np.count_nonzero(np.isfinite(values)))
            raise ValueError(f"{name} must be finite; got {bad} NaN/inf value(s)")


def check_positive(x, name: str) -> None:
    """Check `x > 0` elementwise (and finite)."""
    if is_concrete(x):
        values = np.asarray(x, dtype=float)
        if not np.all(np.isfinite(values)) or np.any(values <= 0):
            raise ValueError(f"{name} must be positive and finite; got {_short(values)}")


def check_nonnegative(x, name: str) -> None:
    """Check `x >= 0` elementwise (and finite)."""
    if is_concrete(x):
        values = np.asarray(x, dtype=float)
        if not np.all(np.isfinite(values)) or np.any(values < 0):
            raise ValueError(f"{name} must be non-negative and finite; got {_short(values)}")


def check_in_range(x, name: str, low: float, high: float) -> None:
    """Check `low <= x <= high` elementwise."""
    if is_concrete(x):
        values = np.asarray(x, dtype=float)
        if np.any(~(values >= low)) or np.any(~(values <= high)):
            outside = values[~((values >= low) & (values <= high))]
            raise ValueError(
                f"{name} must lie in [{low}, {high}]; got {outside.size} value(s) outside, "
                f"e.g. {_short(outside)}"
            )


def check_less(a, a_name: str, b, b_name: str) -> None:
    """Check `a < b` elementwise (after broadcasting)."""
    if is_concrete(a) and is_concrete(b):
        av, bv = np.broadcast_arrays(np.asarray(a, dtype=float), np.asarray(b, dtype=float))
        if np.any(~(av < bv)):
            raise ValueError(f"{a_name} must be smaller than {b_name} everywhere; got "
                             f"{a_name}={_short(av)} and {b_name}={_short(bv)}")


def check_labels(y, name: str, allowed: Sequence[int]) -> None:
    """Check that every entry of `y` is in the label set `allowed`."""
    if is_concrete(y):
        values = np.asarray(y)
        bad = np.setdiff1d(np.unique(values), np.asarray(list(allowed)))
        if bad.size:
            raise ValueError(
                f"{name} must only contain labels {sorted(allowed)}; got also {bad[:5].tolist()}"
            )


def check_int(k, name: str, *, low: int | None = None, high: int | None = None) -> int:
    """Check that `k` is a Python/NumPy integer within `[low, high]`; return it as int."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise TypeError(f"{name} must be an integer; got {type(k).__name__} {k!r}")
    k = int(k)
    if (low is not None and k < low) or (high is not None and k > high):
        lo = "-inf" if low is None else low
        hi = "inf" if high is None else high
        raise ValueError(f"{name} must be an integer in [{lo}, {hi}]; got {k}")
    return k


def check_choice(value, name: str, choices: Sequence) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}; got {value!r}")


def check_key(key, name: str = "key") -> None:
    """Check that `key` is a JAX PRNG key (new-style or raw uint32[2])."""
    if key is None:
        raise TypeError(f"{name} is required: pass a key such as jax.random.key(0)")
    if isinstance(key, jax.Array) and jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        return
    shape = jnp.shape(key)
    dtype = getattr(key, "dtype", None)
    if dtype is None or dtype != jnp.uint32 or shape[-1:] != (2,):
        raise TypeError(f"{name} must be a JAX PRNG key (jax.random.key(seed)); got "
                        f"{_describe(key)}")


def _short(values: np.ndarray) -> str:
    flat = np.asarray(values).reshape(-1)
    if flat.size <= 4:
        return np.array2string(np.asarray(values), precision=4)
    return np.array2string(flat[:4], precision=4)[:-1] + " ...]"
