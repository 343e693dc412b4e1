r"""Fixed, data-independent feature maps for images (pure `jnp`; jit and vmap work).

A map that does not depend on the training data keeps every aggregation certificate
valid: DPA / FA certify the ensemble *as a function of the training set*, and
$x \mapsto \phi(x)$ applied to training and test points alike is part of the base
learner.

* `average_pool` -- non-overlapping $p \times p$ average pooling.
* `gaussian_blur` -- separable Gaussian smoothing with a row-normalised kernel.
* `hog` -- histograms of oriented gradients (Dalal & Triggs), the definition of
  `skimage.feature.hog` for grayscale images with L2-Hys block normalisation: the
  features the DPA authors' radius-nearest-neighbour learner compares with the
  $\ell_1$ distance.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from jaxpoison import _validate as V

__all__ = ["average_pool", "gaussian_blur", "hog"]


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


def hog(X, image_shape=(28, 28), *, orientations: int = 9, pixels_per_cell=(7, 7),
        cells_per_block=(2, 2), eps: float = 1e-5):
    r"""Histogram-of-oriented-gradients features of flattened grayscale images.

    The definition of `skimage.feature.hog(image, orientations, pixels_per_cell,
    cells_per_block, block_norm="L2-Hys")` (grayscale, no `transform_sqrt`), written in
    `jnp` so a batch of images is one vectorised program:

    1. gradients by central differences, $g_r = I_{r+1,c} - I_{r-1,c}$ and
       $g_c = I_{r,c+1} - I_{r,c-1}$, zero on the first and last row (column);
    2. magnitude $\sqrt{g_r^2 + g_c^2}$ and unsigned orientation
       $\theta = \operatorname{atan2}(g_r, g_c) \bmod 180°$;
    3. per cell of `pixels_per_cell` pixels (cells tile the image from the top left;
       leftover rows/columns are dropped) and per orientation bin
       $[180 i/o, 180 (i+1)/o)$: the sum of the magnitudes with $\theta$ in the bin,
       divided by the cell's pixel count;
    4. per block of `cells_per_block` cells (stride one cell): L2-Hys,
       $v \leftarrow v/\sqrt{\lVert v\rVert^2 + \epsilon^2}$, clipped at 0.2, renormalised
       the same way;
    5. the blocks flattened in the order (block row, block column, cell row, cell
       column, orientation).

    A fixed, data-independent map (see the module docstring).

    Args:
        X: `(n, H*W)` finite images.
        image_shape: `(H, W)`.
        orientations: number of bins $o \ge 1$.
        pixels_per_cell: `(cell_rows, cell_cols)`, each `>= 1`.
        cells_per_block: `(block_rows, block_cols)`, at most the number of cells.
        eps: the normalisation constant $\epsilon > 0$.

    Returns:
        `(n, n_blocks_row * n_blocks_col * block_rows * block_cols * orientations)`.
    """
    X, H, W = _images(X, image_shape)
    orientations = V.check_int(orientations, "orientations", low=1)
    cr, cc = (V.check_int(int(v), "pixels_per_cell", low=1) for v in pixels_per_cell)
    br, bc = (V.check_int(int(v), "cells_per_block", low=1) for v in cells_per_block)
    V.check_positive(eps, "eps")
    ncr, ncc = H // cr, W // cc
    if ncr < br or ncc < bc:
        raise ValueError(f"cells_per_block {(br, bc)} must fit in the {(ncr, ncc)} cells of "
                         f"image_shape {(H, W)} with pixels_per_cell {(cr, cc)}")
    img = X.reshape(-1, H, W)
    g_row = jnp.zeros_like(img).at[:, 1:-1, :].set(img[:, 2:, :] - img[:, :-2, :])
    g_col = jnp.zeros_like(img).at[:, :, 1:-1].set(img[:, :, 2:] - img[:, :, :-2])
    mag = jnp.hypot(g_row, g_col)
    theta = jnp.rad2deg(jnp.arctan2(g_row, g_col)) % 180
    width = 180.0 / orientations
    edges = width * np.arange(orientations + 1)
    lo = jnp.asarray(edges[:-1], X.dtype)
    hi = jnp.asarray(edges[1:], X.dtype)
    inbin = (theta[..., None] >= lo) & (theta[..., None] < hi)  # (n, H, W, o)
    weighted = jnp.where(inbin, mag[..., None], 0.0)[:, :ncr * cr, :ncc * cc]
    cells = weighted.reshape(-1, ncr, cr, ncc, cc, orientations).sum(axis=(2, 4)) / (cr * cc)
    nbr, nbc = ncr - br + 1, ncc - bc + 1
    blocks = jnp.stack([jnp.stack([cells[:, r:r + br, c:c + bc] for c in range(nbc)], axis=1)
                        for r in range(nbr)], axis=1)  # (n, nbr, nbc, br, bc, o)
    axes = (3, 4, 5)
    out = blocks / jnp.sqrt(jnp.sum(blocks**2, axis=axes, keepdims=True) + eps**2)
    out = jnp.minimum(out, 0.2)
    out = out / jnp.sqrt(jnp.sum(out**2, axis=axes, keepdims=True) + eps**2)
    return out.reshape(X.shape[0], -1)
