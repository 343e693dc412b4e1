"""Partitions, vmapped / sharded ensemble training and learners against references."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.datasets import load_digits

from jaxpoison.defenses import (
    ABSTAIN,
    EmptyPartWarning,
    bytes_hash,
    dpa_partition,
    ensemble_predict,
    fa_partition,
    fa_shifts,
    pixel_sum_hash,
    train_ensemble,
)
from jaxpoison.models import KNearestNeighbors, SmallCNN, SoftmaxRegression
from jaxpoison.models.learners import (
    RadiusNearestNeighbors,
    fit_part,
    fit_parts,
    make_optimizer,
    predict_neighbors,
)

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return (X / 16.0)[:400], y[:400]


# ----------------------------------------------------------------------------- partitions


def test_pixel_sum_hash_matches_manual_sum(rng):
    imgs = rng.integers(0, 256, size=(50, 6, 6), dtype=np.uint8)
    manual = np.array([int(sum(int(v) for v in im.ravel())) % 7 for im in imgs])
    np.testing.assert_array_equal(pixel_sum_hash(imgs, 7), manual)
    np.testing.assert_array_equal(pixel_sum_hash(imgs / 255.0, 7), manual)  # float in [0,1]


def test_partitions_are_deterministic_and_order_free(digits, rng):
    X, y = digits
    for make in (lambda X, y: dpa_partition(X, y, 9),
                 lambda X, y: fa_partition(X, y, 4, 3, hash="bytes")):
        a = make(X, y)
        perm = rng.permutation(len(y))
        b = make(X[perm], y[perm])
        c = make(X, y)
        np.testing.assert_array_equal(a.indices, c.indices)
        np.testing.assert_array_equal(a.sizes, b.sizes)
        for j in range(a.num_parts):  # same samples, same order within each part
            ra = X[a.indices[j][a.mask[j]]]
            rb = X[perm][b.indices[j][b.mask[j]]]
            np.testing.assert_array_equal(ra, rb)


def test_fa_partition_structure(digits):
    X, y = digits
    k, d = 5, 3
    shifts = np.array([0, 4, 11])
    part = fa_partition(X, y, k, d, shifts=shifts)
    h = pixel_sum_hash(X, k * d)
    np.testing.assert_array_equal(part.hashes, h)
    member = np.zeros((len(y), k * d), bool)
    for j in range(k * d):
        member[part.indices[j][part.mask[j]], j] = True
    expected = np.zeros_like(member)
    for s in shifts:
        expected[np.arange(len(y)), (h + s) % (k * d)] = True
    np.testing.assert_array_equal(member, expected)
    assert part.sizes.sum() == d * len(y)
    # d = 1 with shift 0 is DPA
    a, b = fa_partition(X, y, 7, 1, shifts=[0]), dpa_partition(X, y, 7)
    np.testing.assert_array_equal(a.indices, b.indices)
    # the authors' shift draw: distinct values in [0, kd)
    s = fa_shifts(50, 16)
    assert len(set(s.tolist())) == 16 and s.min() >= 0 and s.max() < 800
    assert bytes_hash(X[:3], 10).tolist() == bytes_hash(X[:3].copy(), 10).tolist()


def test_partition_bad_input(digits):
    X, y = digits
    with pytest.raises(ValueError, match="k"):
        dpa_partition(X, y, 0)
    bad = X.copy()
    bad[3, 2] = np.nan
    with pytest.raises(ValueError, match="X"):
        dpa_partition(bad, y, 3)
    with pytest.raises(ValueError, match="shifts"):
        fa_partition(X, y, 3, 2, shifts=[0, 0])
    with pytest.raises(ValueError, match="shifts"):
        fa_partition(X, y, 3, 2, shifts=[0, 6])
    with pytest.raises(ValueError, match="hash"):
        dpa_partition(X, y, 3, hash="md5")


# ----------------------------------------------------------------------------- training


def test_vmapped_training_equals_one_by_one(digits):
    X, y = digits
    part = dpa_partition(X, y, 6)
    learner = SoftmaxRegression(10, 64, reg=1e-3)
    opt = make_optimizer("adam", 1e-2)
    keys = jax.vmap(lambda j: jax.random.fold_in(jax.random.key(3), j))(jnp.arange(6))
    kw = dict(optimizer=opt, epochs=3, batch_size=16)
    Xj, yj = jnp.asarray(X), jnp.asarray(y)
    stacked = fit_parts(learner, Xj, yj, part.indices, part.mask, keys, **kw)
    single = jax.jit(lambda i, m, k: fit_part(learner, Xj, yj, i, m, k, **kw))
    for j in range(6):
        one = single(part.indices[j], part.mask[j], keys[j])
        for a, b in zip(jax.tree_util.tree_leaves(stacked), jax.tree_util.tree_leaves(one),
                        strict=True):
            np.testing.assert_allclose(a[j], b, atol=1e-6, rtol=0)


def test_softmax_regression_matches_sklearn_on_one_part(digits):
    from sklearn.linear_model import LogisticRegression

    X, y = digits
    part = dpa_partition(X, y, 4)
    rows = part.indices[0][part.mask[0]]
    l2 = 1e-2
    learner = SoftmaxRegression(10, 64, reg=l2)
    ens = train_ensemble(learner, X, y, part, key=jax.random.key(0), epochs=1500,
                         lr=5e-2)
    W = np.asarray(ens.params["W"][0])
    b = np.asarray(ens.params["b"][0])
    classes = np.unique(y[rows])
    ref = LogisticRegression(C=1.0 / (len(rows) * l2), tol=1e-10, max_iter=10000)
    ref.fit(X[rows], y[rows])
    logits = X @ W + b
    ours = jax.nn.softmax(logits[:, classes], axis=1)  # absent classes get ~0 mass
    np.testing.assert_allclose(ours, ref.predict_proba(X), atol=3e-2)
    assert np.mean(classes[np.argmax(ours, 1)] == ref.predict(X)) > 0.97


@pytest.mark.parametrize("k, scheme", [(3, "dpa"), (1, "dpa"), (1, "fa"), (2, "fa")])
def test_knn_learner_matches_sklearn_per_part(digits, k, scheme):
    from sklearn.neighbors import KNeighborsClassifier

    X, y = digits
    X = X + 1e-6 * np.arange(X.shape[1])  # no exact distance ties between distinct images
    Xte = X[::7] + 0.013
    # FA subsets overlap (every sample lies in d of them): the shared distance matrix
    # must be gathered per subset correctly
    part = (dpa_partition(X, y, 3, hash="bytes") if scheme == "dpa"
            else fa_partition(X, y, 2, 3, hash="bytes"))
    learner = KNearestNeighbors(10, k=k)
    ens = train_ensemble(learner, X, y, part, key=jax.random.key(0))
    # a small chunk: several test blocks, the last one padded
    preds = np.asarray(ensemble_predict(learner, ens, Xte, X=X, y=y, chunk=50))
    assert preds.shape == (len(Xte), part.num_parts)
    for j in range(part.num_parts):
        rows = part.indices[j][part.mask[j]]
        ref = KNeighborsClassifier(n_neighbors=k).fit(X[rows], y[rows]).predict(Xte)
        np.testing.assert_array_equal(preds[:, j], ref)
    one = predict_neighbors(learner, X, y, part.indices[0], part.mask[0], Xte)
    np.testing.assert_array_equal(one, preds[:, 0])


def test_empty_parts_abstain_and_warn(digits):
    X, y = digits
    Xs, ys = X[:12], y[:12]
    with pytest.warns(EmptyPartWarning):  # 12 samples hashed into 12 parts collide
        part = dpa_partition(Xs, ys, 12)
    learner = SoftmaxRegression(10, 64, reg=1e-3)
    ens = train_ensemble(learner, Xs, ys, part, key=jax.random.key(0), epochs=2)
    preds = np.asarray(ensemble_predict(learner, ens, X[:4]))
    assert preds.shape == (4, 12)
    empty = part.sizes == 0
    assert empty.any()
    assert np.all(preds[:, empty] == ABSTAIN) and np.all(preds[:, ~empty] >= 0)
    with pytest.raises(ValueError, match="k must be at most"):
        dpa_partition(Xs, ys, 13)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        radius_learner = RadiusNearestNeighbors(10, radius=1e-3)
        ens = train_ensemble(radius_learner, Xs, ys, dpa_partition(Xs, ys, 1),
                             key=jax.random.key(0))
        out = np.asarray(ensemble_predict(radius_learner, ens, np.vstack([Xs[:1], Xs[:1] + 1]),
                                          X=Xs, y=ys))
    assert out[0, 0] == ys[0] and out[1, 0] == ABSTAIN  # far from every sample: abstain


def test_cnn_with_augmentation_float32(digits):
    X, y = digits
    X32 = X.astype(np.float32)
    part = dpa_partition(X32, y, 2)
    # 8x8 digits padded to 12x12 (conv 10 -> pool 5 -> conv 3 -> pool 1)
    Xp = np.pad(X32.reshape(-1, 8, 8), ((0, 0), (2, 2), (2, 2))).reshape(-1, 144)
    learner = SmallCNN(10, 144, image_shape=(12, 12), channels=(4, 8))
    ens = train_ensemble(learner, Xp, y, part, key=jax.random.key(1), epochs=20,
                         lr=3e-2, augment_shift=1, image_shape=(12, 12))
    leaves = jax.tree_util.tree_leaves(ens.params)
    assert all(leaf.dtype == jnp.float32 for leaf in leaves)
    assert all(np.all(np.isfinite(leaf)) for leaf in leaves)
    preds = np.asarray(ensemble_predict(learner, ens, Xp))
    assert np.mean(preds == y[:, None]) > 0.5, np.mean(preds == y[:, None])


def test_train_ensemble_bad_input(digits):
    X, y = digits
    part = dpa_partition(X, y, 3)
    learner = SoftmaxRegression(10, 64)
    bad = X.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="X"):
        train_ensemble(learner, bad, y, part, key=jax.random.key(0))
    with pytest.raises(ValueError, match="y"):
        train_ensemble(learner, X, y + 5, part, key=jax.random.key(0))
    with pytest.raises(ValueError, match="num_features"):
        train_ensemble(SoftmaxRegression(10, 3), X, y, part, key=jax.random.key(0))
    with pytest.raises(TypeError, match="key"):
        train_ensemble(learner, X, y, part, key=None)
    with pytest.raises(ValueError, match="epochs"):
        train_ensemble(learner, X, y, part, key=jax.random.key(0), epochs=0)
    with pytest.raises(ValueError, match="lr"):
        train_ensemble(learner, X, y, part, key=jax.random.key(0), lr=-1.0)
    with pytest.raises(TypeError, match="learner"):
        train_ensemble("softmax", X, y, part, key=jax.random.key(0))
    with pytest.raises(TypeError, match="partition"):
        train_ensemble(learner, X, y, part.indices, key=jax.random.key(0))
    with pytest.raises(ValueError, match="same data"):
        train_ensemble(learner, X[:300], y[:300], part, key=jax.random.key(0))
    # learners check their hyperparameters when built
    with pytest.raises(ValueError, match="num_classes"):
        SoftmaxRegression(1, 64)
    with pytest.raises(ValueError, match="reg"):
        SoftmaxRegression(10, 64, reg=-1.0)
    with pytest.raises(ValueError, match="KNearestNeighbors.k"):
        KNearestNeighbors(10, k=0)
    with pytest.raises(ValueError, match="radius"):
        RadiusNearestNeighbors(10, radius=0.0)
    with pytest.raises(ValueError, match="image_shape"):
        SmallCNN(10, 64, image_shape=(28, 28))
    # a diverged optimiser is a NUMERICAL_ERROR status, raised by default
    from jaxpoison import SolverError, Status
    with pytest.raises(SolverError, match="train_ensemble"):
        train_ensemble(learner, X * 1e300, y, part, key=jax.random.key(0), epochs=2,
                       optimizer="sgd", lr=1e300)
    ens = train_ensemble(learner, X * 1e300, y, part, key=jax.random.key(0), epochs=2,
                         optimizer="sgd", lr=1e300, throw=False)
    assert int(ens.status) == Status.NUMERICAL_ERROR
    ens = train_ensemble(learner, X, y, part, key=jax.random.key(0), epochs=1)
    assert int(ens.status) == Status.SUCCESS
    with pytest.raises(ValueError, match="X_test must have learner.num_features=64"):
        ensemble_predict(learner, ens, X[:, :10])
    with pytest.raises(TypeError, match="ensemble"):
        ensemble_predict(learner, ens.params, X)
    with pytest.raises(ValueError, match="chunk"):
        ensemble_predict(learner, ens, X, chunk=0)
    knn = KNearestNeighbors(10, k=1)
    kens = train_ensemble(knn, X, y, part, key=jax.random.key(0))
    with pytest.raises(ValueError, match="training data X and y"):
        ensemble_predict(knn, kens, X)
    with pytest.raises(ValueError, match="y"):
        ensemble_predict(knn, kens, X, X=X, y=y[:10])


_CHILD = textwrap.dedent("""
    import os
    os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=8"
    import jax
    jax.config.update("jax_enable_x64", True)
    import numpy as np
    from sklearn.datasets import load_digits
    from jaxpoison.defenses import dpa_partition, ensemble_predict, train_ensemble
    from jaxpoison.models import KNearestNeighbors, SoftmaxRegression

    assert jax.device_count() == 8, jax.devices()
    X, y = load_digits(return_X_y=True)
    X, y = X[:300] / 16.0, y[:300]
    part = dpa_partition(X, y, 13)  # 13 parts: padded to 16 over 8 devices
    learner = SoftmaxRegression(10, 64, reg=1e-3)
    kw = dict(key=jax.random.key(0), epochs=3, batch_size=8)
    sharded = train_ensemble(learner, X, y, part, devices=jax.devices(), **kw)
    single = train_ensemble(learner, X, y, part, devices=jax.devices()[:1], **kw)
    leaf = jax.tree_util.tree_leaves(sharded.params)[0]
    assert len(leaf.sharding.device_set) == 8, leaf.sharding
    worst = 0.0
    for a, b in zip(jax.tree_util.tree_leaves(sharded.params),
                    jax.tree_util.tree_leaves(single.params)):
        a, b = np.asarray(a)[:13], np.asarray(b)[:13]
        worst = max(worst, float(np.max(np.abs(a - b))))
    pa = np.asarray(ensemble_predict(learner, sharded, X))
    pb = np.asarray(ensemble_predict(learner, single, X))
    assert (pa == pb).all()
    # nearest-neighbour ensembles: the sharded index rows gather the shared distances
    knn = KNearestNeighbors(10, k=3)
    ka = train_ensemble(knn, X, y, part, devices=jax.devices(), key=jax.random.key(0))
    kb = train_ensemble(knn, X, y, part, devices=jax.devices()[:1], key=jax.random.key(0))
    qa = np.asarray(ensemble_predict(knn, ka, X[::3], X=X, y=y))
    qb = np.asarray(ensemble_predict(knn, kb, X[::3], X=X, y=y))
    assert qa.shape == (100, 13) and (qa == qb).all()
    print("MAXDIFF", worst)
""")


def test_sharded_training_equals_single_device():
    env = dict(os.environ)
    env.pop("XLA_FLAGS", None)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run([sys.executable, "-c", _CHILD], env=env, capture_output=True,
                          text=True, timeout=240, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    diff = float(proc.stdout.split("MAXDIFF")[1].split()[0])
    # identical predictions; parameters equal up to float64 round-off (XLA:CPU compiles the
    # per-device block of 2 parts differently from a block of 16, e.g. matmul tiling)
    assert diff <= 1e-12, diff


_WORKER = textwrap.dedent("""
    import os, sys
    os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
    import jax
    jax.config.update("jax_enable_x64", True)
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    pid, port, out = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    jax.distributed.initialize(coordinator_address=f"localhost:{port}", num_processes=2,
                               process_id=pid)
    import numpy as np
    from jax.experimental import multihost_utils
    from sklearn.datasets import load_digits
    from jaxpoison.defenses import dpa_partition, ensemble_predict, train_ensemble
    from jaxpoison.models import SoftmaxRegression

    assert jax.process_count() == 2 and jax.device_count() == 4, jax.devices()
    X, y = load_digits(return_X_y=True)
    X, y = X[:300] / 16.0, y[:300]
    part = dpa_partition(X, y, 13)
    learner = SoftmaxRegression(10, 64, reg=1e-3)
    ens = train_ensemble(learner, X, y, part, key=jax.random.key(0), epochs=3, batch_size=8)
    leaf = jax.tree_util.tree_leaves(ens.params)[0]
    assert not leaf.is_fully_addressable  # really spread over both processes
    W = multihost_utils.process_allgather(ens.params["W"], tiled=True)
    pred = multihost_utils.process_allgather(ensemble_predict(learner, ens, X), tiled=True)
    if pid == 0:
        np.savez(out, W=np.asarray(W), pred=np.asarray(pred))
""")


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def test_multiprocess_training_equals_single_device(tmp_path):
    """Two processes (jax.distributed, 2 CPU devices each) train one ensemble sharded over
    all 4 devices; the gathered parameters equal a single-device run in this process."""
    env = dict(os.environ)
    env.pop("XLA_FLAGS", None)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    out, port = tmp_path / "multi.npz", str(_free_port())
    procs = [subprocess.Popen([sys.executable, "-c", _WORKER, str(pid), port, str(out)],
                              env=env, cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for pid in (0, 1)]
    logs = [p.communicate(timeout=240)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), "\n".join(logs)
    got = np.load(out)
    X, y = load_digits(return_X_y=True)
    X, y = X[:300] / 16.0, y[:300]
    part = dpa_partition(X, y, 13)
    learner = SoftmaxRegression(10, 64, reg=1e-3)
    ref = train_ensemble(learner, X, y, part, key=jax.random.key(0), epochs=3, batch_size=8,
                         devices=jax.devices()[:1])
    np.testing.assert_allclose(got["W"][:13], np.asarray(ref.params["W"])[:13], rtol=0,
                               atol=1e-12)
    np.testing.assert_array_equal(got["pred"], np.asarray(ensemble_predict(learner, ref, X)))


def test_gaussian_blur_is_scipys_gaussian_inside_and_keeps_constants():
    from scipy.ndimage import gaussian_filter

    from jaxpoison.models import gaussian_blur

    X = np.random.default_rng(0).random((3, 784))
    out = np.asarray(gaussian_blur(X, 1.5)).reshape(3, 28, 28)
    ref = gaussian_filter(X.reshape(3, 28, 28), (0, 1.5, 1.5), mode="constant", truncate=4.0)
    np.testing.assert_allclose(out[:, 7:21, 7:21], ref[:, 7:21, 7:21], atol=1e-12)
    np.testing.assert_allclose(gaussian_blur(np.full((1, 784), 0.3), 1.5), 0.3, atol=1e-12)


def _hog_reference(img, o, cell, block, eps=1e-5):
    """HOG written out with loops (one image): central differences, per-pixel bins by
    comparison with the bin edges, cell means, L2-Hys blocks."""
    H, W = img.shape
    gr = np.zeros_like(img)
    gc = np.zeros_like(img)
    gr[1:-1, :] = img[2:, :] - img[:-2, :]
    gc[:, 1:-1] = img[:, 2:] - img[:, :-2]
    mag = np.sqrt(gr**2 + gc**2)
    ang = np.rad2deg(np.arctan2(gr, gc)) % 180
    ncr, ncc = H // cell[0], W // cell[1]
    hist = np.zeros((ncr, ncc, o))
    for i in range(ncr):
        for j in range(ncc):
            for r in range(i * cell[0], (i + 1) * cell[0]):
                for c in range(j * cell[1], (j + 1) * cell[1]):
                    for b in range(o):
                        if 180 / o * b <= ang[r, c] < 180 / o * (b + 1):
                            hist[i, j, b] += mag[r, c]
    hist /= cell[0] * cell[1]
    out = []
    for i in range(ncr - block[0] + 1):
        for j in range(ncc - block[1] + 1):
            v = hist[i:i + block[0], j:j + block[1]]
            v = v / np.sqrt(np.sum(v**2) + eps**2)
            v = np.minimum(v, 0.2)
            out.append(v / np.sqrt(np.sum(v**2) + eps**2))
    return np.concatenate([v.ravel() for v in out])


@pytest.mark.parametrize("shape,o,cell,block", [((28, 28), 9, (7, 7), (2, 2)),
                                                 ((12, 10), 6, (4, 3), (1, 2))])
def test_hog_matches_a_loop_reference_and_skimage(shape, o, cell, block):
    from jaxpoison.models import hog

    rng = np.random.default_rng(1)
    X = rng.random((3,) + shape)
    X[0] = np.round(X[0] * 4) / 4  # flat patches and exact-boundary angles (0, 45, 90 deg)
    got = np.asarray(hog(X.reshape(3, -1), shape, orientations=o, pixels_per_cell=cell,
                         cells_per_block=block))
    for i in range(3):
        np.testing.assert_allclose(got[i], _hog_reference(X[i], o, cell, block), atol=1e-12)
    try:
        from skimage.feature import hog as sk_hog
    except ImportError:
        return  # scikit-image is optional; the loop reference above always runs
    for i in range(3):
        ref = sk_hog(X[i], orientations=o, pixels_per_cell=cell, cells_per_block=block,
                     block_norm="L2-Hys")
        np.testing.assert_allclose(got[i], ref, atol=1e-6)


def test_hog_bad_input():
    from jaxpoison.models import hog

    with pytest.raises(ValueError, match="image_shape"):
        hog(np.zeros((2, 10)), (28, 28))
    with pytest.raises(ValueError, match="cells_per_block"):
        hog(np.zeros((1, 784)), pixels_per_cell=(14, 14), cells_per_block=(3, 3))
    with pytest.raises(ValueError, match="orientations"):
        hog(np.zeros((1, 784)), orientations=0)


@pytest.mark.parametrize("metric,weights", [("l1", "distance"), ("l2", "distance"),
                                            ("l1", "uniform")])
def test_rnn_learner_metrics_and_weights_match_sklearn(digits, metric, weights):
    from sklearn.neighbors import RadiusNeighborsClassifier

    X, y = digits
    Xte = np.vstack([X[::9] + 0.01, X[:2]])  # two test points at distance 0 from a sample
    radius = 9.0 if metric == "l1" else 2.0
    part = dpa_partition(X, y, 3, hash="bytes")
    learner = RadiusNearestNeighbors(10, radius=radius, metric=metric, weights=weights)
    ens = train_ensemble(learner, X, y, part, key=jax.random.key(0))
    preds = np.asarray(ensemble_predict(learner, ens, Xte, X=X, y=y, chunk=20))
    for j in range(part.num_parts):
        rows = part.indices[j][part.mask[j]]
        ref = RadiusNeighborsClassifier(
            radius=radius, weights=weights, outlier_label=-1,
            metric="manhattan" if metric == "l1" else "euclidean").fit(X[rows], y[rows])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # sklearn warns about outliers
            np.testing.assert_array_equal(preds[:, j], ref.predict(Xte))
    assert np.any(preds == ABSTAIN) or metric == "l1"
    with pytest.raises(ValueError, match="metric"):
        RadiusNearestNeighbors(10, metric="cosine")


def test_per_partition_standardisation_matches_sklearn_on_standardised_part(digits):
    from sklearn.linear_model import LogisticRegression

    X, y = digits
    part = dpa_partition(X, y, 4)
    rows = part.indices[1][part.mask[1]]
    reg = 1e-2
    learner = SoftmaxRegression(10, 64, reg=reg, standardize=True)
    ens = train_ensemble(learner, X, y, part, key=jax.random.key(0), epochs=1500, lr=5e-2)
    mean, std = X[rows].mean(), X[rows].std()
    np.testing.assert_allclose(ens.params["mean"][1], mean, rtol=1e-10)
    np.testing.assert_allclose(ens.params["std"][1], std, rtol=1e-10)
    Z = (X - mean) / std
    ref = LogisticRegression(C=1.0 / (len(rows) * reg), tol=1e-10, max_iter=10000)
    ref.fit(Z[rows], y[rows])
    preds = np.asarray(ensemble_predict(learner, ens, X))
    assert np.mean(preds[:, 1] == ref.predict(Z)) > 0.97


def test_distances_match_scipy():
    from scipy.spatial.distance import cdist

    from jaxpoison.solvers import l1_distances, squared_distances

    rng = np.random.default_rng(4)
    A, B = rng.normal(size=(37, 5)), rng.normal(size=(11, 5))
    np.testing.assert_allclose(squared_distances(A, B), cdist(A, B, "sqeuclidean"),
                               atol=1e-12)
    for block in (1, 8, 64):  # several blocks, the last one padded
        np.testing.assert_allclose(l1_distances(A, B, block=block), cdist(A, B, "cityblock"),
                                   atol=1e-12)
    assert float(jnp.min(squared_distances(A, A))) >= 0.0  # clamped at 0 on the diagonal
