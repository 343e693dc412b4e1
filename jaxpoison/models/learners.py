r"""Base learners for partition aggregation (DPA / Finite Aggregation).

A base learner here is a small, stateless `equinox.Module` holding only its
hyperparameters (hashable, so it is a static argument of `jit`); its parameters live in
a separate pytree. Every learner of an ensemble is trained by the same pure function
`fit_part` on its own part of the data, given as a padded index row and a mask, so
`jax.vmap(fit_part)` trains all parts in one compiled program (see
`jaxpoison.defenses.train_ensemble`, which also shards the parts across devices).

Training problem of part $j$ with samples $I_j$ (mini-batches $B$):

$$
\min_\theta \; \frac{1}{|B|} \sum_{i \in B} \mathrm{CE}(f_\theta(x_i), y_i)
+ \frac{\lambda}{2} \lVert W \rVert_2^2
$$

with the mean over the *real* samples of each padded batch (the mask), an optax
optimiser, and a step skipped entirely (parameters and optimiser state unchanged) when a
batch holds no real sample, so padding never moves a learner.

Learners:

* `SoftmaxRegression` -- multinomial logistic regression (weights start at zero);
  full-batch it solves the problem of `sklearn.linear_model.LogisticRegression(C=1/(n
  \lambda))` (intercept not penalised).
* `MLP` -- one or more ReLU hidden layers (`equinox.nn.MLP`).
* `SmallCNN` -- two 3x3 convolutions with max-pooling and a linear head, for
  `(H, W)` single-channel images given flattened.
* `KNearestNeighbors` / `RadiusNearestNeighbors` -- no training; they vote
  among the part's samples at prediction time (`predict_neighbors`); the radius
  learner abstains when no sample of its part is within the radius.

A learner that abstains (an empty part, or an rNN learner with no sample in its radius)
predicts `ABSTAIN` (`-1`), the one abstain value the certificates of
`jaxpoison.defenses` accept; every other prediction is a class in `[0, num_classes)`.

Hyperparameters are checked when a learner is built (`ValueError` naming the field).
"""

from __future__ import annotations

import functools
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxpoison import _validate as V
from jaxpoison.solvers.distances import l1_distances, squared_distances

__all__ = [
    "ABSTAIN",
    "Learner",
    "SoftmaxRegression",
    "MLP",
    "SmallCNN",
    "KNearestNeighbors",
    "RadiusNearestNeighbors",
    "make_optimizer",
    "fit_part",
    "fit_parts",
    "predict_part",
    "predict_neighbors",
    "neighbor_distances",
    "vote_neighbors",
]


def _skeleton(build):
    """The non-array part of `build(key)` without running its initialisers (traced
    through `eqx.filter_eval_shape`, so nothing is added to the compiled program)."""
    shaped = eqx.filter_eval_shape(build, jax.random.key(0))
    return jax.tree_util.tree_map(
        lambda x: None if isinstance(x, jax.ShapeDtypeStruct) else x, shaped)


def _fast_init(build, key):
    """Parameters of `build(key)`'s shapes, drawn with ONE uniform random call.

    Weights (arrays with 2+ dims, equinox layout `(out, in, ...)`) are
    `U(-1, 1) / sqrt(fan_in)` with `fan_in = prod(shape[1:])` (LeCun-uniform scale, as
    equinox's defaults); biases start at zero. Drawing per layer, as the layers' own
    initialisers do, compiles one threefry kernel per array, which under `vmap` took
    ~15 s to compile on CPU; a single draw takes a fraction of that.
    """
    shaped = eqx.filter(eqx.filter_eval_shape(build, jax.random.key(0)),
                        lambda x: isinstance(x, jax.ShapeDtypeStruct))
    leaves, treedef = jax.tree_util.tree_flatten(shaped)
    sizes = [int(np.prod(leaf.shape)) for leaf in leaves]
    draw = jax.random.uniform(key, (sum(sizes),), minval=-1.0, maxval=1.0)
    out, start = [], 0
    for leaf, size in zip(leaves, sizes, strict=True):
        if len(leaf.shape) >= 2:
            fan_in = int(np.prod(leaf.shape[1:]))
            out.append(draw[start:start + size].reshape(leaf.shape) / np.sqrt(fan_in))
        else:
            out.append(jnp.zeros(leaf.shape))
        start += size
    return jax.tree_util.tree_unflatten(treedef, out)


ABSTAIN = -1
"""The prediction of a base learner that abstains (dropped from every vote)."""


def _check_common(obj) -> None:
    V.check_int(obj.num_classes, f"{type(obj).__name__}.num_classes", low=2)


class Learner(eqx.Module):
    r"""Interface of a trainable base learner (hyperparameters only).

    Attributes:
        num_classes: number of classes `>= 2`.
        num_features: input features `>= 1` (images flattened).
        reg: L2 penalty $\lambda \ge 0$ on the weights (biases excluded).
        standardize: per-partition normalisation, as the DPA / FA authors' training
            scripts do: each part's inputs are shifted and scaled by the mean and standard
            deviation of *that part's* pixels (one channel: a scalar pair, computed over
            the real samples, after any augmentation is applied), and the same pair is
            applied to test inputs of that learner. The pair is stored with the
            parameters (`{"params", "mean", "std"}`). A function of the part only, so
            the certificates are unchanged.
    """

    num_classes: int = eqx.field(static=True)
    num_features: int = eqx.field(static=True)
    reg: float = eqx.field(static=True, default=0.0)
    standardize: bool = eqx.field(static=True, default=False)

    def __check_init__(self):
        _check_common(self)
        V.check_int(self.num_features, f"{type(self).__name__}.num_features", low=1)
        V.check_nonnegative(self.reg, f"{type(self).__name__}.reg")

    def init(self, key) -> Any:
        raise NotImplementedError

    def logits(self, params, x):
        """`(b, num_features) -> (b, num_classes)` logits."""
        raise NotImplementedError

    def penalty(self, params):
        """Weight-decay term $\\frac{\\lambda}{2}\\lVert W \\rVert^2$ (biases excluded)."""
        leaves = [w for w in jax.tree_util.tree_leaves(params) if jnp.ndim(w) >= 2]
        return 0.5 * self.reg * sum(jnp.sum(w * w) for w in leaves)


class SoftmaxRegression(Learner):
    """Multinomial logistic regression `x @ W + b` with zero initial weights."""

    def init(self, key):
        del key
        return {"W": jnp.zeros((self.num_features, self.num_classes)),
                "b": jnp.zeros((self.num_classes,))}

    def logits(self, params, x):
        return x @ params["W"] + params["b"]


class MLP(Learner):
    """A ReLU multilayer perceptron (`equinox.nn.MLP`) with `depth` hidden layers."""

    width: int = eqx.field(static=True, default=64)
    depth: int = eqx.field(static=True, default=1)

    def __check_init__(self):
        V.check_int(self.width, "MLP.width", low=1)
        V.check_int(self.depth, "MLP.depth", low=0)

    def _build(self, key):
        return eqx.nn.MLP(self.num_features, self.num_classes, self.width, self.depth,
                          activation=jax.nn.relu, key=key)

    def init(self, key):
        return _fast_init(self._build, key)

    def logits(self, params, x):
        return jax.vmap(eqx.combine(params, _skeleton(self._build)))(x)


class _Conv3x3(eqx.Module):
    """A 3x3 'valid' convolution written as patches + matmul (im2col). Equivalent to
    `eqx.nn.Conv2d(c_in, c_out, 3)`; under `vmap` over parts it stays a batched
    matmul instead of a grouped convolution, which compiled ~10x slower on CPU."""

    weight: jax.Array  # (c_out, c_in, 3, 3)
    bias: jax.Array  # (c_out,)

    def __call__(self, x):  # (c_in, H, W) -> (c_out, H-2, W-2)
        patches = jax.lax.conv_general_dilated_patches(x[None], (3, 3), (1, 1), "VALID")[0]
        w = self.weight.reshape(self.weight.shape[0], -1)
        return jnp.einsum("ok,khw->ohw", w, patches) + self.bias[:, None, None]


class _CNN(eqx.Module):
    conv1: _Conv3x3
    conv2: _Conv3x3
    head: eqx.nn.Linear
    shape: tuple = eqx.field(static=True)

    def __call__(self, x):
        h = x.reshape((1,) + self.shape)
        h = _pool2(jax.nn.relu(self.conv1(h)))
        h = _pool2(jax.nn.relu(self.conv2(h)))
        return self.head(h.reshape(-1))


def _pool2(h):
    """2x2 max-pooling with stride 2 (odd edges dropped), as a reshape + max: compiles
    much faster under `vmap` + `grad` on CPU than `reduce_window`."""
    c, H, W = h.shape
    h = h[:, : H // 2 * 2, : W // 2 * 2]
    return h.reshape(c, H // 2, 2, W // 2, 2).max(axis=(2, 4))


class SmallCNN(Learner):
    """Two 3x3 conv + ReLU + 2x2 max-pool blocks and a linear head (single channel)."""

    image_shape: tuple = eqx.field(static=True, default=(28, 28))
    channels: tuple = eqx.field(static=True, default=(8, 16))

    def __check_init__(self):
        H, W = (int(s) for s in self.image_shape)
        if H * W != self.num_features:
            raise ValueError(f"SmallCNN.image_shape {tuple(self.image_shape)} must have "
                             f"num_features={self.num_features} pixels")
        if min(H, W) < 10:
            raise ValueError("SmallCNN.image_shape must be at least 10 x 10 (two 3x3 conv + "
                             f"2x2 pool blocks); got {tuple(self.image_shape)}")

    def _build(self, key):
        k1, k2, k3 = jax.random.split(key, 3)
        c1, c2 = self.channels
        H, W = self.image_shape
        h, w = ((H - 2) // 2 - 2) // 2, ((W - 2) // 2 - 2) // 2
        conv = lambda cin, cout, k: _Conv3x3(  # noqa: E731
            jax.random.normal(k, (cout, cin, 3, 3)) / 3.0 / np.sqrt(cin), jnp.zeros(cout))
        return _CNN(conv(1, c1, k1), conv(c1, c2, k2),
                    eqx.nn.Linear(c2 * h * w, self.num_classes, key=k3), tuple(self.image_shape))

    def init(self, key):
        return _fast_init(self._build, key)

    def logits(self, params, x):
        return jax.vmap(eqx.combine(params, _skeleton(self._build)))(x)


class KNearestNeighbors(eqx.Module):
    """Majority vote of the part's `k` nearest samples (fewer if the part is smaller);
    abstains only if the part is empty. Ties to the smaller class, like
    `sklearn.neighbors.KNeighborsClassifier`."""

    num_classes: int = eqx.field(static=True)
    k: int = eqx.field(static=True, default=1)

    def __check_init__(self):
        _check_common(self)
        V.check_int(self.k, "KNearestNeighbors.k", low=1)


class RadiusNearestNeighbors(eqx.Module):
    r"""Vote of the part's samples within distance `radius`; abstains (`ABSTAIN`)
    when there is none.

    Attributes:
        num_classes: `>= 2`.
        radius: positive.
        metric: `"l2"` (Euclidean, the default) or `"l1"` ($\sum_f |a_f - b_f|$, the
            DPA authors' rNN on HOG features).
        weights: `"uniform"` (one vote per sample) or `"distance"` (weight $1/\text{dist}$;
            if some samples lie at distance 0, they alone vote with weight 1 --
            `sklearn.neighbors.RadiusNeighborsClassifier(weights="distance")`).
    """

    num_classes: int = eqx.field(static=True)
    radius: float = eqx.field(static=True, default=1.0)
    metric: str = eqx.field(static=True, default="l2")
    weights: str = eqx.field(static=True, default="uniform")

    def __check_init__(self):
        _check_common(self)
        V.check_positive(self.radius, "RadiusNearestNeighbors.radius")
        V.check_choice(self.metric, "RadiusNearestNeighbors.metric", ("l2", "l1"))
        V.check_choice(self.weights, "RadiusNearestNeighbors.weights", ("uniform", "distance"))


def make_optimizer(optimizer: str | optax.GradientTransformation = "adam",
                   lr: float = 1e-2) -> optax.GradientTransformation:
    """`"adam"`, `"sgd"` (momentum 0.9, Nesterov) with step size `lr > 0`, or an optax
    transformation as is (then `lr` is ignored)."""
    if isinstance(optimizer, str):
        V.check_positive(lr, "lr")
        if optimizer == "adam":
            return optax.adam(lr)
        if optimizer == "sgd":
            return optax.sgd(lr, momentum=0.9, nesterov=True)
        raise ValueError(f"optimizer must be 'adam', 'sgd' or an optax transformation; got "
                         f"{optimizer!r}")
    return optimizer


def _shift_images(x, shifts, image_shape):
    """Translate each flattened image by integer `shifts` `(dy, dx)` with zero fill,
    as products with 0/1 shift matrices (cheap to compile under `vmap`)."""
    H, W = image_shape
    ar_h, ar_w = jnp.arange(H), jnp.arange(W)

    def one(img, sh):
        rows = (ar_h[:, None] - ar_h[None, :] == sh[0]).astype(img.dtype)
        cols = (ar_w[:, None] - ar_w[None, :] == sh[1]).astype(img.dtype)
        return (rows @ img.reshape(H, W) @ cols.T).reshape(-1)

    return jax.vmap(one)(x, shifts)


def fit_part(learner: Learner, X, y, indices, mask, key, *,
             optimizer: optax.GradientTransformation, epochs: int, batch_size: int | None,
             augment_shift: int = 0, image_shape: tuple | None = None):
    """Train `learner` on the samples `X[indices[mask]]` of one part (pure, vmappable).

    Args:
        learner: a `Learner`.
        X: `(n, num_features)` all training features (shared by every part).
        y: `(n,)` integer labels.
        indices: `(m,)` padded sample indices of this part.
        mask: `(m,)` bool, True on real samples.
        key: PRNG key of this part (initialisation, shuffling, augmentation).
        optimizer: an optax transformation.
        epochs: passes over the part.
        batch_size: mini-batch size (`None`: full batch, one step per epoch).
        augment_shift: if > 0, every batch is randomly translated by up to this many pixels
            (images of `image_shape`, zero fill) -- a data-independent augmentation.

    Returns:
        The trained parameter pytree; with `learner.standardize`, the dict
        `{"params": ..., "mean": ..., "std": ...}` (the part's normalisation).
    """
    m = indices.shape[0]
    bsz = m if batch_size is None else min(int(batch_size), m)
    steps = -(-m // bsz)
    pad = steps * bsz - m
    indices = jnp.pad(indices, (0, pad))
    mask = jnp.pad(mask, (0, pad))
    k_init, k_train = jax.random.split(key)
    params = jax.tree_util.tree_map(lambda a: a.astype(X.dtype), learner.init(k_init))
    opt_state = optimizer.init(params)

    def loss_fn(p, xb, yb, mb):
        logits = learner.logits(p, xb)
        ce = optax.softmax_cross_entropy_with_integer_labels(logits, yb)
        count = jnp.maximum(mb.sum(), 1)
        return jnp.sum(jnp.where(mb, ce, 0.0)) / count + learner.penalty(p)

    # gather the part's rows once; full-batch steps then read them without any gather
    Xp, yp = X[indices], y[indices]
    if learner.standardize:
        count = jnp.maximum(mask.sum(), 1) * X.shape[1]
        mean = jnp.sum(jnp.where(mask[:, None], Xp, 0.0)) / count
        var = jnp.sum(jnp.where(mask[:, None], (Xp - mean) ** 2, 0.0)) / count
        std = jnp.where(var > 0, jnp.sqrt(var), 1.0)
    else:
        mean, std = 0.0, 1.0

    def step(carry, slots_shifts):
        p, s = carry
        slots, sh = slots_shifts
        if steps == 1:  # the slots are the identity order
            xb, yb, mb = Xp, yp, mask
        else:
            xb, yb, mb = Xp[slots], yp[slots], mask[slots]
        if augment_shift:
            xb = _shift_images(xb, sh, image_shape)
        if learner.standardize:
            xb = (xb - mean) / std
        grads = jax.grad(loss_fn)(p, xb, yb, mb)
        updates, s_new = optimizer.update(grads, s, p)
        p_new = optax.apply_updates(p, updates)
        active = mb.any()
        keep = lambda new, old: jnp.where(active, new, old)  # noqa: E731
        return (jax.tree_util.tree_map(keep, p_new, p),
                jax.tree_util.tree_map(keep, s_new, s)), None

    def epoch(carry, k_epoch):
        # one random draw per epoch (each threefry call costs compile time under vmap):
        # column 0 orders the samples, columns 1-2 give each slot's translation
        u = jax.random.uniform(k_epoch, (steps * bsz, 3))
        if steps > 1:
            order = jnp.argsort(jnp.where(mask, u[:, 0], 2.0))
        else:
            order = jnp.arange(steps * bsz)
        slots = order.reshape(steps, bsz)
        width = 2 * augment_shift + 1
        shifts = jnp.minimum((u[:, 1:] * width).astype(jnp.int32), width - 1) - augment_shift
        carry, _ = jax.lax.scan(step, carry, (slots, shifts.reshape(steps, bsz, 2)))
        return carry, None

    (params, _), _ = jax.lax.scan(epoch, (params, opt_state), jax.random.split(k_train, epochs))
    if learner.standardize:
        return {"params": params, "mean": mean, "std": std}
    return params


@functools.partial(jax.jit, static_argnames=("learner", "optimizer", "epochs", "batch_size",
                                             "augment_shift", "image_shape"))
def fit_parts(learner, X, y, indices, mask, keys, *, optimizer, epochs, batch_size,
              augment_shift=0, image_shape=None):
    """`fit_part` for all parts at once: `jax.vmap` over `(indices, mask, keys)`
    with leading axis = parts, in one jit-compiled call. Returns stacked parameters."""
    fit = functools.partial(fit_part, learner, X, y, optimizer=optimizer, epochs=epochs,
                            batch_size=batch_size, augment_shift=augment_shift,
                            image_shape=image_shape)
    return jax.vmap(fit)(indices, mask, keys)


def predict_part(learner: Learner, params, X_test, nonempty):
    """Class predictions of one trained part; `ABSTAIN` (-1) if it was empty."""
    if learner.standardize:
        X_test = (X_test - params["mean"]) / params["std"]
        params = params["params"]
    pred = jnp.argmax(learner.logits(params, X_test), axis=1)
    return jnp.where(nonempty, pred, ABSTAIN)


def neighbor_distances(learner, A, B):
    r"""The distances a nearest-neighbour learner compares: squared Euclidean
    (`jaxpoison.solvers.squared_distances`) for `metric="l2"` (every kNN learner), $\ell_1$
    (`jaxpoison.solvers.l1_distances`) for an rNN learner with `metric="l1"`."""
    if getattr(learner, "metric", "l2") == "l1":
        return l1_distances(A, B, block=max(1, (1 << 22) // max(B.shape[0] * B.shape[1], 1)))
    return squared_distances(A, B)


def vote_neighbors(learner, dist, labels, mask):
    """The vote of a nearest-neighbour learner from precomputed distances.

    Args:
        learner: `KNearestNeighbors` or `RadiusNearestNeighbors`.
        dist: `(n_test, m)` distances from each test point to the part's `m` (padded)
            samples, as `neighbor_distances` gives them (squared for `"l2"`).
        labels: `(m,)` their classes.
        mask: `(m,)` True on real samples; padded slots are never neighbours.

    Returns:
        `(n_test,)` classes, `ABSTAIN` (-1) where the learner abstains. Among equal
        distances the sample listed first wins; vote ties go to the smaller class.
    """
    C = learner.num_classes
    d2 = jnp.where(mask[None, :], dist, jnp.inf)
    onehot = jax.nn.one_hot(labels, C, dtype=jnp.int32) * mask[:, None]
    if isinstance(learner, KNearestNeighbors):
        if learner.k == 1:  # argmin is a single pass; top_k sorts
            idx = jnp.argmin(d2, axis=1)[:, None]
            found = jnp.isfinite(jnp.min(d2, axis=1))[:, None]
        else:
            kk = min(learner.k, d2.shape[1])
            neg, idx = jax.lax.top_k(-d2, kk)
            found = jnp.isfinite(neg)
        counts = (onehot[idx] * found[..., None]).sum(axis=1)
    else:
        l1 = learner.metric == "l1"
        inside = d2 <= (learner.radius if l1 else learner.radius**2)
        if learner.weights == "distance":
            d = d2 if l1 else jnp.sqrt(d2)
            zero = inside & (d == 0)
            w = jnp.where(zero.any(axis=1, keepdims=True), zero.astype(d.dtype),
                          jnp.where(inside, 1.0 / jnp.where(d == 0, 1.0, d), 0.0))
            counts = w @ onehot.astype(d.dtype)
            empty = ~inside.any(axis=1)
            return jnp.where(empty, ABSTAIN, jnp.argmax(counts, axis=1))
        counts = inside.astype(jnp.int32) @ onehot
    empty = counts.sum(axis=1) == 0
    return jnp.where(empty, ABSTAIN, jnp.argmax(counts, axis=1))


def predict_neighbors(learner, X, y, indices, mask, X_test):
    """Predictions of a nearest-neighbour learner on one part (vmappable over parts).

    Padded slots are never neighbours. Returns `(n_test,)` classes, `ABSTAIN` (-1)
    where the learner abstains. (An ensemble computes the distances to all training
    samples once and votes per part with `vote_neighbors`.)
    """
    return vote_neighbors(learner, neighbor_distances(learner, X_test, X[indices]),
                          y[indices], mask)
