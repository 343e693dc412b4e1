"""Deterministic hash partitions for Deep Partition Aggregation and Finite Aggregation.

DPA (Levine & Feizi, ICLR 2021) splits the training set into `k` disjoint parts with a
hash `h(x) in {0..k-1}` that depends only on the sample's content, so that inserting or
removing one sample changes at most one part. Finite Aggregation (Wang, Levine & Feizi,
ICML 2022) hashes into `k*d` values and places each sample in the `d` subsets
`(h(x) + s) mod kd` for `d` distinct shifts `s`; learner `j` is trained on subset `j`.

Two hashes are offered:

* `"pixel_sum"` -- the authors' hash for images: the sum of the sample's uint8 pixel
  values, modulo the number of hash values. Float input in `[0, 1]` is mapped back to
  integers with `round(255 * x)` (the authors truncate `int(255 * x)` of a float32
  `ToTensor` image, which can be off by one where 255*x is not exact; rounding is the
  intended value).
* `"bytes"` -- a general hash of the sample's bytes (BLAKE2b, 8-byte digest, read as an
  unsigned integer) modulo the number of hash values; deterministic across runs,
  machines and processes (unlike Python's `hash`) and suitable for any numeric features.

Within a part, samples are ordered by a content digest (of features and label), so the
training batches depend on the data, not on the order the samples came in (the authors
order by a lexicographic sort of label and pixels for the same purpose).

The result is a `Partition`: fixed-shape padded index rows `indices` `(parts,
max_size)` and a boolean `mask` so that all learners are trained in one program. A
part with no samples is kept (its row is all padding): its learner abstains at prediction
time, and `dpa_partition` / `fa_partition` warn about it.
"""

from __future__ import annotations

import hashlib
import random
import warnings

import equinox as eqx
import numpy as np

from jaxpoison import _validate as V
from jaxpoison._result import Result, Status

__all__ = [
    "Partition",
    "EmptyPartWarning",
    "pixel_sum_hash",
    "bytes_hash",
    "sample_hash",
    "fa_shifts",
    "dpa_partition",
    "fa_partition",
    "partition_from_assignment",
]

FA_DEFAULT_SEED = 999999999 + 208
"""Seed of the FA authors' shift draw (`random.seed(999999999+208)`), used by default."""


class EmptyPartWarning(UserWarning):
    """Some parts (subsets) of a partition received no training sample; their learners
    abstain from the vote."""


class Partition(Result):
    """Padded, fixed-shape description of which samples each base learner trains on.

    An `equinox.Module` of the library's result family (`status` is always `SUCCESS`:
    hashing cannot fail); the index arrays are NumPy arrays, built on the host.

    Attributes:
        indices: `(num_parts, max_size)` int32 sample indices into the training set;
            padding slots hold 0 and are masked out.
        mask: `(num_parts, max_size)` bool, True on real samples.
        sizes: `(num_parts,)` int number of samples per part.
        hashes: `(n,)` int hash value of each training sample (in `[0, k)` for DPA,
            `[0, k*d)` for FA).
        k: the number of DPA parts / FA's `k`.
        d: FA's spread (1 for DPA).
        shifts: `(d,)` the FA shifts (`(0,)` for DPA).
        status, iterations: `SUCCESS` / 0.
    """

    indices: np.ndarray
    mask: np.ndarray
    sizes: np.ndarray
    hashes: np.ndarray
    shifts: np.ndarray
    k: int = eqx.field(static=True)
    d: int = eqx.field(static=True)

    @property
    def num_parts(self) -> int:
        return int(self.indices.shape[0])

    @property
    def max_size(self) -> int:
        return int(self.indices.shape[1])


def _as_features(X, name: str = "X") -> np.ndarray:
    arr = np.asarray(X)
    if arr.dtype == object or arr.dtype.kind in "USV":
        raise TypeError(f"{name} must be a numeric array; got dtype {arr.dtype}")
    if arr.ndim < 1 or arr.shape[0] < 1:
        raise ValueError(f"{name} must hold at least one sample; got shape {arr.shape}")
    if arr.dtype.kind in "fc" and not np.all(np.isfinite(arr)):
        bad = int(arr.size - np.count_nonzero(np.isfinite(arr)))
        raise ValueError(f"{name} must be finite; got {bad} NaN/inf value(s)")
    return arr


def pixel_sum_hash(X, num_values: int) -> np.ndarray:
    """The DPA/FA authors' image hash: sum of uint8 pixel values mod `num_values`.

    Args:
        X: `(n, ...)` images, either integer pixel values in `[0, 255]` or floats in
            `[0, 1]` (mapped to `round(255 x)`).
        num_values: the number of hash values (`k` for DPA, `k*d` for FA).

    Returns:
        `(n,)` int64 hash values in `[0, num_values)`.
    """
    num_values = V.check_int(num_values, "num_values", low=1)
    arr = _as_features(X)
    if arr.dtype.kind in "fc":
        if arr.min() < 0 or arr.max() > 1:
            raise ValueError("X must be uint8 pixels or floats in [0, 1] for the pixel-sum "
                             f"hash; got values in [{arr.min()}, {arr.max()}]")
        pixels = np.rint(arr.astype(np.float64) * 255).astype(np.int64)
    else:
        pixels = arr.astype(np.int64)
    return pixels.reshape(pixels.shape[0], -1).sum(axis=1) % num_values


def _digests(arr: np.ndarray, extra: np.ndarray | None = None) -> np.ndarray:
    arr = np.ascontiguousarray(arr.reshape(arr.shape[0], -1))
    out = np.empty(arr.shape[0], dtype=np.uint64)
    for i in range(arr.shape[0]):
        h = hashlib.blake2b(arr[i].tobytes(), digest_size=8)
        if extra is not None:
            h.update(np.int64(extra[i]).tobytes())
        out[i] = int.from_bytes(h.digest(), "little")
    return out


def bytes_hash(X, num_values: int) -> np.ndarray:
    """A general content hash: BLAKE2b (8 bytes) of each sample's bytes mod `num_values`.

    The bytes are those of `np.asarray(X)` in C order, so the same values in the same
    dtype always hash alike (cast first if samples may arrive in different dtypes).
    """
    num_values = V.check_int(num_values, "num_values", low=1)
    arr = _as_features(X)
    return (_digests(arr) % np.uint64(num_values)).astype(np.int64)


def sample_hash(X, num_values: int, method: str = "pixel_sum") -> np.ndarray:
    """Dispatch to `pixel_sum_hash` or `bytes_hash` by `method`."""
    V.check_choice(method, "hash", ("pixel_sum", "bytes"))
    if method == "pixel_sum":
        return pixel_sum_hash(X, num_values)
    return bytes_hash(X, num_values)


def fa_shifts(k: int, d: int, *, seed: int = FA_DEFAULT_SEED) -> np.ndarray:
    """`d` distinct shifts in `[0, k*d)` drawn like the FA authors do.

    With the default seed this is Python's `random.seed(999999999 + 208)` followed by
    `random.sample(range(k*d), d)`, the draw in the authors' partition and certification
    scripts, so partitions and certificates match theirs.
    """
    k = V.check_int(k, "k", low=1)
    d = V.check_int(d, "d", low=1)
    rnd = random.Random(seed)
    return np.asarray(rnd.sample(range(k * d), d), dtype=np.int64)


def check_shifts(shifts, k: int, d: int) -> np.ndarray:
    """Validate FA shifts: exactly `d` distinct integers in `[0, k*d)`."""
    arr = np.asarray(shifts)
    if arr.ndim != 1 or arr.shape[0] != d:
        raise ValueError(f"shifts must be {d} (= d) values; got shape {arr.shape}")
    if arr.dtype.kind not in "iu":
        if arr.dtype.kind != "f" or np.any(arr != np.round(arr)):
            raise ValueError("shifts must be integers")
    arr = arr.astype(np.int64)
    if np.any(arr < 0) or np.any(arr >= k * d):
        raise ValueError(f"shifts must lie in [0, k*d) = [0, {k * d}); got {arr.tolist()}")
    if np.unique(arr).size != d:
        raise ValueError(f"shifts must be {d} distinct values; got {arr.tolist()}")
    return arr


def partition_from_assignment(assignment: list[np.ndarray] | np.ndarray, num_parts: int,
                              order_key: np.ndarray, hashes: np.ndarray, k: int, d: int,
                              shifts: np.ndarray, *, warn: bool = True) -> Partition:
    """Build the padded `Partition` from per-sample part lists.

    `assignment` is an `(n, d)` array of part indices for each sample (column `s`:
    the part given by shift `s`). Within a part, samples are sorted by `order_key`
    (ties by sample index).
    """
    assignment = np.asarray(assignment, dtype=np.int64).reshape(len(order_key), -1)
    n = assignment.shape[0]
    parts = assignment.reshape(-1)
    samples = np.repeat(np.arange(n), assignment.shape[1])
    order = np.lexsort((samples, order_key[samples], parts))
    parts, samples = parts[order], samples[order]
    sizes = np.bincount(parts, minlength=num_parts)
    max_size = max(int(sizes.max()), 1)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    slot = np.arange(parts.size) - starts[parts]
    indices = np.zeros((num_parts, max_size), dtype=np.int32)
    mask = np.zeros((num_parts, max_size), dtype=bool)
    indices[parts, slot] = samples
    mask[parts, slot] = True
    empty = int(np.sum(sizes == 0))
    if warn and empty:
        warnings.warn(f"{empty} of {num_parts} parts received no training sample; their "
                      "learners abstain from the vote (fewer hash values or more data avoid "
                      "this)", EmptyPartWarning, stacklevel=3)
    return Partition(status=np.int32(Status.SUCCESS), iterations=np.int32(0),
                     indices=indices, mask=mask, sizes=sizes.astype(np.int64),
                     hashes=np.asarray(hashes, np.int64), shifts=np.asarray(shifts, np.int64),
                     k=int(k), d=int(d))


def _check_partition_data(X, y, num_values: int, what: str):
    X = _as_features(X)
    y = np.asarray(y)
    if y.dtype == object or y.dtype.kind not in "iub":
        if y.dtype.kind != "f" or not np.all(np.isfinite(y)) or np.any(y != np.round(y)):
            raise ValueError(f"y must hold integer labels; got dtype {y.dtype}")
    if y.ndim != 1 or y.shape[0] != X.shape[0]:
        raise ValueError(f"y must be 1-D with one label per row of X ({X.shape[0]}); got "
                         f"shape {y.shape}")
    if num_values > X.shape[0]:
        raise ValueError(f"{what} must be at most the number of samples n = {X.shape[0]} "
                         f"(more hash values than samples leaves parts empty); got "
                         f"{num_values}")
    return X, y


def dpa_partition(X, y, k: int, *, hash: str = "pixel_sum", warn: bool = True) -> Partition:
    """Deep Partition Aggregation's partition: sample `i` goes to part `h(x_i) mod k`.

    Args:
        X: `(n, ...)` training features (images as uint8 or floats in `[0, 1]` for the
            `"pixel_sum"` hash; anything numeric for `"bytes"`).
        y: `(n,)` integer labels (used only to order samples within a part).
        k: number of parts, `1 <= k <= n`.
        hash: `"pixel_sum"` (the authors') or `"bytes"`.
        warn: warn with `EmptyPartWarning` if some parts are empty.

    Returns:
        A `Partition` with `k` parts.
    """
    k = V.check_int(k, "k", low=1)
    X, y = _check_partition_data(X, y, k, "k")
    h = sample_hash(X, k, hash)
    key = _digests(X, y)
    return partition_from_assignment(h[:, None], k, key, h, k, 1, np.zeros(1, np.int64),
                                     warn=warn)


def fa_partition(X, y, k: int, d: int, *, shifts=None, hash: str = "pixel_sum",
                 warn: bool = True) -> Partition:
    """Finite Aggregation's `k*d` overlapping subsets.

    Each sample gets a hash `h(x) in [0, kd)` and is placed in the `d` subsets
    `(h(x) + s) mod kd` for `s` in `shifts`; learner `j` trains on subset `j`.
    With `d = 1` and `shifts = (0,)` this is `dpa_partition`.

    Args:
        X, y: training data as in `dpa_partition`.
        k: FA's `k`, `1 <= k <= n`; there are `k*d` learners and each sample is in `d`
            of them.
        d: the spread (>= 1).
        shifts: `d` distinct integers in `[0, kd)`; default `fa_shifts` (the
            authors' seeded draw).
        hash: `"pixel_sum"` or `"bytes"`.
    """
    k = V.check_int(k, "k", low=1)
    d = V.check_int(d, "d", low=1)
    shifts = fa_shifts(k, d) if shifts is None else check_shifts(shifts, k, d)
    X, y = _check_partition_data(X, y, k, "k")
    kd = k * d
    h = sample_hash(X, kd, hash)
    assignment = (h[:, None] + shifts[None, :]) % kd
    key = _digests(X, y)
    return partition_from_assignment(assignment, kd, key, h, k, d, shifts, warn=warn)
