"""Loaders that return NumPy arrays: real data shipped by packages, and synthetic generators.

Every loader reads local files only (no network). A loader whose source package or file
is missing raises `MissingSourceError` naming the command that installs it.
Optional packages are imported inside the loaders, so importing this package is cheap.
"""

from jaxpoison.datasets._containers import MoonData as MoonData
from jaxpoison.datasets._containers import PreferencePairs as PreferencePairs
from jaxpoison.datasets._containers import Reviews as Reviews
from jaxpoison.datasets._containers import Split as Split
from jaxpoison.datasets._sources import MissingSourceError as MissingSourceError
from jaxpoison.datasets.adult import load_adult as load_adult
from jaxpoison.datasets.fashion_mnist import FASHION_MNIST_CLASSES as FASHION_MNIST_CLASSES
from jaxpoison.datasets.fashion_mnist import load_fashion_mnist as load_fashion_mnist
from jaxpoison.datasets.fashion_mnist import read_idx as read_idx
from jaxpoison.datasets.mnist import load_mnist17 as load_mnist17
from jaxpoison.datasets.mnist import load_mnist_subset as load_mnist_subset
from jaxpoison.datasets.moon import ADVERSARIAL_SETS as ADVERSARIAL_SETS
from jaxpoison.datasets.moon import load_floral_moon as load_floral_moon
from jaxpoison.datasets.reviews import load_fine_food_reviews as load_fine_food_reviews
from jaxpoison.datasets.reviews import review_preference_pairs as review_preference_pairs
from jaxpoison.datasets.sklearn_data import load_breast_cancer as load_breast_cancer
from jaxpoison.datasets.sklearn_data import load_digits as load_digits
from jaxpoison.datasets.synthetic import (
    gaussian_preference_features as gaussian_preference_features,
)
from jaxpoison.datasets.synthetic import (
    isotropic_gaussian_classes as isotropic_gaussian_classes,
)
from jaxpoison.datasets.text_embedding import EMBEDDING_DIM as EMBEDDING_DIM
from jaxpoison.datasets.text_embedding import embed_texts as embed_texts
