"""FLORAL's Moon data (Bal, Cevher, Muehlebach, ICLR 2025)."""

from __future__ import annotations

import numpy as np

from jaxpoison.datasets._containers import MoonData
from jaxpoison.datasets._sources import MissingSourceError, require_module, shared_data_file

__all__ = ["load_floral_moon", "ADVERSARIAL_SETS"]

ADVERSARIAL_SETS = ("adv_5", "adv_10", "adv_15", "adv_20", "adv_25",
                    "adv_5_lfa", "adv_10_lfa", "adv_25_lfa")
_FILE = "floral_moon.npz"
_N_TEST, _N_TRAIN, _N_VAL = 1000, 500, 500


def load_floral_moon(*, source: str = "auto", seed: int = 0) -> MoonData:
    """The 2-D Moon data of FLORAL: 500 train, 500 validation, 1000 test points.

    The points are `sklearn.datasets.make_moons(n_samples=2000, noise=0.2,
    random_state=1)`, standardised over all 2000 points (zero mean, unit variance per
    feature), labels mapped 0 -> -1, 1 -> +1 (int8).

    Args:
        source: `"authors"` reads the authors' published split and adversarial labels
            from `floral_moon.npz` (in `$JAXPOISON_SHARED_DATA` or `../shared/data`
            next to the repository); `"regenerate"` rebuilds the points with
            scikit-learn and splits them with a seeded permutation (the authors' order
            cannot be regenerated; the point set is the same); `"auto"` uses the file
            when present, else regenerates.
            `"make_moons"` draws new points per seed as the authors' replications do:
            `make_moons(2000, noise=0.2, random_state=seed)`, standardised, split by
            `sklearn.model_selection.train_test_split` (`random_state=seed`) into 1000
            test, then 500 train / 500 validation points (the published split's sizes).
        seed: permutation seed when regenerating; the data seed for `"make_moons"`.

    Returns:
        `MoonData`; `adversarial` holds the authors' flipped training labels
        (keys `ADVERSARIAL_SETS`) and is empty when regenerated.
    """
    if source not in ("auto", "authors", "regenerate", "make_moons"):
        raise ValueError("source must be 'auto', 'authors', 'regenerate' or 'make_moons'; "
                         f"got {source!r}")
    if source == "make_moons":
        return _per_seed(seed)
    if source != "regenerate":
        path = shared_data_file(_FILE)
        if path is not None:
            return _from_file(path)
        if source == "authors":
            raise MissingSourceError(
                f"load_floral_moon(source='authors') needs {_FILE}: put the authors' file in "
                "$JAXPOISON_SHARED_DATA or ../shared/data next to the repository, or use "
                "source='regenerate' (needs: pip install scikit-learn)")
    return _regenerate(seed)


def _from_file(path) -> MoonData:
    with np.load(path) as d:
        adversarial = {k: d[f"train_{k}_y"].astype(np.int8) for k in ADVERSARIAL_SETS
                       if f"train_{k}_y" in d}
        return MoonData(
            X_train=d["train_X"].astype(np.float64), y_train=d["train_y"].astype(np.int8),
            X_val=d["validation_X"].astype(np.float64),
            y_val=d["validation_y"].astype(np.int8),
            X_test=d["test_X"].astype(np.float64), y_test=d["test_y"].astype(np.int8),
            adversarial=adversarial, source="authors")


def moon_points() -> tuple[np.ndarray, np.ndarray]:
    """All 2000 standardised Moon points and their +-1 labels, in make_moons' order."""
    skd = require_module("sklearn.datasets", "pip install scikit-learn", "load_floral_moon")
    X, y = skd.make_moons(n_samples=2000, noise=0.2, random_state=1)
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    return X, (2 * y - 1).astype(np.int8)


def _regenerate(seed: int) -> MoonData:
    X, y = moon_points()
    perm = np.random.default_rng(seed).permutation(len(y))
    test, train, val = np.split(perm, [_N_TEST, _N_TEST + _N_TRAIN])
    return MoonData(X_train=X[train], y_train=y[train], X_val=X[val], y_val=y[val],
                    X_test=X[test], y_test=y[test], adversarial={}, source="regenerated")


def _per_seed(seed: int) -> MoonData:
    skd = require_module("sklearn.datasets", "pip install scikit-learn", "load_floral_moon")
    from sklearn.model_selection import train_test_split

    X, y = skd.make_moons(n_samples=_N_TEST + _N_TRAIN + _N_VAL, noise=0.2, random_state=seed)
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    y = (2 * y - 1).astype(np.int8)
    X_rest, X_test, y_rest, y_test = train_test_split(X, y, test_size=_N_TEST,
                                                      random_state=seed)
    X_train, X_val, y_train, y_val = train_test_split(X_rest, y_rest, test_size=_N_VAL,
                                                      random_state=seed)
    return MoonData(X_train=X_train, y_train=y_train, X_val=X_val, y_val=y_val,
                    X_test=X_test, y_test=y_test, adversarial={}, source="make_moons")
