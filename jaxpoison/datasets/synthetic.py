"""Synthetic generators: Gaussian preference features and isotropic Gaussian classes."""

from __future__ import annotations

import numpy as np

__all__ = ["gaussian_preference_features", "isotropic_gaussian_classes"]


def _check_count(value, name: str, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


def gaussian_preference_features(n: int, N: int, *, seed: int = 0) -> np.ndarray:
    r"""Feature matrix $\Phi \in \mathbb{R}^{n \times N}$ with i.i.d. N(0, 1) entries.

    Row `i` is a feature direction (e.g. $\phi(x, y_w) - \phi(x, y_l)$) and column
    `j` a preference pair, the layout PCM's constraint $\Phi\theta = \Phi\theta_A$
    uses. float64.
    """
    n = _check_count(n, "n")
    N = _check_count(N, "N")
    return np.random.default_rng(seed).standard_normal((n, N))


def isotropic_gaussian_classes(N: int, d: int, *, separation: float, num_classes: int = 2,
                               seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    r"""`N` points in `d` dimensions from `num_classes` unit-variance Gaussians.

    Class means are `separation` times distinct orthonormal directions scaled by
    $1/\sqrt{2}$, so any two means are exactly `separation` apart; labels are
    balanced (class `i mod num_classes`, shuffled). With 2 classes, y is int8 in
    {-1, +1}; otherwise int64 in `0..num_classes-1`.

    Returns:
        `(X, y)` with X float64 (N, d).
    """
    N = _check_count(N, "N")
    d = _check_count(d, "d")
    num_classes = _check_count(num_classes, "num_classes", 2)
    if num_classes > d:
        raise ValueError(f"num_classes must be <= d (orthogonal means), got {num_classes} > {d}")
    separation = float(separation)
    if not np.isfinite(separation) or separation < 0:
        raise ValueError(f"separation must be finite and >= 0, got {separation!r}")
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((d, num_classes)))
    means = separation / np.sqrt(2.0) * q.T
    classes = rng.permutation(np.arange(N) % num_classes)
    X = means[classes] + rng.standard_normal((N, d))
    y = (1 - 2 * classes).astype(np.int8) if num_classes == 2 else classes.astype(np.int64)
    return X, y
