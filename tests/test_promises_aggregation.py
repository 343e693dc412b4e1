"""Property-based promises of the aggregation area (DPA / FA / kNN / rNN certificates,
partitions, ensembles, lethal-dose theory), stated with hypothesis and checked against
brute force.

Promises:

* bad input -> `ValueError` / `TypeError` naming the argument (predictions with a class
  outside `[0, num_classes)` other than `ABSTAIN`, labels out of range, negative or
  unsorted radius grids, `k` outside `[1, n]`, theory arguments out of range);
* every certificate is sound against brute force on tiny cases: no set of insertions /
  removals of the certified size changes the prediction, and for DPA (vote changes)
  and rNN the bound is tight (`radius + 1` changes can);
* float32 and float64 give identical certificates (integer-valued features, where both
  precisions compute the distances exactly) and theory values agreeing to 1e-6;
* the same key gives the same result (training: marked slow); `dpa_certify` /
  `fa_certify` run under `jax.jit` and `jax.vmap` with the eager result.

Examples per property: `AGG_EXAMPLES` (default 25, set the environment variable
`JAXPOISON_HYPOTHESIS_EXAMPLES` to change it); the brute-force properties run a third of
that.
"""

from __future__ import annotations

import itertools
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from jaxpoison.defenses import (
    ABSTAIN,
    certified_accuracy,
    dpa_certify,
    dpa_partition,
    fa_certify,
    fa_partition,
    knn_certify,
    median_certified_radius,
    rnn_certify,
    vote_counts,
)
from jaxpoison.theory import (
    bijection_accuracy,
    bijection_accuracy_bound,
    gaussian_delta,
    gaussian_tv,
    memorization_accuracy,
    simulate_bijection,
)

AGG_EXAMPLES = int(os.environ.get("JAXPOISON_HYPOTHESIS_EXAMPLES", "25"))
PROFILE = settings(max_examples=AGG_EXAMPLES, deadline=None, derandomize=True,
                   suppress_health_check=[HealthCheck.too_slow,
                                          HealthCheck.function_scoped_fixture])
BRUTE = settings(PROFILE, max_examples=max(AGG_EXAMPLES // 3, 5))


def _vote(preds, C):
    counts = [0] * C
    for p in preds:
        if 0 <= p < C:
            counts[p] += 1
    return counts.index(max(counts))


@st.composite
def ensembles(draw, max_k=6, max_n=4, max_C=4):
    C = draw(st.integers(2, max_C))
    k = draw(st.integers(1, max_k))
    n = draw(st.integers(1, max_n))
    preds = draw(arrays(np.int64, (n, k), elements=st.integers(ABSTAIN, C - 1)))
    labels = draw(arrays(np.int64, (n,), elements=st.integers(0, C - 1)))
    return preds, labels, C


# ------------------------------------------------------------------------ bad input


@PROFILE
@given(ensembles(), st.data())
def test_out_of_range_predictions_are_named_errors(ens, data):
    preds, labels, C = ens
    i = data.draw(st.integers(0, preds.shape[0] - 1))
    j = data.draw(st.integers(0, preds.shape[1] - 1))
    bad = data.draw(st.one_of(st.integers(C, C + 50), st.integers(-50, ABSTAIN - 1)))
    preds = preds.copy()
    preds[i, j] = bad
    with pytest.raises(ValueError, match="base_predictions"):
        dpa_certify(preds, labels, C)
    with pytest.raises(ValueError, match="base_predictions"):
        fa_certify(preds, labels, C, d=1, shifts=[0])
    with pytest.raises(ValueError, match="base_predictions"):
        vote_counts(preds, C)


@PROFILE
@given(ensembles(), st.data())
def test_bad_labels_and_num_classes(ens, data):
    preds, labels, C = ens
    labels = labels.copy()
    labels[data.draw(st.integers(0, len(labels) - 1))] = data.draw(
        st.one_of(st.integers(C, C + 9), st.integers(-9, -1)))
    with pytest.raises(ValueError, match="labels"):
        dpa_certify(preds, labels, C)
    with pytest.raises(ValueError, match="num_classes"):
        dpa_certify(preds, np.zeros(len(labels), int), data.draw(st.integers(-3, 1)))
    with pytest.raises(ValueError, match="labels must have one entry"):
        dpa_certify(preds, np.zeros(len(labels) + 1, int), C)


@PROFILE
@given(st.integers(2, 6), st.sampled_from([1, 3, 10, 40]))
def test_vote_count_matrices_are_rejected(C, k):
    rng = np.random.default_rng(C * 100 + k)
    preds = rng.integers(0, C, (5, k))
    counts = np.asarray(vote_counts(preds, C))
    np.testing.assert_array_equal(counts.sum(1), k)
    if counts.max() >= C:  # detectable: some count reaches num_classes
        with pytest.raises(ValueError, match="vote-count matrix"):
            dpa_certify(counts, np.zeros(5, int), C)


@PROFILE
@given(arrays(np.int64, st.integers(1, 8), elements=st.integers(-1, 20)),
       arrays(np.int64, st.integers(1, 6), elements=st.integers(-5, 30)))
def test_radius_grid_checks_and_certified_accuracy_definition(radii, grid):
    if np.any(grid < 0):
        with pytest.raises(ValueError, match="radius_grid must be non-negative"):
            certified_accuracy(radii, grid)
    elif np.any(np.diff(grid) < 0):
        with pytest.raises(ValueError, match="radius_grid must be sorted"):
            certified_accuracy(radii, grid)
    else:
        acc = certified_accuracy(radii, grid)
        np.testing.assert_allclose(acc, [np.mean(radii >= r) for r in grid])
        assert np.all(np.diff(acc) <= 0)
    # median: the largest r with at least half of the points certified at r
    med = median_certified_radius(radii)
    assert np.mean(radii >= med) >= 0.5
    assert np.mean(radii >= med + 1) < 0.5


@PROFILE
@given(st.integers(1, 30), st.integers(-3, 40))
def test_partition_k_range(n, k):
    rng = np.random.default_rng(n)
    X = rng.random((n, 4))
    y = rng.integers(0, 3, n)
    if 1 <= k <= n:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            part = dpa_partition(X, y, k, hash="bytes")
            fa = fa_partition(X, y, k, 2, hash="bytes")
        assert part.num_parts == k and int(part.sizes.sum()) == n
        assert int(fa.sizes.sum()) == 2 * n  # every sample in d = 2 subsets
        members = np.zeros(n, int)
        np.add.at(members, part.indices[part.mask], 1)
        assert np.all(members == 1)
    else:
        with pytest.raises(ValueError, match="k"):
            dpa_partition(X, y, k, hash="bytes")


# ---------------------------------------------------------- soundness (brute force)


def _survives(preds, y, C, r, groups):
    """No corruption of the learners of any r groups (each learner set to any class or
    abstain) changes the plurality away from y."""
    for m in range(1, r + 1):
        for gs in itertools.combinations(range(len(groups)), m):
            hit = sorted({j for g in gs for j in groups[g]})
            for new in itertools.product(range(-1, C), repeat=len(hit)):
                p = list(preds)
                for j, v in zip(hit, new, strict=True):
                    p[j] = v
                if _vote(p, C) != y:
                    return False
    return True


@BRUTE
@given(ensembles(max_k=5, max_n=3, max_C=3))
def test_dpa_sound_and_tight_against_brute_force(ens):
    preds, labels, C = ens
    cert = dpa_certify(preds, labels, C)
    groups = [[j] for j in range(preds.shape[1])]  # one sample touches one part
    for i in range(len(labels)):
        r = int(cert.radius[i])
        assert int(cert.prediction[i]) == _vote(preds[i], C)
        if _vote(preds[i], C) != labels[i]:
            assert r == -1
            continue
        assert _survives(preds[i], labels[i], C, r, groups)
        assert not _survives(preds[i], labels[i], C, r + 1, groups)  # tight


@BRUTE
@given(st.sampled_from([(2, 2, (0, 3)), (3, 2, (1, 4)), (2, 3, (0, 2, 5)), (4, 1, (0,))]),
       st.data())
def test_fa_sound_against_brute_force(kds, data):
    k, d, shifts = kds
    kd = k * d
    C = data.draw(st.integers(2, 3))
    preds = data.draw(arrays(np.int64, (2, kd), elements=st.integers(ABSTAIN, C - 1)))
    labels = np.array([_vote(p, C) for p in preds])  # certify the predicted class
    cert = fa_certify(preds, labels, C, d=d, shifts=shifts)
    groups = [[(h + s) % kd for s in shifts] for h in range(kd)]  # hash h touches these
    for i in range(2):
        r = int(cert.radius[i])
        assert r >= 0
        if r <= 2:
            assert _survives(preds[i], labels[i], C, r, groups)


def _neighbour_survives(predict, Xtr, ytr, x, y, C, r):
    n = len(ytr)
    for m in range(r + 1):
        for rem in itertools.combinations(range(n), m):
            keep = np.setdiff1d(np.arange(n), rem)
            for ins in itertools.combinations_with_replacement(range(C), r - m):
                X2 = np.concatenate([Xtr[keep], np.repeat(x[None], len(ins), 0)])
                y2 = np.concatenate([ytr[keep], np.asarray(ins, int)])
                if len(y2) == 0 or predict(X2, y2, x) != y:
                    return False
    return True


def _knn_predict(k, C):
    def predict(X2, y2, x):
        d = np.sum((X2 - x) ** 2, 1)
        return _vote(y2[np.argsort(d, kind="stable")[:min(k, len(y2))]], C)
    return predict


def _rnn_predict(radius, C):
    def predict(X2, y2, x):
        inside = np.sum((X2 - x) ** 2, 1) <= radius**2
        return _vote(y2[inside], C) if inside.any() else ABSTAIN
    return predict


@BRUTE
@given(st.integers(0, 10**6), st.integers(1, 3), st.integers(2, 3))
def test_knn_and_rnn_sound_against_brute_force(seed, k, C):
    rng = np.random.default_rng(seed)
    n = 6
    Xtr = rng.normal(scale=0.7, size=(n, 2))
    ytr = rng.integers(0, C, n)
    Xte = rng.normal(scale=0.7, size=(3, 2))
    knn = _knn_predict(k, C)
    yte = np.array([knn(Xtr, ytr, x) for x in Xte])
    cert = knn_certify(Xtr, ytr, Xte, yte, k=k, num_classes=C)
    for i in range(3):
        r = int(cert.radius[i])
        assert r >= 0 and int(cert.prediction[i]) == yte[i]
        if r <= 2:
            assert _neighbour_survives(knn, Xtr, ytr, Xte[i], yte[i], C, r)
    rnn = _rnn_predict(1.0, C)
    yte = np.array([rnn(Xtr, ytr, x) for x in Xte])
    cert = rnn_certify(Xtr, ytr, Xte, np.maximum(yte, 0), radius=1.0, num_classes=C)
    np.testing.assert_array_equal(cert.prediction, yte)
    for i in range(3):
        r = int(cert.radius[i])
        if r < 0:
            assert yte[i] == ABSTAIN  # the label is the prediction elsewhere
            continue
        if r <= 2:
            assert _neighbour_survives(rnn, Xtr, ytr, Xte[i], yte[i], C, r)
            assert not _neighbour_survives(rnn, Xtr, ytr, Xte[i], yte[i], C, r + 1)  # tight


# ------------------------------------------------------------- precision and jit


@PROFILE
@given(st.integers(0, 10**6), st.integers(1, 3), st.integers(2, 3))
def test_float32_and_float64_certificates_identical(seed, k, C):
    rng = np.random.default_rng(seed)
    Xtr = rng.integers(-4, 5, (12, 3)).astype(np.float64)  # exact in both precisions
    ytr = rng.integers(0, C, 12)
    Xte = rng.integers(-4, 5, (5, 3)).astype(np.float64)
    yte = rng.integers(0, C, 5)
    for fn, kw in ((knn_certify, dict(k=k)), (rnn_certify, dict(radius=2.5))):
        a = fn(Xtr, ytr, Xte, yte, num_classes=C, **kw)
        with jax.enable_x64(False):
            b = fn(Xtr.astype(np.float32), ytr, Xte.astype(np.float32), yte, num_classes=C,
                   **kw)
            assert b.radius.dtype == jnp.int32
        np.testing.assert_array_equal(a.radius, b.radius)
        np.testing.assert_array_equal(a.prediction, b.prediction)
    preds = rng.integers(-1, C, (6, 8))
    a = dpa_certify(preds, yte[:1].repeat(6), C)
    b = dpa_certify(preds.astype(np.float32), yte[:1].repeat(6), C)
    np.testing.assert_array_equal(a.radius, b.radius)


@PROFILE
@given(st.floats(0, 5), st.floats(0, 5))
def test_theory_float32_matches_float64_and_bounds_hold(a, b):
    d1, d2 = min(a, b), max(a, b)
    ref = float(gaussian_delta(np.float64(d1), np.float64(d2)))
    with jax.enable_x64(False):
        got = gaussian_delta(np.float32(d1), np.float32(d2))
        assert got.dtype == jnp.float32
        assert 0.0 <= float(got) <= 1.0
        tv32 = float(gaussian_tv(np.float32(d2 - d1)))
    assert abs(float(got) - ref) <= 1e-6
    assert abs(tv32 - ref) <= 1e-6
    n, k = int(a * 4), 2 + int(b)
    exact = bijection_accuracy(n, k)
    with jax.enable_x64(False):
        bound32 = float(bijection_accuracy_bound(n, k))
        mem32 = float(memorization_accuracy(n, 3, k))
    assert exact <= bound32 + 1e-6
    assert abs(mem32 - float(memorization_accuracy(n, 3, k))) <= 1e-6


_JIT_DPA = jax.jit(dpa_certify, static_argnums=2)
_JIT_FA = jax.jit(lambda p, t, C: fa_certify(p, t, C, d=2, shifts=(0, 3)), static_argnums=2)
_VMAP_DPA = jax.jit(jax.vmap(dpa_certify, in_axes=(0, 0, None)), static_argnums=2)


@PROFILE
@given(st.integers(2, 3), st.data())
def test_jit_and_vmap_equal_eager(C, data):
    """Fixed shapes (4 test points, 6 learners) so the compiled programs are reused."""
    preds = data.draw(arrays(np.int64, (2, 4, 6), elements=st.integers(ABSTAIN, C - 1)))
    labels = data.draw(arrays(np.int64, (2, 4), elements=st.integers(0, C - 1)))
    ref = dpa_certify(preds[0], labels[0], C)
    np.testing.assert_array_equal(_JIT_DPA(preds[0], labels[0], C).radius, ref.radius)
    batched = _VMAP_DPA(preds, labels, C)
    np.testing.assert_array_equal(batched.radius[0], ref.radius)
    np.testing.assert_array_equal(batched.radius[1], dpa_certify(preds[1], labels[1], C).radius)
    np.testing.assert_array_equal(_JIT_FA(preds[0], labels[0], C).radius,
                                  fa_certify(preds[0], labels[0], C, d=2, shifts=(0, 3)).radius)


def test_same_key_same_simulation():
    s1 = simulate_bijection(jax.random.key(5), 4, 6, trials=500)
    s2 = simulate_bijection(jax.random.key(5), 4, 6, trials=500)
    assert float(s1.accuracy) == float(s2.accuracy)


@pytest.mark.slow
def test_same_key_same_ensemble():
    from sklearn.datasets import load_digits

    from jaxpoison.defenses import ensemble_predict, train_ensemble
    from jaxpoison.models import SoftmaxRegression

    X, y = load_digits(return_X_y=True)
    X, y = X[:60] / 16.0, y[:60]
    part = dpa_partition(X, y, 3)
    learner = SoftmaxRegression(10, 64, reg=1e-3)
    runs = [train_ensemble(learner, X, y, part, key=jax.random.key(3), epochs=2)
            for _ in range(2)]
    for a, b in zip(jax.tree_util.tree_leaves(runs[0].params),
                    jax.tree_util.tree_leaves(runs[1].params), strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(ensemble_predict(learner, runs[0], X),
                                  ensemble_predict(learner, runs[1], X))
