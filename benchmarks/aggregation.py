"""Aggregation benchmark: training k base learners in one vmapped call, and FA certification.

1. Training k = 1200 softmax-regression base learners on Fashion-MNIST's DPA partition
   (60,000 images, ~50 per part, 196 pooled features, full-batch Adam): jaxpoison's one
   vmapped, jitted call vs a sequential Python loop over the SAME jitted single-part
   function, vs scikit-learn's LogisticRegression (lbfgs) fitted part by part. The loops
   are timed on the first ``loop_parts`` parts and scaled linearly to k (stated in the
   table).
2. FA certification of 10,000 test points with k = 50, d = 16 (800 learners, 10 classes):
   ``fa_certify`` vs a direct NumPy port of the authors' per-sample, per-class loop (sort the
   damages, take them while the gap stays non-negative).

Run: ``python benchmarks/aggregation.py [--quick]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks._common import print_table, time_call, time_jax  # noqa: E402
from jaxpoison.defenses import dpa_partition, fa_certify, fa_shifts  # noqa: E402
from jaxpoison.models import SoftmaxRegression  # noqa: E402
from jaxpoison.models.learners import fit_part, fit_parts, make_optimizer  # noqa: E402


def fa_certify_port(max_classes, labels, num_classes, k, d, shifts):
    """The authors' certification loop, ported to NumPy (one sample, one class at a time)."""
    n_subsets = k * d
    n = labels.shape[0]
    predictions = np.zeros((n, num_classes))
    for j in range(max_classes.shape[1]):
        np.add.at(predictions, (np.arange(n), max_classes[:, j]), 1)
    top = np.argsort(-predictions, axis=1, kind="stable")[:, 0]
    shifted = np.array([[(h + s) % n_subsets for s in shifts] for h in range(n_subsets)])
    certs = np.zeros(n, dtype=np.int64)
    for i in range(n):
        if top[i] != labels[i]:
            certs[i] = -1
            continue
        certs[i] = n_subsets
        label = int(labels[i])
        given_h = max_classes[i][shifted.reshape(-1)].reshape(-1, d)
        for c in range(num_classes):
            if c == label:
                continue
            diff = predictions[i][label] - predictions[i][c] - (1 if c < label else 0)
            deltas = (1 + (given_h == label).astype(int) - (given_h == c).astype(int)).sum(1)
            deltas = -np.sort(-deltas)
            radius = 0
            while diff - deltas[radius] >= 0:
                diff -= deltas[radius]
                radius += 1
            certs[i] = min(certs[i], radius)
    return certs


def bench_training(quick: bool) -> list[list]:
    from jaxpoison.datasets import load_fashion_mnist

    data = load_fashion_mnist()
    imgs = data.X_train / 255.0
    X = imgs.reshape(-1, 14, 2, 14, 2).mean(axis=(2, 4)).reshape(len(imgs), -1)
    y = np.asarray(data.y_train)
    k = 1200
    epochs = 20 if quick else 50
    loop_parts = 20 if quick else 100
    part = dpa_partition(data.X_train, y, k)
    learner = SoftmaxRegression(10, X.shape[1], reg=1e-3)
    opt = make_optimizer("adam", 5e-2)
    dtype = jnp.float32
    Xj, yj = jnp.asarray(X, dtype), jnp.asarray(y)
    keys = jax.vmap(lambda j: jax.random.fold_in(jax.random.key(0), j))(jnp.arange(k))
    idx, mask = jnp.asarray(part.indices), jnp.asarray(part.mask)
    kw = dict(optimizer=opt, epochs=epochs, batch_size=None)

    def all_parts():
        return fit_parts(learner, Xj, yj, idx, mask, keys, **kw)

    compile_v, run_v, stacked = time_jax(all_parts, repeats=2)

    single = jax.jit(lambda i, m, kk: fit_part(learner, Xj, yj, i, m, kk, **kw))
    jax.block_until_ready(single(idx[0], mask[0], keys[0]))  # compile once

    def loop():
        out = None
        for j in range(loop_parts):
            out = single(idx[j], mask[j], keys[j])
        return jax.block_until_ready(out)

    t_loop, _ = time_call(loop, repeats=2)
    t_loop_full = t_loop * k / loop_parts

    from sklearn.linear_model import LogisticRegression

    def sk_loop():
        for j in range(loop_parts):
            rows = part.indices[j][part.mask[j]]
            if np.unique(y[rows]).size < 2:
                continue
            LogisticRegression(C=1.0 / (len(rows) * 1e-3), max_iter=200).fit(X[rows], y[rows])

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t_sk, _ = time_call(sk_loop)
    t_sk_full = t_sk * k / loop_parts
    W = np.asarray(stacked["W"])
    assert np.all(np.isfinite(W))
    # GEMM-only floor: the forward pass and the weight gradient are two (m x f) x (f x C)
    # products per part and step (padded m, as the program computes them). At the rate of
    # one large float32 GEMM on this machine this is a lower bound on the time of any
    # implementation (softmax, loss and Adam updates not counted). Measured: XLA:CPU runs
    # the 1,200 small batched products of the vmapped program far below that rate.
    m, f = part.indices.shape[1], X.shape[1]
    flops = epochs * k * 2 * (2 * m * f * 10)
    rate = gemm_rate()
    floor = flops / rate
    return [
        [f"train k={k} softmax ({epochs} full-batch Adam steps)", "jaxpoison vmapped (1 call)",
         compile_v, run_v, 1.0],
        ["", f"sequential JAX loop (same jitted fn; {loop_parts} parts x {k // loop_parts})",
         0.0, t_loop_full, t_loop_full / run_v],
        ["", f"sklearn LogisticRegression lbfgs ({loop_parts} parts x {k // loop_parts})", 0.0,
         t_sk_full, t_sk_full / run_v],
        ["", f"GEMM-only floor: {flops / 1e9:.1f} GFLOP at a large GEMM's "
         f"{rate / 1e9:.0f} GFLOP/s (loop / floor = {t_loop_full / floor:.0f}x)", 0.0, floor,
         floor / run_v],
    ]


def gemm_rate(n: int = 2048) -> float:
    """FLOP/s of one large float32 matrix product on the default device (best of 3)."""
    a = jnp.ones((n, n), jnp.float32)
    mm = jax.jit(lambda a: a @ a)
    _, best, _ = time_jax(mm, a, repeats=3)
    return 2 * n**3 / best


def bench_fa(quick: bool) -> list[list]:
    k, d, C = 50, 16, 10
    n = 10000
    port_n = 1000 if quick else n
    rng = np.random.default_rng(0)
    labels = rng.integers(0, C, n)
    # base learners right 70% of the time, otherwise a random class
    preds = np.where(rng.random((n, k * d)) < 0.7, labels[:, None],
                     rng.integers(0, C, (n, k * d)))
    shifts = fa_shifts(k, d)
    pj, lj = jnp.asarray(preds), jnp.asarray(labels)

    def ours():
        return fa_certify(pj, lj, C, d=d, shifts=shifts).radius

    compile_f, run_f, radius = time_jax(ours, repeats=3)
    t_port, ref = time_call(lambda: fa_certify_port(preds[:port_n], labels[:port_n], C, k, d,
                                                    shifts))
    assert np.array_equal(np.asarray(radius)[:port_n], ref), "FA certificate mismatch"
    t_port_full = t_port * n / port_n
    note = "" if port_n == n else f" ({port_n} points x {n // port_n})"
    return [
        [f"FA certify n={n}, k={k}, d={d}", "jaxpoison fa_certify (jit)", compile_f, run_f, 1.0],
        ["", "NumPy port of the authors' per-sample loop" + note, 0.0, t_port_full,
         t_port_full / run_f],
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    start = time.perf_counter()
    rows = bench_fa(args.quick) + bench_training(args.quick)
    print_table("aggregation: vmapped training and FA certification",
                ["task", "method", "compile s", "run s", "x slower than ours"], rows)
    print(f"(total {time.perf_counter() - start:.0f} s; identical FA radii checked)")


if __name__ == "__main__":
    main()
