"""Train and query an aggregation ensemble: all base learners in one vmapped, jitted,
device-sharded program.

`train_ensemble` takes a `jaxpoison.defenses.Partition` (DPA's `k` parts
or FA's `k*d` subsets) and trains one base learner per part with
`jaxpoison.models.learners.fit_parts` -- `jax.vmap` over the part axis inside one
`jax.jit`. The part axis is sharded across devices: a 1-D `jax.sharding.Mesh`
named `"parts"` over `devices` and `jax.sharding.NamedSharding` with
`PartitionSpec("parts")` on the leading axis of the stacked index rows, masks and keys
(the training set itself is replicated). XLA's SPMD partitioner then runs each device's
block of parts locally; no cross-device communication is needed because parts are
independent. The number of parts is padded to a multiple of the device count with empty
parts (whose learners abstain and are dropped from the output).

Learner `j` uses the key `jax.random.fold_in(key, j)`, so its parameters do not
depend on how many parts are trained together or on how they are sharded: the sharded
result equals the single-device result (tested on 8 simulated CPU devices).

Multi-host: call `jax.distributed.initialize()` in every process first, give every
process the same full training set and pass `devices=jax.devices()` (the global device
list, the default). Inputs are assembled with `jax.make_array_from_callback`, which
builds a global array from each process's addressable shards, so the same code runs on
one or many hosts; the stacked parameters come back as a globally sharded array (use
`jax.experimental.multihost_utils.process_allgather` to gather them on every host).
Tested with two processes on one machine (a localhost coordinator, CPU collectives
over gloo): the gathered parameters equal a single-device run.

We use sharded `jit` rather than `shard_map`: with this JAX version a `shard_map`
over a loop whose carry starts from a constant was seen to give silently wrong results;
here every carry (parameters, optimiser state) is derived from the sharded keys.
"""

from __future__ import annotations

import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from jaxpoison import _validate as V
from jaxpoison._blocks import map_row_blocks
from jaxpoison._result import Result, Status, raise_if_failed
from jaxpoison.defenses.partition import Partition
from jaxpoison.models.learners import (
    KNearestNeighbors,
    Learner,
    RadiusNearestNeighbors,
    fit_parts,
    make_optimizer,
    neighbor_distances,
    predict_part,
    vote_neighbors,
)

__all__ = ["Ensemble", "train_ensemble", "ensemble_predict", "part_mesh"]


class Ensemble(Result):
    """Trained base learners of an aggregation defense.

    Attributes:
        params: parameter pytree stacked along a leading part axis (length `padded`;
            for nearest-neighbour learners, `None`).
        sizes: `(padded,)` samples per part (0 = empty part, abstains).
        indices, mask: the padded partition rows (needed by nearest-neighbour learners).
        num_parts: the real number of parts (`k` for DPA, `k*d` for FA).
        status: `SUCCESS`, or `NUMERICAL_ERROR` when some learner's parameters are not
            finite (a diverged optimiser: lower `lr`); `iterations`: the epochs run.
    """

    params: object
    sizes: jax.Array
    indices: jax.Array
    mask: jax.Array
    num_parts: int = eqx.field(static=True)


def _default_float(X):
    """NumPy float64 input becomes float32 when x64 is off (no truncation warning)."""
    if isinstance(X, jax.Array) or jax.config.jax_enable_x64:
        return X
    arr = np.asarray(X)
    return arr.astype(np.float32) if arr.dtype == np.float64 else arr


def part_mesh(devices=None) -> Mesh:
    """A 1-D mesh named `"parts"` over `devices` (default: all global devices)."""
    devices = jax.devices() if devices is None else list(devices)
    return Mesh(np.asarray(devices), ("parts",))


def _global(arr: np.ndarray, sharding) -> jax.Array:
    arr = np.asarray(arr)
    return jax.make_array_from_callback(arr.shape, sharding, lambda idx: arr[idx])


def _padded_parts(partition: Partition, n_dev: int):
    num = partition.num_parts
    padded = -(-num // n_dev) * n_dev
    extra = padded - num
    indices = np.concatenate([partition.indices,
                              np.zeros((extra, partition.max_size), np.int32)])
    mask = np.concatenate([partition.mask, np.zeros((extra, partition.max_size), bool)])
    sizes = np.concatenate([partition.sizes, np.zeros(extra, np.int64)])
    return indices, mask, sizes


def train_ensemble(learner, X, y, partition: Partition, *, key, epochs: int = 50,
                   batch_size: int | None = None, optimizer="adam",
                   lr: float = 1e-2, augment_shift: int = 0,
                   image_shape: tuple | None = None, devices=None,
                   throw: bool = True) -> Ensemble:
    """Train one base learner per part of `partition` in a single sharded, vmapped call.

    Args:
        learner: a `jaxpoison.models.learners.Learner` (softmax regression, MLP,
            CNN) or a nearest-neighbour learner (nothing to train: the ensemble just keeps
            the partition).
        X: `(n, num_features)` training features (images flattened); float.
        y: `(n,)` integer labels in `[0, num_classes)`.
        partition: from `jaxpoison.defenses.dpa_partition` or
            `jaxpoison.defenses.fa_partition`.
        key: PRNG key (required); learner `j` uses `fold_in(key, j)`.
        epochs, batch_size, optimizer, lr: training schedule (`epochs >= 1`,
            `batch_size >= 1` or `None` for full batch, step size `lr > 0`); `optimizer`
            is `"adam"`, `"sgd"` or an optax transformation.
        augment_shift, image_shape: random translations by up to `augment_shift` pixels of
            `image_shape` images (a data-independent augmentation).
        devices: devices to shard the part axis over (default `jax.devices()`).
        throw: raise `jaxpoison.SolverError` when a learner's parameters are not finite
            (else read `Ensemble.status`).

    Returns:
        An `Ensemble`.
    """
    V.check_key(key)
    _check_learner(learner)
    if not isinstance(partition, Partition):
        raise TypeError(f"partition must be a Partition; got {type(partition).__name__}")
    X = V.as_float_array(_default_float(X), "X", ndim=2)
    num_classes = learner.num_classes
    y = V.as_int_array(y, "y", ndim=1)
    V.check_same_length(X, "X", y, "y")
    V.check_labels(y, "y", range(num_classes))
    if int(partition.indices.max(initial=0)) >= X.shape[0] or \
            partition.hashes.shape[0] != X.shape[0]:
        raise ValueError(f"partition was built from {partition.hashes.shape[0]} samples but X "
                         f"has {X.shape[0]} rows; build it from the same data")
    epochs = V.check_int(epochs, "epochs", low=1)
    if batch_size is not None:
        batch_size = V.check_int(batch_size, "batch_size", low=1)
    augment_shift = V.check_int(augment_shift, "augment_shift", low=0)
    if augment_shift and (image_shape is None or int(np.prod(image_shape)) != X.shape[1]):
        raise ValueError("augment_shift needs image_shape matching X's feature count")
    if isinstance(learner, Learner) and learner.num_features != X.shape[1]:
        raise ValueError(f"X must have learner.num_features={learner.num_features} columns; "
                         f"got {X.shape[1]} (shape {X.shape})")
    opt = make_optimizer(optimizer, lr)
    mesh = part_mesh(devices)
    n_dev = mesh.devices.size
    indices, mask, sizes = _padded_parts(partition, n_dev)
    parts = NamedSharding(mesh, P("parts"))
    repl = NamedSharding(mesh, P())
    g_indices = _global(indices, parts)
    g_mask = _global(mask, parts)
    zero = jnp.zeros((), jnp.int32)
    if isinstance(learner, (KNearestNeighbors, RadiusNearestNeighbors)):
        return Ensemble(status=zero + Status.SUCCESS, iterations=zero, params=None,
                        sizes=jnp.asarray(sizes), indices=g_indices, mask=g_mask,
                        num_parts=partition.num_parts)
    raw = jax.random.key_data(key) if jnp.issubdtype(key.dtype, jax.dtypes.prng_key) else key
    keys = jax.vmap(lambda j: jax.random.key_data(jax.random.fold_in(
        jax.random.wrap_key_data(raw), j)))(jnp.arange(indices.shape[0]))
    g_keys = _global(np.asarray(keys), parts)
    g_X = _global(np.asarray(X), repl)
    g_y = _global(np.asarray(y), repl)
    params = _fit_sharded(learner, g_X, g_y, g_indices, g_mask, g_keys, opt, epochs,
                          batch_size, augment_shift,
                          None if image_shape is None else tuple(image_shape))
    finite = jnp.all(jnp.stack([jnp.all(jnp.isfinite(leaf))
                                for leaf in jax.tree_util.tree_leaves(params)]))
    status = jnp.where(finite, Status.SUCCESS, Status.NUMERICAL_ERROR).astype(jnp.int32)
    ens = Ensemble(status=status, iterations=zero + epochs, params=params,
                   sizes=jnp.asarray(sizes), indices=g_indices, mask=g_mask,
                   num_parts=partition.num_parts)
    return raise_if_failed(ens, "train_ensemble (non-finite learner parameters; lower lr)",
                           throw=throw)


def _check_learner(learner) -> None:
    if not isinstance(learner, (Learner, KNearestNeighbors, RadiusNearestNeighbors)):
        raise TypeError("learner must be a jaxpoison.models learner (SoftmaxRegression, MLP, "
                        "SmallCNN, KNearestNeighbors, RadiusNearestNeighbors); got "
                        f"{type(learner).__name__}")


def _fit_sharded(learner, X, y, indices, mask, raw_keys, opt, epochs, batch_size,
                 augment_shift, image_shape):
    keys = jax.vmap(jax.random.wrap_key_data)(raw_keys)
    return fit_parts(learner, X, y, indices, mask, keys, optimizer=opt, epochs=epochs,
                     batch_size=batch_size, augment_shift=augment_shift,
                     image_shape=image_shape)


@functools.partial(jax.jit, static_argnames=("learner", "chunk"))
def _predict_trained(learner, params, sizes, X_test, chunk):
    one = jax.vmap(lambda p, s, xb: predict_part(learner, p, xb, s > 0), in_axes=(0, 0, None))
    return map_row_blocks(lambda xb: one(params, sizes, xb).T, X_test, chunk)


# elements of the (parts, samples per part, test block) distance gather per block
_NN_GATHER_ELEMENTS = 1 << 24


@functools.partial(jax.jit, static_argnames=("learner", "chunk"))
def _predict_nn(learner, X, y, indices, mask, X_test, chunk):
    """Distances from a block of test points to *all* training samples come from one GEMM
    and are shared by every part (a sample lies in one DPA part, or in d FA subsets); each
    part then gathers its own columns and votes."""
    vote = jax.vmap(lambda d2, i, m: vote_neighbors(learner, d2, y[i], m), in_axes=(1, 0, 0))
    return map_row_blocks(
        lambda xb: vote(neighbor_distances(learner, xb, X)[:, indices], indices, mask).T,
        X_test, chunk)


def ensemble_predict(learner, ensemble: Ensemble, X_test, *, X=None, y=None,
                     chunk: int = 256) -> jax.Array:
    """`(n_test, num_parts)` base predictions, `ABSTAIN` (-1) where a learner abstains.

    Feed the result to `jaxpoison.defenses.dpa_certify` or
    `jaxpoison.defenses.fa_certify`.

    Args:
        learner: the learner the ensemble was trained with.
        ensemble: from `train_ensemble`.
        X_test: `(n_test, num_features)` finite test features.
        X, y: the training data again (nearest-neighbour learners only; the same rows the
            partition was built from).
        chunk: test points processed per block (`>= 1`).
    """
    _check_learner(learner)
    if not isinstance(ensemble, Ensemble):
        raise TypeError(f"ensemble must be an Ensemble (from train_ensemble); got "
                        f"{type(ensemble).__name__}")
    X_test = V.as_float_array(_default_float(X_test), "X_test", ndim=2)
    if X_test.shape[0] == 0:
        raise ValueError(f"X_test must have at least one row; got shape {X_test.shape}")
    chunk = min(V.check_int(chunk, "chunk", low=1), X_test.shape[0])
    if isinstance(learner, (KNearestNeighbors, RadiusNearestNeighbors)):
        if ensemble.params is not None:
            raise ValueError("ensemble was trained with a parametric learner; pass that learner")
        if X is None or y is None:
            raise ValueError("nearest-neighbour learners need the training data X and y")
        X = V.as_float_array(X, "X", ndim=2, dtype=X_test.dtype)
        y = V.as_int_array(y, "y", ndim=1)
        V.check_same_length(X, "X", y, "y")
        V.check_labels(y, "y", range(learner.num_classes))
        if X_test.shape[1] != X.shape[1]:
            raise ValueError(f"X_test must have {X.shape[1]} features like X; got "
                             f"{X_test.shape[1]} (shape {X_test.shape})")
        if int(jnp.max(ensemble.indices, initial=0)) >= X.shape[0]:
            raise ValueError(f"X has {X.shape[0]} rows but the ensemble's partition refers to "
                             "more samples; pass the training data the partition was built from")
        per_block = ensemble.indices.shape[0] * ensemble.indices.shape[1]
        chunk = max(1, min(chunk, _NN_GATHER_ELEMENTS // max(per_block, 1)))
        out = _predict_nn(learner, X, y, ensemble.indices, ensemble.mask, X_test, chunk)
    else:
        if ensemble.params is None:
            raise ValueError("ensemble holds no parameters (it was built for a "
                             "nearest-neighbour learner); pass that learner")
        if X_test.shape[1] != learner.num_features:
            raise ValueError(f"X_test must have learner.num_features={learner.num_features} "
                             f"columns; got {X_test.shape[1]} (shape {X_test.shape})")
        out = _predict_trained(learner, ensemble.params, ensemble.sizes, X_test, chunk)
    return out[:, :ensemble.num_parts]
