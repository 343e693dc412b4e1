"""Helpers of the `floral-imdb-*` recipes against independent references (SciPy,
scikit-learn)."""

import numpy as np
import pytest
from scipy.spatial.distance import pdist
from sklearn.model_selection import train_test_split

from jaxpoison.experiments.floral_imdb_style import (
    authors_split,
    median_heuristic_gamma,
    median_sq_distance,
)


@pytest.mark.parametrize("n,d", [(2, 1), (7, 3), (40, 384)])
def test_median_sq_distance_matches_scipy_pdist(n, d):
    X = np.random.default_rng(n).normal(size=(n, d)) * 3.0
    ref = float(np.median(pdist(X, "sqeuclidean")))
    assert median_sq_distance(X) == pytest.approx(ref, rel=1e-10)
    assert median_heuristic_gamma(X) == pytest.approx(1.0 / ref, rel=1e-10)


def test_median_heuristic_gamma_scales_inversely_with_squared_scale():
    X = np.random.default_rng(0).normal(size=(30, 5))
    assert median_heuristic_gamma(10.0 * X) == pytest.approx(
        median_heuristic_gamma(X) / 100.0, rel=1e-10)


@pytest.mark.parametrize("bad", [np.zeros(5), np.zeros((1, 3))])
def test_median_sq_distance_rejects_fewer_than_two_rows(bad):
    with pytest.raises(ValueError, match="X must"):
        median_sq_distance(bad)


def test_median_heuristic_gamma_rejects_identical_rows():
    with pytest.raises(ValueError, match="X must"):
        median_heuristic_gamma(np.ones((4, 2)))


@pytest.mark.parametrize("n", [10, 61, 1000, 5000])
def test_authors_split_has_scikit_learn_sizes_and_is_a_partition(n):
    idx = np.arange(n)
    rest, test = train_test_split(idx, test_size=0.6, random_state=0)
    train, val = train_test_split(rest, test_size=0.2, random_state=0)
    tr, va, te = authors_split(n, seed=3)
    assert (len(tr), len(va), len(te)) == (len(train), len(val), len(test))
    assert np.array_equal(np.sort(np.concatenate([tr, va, te])), idx)


def test_authors_split_same_seed_same_split_other_seed_other_split():
    a, b, c = authors_split(100, 1), authors_split(100, 1), authors_split(100, 2)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not np.array_equal(a[0], c[0])


@pytest.mark.parametrize("kw,name", [(dict(test_size=1.0), "test_size"),
                                     (dict(val_size=0.0), "val_size")])
def test_authors_split_rejects_fractions_outside_the_open_interval(kw, name):
    with pytest.raises(ValueError, match=name):
        authors_split(100, 0, **kw)


def test_authors_split_rejects_too_few_items():
    with pytest.raises(ValueError, match="too small"):
        authors_split(2, 0)
