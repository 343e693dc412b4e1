"""The `targeted-fashion` recipe (model-targeted poisoning at the paper's MNIST-1-7 scale on
two Fashion-MNIST classes): its data against the raw IDX files' class counts, and its
tables' layout (Table 2 of Suya et al. 2021 with n_p / N beside the paper's)."""

from __future__ import annotations

import numpy as np
import pytest

from jaxpoison.datasets import MissingSourceError, load_fashion_mnist
from jaxpoison.experiments import RecipeContext, load_recipe
from jaxpoison.experiments.targeted import FASHION_PAIR, fashion_two_class


def _raw_or_skip():
    try:
        return load_fashion_mnist()
    except MissingSourceError as exc:
        pytest.skip(str(exc))


def test_fashion_two_class_is_every_image_of_the_pair_scaled_to_the_unit_box():
    raw = _raw_or_skip()
    a, b = FASHION_PAIR
    X, y, Xte, yte = fashion_two_class()
    # every training / test image of the two classes (6,000 / 1,000 each in Fashion-MNIST)
    assert len(y) == np.isin(raw.y_train, FASHION_PAIR).sum() == 12_000
    assert len(yte) == np.isin(raw.y_test, FASHION_PAIR).sum() == 2_000
    assert X.shape == (12_000, 784) and Xte.shape == (2_000, 784)
    assert (y == 1).sum() == (raw.y_train == a).sum()
    assert (yte == -1).sum() == (raw.y_test == b).sum()
    assert X.min() >= 0.0 and X.max() <= 1.0
    # the first image of class a, pixel for pixel (uint8 / 255)
    first = np.flatnonzero(np.isin(raw.y_train, FASHION_PAIR))[0]
    np.testing.assert_array_equal(X[0], raw.X_train[first].reshape(-1) / 255.0)
    assert y[0] == (1 if raw.y_train[first] == a else -1)


def test_fashion_two_class_subsets_are_seeded_and_sized():
    _raw_or_skip()
    X1, y1, T1, _ = fashion_two_class(seed=3, n_train=300, n_test=50)
    X2, y2, T2, _ = fashion_two_class(seed=3, n_train=300, n_test=50)
    X3, _, _, _ = fashion_two_class(seed=4, n_train=300, n_test=50)
    assert X1.shape == (300, 784) and T1.shape == (50, 784)
    np.testing.assert_array_equal(X1, X2)
    np.testing.assert_array_equal(y1, y2)
    assert not np.array_equal(X1, X3)


@pytest.mark.slow
def test_quick_recipe_runs_and_its_tables_have_the_np_over_N_column(tmp_path):
    _raw_or_skip()
    rec = load_recipe("targeted-fashion")
    assert rec is not None
    rep = rec.run(RecipeContext(quick=True, seed=0, out=tmp_path, show_progress=False,
                               plotting=False))
    paper, per_seed = rep.tables
    # Table 2's layout: the paper's MNIST 1-7 row, then ours
    h = paper.headers
    assert "n_p / N" in h and "lower bound (paper's protocol)" in h
    assert [r[0] for r in paper.rows] == ["paper: MNIST 1-7",
                                          "ours: Fashion-MNIST dress-vs-bag (1 seed)"]
    prow, orow = paper.rows
    # the paper's SVM 10% row: 5,458 points of 13,007 (42.0%), bound 3,850.4 (29.6%)
    assert prow[h.index("N")] == 13007 and prow[h.index("n_p")] == 5458
    assert prow[h.index("n_p / N")] == f"{5458 / 13007:.1%}" == "42.0%"
    assert prow[h.index("lower bound / N")] == "29.6%"
    assert prow[h.index("1 n_p: KKT / ours (%)")] == "90.2 / 90.2"
    # the per-seed table carries n_p / N next to n_p, and ours matches it in percent
    hs = per_seed.headers
    (row,) = per_seed.rows
    n_p, frac = row[hs.index("n_p (ours)")], row[hs.index("n_p / N")]
    assert hs.index("n_p / N") == hs.index("n_p (ours)") + 1
    assert orow[h.index("N")] == 1000 and 1 <= n_p <= 200
    assert frac == pytest.approx(n_p / 1000)
    assert orow[h.index("n_p")] == str(n_p)
    assert orow[h.index("n_p / N")] == f"{100 * n_p / 1000:.1f}%"
    # accuracy cells: "KKT / ours" in percent, from the per-seed fractions
    kkt, ours = row[hs.index("KKT 1n_p")], row[hs.index("ours 1n_p")]
    assert orow[h.index("1 n_p: KKT / ours (%)")] == f"{100 * kkt:.1f} / {100 * ours:.1f}"
    assert all(0.0 <= float(c) <= 1.0 for c in row[hs.index("ours 0.2n_p"):])
