"""The array containers the loaders return (plain `NamedTuple`s of NumPy arrays)."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = ["Split", "MoonData", "Reviews", "PreferencePairs"]


class Split(NamedTuple):
    """A train/test split of a supervised dataset.

    `feature_names` is set by loaders whose columns have names (e.g. `load_adult`).
    """

    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    feature_names: list[str] | None = None


class MoonData(NamedTuple):
    """FLORAL's Moon data: train / validation / test splits and the authors' adversarial labels.

    `adversarial` maps `"adv_5", "adv_10", "adv_15", "adv_20", "adv_25", "adv_5_lfa",
    "adv_10_lfa", "adv_25_lfa"` to label vectors for `X_train` (int8, +-1) with the
    authors' flips applied; it is empty when the data was regenerated.
    """

    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    adversarial: dict[str, np.ndarray]
    source: str = "authors"


class Reviews(NamedTuple):
    """Review texts with binary labels (+1 = "great", -1 = "other") and product ids."""

    texts: list[str]
    labels: np.ndarray
    products: np.ndarray


class PreferencePairs(NamedTuple):
    """Pairs of review texts, `chosen` preferred over `rejected`.

    `product` is the chosen review's product id, `rejected_product` the rejected one's;
    lengths are in characters.
    """

    chosen: list[str]
    rejected: list[str]
    product: np.ndarray
    chosen_length: np.ndarray
    rejected_length: np.ndarray
    rejected_product: np.ndarray
