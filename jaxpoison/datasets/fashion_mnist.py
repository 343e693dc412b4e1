"""Fashion-MNIST, all 70,000 images, from Debian's `dataset-fashion-mnist` IDX files."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

from jaxpoison.datasets._containers import Split
from jaxpoison.datasets._sources import MissingSourceError, system_dir

__all__ = ["load_fashion_mnist", "FASHION_MNIST_CLASSES", "read_idx"]

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal",
                         "Shirt", "Sneaker", "Bag", "Ankle boot")
_INSTALL = "apt-get install dataset-fashion-mnist"
_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (the MNIST format), gzip-compressed or not, into an array."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _DTYPES:
        raise ValueError(f"{path} is not an IDX file (bad magic number)")
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_DTYPES[data[2]])
    array = np.frombuffer(data, dtype=dtype, offset=4 + 4 * ndim)
    if array.size != int(np.prod(shape)):
        raise ValueError(f"{path}: header says shape {shape}, file holds {array.size} values")
    return array.reshape(shape).astype(dtype.newbyteorder("="))


def _find(folder: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz"):
        if (folder / name).is_file():
            return folder / name
    raise MissingSourceError(
        f"load_fashion_mnist needs {folder / stem}[.gz], which does not exist; install it "
        f"with: {_INSTALL}")


def load_fashion_mnist(*, folder: str | os.PathLike | None = None) -> Split:
    """Fashion-MNIST (Xiao et al. 2017): 60,000 train and 10,000 test 28x28 images.

    Args:
        folder: folder holding `{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]`;
            default `/usr/share/datasets/fashion-mnist` (Debian/Ubuntu package
            `dataset-fashion-mnist`).

    Returns:
        `Split` with X uint8 (n, 28, 28) and y int64 in 0..9
        (class names in `FASHION_MNIST_CLASSES`).
    """
    root = system_dir(folder or FASHION_MNIST_DIR, _INSTALL, "load_fashion_mnist")
    parts = []
    for prefix in ("train", "t10k"):
        X = read_idx(_find(root, f"{prefix}-images-idx3-ubyte"))
        y = read_idx(_find(root, f"{prefix}-labels-idx1-ubyte")).astype(np.int64)
        parts += [X, y]
    return Split(*parts)
