"""Certificates against brute force on tiny ensembles / training sets."""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxpoison.defenses import (
    certified_accuracy,
    dpa_certify,
    fa_certify,
    knn_certify,
    median_certified_radius,
    rnn_certify,
    vote_counts,
)


def _vote(preds, C):
    """Independent plurality vote: abstain (-1) dropped, ties to the smaller class."""
    counts = [0] * C
    for p in preds:
        if 0 <= p < C:
            counts[p] += 1
    best = max(counts)
    return counts.index(best)


def _survives_vote_changes(preds, y, C, r):
    """True if no change of at most r learners' votes (to any class or abstain) moves the
    plurality away from y."""
    k = len(preds)
    for m in range(1, r + 1):
        for parts in itertools.combinations(range(k), m):
            for new in itertools.product(range(-1, C), repeat=m):
                p = list(preds)
                for j, v in zip(parts, new, strict=True):
                    p[j] = v
                if _vote(p, C) != y:
                    return False
    return True


def _random_ensembles(rng, n, k, C, acc=0.55):
    y = rng.integers(0, C, n)
    noise = rng.integers(-1, C, (n, k))  # includes the abstain label -1
    preds = np.where(rng.random((n, k)) < acc, y[:, None], noise)
    return preds, y


def test_dpa_against_brute_force(rng):
    C, k = 3, 6
    preds, y = _random_ensembles(rng, 60, k, C)
    cert = dpa_certify(preds, y, C)
    radius = np.asarray(cert.radius)
    checked = 0
    for i in range(len(y)):
        pred = _vote(preds[i], C)
        assert int(cert.prediction[i]) == pred
        if pred != y[i]:
            assert radius[i] == -1
            continue
        r = int(radius[i])
        assert _survives_vote_changes(preds[i], y[i], C, r)
        # the DPA bound is tight for vote changes: r + 1 changes break it
        assert not _survives_vote_changes(preds[i], y[i], C, r + 1)
        checked += 1
    assert checked > 10


def test_dpa_ties_and_abstain_conventions():
    # counts [2, 2, 0] -> class 0 wins the tie; the gap to class 1 is 0 -> radius 0
    # counts [0, 2, 2] with labels 1 -> radius 0; -1 abstains
    preds = np.array([[0, 0, 1, 1, -1, -1], [1, 1, 2, 2, -1, -1], [2, 2, 2, 1, -1, -1]])
    cert = dpa_certify(preds, np.array([0, 2, 2]), 3)
    np.testing.assert_array_equal(cert.prediction, [0, 1, 2])
    np.testing.assert_array_equal(cert.radius, [0, -1, 0])  # 3 - 1 - [1 < 2] = 1
    # gap 3 - 1 - [1 < 2] = 1 -> floor(1/2) = 0 against the smaller runner-up
    cert = dpa_certify(np.array([[2, 2, 2, 1]]), np.array([2]), 3)
    assert int(cert.radius[0]) == 0
    cert = dpa_certify(np.array([[1, 1, 1, 2]]), np.array([1]), 3)
    assert int(cert.radius[0]) == 1


def _fa_members(k, d, shifts):
    kd = k * d
    return [[(h + s) % kd for s in shifts] for h in range(kd)]


def _fa_brute_radius(preds, y, C, members, max_r):
    """Largest r <= max_r such that corrupting the learners of any r hash values (each set
    to any class or abstain) never changes the vote: every insertion/removal pattern."""
    kd = len(preds)
    for r in range(1, max_r + 1):
        for hs in itertools.combinations(range(kd), r):
            hit = sorted({j for h in hs for j in members[h]})
            for new in itertools.product(range(-1, C), repeat=len(hit)):
                p = list(preds)
                for j, v in zip(hit, new, strict=True):
                    p[j] = v
                if _vote(p, C) != y:
                    return r - 1
    return max_r


@pytest.mark.parametrize("k,d,shifts", [(3, 2, (0, 3)), (2, 3, (0, 1, 4))])
def test_fa_against_brute_force(rng, k, d, shifts):
    C = 3
    kd = k * d
    members = _fa_members(k, d, shifts)
    preds, y = _random_ensembles(rng, 25, kd, C, acc=0.6)
    cert = fa_certify(preds, y, C, d=d, shifts=shifts)
    radius = np.asarray(cert.radius)
    tight = 0
    for i in range(len(y)):
        if _vote(preds[i], C) != y[i]:
            assert radius[i] == -1
            continue
        r = int(radius[i])
        brute = _fa_brute_radius(preds[i], y[i], C, members, r + 1)
        assert brute >= r, (preds[i], y[i], r, brute)  # sound
        tight += brute == r
    assert tight > 0  # and tight on some points: the prediction breaks at radius + 1


def test_fa_d1_equals_dpa(rng):
    preds, y = _random_ensembles(rng, 200, 9, 4)
    fa = fa_certify(preds, y, 4, d=1, shifts=[0])
    dpa = dpa_certify(preds, y, 4)
    np.testing.assert_array_equal(fa.radius, dpa.radius)
    np.testing.assert_array_equal(fa.prediction, dpa.prediction)


@pytest.mark.parametrize("k, d, C, n, chunk", [
    (5, 4, 4, 80, 16),
    # k*d*C = 112,000: vote counting and damages run in blocks of 74 test points (the
    # memory caps), the last block padded
    (700, 16, 10, 200, 1024),
])
def test_fa_greedy_matches_sorted_greedy(rng, k, d, C, n, chunk):
    """The counting implementation equals the authors' sort-and-take greedy (written out
    here per sample, per class)."""
    shifts = np.array([0, 7, 11, 3]) if k == 5 else rng.choice(k * d, d, replace=False)
    preds, y = _random_ensembles(rng, n, k * d, C, acc=0.7)
    members = np.asarray(_fa_members(k, d, shifts))
    cert = fa_certify(preds, y, C, d=d, shifts=shifts, chunk=chunk)
    for i in range(len(y)):
        counts = np.bincount(preds[i][preds[i] >= 0], minlength=C)
        top = int(np.argmax(counts))
        if top != y[i]:
            assert cert.radius[i] == -1
            continue
        best = 10**9
        for c in range(C):
            if c == top:
                continue
            gap = counts[top] - counts[c] - (c < top)
            f = preds[i][members]
            dmg = np.sort((1 + (f == top) - (f == c)).sum(1))[::-1]
            r = 0
            while gap - dmg[r] >= 0:
                gap -= dmg[r]
                r += 1
            best = min(best, r)
        assert int(cert.radius[i]) == best


def test_certify_jit_vmap_and_float_input(rng):
    preds, y = _random_ensembles(rng, 12, 6, 3)
    ref = dpa_certify(preds, y, 3).radius
    out = jax.jit(lambda p, t: dpa_certify(p, t, 3).radius)(jnp.asarray(preds), jnp.asarray(y))
    np.testing.assert_array_equal(out, ref)
    batched = jax.vmap(lambda p, t: dpa_certify(p, t, 3).radius)(
        jnp.stack([preds, preds]), jnp.stack([y, y]))
    np.testing.assert_array_equal(batched[1], ref)
    fa = jax.jit(lambda p, t: fa_certify(p, t, 3, d=2, shifts=(0, 3)).radius)(preds, y)
    np.testing.assert_array_equal(fa, fa_certify(preds, y, 3, d=2, shifts=(0, 3)).radius)
    np.testing.assert_array_equal(dpa_certify(preds.astype(np.float32), y, 3).radius, ref)


def test_certified_accuracy_and_median():
    radii = np.array([-1, 0, 3, 5, 5, 10])
    np.testing.assert_allclose(certified_accuracy(radii, [0, 1, 5, 6, 11]),
                               [5 / 6, 4 / 6, 3 / 6, 1 / 6, 0])
    assert median_certified_radius(radii) == 5
    assert median_certified_radius(np.array([-1, -1, 2])) == -1
    assert median_certified_radius(np.array([4, 1])) == 4


def _knn_predict(Xtr, ytr, x, k, C):
    d = np.sum((Xtr - x) ** 2, 1)
    order = np.argsort(d, kind="stable")[:k]
    return _vote(ytr[order], C)


def _rnn_predict(Xtr, ytr, x, radius, C):
    inside = np.sum((Xtr - x) ** 2, 1) <= radius**2
    if not inside.any():
        return -1  # ABSTAIN
    return _vote(ytr[inside], C)


def _neighbor_brute(predict, Xtr, ytr, x, y, C, r):
    """Every combination of removals and insertions (at the test point, any label) of total
    size <= r keeps the prediction y."""
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


def test_knn_matches_sklearn_and_is_sound(rng):
    from sklearn.neighbors import KNeighborsClassifier

    C, k = 3, 5
    Xtr = rng.normal(size=(9, 2))
    ytr = rng.integers(0, C, 9)
    Xte = rng.normal(size=(15, 2))
    clf = KNeighborsClassifier(n_neighbors=k).fit(Xtr, ytr)
    yte = clf.predict(Xte)
    yte[:3] = (yte[:3] + 1) % C  # some wrong predictions
    cert = knn_certify(Xtr, ytr, Xte, yte, k=k, num_classes=C)
    np.testing.assert_array_equal(cert.prediction, clf.predict(Xte))
    for i in range(len(Xte)):
        r = int(cert.radius[i])
        if r < 0:
            assert cert.prediction[i] != yte[i]
            continue
        pred = lambda X2, y2, x: _knn_predict(X2, y2, x, min(k, len(y2)), C)  # noqa: E731
        assert _neighbor_brute(pred, Xtr, ytr, Xte[i], yte[i], C, r)


def test_rnn_sound_and_tight(rng):
    C, radius = 3, 1.0
    Xtr = rng.normal(scale=0.6, size=(8, 2))
    ytr = rng.integers(0, C, 8)
    Xte = rng.normal(scale=0.6, size=(12, 2))
    pred = lambda X2, y2, x: _rnn_predict(X2, y2, x, radius, C)  # noqa: E731
    yte = np.array([pred(Xtr, ytr, x) for x in Xte]) % C
    cert = rnn_certify(Xtr, ytr, Xte, yte, radius=radius, num_classes=C)
    n_checked = 0
    for i in range(len(Xte)):
        r = int(cert.radius[i])
        if r < 0:
            continue
        n_checked += 1
        assert _neighbor_brute(pred, Xtr, ytr, Xte[i], yte[i], C, r)
        assert not _neighbor_brute(pred, Xtr, ytr, Xte[i], yte[i], C, r + 1)
    assert n_checked >= 3


def test_bad_inputs():
    preds = np.array([[0, 1, 2]])
    with pytest.raises(ValueError, match="base_predictions"):
        dpa_certify(np.array([[0, 5, 1]]), [0], 3)
    with pytest.raises(ValueError, match="base_predictions"):
        dpa_certify(np.array([[0, -2, 1]]), [0], 3)
    with pytest.raises(ValueError, match="labels"):
        dpa_certify(preds, [3], 3)
    with pytest.raises(ValueError, match="num_classes"):
        dpa_certify(preds, [0], 1)
    with pytest.raises(ValueError, match="shifts"):
        fa_certify(np.zeros((1, 6), int), [0], 3, d=2, shifts=(1, 1))
    with pytest.raises(ValueError, match="shifts"):
        fa_certify(np.zeros((1, 6), int), [0], 3, d=2, shifts=(0, 6))
    with pytest.raises(ValueError, match="shifts"):
        fa_certify(np.zeros((1, 6), int), [0], 3, d=2, shifts=(0,))
    with pytest.raises(ValueError, match="divisible"):
        fa_certify(np.zeros((1, 5), int), [0], 3, d=2, shifts=(0, 1))
    with pytest.raises(ValueError, match="X_train"):
        knn_certify(np.array([[np.nan, 0.0]]), [0], np.zeros((1, 2)), [0], k=1, num_classes=2)
    with pytest.raises(ValueError, match="k"):
        knn_certify(np.zeros((2, 2)), [0, 1], np.zeros((1, 2)), [0], k=3, num_classes=2)


def test_bad_inputs_issue11():
    """Issue 11: out-of-range classes, zero learners and vote-count matrices are errors."""
    y = np.array([0, 1])
    # class == num_classes is not an abstain value any more
    with pytest.raises(ValueError, match=r"base_predictions.*ABSTAIN = -1.*0-based"):
        dpa_certify(np.array([[0, 3, 1], [1, 1, 3]]), y, 3)
    with pytest.raises(ValueError, match="base_predictions"):
        fa_certify(np.array([[0, 3, 1, 1], [1, 1, 0, 0]]), y, 3, d=2, shifts=(0, 1))
    # zero learners / zero test points
    with pytest.raises(ValueError, match="at least one learner"):
        dpa_certify(np.zeros((2, 0), int), y, 3)
    with pytest.raises(ValueError, match="at least one learner"):
        fa_certify(np.zeros((2, 0), int), y, 3, d=1, shifts=(0,))
    with pytest.raises(ValueError, match="at least one test point"):
        dpa_certify(np.zeros((0, 4), int), np.zeros(0, int), 3)
    # a vote-count matrix (n, num_classes) where predictions are expected
    preds = np.array([[0, 0, 0, 1, 2, 2, 0], [1, 1, 2, 2, 2, 0, 2]])
    counts = np.asarray(vote_counts(preds, 3))
    np.testing.assert_array_equal(counts, [[4, 1, 2], [1, 2, 4]])
    with pytest.raises(ValueError, match="vote-count matrix"):
        dpa_certify(counts, y, 3)
    with pytest.raises(TypeError, match="base_predictions"):
        dpa_certify(np.ones((2, 3), bool), y, 3)
    with pytest.raises(ValueError, match="whole numbers"):
        dpa_certify(preds + 0.5, y, 3)
    with pytest.raises(ValueError, match="labels must have one entry"):
        dpa_certify(preds, [0], 3)
    # under jit the range check raises at run time
    f = jax.jit(lambda p, t: dpa_certify(p, t, 3).radius)
    with pytest.raises(Exception, match="base_predictions"):
        jax.block_until_ready(f(jnp.asarray([[0, 3, 1]]), jnp.asarray([0])))
    assert int(jax.jit(lambda p, t: dpa_certify(p, t, 3, throw=False).radius)(
        jnp.asarray([[0, 0, 1]]), jnp.asarray([0]))[0]) == 0
    # radius grid and radii
    radii = np.array([-1, 0, 3])
    with pytest.raises(ValueError, match="radius_grid must be non-negative"):
        certified_accuracy(radii, [-1, 0])
    with pytest.raises(ValueError, match="radius_grid must be sorted"):
        certified_accuracy(radii, [0, 5, 2])
    with pytest.raises(ValueError, match="radii must be certified radii >= -1"):
        certified_accuracy(np.array([-2, 0]), [0])
    with pytest.raises(ValueError, match="radii must not be empty"):
        median_certified_radius(np.zeros(0, int))
    with pytest.raises(ValueError, match="radii"):
        median_certified_radius(np.array([-3, 1]))
    # neighbours
    Z = np.zeros((2, 2))
    with pytest.raises(ValueError, match="y_train"):
        knn_certify(Z, [0, 2], Z[:1], [0], k=1, num_classes=2)
    with pytest.raises(ValueError, match="y_test"):
        rnn_certify(Z, [0, 1], Z[:1], [5], radius=1.0, num_classes=2)
    with pytest.raises(ValueError, match="X_train must have at least one row"):
        knn_certify(np.zeros((0, 2)), np.zeros(0, int), Z[:1], [0], k=1, num_classes=2)
    with pytest.raises(ValueError, match="radius"):
        rnn_certify(Z, [0, 1], Z[:1], [0], radius=-1.0, num_classes=2)
    with pytest.raises(ValueError, match="X_test must have 2 features"):
        rnn_certify(Z, [0, 1], np.zeros((1, 3)), [0], radius=1.0, num_classes=2)
