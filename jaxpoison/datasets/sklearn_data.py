"""Small tabular datasets bundled with scikit-learn: breast cancer and digits."""

from __future__ import annotations

import numpy as np

from jaxpoison.datasets._sources import require_module

__all__ = ["load_breast_cancer", "load_digits"]


def load_breast_cancer(*, standardize: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Wisconsin breast cancer (569 x 30), labels +1 = benign, -1 = malignant (int8).

    Same data as `sklearn.datasets.load_breast_cancer` (sklearn's target 1 = benign);
    with `standardize` each feature is scaled to zero mean and unit variance.
    """
    skd = require_module("sklearn.datasets", "pip install scikit-learn", "load_breast_cancer")
    X, y = skd.load_breast_cancer(return_X_y=True)
    X = X.astype(np.float64)
    if standardize:
        X = (X - X.mean(axis=0)) / X.std(axis=0)
    return X, (2 * y - 1).astype(np.int8)


def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 8x8 digits (1797 x 64), X scaled to [0, 1] (pixel / 16), y in 0..9."""
    skd = require_module("sklearn.datasets", "pip install scikit-learn", "load_digits")
    X, y = skd.load_digits(return_X_y=True)
    return X.astype(np.float64) / 16.0, y.astype(np.int64)
