r"""Fixed, data-independent feature maps for images (pure `jnp`; jit and vmap work).

A map that does not depend on the training data keeps every aggregation certificate
valid: DPA / FA certify the ensemble *as a function of the training set*, and
$x \mapsto \phi(x)$ applied to training and test points alike is part of the base
learner.

* `average_pool` -- non-overlapping $p \times p$ average pooling.
* `gaussian_blur` -- separable Gaussian smoothing with a row-normalised kernel.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from jaxpoison import _validate as V

__all__ = ["average_pool", "gaussian_blur"]


def _images(X, image_shape, name="X"):
    X = V.as_float_array(X, name, ndim=2)
    H, W = (V.check_int(int(s), "image_shape", low=1) for s in image_shape)
    if H * W != X.shape[1]:
        raise ValueError(f"{name} must have image_shape {(H, W)} = {H * W} pixels per row; "
                         f"got {X.shape[1]} (shape {X.shape})")
    return X, H, W


def average_pool(X, image_shape=(28, 28), pool: int = 2):
    r"""`(n, H*W)` flattened images -> `(n, (H/p)*(W/p))` averages of $p \times p$ blocks.

    Args:
        X: `(n, H*W)` finite images, rows flattened in C order.
        image_shape: `(H, W)`, both divisible by `pool`.
        pool: block side $p \ge 1$.
    """
    X, H, W = _images(X, image_shape)
    pool = V.check_int(pool, "pool", low=1)
    if H % pool or W % pool:
        raise ValueError(f"image_shape {(H, W)} must be divisible by pool={pool}")
    n = X.shape[0]
    return X.reshape(n, H // pool, pool, W // pool, pool).mean(axis=(2, 4)).reshape(n, -1)


def _blur_matrix(side: int, sigma: float, truncate: float) -> np.ndarray:
    i = np.arange(side)
    dist = i[:, None] - i[None, :]
    B = np.exp(-0.5 * (dist / sigma) ** 2) * (np.abs(dist) <= truncate * sigma + 0.5)
    return B / B.sum(axis=1, keepdims=True)


def gaussian_blur(X, sigma: float, image_shape=(28, 28), *, truncate: float = 4.0):
    r"""Flattened images blurred by a fixed Gaussian of width `sigma` pixels.

    Separable: $X \mapsto B_H X B_W^\top$ per image with
    $(B)_{ij} \propto \exp(-(i-j)^2 / 2\sigma^2)$ for $|i - j| \le$ `truncate` $\sigma$
    (the radius `scipy.ndimage.gaussian_filter` uses, `int(truncate * sigma + 0.5)`),
    each row normalised to sum to one: inside the image this is
    `scipy.ndimage.gaussian_filter`; at the border the kernel is renormalised over
    the pixels inside (constant images stay constant).

    Args:
        X: `(n, H*W)` finite images.
        sigma: width in pixels, positive.
        image_shape: `(H, W)`.
        truncate: kernel radius in units of `sigma`, positive.
    """
    X, H, W = _images(X, image_shape)
    V.check_positive(sigma, "sigma")
    V.check_positive(truncate, "truncate")
    BH = jnp.asarray(_blur_matrix(H, float(sigma), float(truncate)), X.dtype)
    BW = jnp.asarray(_blur_matrix(W, float(sigma), float(truncate)), X.dtype)
    imgs = X.reshape(-1, H, W)
    return jnp.einsum("ij,njk,lk->nil", BH, imgs, BW).reshape(X.shape[0], -1)
