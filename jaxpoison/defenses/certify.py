r"""Vote certificates against data poisoning: DPA, Finite Aggregation, kNN and rNN.

Threat model (all certificates here): the attacker inserts and/or removes training
samples; the *radius* is the number of such insertions plus removals (the size of the
symmetric difference between the clean and the poisoned training set) that provably
cannot change the prediction on a test point. A radius of `-1` marks a test point whose
(clean) prediction is already wrong, so it is not certified at any radius, and
`certified_accuracy(radii, r) = mean(radii >= r)`.

Votes and ties. `base_predictions[i, j]` is learner `j`'s class for test point `i`, an
integer in `[0, num_classes)`, or `ABSTAIN` (`-1`) for a learner that abstains (an empty
part, an rNN learner with no sample in its radius): it is dropped from the vote. Any
other value -- in particular `num_classes` itself or a vote count -- is rejected with a
`ValueError` naming `base_predictions` (on the host; under a caller's `jit`/`vmap` the
same check raises at run time through `equinox.error_if` when `throw=True`). With vote
counts $N_c$, the ensemble predicts $\arg\max_c N_c$ with ties going to the smaller
class index (as `numpy.argsort` with `kind='stable'` in the authors' code). If every
learner of a row abstains, all counts are zero and the prediction is class 0 (the
authors' behaviour).

Everything is vectorised over test points and classes and jit-compiled.
"""

from __future__ import annotations

import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Int

from jaxpoison import _validate as V
from jaxpoison._blocks import map_row_blocks
from jaxpoison._result import Result, Status, raise_if_failed
from jaxpoison.defenses.partition import check_shifts
from jaxpoison.models.learners import ABSTAIN
from jaxpoison.solvers.distances import squared_distances

__all__ = [
    "ABSTAIN",
    "Certificate",
    "vote_counts",
    "dpa_certify",
    "fa_certify",
    "knn_certify",
    "rnn_certify",
    "certified_accuracy",
    "median_certified_radius",
]


class Certificate(Result):
    """Certified radii of an ensemble (or nearest-neighbour) prediction.

    Attributes:
        radius: `(n_test,)` int, the number of insertions + removals the prediction
            provably survives; `-1` where the prediction is wrong (or abstains). The DPA
            and FA authors print `radius + 1` (the smallest attack that *might* succeed)
            as "the certificate"; we report the radius itself.
        prediction: `(n_test,)` int, the predicted class (`ABSTAIN` = -1 only for rNN).
        counts: `(n_test, num_classes)` int vote counts (abstentions dropped).
        status, iterations: always `SUCCESS` / 0 (closed-form certificates).
    """

    radius: jax.Array
    prediction: jax.Array
    counts: jax.Array


def _describe_bad(values: np.ndarray, bad: np.ndarray) -> str:
    shown = np.unique(values[bad])[:5].tolist()
    return f"{int(bad.sum())} entr{'y' if bad.sum() == 1 else 'ies'} outside, e.g. {shown}"


def _check_predictions(base_predictions, name: str, num_classes: int, *,
                       throw: bool = True) -> jax.Array:
    """`(n, k)` integer class predictions in `[0, num_classes)` or `ABSTAIN`."""
    dtype = getattr(base_predictions, "dtype", None)
    if dtype is not None and np.dtype(dtype) == np.bool_:
        raise TypeError(f"{name} must hold integer class indices; got a boolean array of "
                        f"shape {tuple(base_predictions.shape)}")
    preds = V.as_int_array(base_predictions, name, ndim=2)
    n, k = preds.shape
    if k == 0:
        raise ValueError(f"{name} must have at least one learner (one column per base "
                         f"learner); got shape {(n, k)}")
    if n == 0:
        raise ValueError(f"{name} must have at least one test point (one row per test "
                         f"point); got shape {(n, k)}")
    expected = (f"{name} must hold class indices in [0, {num_classes}) or ABSTAIN = "
                f"{ABSTAIN} (one column per base learner)")
    if V.is_concrete(preds):
        values = np.asarray(preds)
        bad = (values < ABSTAIN) | (values >= num_classes)
        if np.any(bad):
            hints = []
            if np.all(values >= 0) and k == num_classes:
                hints.append("this looks like a vote-count matrix (n_test, num_classes): pass "
                             "the per-learner predictions instead (vote_counts computes "
                             "counts)")
            if np.all(values[bad] == num_classes):
                hints.append(f"the abstain value is ABSTAIN = {ABSTAIN}, not num_classes, and "
                             "classes are 0-based")
            hint = "".join(f"; {h}" for h in hints)
            raise ValueError(f"{expected}; got {_describe_bad(values, bad)}{hint}")
    elif throw:
        preds = eqx.error_if(preds, (preds < ABSTAIN) | (preds >= num_classes),
                             f"{expected}; got a value outside")
    return preds


def _check_labels(labels, n: int, num_classes: int, name: str = "labels", *,
                  throw: bool = True) -> jax.Array:
    labels = V.as_int_array(labels, name, ndim=1)
    if labels.shape[0] != n:
        raise ValueError(f"{name} must have one entry per test point ({n}); got "
                         f"{labels.shape[0]} (shape {tuple(labels.shape)})")
    expected = f"{name} must hold classes in [0, {num_classes})"
    if V.is_concrete(labels):
        values = np.asarray(labels)
        bad = (values < 0) | (values >= num_classes)
        if np.any(bad):
            raise ValueError(f"{expected}; got {_describe_bad(values, bad)}")
    elif throw:
        labels = eqx.error_if(labels, (labels < 0) | (labels >= num_classes),
                              f"{expected}; got a value outside")
    return labels


def _done(radius, prediction, counts, what: str, throw: bool) -> Certificate:
    zeros = jnp.zeros((), jnp.int32)
    cert = Certificate(status=zeros + Status.SUCCESS, iterations=zeros, radius=radius,
                       prediction=prediction, counts=counts)
    return raise_if_failed(cert, what, throw=throw)


# elements of the (test point, learner or hash, class) arrays of one block: vote counting
# and FA damages run in row blocks of at most this size
_BLOCK_ELEMENTS = 1 << 23


def vote_counts(base_predictions: Int[Array, "n k"], num_classes: int) -> Int[Array, "n C"]:
    """`(n, num_classes)` vote counts of `(n, k)` base predictions; `ABSTAIN` dropped.

    Args:
        base_predictions: `(n, k)` classes in `[0, num_classes)` or `ABSTAIN` (-1).
        num_classes: number of classes `>= 2`.

    Returns:
        `counts[i, c]` = the number of learners voting `c` on row `i`.

    Rows are counted in blocks of at most `2**23 / (k * num_classes)`: XLA:CPU
    materialises the one-hot comparison, which at `n = 10000` test points and FA's
    `k*d = 19200` learners would otherwise take 15 GB."""
    num_classes = V.check_int(num_classes, "num_classes", low=2)
    preds = _check_predictions(base_predictions, "base_predictions", num_classes)
    return _vote_counts(preds, num_classes)


def _vote_counts(base_predictions, num_classes):
    n, k = base_predictions.shape
    rows = max(1, min(n, _BLOCK_ELEMENTS // max(k * num_classes, 1)))

    def count(p):
        return jax.nn.one_hot(p, num_classes, dtype=jnp.int32).sum(axis=1)

    if rows >= n:
        return count(base_predictions)
    return map_row_blocks(count, base_predictions, rows)


def _gaps(counts, labels, num_classes):
    """`gap[i, c] = N_y - N_c - [c < y]` for `c != y` (a large value at `c = y`)."""
    classes = jnp.arange(num_classes)
    n_y = jnp.take_along_axis(counts, labels[:, None], axis=1)
    gap = n_y - counts - (classes[None, :] < labels[:, None]).astype(counts.dtype)
    big = jnp.iinfo(counts.dtype).max // 4
    return jnp.where(classes[None, :] == labels[:, None], big, gap)


@functools.partial(jax.jit, static_argnames=("num_classes",))
def _dpa(preds, labels, num_classes):
    counts = _vote_counts(preds, num_classes)
    prediction = jnp.argmax(counts, axis=1)
    gap = _gaps(counts, prediction, num_classes).min(axis=1)
    radius = jnp.where(prediction == labels, gap // 2, -1)
    return radius, prediction, counts


def dpa_certify(base_predictions: Int[Array, "n k"], labels: Int[Array, " n"],
                num_classes: int, *, throw: bool = True) -> Certificate:
    r"""Deep Partition Aggregation certificate (Levine & Feizi, ICLR 2021, Theorem 1).

    Each inserted or removed sample lands in one part, so it changes at most one base
    learner's vote, moving the gap between the predicted class $y$ and any class
    $c$ by at most 2. With the ensemble prediction $y = \arg\max_c N_c$ (ties to
    the smaller class),

    $$
    r = \min_{c \ne y} \left\lfloor \frac{N_y - N_c - [c < y]}{2} \right\rfloor,
    $$

    attained at the runner-up (the most voted other class, ties to the smaller one). This
    is the authors' `(val - valsecond - (idxsecond <= idx)) / 2` rounded down.

    Args:
        base_predictions: `(n_test, k)` class indices in `[0, num_classes)` of the
            `k >= 1` base learners (one column each), or `ABSTAIN` (-1), dropped from the
            vote. Not vote counts: a `(n_test, num_classes)` count matrix is rejected when
            a count reaches `num_classes`.
        labels: `(n_test,)` true classes; the radius is `-1` where the ensemble is wrong.
        num_classes: number of classes `C >= 2`.
        throw: under a caller's `jit`/`vmap`, raise at run time (`equinox.error_if`) on
            out-of-range predictions or labels; on the host they always raise
            `ValueError`.

    Returns:
        A `Certificate` (`jit`/`vmap`-able; `num_classes` is static).
    """
    num_classes = V.check_int(num_classes, "num_classes", low=2)
    preds = _check_predictions(base_predictions, "base_predictions", num_classes, throw=throw)
    labels = _check_labels(labels, preds.shape[0], num_classes, throw=throw)
    return _done(*_dpa(preds, labels, num_classes), "dpa_certify", throw)


def _greedy_count(levels, gap, max_value):
    """Largest `r` with (sum of the `r` largest damages) <= `gap`.

    `levels[..., v]` is how many hash values have damage `v` (`v = 0..max_value`).
    Equivalent to sorting the damages in decreasing order and taking them while the
    remaining gap stays non-negative (the authors' `while diff - deltas[r] >= 0`).
    """
    values = jnp.arange(max_value + 1, dtype=levels.dtype)
    # counts and sums of damages strictly above each level v
    above_cnt = jnp.flip(jnp.cumsum(jnp.flip(levels, -1), -1), -1) - levels
    above_sum = jnp.flip(jnp.cumsum(jnp.flip(levels * values, -1), -1), -1) - levels * values
    rest = gap[..., None] - above_sum
    take = jnp.minimum(levels, rest // jnp.maximum(values, 1))
    cand = jnp.where((rest >= 0) & (values >= 1), above_cnt + take, -1)
    return cand.max(axis=-1)


@functools.partial(jax.jit, static_argnames=("num_classes", "d", "shifts", "chunk"))
def _fa(preds, labels, num_classes, d, shifts, chunk):
    kd = preds.shape[1]
    counts = _vote_counts(preds, num_classes)
    prediction = jnp.argmax(counts, axis=1)
    gaps = _gaps(counts, prediction, num_classes)  # (n, C)
    big = jnp.iinfo(gaps.dtype).max // 4
    levels_n = 2 * d + 1
    small = jnp.int8 if d < 127 else jnp.int32

    def one_chunk(args):
        p, y, gap = args  # (b, kd), (b,), (b, C)
        b = p.shape[0]
        onehot = (p[..., None] == jnp.arange(num_classes)).astype(small)  # abstain: all 0
        onehot = jax.lax.optimization_barrier(onehot)
        # per_hash[:, h, c] = #{s : f_{(h+s) mod kd} = c}, as d rolled copies (S(h) is a
        # fixed set of circular offsets, so a gather becomes d contiguous adds)
        per_hash = sum(jnp.roll(onehot, -s, axis=1) for s in shifts)
        own = jnp.take_along_axis(per_hash, y[:, None, None], axis=2)
        damage = (d + own - per_hash).astype(jnp.int32)  # sum_s 1 + [f=y] - [f=c]
        # histogram of the damages per (test point, class): one bincount (scatter-add)
        flat = ((jnp.arange(b, dtype=jnp.int32)[:, None, None] * num_classes
                 + jnp.arange(num_classes, dtype=jnp.int32)[None, None, :]) * levels_n
                + damage)
        levels = jnp.bincount(flat.reshape(-1), length=b * num_classes * levels_n)
        levels = levels.reshape(b, num_classes, levels_n)
        r = _greedy_count(levels, jnp.minimum(gap, kd * 2 * d + 1), 2 * d)  # (b, C)
        r = jnp.where(gap >= big, big, r)
        return r.min(axis=1)

    radius = map_row_blocks(one_chunk, (preds, prediction, gaps), chunk)
    radius = jnp.where(prediction == labels, radius, -1)
    return radius, prediction, counts


def fa_certify(base_predictions: Int[Array, "n kd"], labels: Int[Array, " n"],
               num_classes: int, *, d: int, shifts, chunk: int = 1024,
               throw: bool = True) -> Certificate:
    r"""Finite Aggregation certificate (Wang, Levine & Feizi, ICML 2022, Theorem 2).

    There are $kd$ learners; learner $j$ is trained on the samples whose hash
    $h \in [0, kd)$ satisfies $j = (h + s) \bmod kd$ for a shift $s$. A
    poisoned sample with hash $h$ can therefore affect exactly the learners
    $S(h) = \{(h + s) \bmod kd : s \in \text{shifts}\}$. Against class
    $c \ne y$ (where $y$ is the ensemble prediction, ties to the smaller
    class), the gap is $N_y - N_c - [c < y]$ and the damage of hash $h$ is

    $$
    \Delta_h = \sum_{j \in S(h)} \big(1 + [f_j = y] - [f_j = c]\big),
    $$

    an upper bound on how much corrupting all of $S(h)$ can shrink the gap. The
    radius against $c$ is the largest $r$ such that the $r$ largest
    damages sum to at most the gap (non-strict, the authors' greedy
    `while diff - deltas[r] >= 0`), and the certificate is the minimum over $c$.
    With `d = 1` it equals `dpa_certify`.

    Damages are small integers (`0..2d`), so instead of sorting each test point's
    $kd$ damages we count them per value (one scatter-add histogram) and take the
    levels from the top; this is the same number as the sorted greedy. The per-hash vote
    counts are `d` circular shifts of the one-hot votes, added in int8.

    Args:
        base_predictions: `(n_test, k*d)` class indices; column `j` is learner `j`
            (trained on subset `j` of `jaxpoison.defenses.fa_partition`), in
            `[0, num_classes)` or `ABSTAIN` (-1; an abstaining learner's damage term is 1).
        labels: `(n_test,)` true classes.
        num_classes: `C >= 2`.
        d: FA's spread; `base_predictions.shape[1]` must be divisible by `d`.
        shifts: the `d` distinct shifts in `[0, kd)` used for partitioning.
        chunk: test points processed per block; capped so that a block holds at most
            `2**23` (test point, hash, class) damages, which bounds the memory to a few
            hundred MB whatever `k*d` is (at `k*d = 19200`, ten classes: 43 points).
        throw: as in `dpa_certify`.

    Returns:
        A `Certificate`.
    """
    num_classes = V.check_int(num_classes, "num_classes", low=2)
    d = V.check_int(d, "d", low=1)
    chunk = V.check_int(chunk, "chunk", low=1)
    preds = _check_predictions(base_predictions, "base_predictions", num_classes, throw=throw)
    kd = preds.shape[1]
    if kd % d:
        raise ValueError(f"base_predictions must have k*d columns; {kd} is not divisible by "
                         f"d={d}")
    shifts = check_shifts(shifts, kd // d, d)
    labels = _check_labels(labels, preds.shape[0], num_classes, throw=throw)
    chunk = min(chunk, max(preds.shape[0], 1), max(_BLOCK_ELEMENTS // (kd * num_classes), 1))
    shifts = tuple(int(s) for s in shifts)
    return _done(*_fa(preds, labels, num_classes, d, shifts, chunk), "fa_certify", throw)


def _neighbor_setup(X_train, y_train, X_test, y_test, num_classes, throw):
    X_train = V.as_float_array(X_train, "X_train", ndim=2)
    X_test = V.as_float_array(X_test, "X_test", ndim=2, dtype=X_train.dtype)
    if X_train.shape[0] == 0:
        raise ValueError(f"X_train must have at least one row; got shape {X_train.shape}")
    if X_test.shape[0] == 0:
        raise ValueError(f"X_test must have at least one row; got shape {X_test.shape}")
    if X_test.shape[1] != X_train.shape[1]:
        raise ValueError(f"X_test must have {X_train.shape[1]} features like X_train; got "
                         f"{X_test.shape[1]} (shape {X_test.shape})")
    y_train = _check_labels(y_train, X_train.shape[0], num_classes, "y_train", throw=throw)
    y_test = _check_labels(y_test, X_test.shape[0], num_classes, "y_test", throw=throw)
    return X_train, y_train, X_test, y_test


@functools.partial(jax.jit, static_argnames=("k", "num_classes"))
def _knn(X_train, y_train, X_test, y_test, k, num_classes):
    d2 = squared_distances(X_test, X_train)
    _, idx = jax.lax.top_k(-d2, k)
    counts = _vote_counts(y_train[idx], num_classes)
    prediction = jnp.argmax(counts, axis=1)
    gap = _gaps(counts, prediction, num_classes).min(axis=1)
    radius = jnp.where(prediction == y_test, gap // 2, -1)
    return radius, prediction, counts


def knn_certify(X_train, y_train, X_test, y_test, *, k: int, num_classes: int,
                throw: bool = True) -> Certificate:
    r"""Certificate of a k-nearest-neighbour classifier (after Jia et al., AAAI 2022).

    The classifier takes the `k` training points nearest to the test point (Euclidean)
    and predicts the majority label, ties to the smaller class (`sklearn`'s
    `KNeighborsClassifier(weights='uniform')` rule). Inserting one sample can push one
    neighbour out and itself in; removing one lets the `(k+1)`-th point in: either way
    the gap $N_y - N_c$ shrinks by at most 2, so

    $$
    r = \min_{c \ne y} \lfloor (N_y - N_c - [c < y]) / 2 \rfloor,
    $$

    the DPA formula on the neighbours' label counts (Jia et al.'s kNN bound counted for
    insertions + removals). To stay valid after removals the certificate assumes at
    least `k` points remain, so it is capped at `n_train - k`.

    Args:
        X_train: `(n_train, f)` finite training features, `n_train >= 1`.
        y_train: `(n_train,)` classes in `[0, num_classes)`.
        X_test: `(n_test, f)` finite test features, `n_test >= 1`.
        y_test: `(n_test,)` true classes in `[0, num_classes)`.
        k: neighbours, `1 <= k <= n_train`.
        num_classes: `>= 2`.
        throw: as in `dpa_certify`.

    Returns:
        A `Certificate`.
    """
    num_classes = V.check_int(num_classes, "num_classes", low=2)
    X_train, y_train, X_test, y_test = _neighbor_setup(X_train, y_train, X_test, y_test,
                                                       num_classes, throw)
    k = V.check_int(k, "k", low=1, high=int(X_train.shape[0]))
    radius, prediction, counts = _knn(X_train, y_train, X_test, y_test, k, num_classes)
    radius = jnp.minimum(radius, X_train.shape[0] - k)
    return _done(radius, prediction, counts, "knn_certify", throw)


@functools.partial(jax.jit, static_argnames=("num_classes",))
def _rnn(X_train, y_train, X_test, y_test, r2, num_classes):
    d2 = squared_distances(X_test, X_train)
    inside = d2 <= r2
    onehot = jax.nn.one_hot(y_train, num_classes, dtype=jnp.int32)
    counts = inside.astype(jnp.int32) @ onehot
    empty = counts.sum(axis=1) == 0
    prediction = jnp.where(empty, ABSTAIN, jnp.argmax(counts, axis=1))
    safe = jnp.maximum(prediction, 0)
    gap = _gaps(counts, safe, num_classes).min(axis=1)
    n_y = jnp.take_along_axis(counts, safe[:, None], axis=1)[:, 0]
    radius = jnp.minimum(gap, n_y - 1)
    radius = jnp.where((prediction == y_test) & ~empty, radius, -1)
    return radius, prediction, counts


def rnn_certify(X_train, y_train, X_test, y_test, *, radius: float,
                num_classes: int, throw: bool = True) -> Certificate:
    r"""Certificate of a radius-nearest-neighbour classifier (after Jia et al., AAAI 2022).

    The classifier votes among the training points within Euclidean distance `radius`
    of the test point (ties to the smaller class) and abstains (prediction
    `ABSTAIN` = -1) when there is none. One insertion adds one vote and one removal takes
    one away, so the gap $N_y - N_c$ moves by 1 per poisoned sample (twice DPA's
    rate of robustness per vote); the prediction also stops being $y$ once all its
    $N_y$ voters are removed. Hence

    $$
    r = \min\Big(\min_{c \ne y} (N_y - N_c - [c < y]),\; N_y - 1\Big),
    $$

    and `-1` where the prediction is wrong or abstains. This bound is tight: `r + 1`
    insertions of the runner-up class (or removals of the `y` voters) change the
    prediction.

    Args:
        X_train, y_train, X_test, y_test, num_classes, throw: as in `knn_certify`.
        radius: the vote radius, positive and finite.

    Returns:
        A `Certificate`.
    """
    num_classes = V.check_int(num_classes, "num_classes", low=2)
    V.check_positive(radius, "radius")
    X_train, y_train, X_test, y_test = _neighbor_setup(X_train, y_train, X_test, y_test,
                                                       num_classes, throw)
    r2 = jnp.asarray(radius, X_train.dtype) ** 2
    return _done(*_rnn(X_train, y_train, X_test, y_test, r2, num_classes), "rnn_certify",
                 throw)


def _check_radii(radii) -> np.ndarray:
    radii = V.as_int_array(radii, "radii", ndim=1)
    if not V.is_concrete(radii):
        raise TypeError("radii must be concrete (certified_accuracy and "
                        "median_certified_radius are host-side summaries, not traceable)")
    values = np.asarray(radii)
    if values.size == 0:
        raise ValueError("radii must not be empty; got shape (0,)")
    bad = values < -1
    if np.any(bad):
        raise ValueError("radii must be certified radii >= -1 (-1 = wrong prediction); got "
                         f"{_describe_bad(values, bad)}")
    return values


def certified_accuracy(radii, radius_grid) -> np.ndarray:
    """Fraction of test points with `radius >= r` for each `r` in `radius_grid`.

    Points with radius `-1` (wrong prediction) count at no radius; at `r = 0` this is
    the ensemble's clean accuracy.

    Args:
        radii: `(n_test,)` integer radii `>= -1` (a `Certificate.radius`), not empty.
        radius_grid: an integer or a 1-D grid of non-negative integers in increasing
            order.

    Returns:
        `(len(radius_grid),)` NumPy float array.
    """
    values = _check_radii(radii)
    grid = np.atleast_1d(np.asarray(V.as_int_array(radius_grid, "radius_grid", ndim=(0, 1))))
    if grid.size == 0:
        raise ValueError("radius_grid must not be empty")
    if np.any(grid < 0):
        raise ValueError(f"radius_grid must be non-negative; got {grid[grid < 0][:5].tolist()}")
    if np.any(np.diff(grid) < 0):
        raise ValueError(f"radius_grid must be sorted in increasing order; got "
                         f"{grid[:8].tolist()}")
    return np.mean(values[None, :] >= grid[:, None], axis=1)


def median_certified_radius(radii) -> int:
    """The largest `r` such that at least half of the test points are certified at `r`
    (`-1` if fewer than half are correctly classified); the DPA papers' "median
    certified robustness" (their printed certificate is this value + 1).

    Args:
        radii: `(n_test,)` integer radii `>= -1`, not empty.
    """
    values = np.sort(_check_radii(radii))[::-1]
    need = (values.size + 1) // 2  # at least half of the points: ceil(n / 2)
    return int(values[need - 1])
