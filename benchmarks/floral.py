"""FLORAL part: kernel-SVM solvers and FLORAL rounds against libsvm and jaxopt.

    python benchmarks/floral.py [--quick]

1. one RBF SVM fit (C=10, gamma=1, tol 1e-3) at n = 1k, 2k, 5k: our SMO and FISTA vs
   sklearn SVC (libsvm) and jaxopt ProjectedGradient with its box-section projection;
2. 256 label variants of an n = 500 problem: one vmapped SMO call vs 256 sequential SVC
   fits (target: >= 5x faster);
3. FLORAL, 500 rounds on the authors' Moon data (target: < 0.5 s after compilation);
4. FLORAL at n = 20,000, d = 384 (float32), 1,000 rounds: time and peak memory.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
import warnings
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.datasets import make_moons  # noqa: E402
from sklearn.svm import SVC  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import print_table, time_call, time_jax  # noqa: E402

from jaxpoison.defenses import floral  # noqa: E402
from jaxpoison.models import fit_kernel_svm, kernel_matrix  # noqa: E402
from jaxpoison.solvers import PGD, SMO  # noqa: E402

C, GAMMA, TOL = 10.0, 1.0, 1e-3
PGD_MAX_N = 1000  # first-order solvers (ours and jaxopt) take minutes beyond this on 2 cores


def _data(n, seed=0):
    X, y = make_moons(n, noise=0.2, random_state=seed)
    X = (X - X.mean(0)) / X.std(0)
    return X, 2 * y - 1


def _dual(K, y, alpha):
    a = alpha * y
    return 0.5 * a @ K @ a - alpha.sum()


def _jaxopt_solver():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            import jaxopt
        except ImportError:
            return None
    from jaxopt.projection import projection_box_section

    def fit(K, y):
        yf = y.astype(K.dtype)
        Q = yf[:, None] * yf[None, :] * K

        def fun(a, Q):
            return 0.5 * a @ Q @ a - jnp.sum(a)

        pg = jaxopt.ProjectedGradient(fun=fun, projection=projection_box_section,
                                      maxiter=5000, tol=TOL, jit=True)
        hyper = (jnp.zeros_like(yf), jnp.full_like(yf, C), yf, 0.0)
        return pg.run(jnp.zeros_like(yf), hyperparams_proj=hyper, Q=Q).params

    return jax.jit(fit)


def bench_single(sizes):
    rows = []
    jaxopt_fit = _jaxopt_solver()
    for n in sizes:
        X, y = _data(n)
        Xj, yj = jnp.asarray(X), jnp.asarray(y)
        t_svc, clf = time_call(lambda X=X, y=y: SVC(C=C, gamma=GAMMA, tol=TOL).fit(X, y))
        K = np.asarray(kernel_matrix(Xj, Xj, GAMMA))
        a_ref = np.zeros(n)
        a_ref[clf.support_] = np.abs(clf.dual_coef_[0])
        f_ref = _dual(K, y, a_ref)
        for method in ("smo", "pgd") if n <= PGD_MAX_N else ("smo",):
            solver = SMO(tol=TOL) if method == "smo" else PGD(tol=TOL)
            fn = jax.jit(lambda X, y, s=solver: fit_kernel_svm(X, y, C=C, gamma=GAMMA,
                                                               solver=s, throw=False))
            comp, run, m = time_jax(fn, Xj, yj, repeats=2 if method == "smo" else 1)
            rel = (float(m.objective) - f_ref) / abs(f_ref)
            rows.append([n, f"jaxpoison {method}", comp, run, t_svc / run, rel,
                         int(m.iterations)])
        if jaxopt_fit is not None and n <= PGD_MAX_N:
            Kj = jnp.asarray(K)
            comp, run, a = time_jax(jaxopt_fit, Kj, yj, repeats=1)
            rel = (_dual(K, y, np.asarray(a)) - f_ref) / abs(f_ref)
            rows.append([n, "jaxopt PG (K given)", comp, run, t_svc / run, rel, ""])
        rows.append([n, "libsvm SVC", 0.0, t_svc, 1.0, 0.0, int(clf.n_iter_[0])])
    print(f"(first-order solvers run only for n <= {PGD_MAX_N})")
    sys.stdout.flush()
    print_table("Single RBF SVM fit (C=10, gamma=1, tol=1e-3); ratio = libsvm time / time",
                ["n", "solver", "compile s", "run s", "libsvm/x", "dual rel. diff", "iters"],
                rows)


def bench_vmap(n=500, variants=256):
    X, y = _data(n)
    rng = np.random.default_rng(0)
    Y = np.stack([np.where(rng.random(n) < 0.1, -y, y) for _ in range(variants)])
    Xj = jnp.asarray(X)
    fn = jax.jit(jax.vmap(lambda yy, X: fit_kernel_svm(X, yy, C=C, gamma=GAMMA,
                                                       solver=SMO(tol=TOL), throw=False),
                          in_axes=(0, None)))
    comp, run, ms = time_jax(fn, jnp.asarray(Y), Xj, repeats=2)
    t_svc, refs = time_call(lambda: [SVC(C=C, gamma=GAMMA, tol=TOL).fit(X, yy) for yy in Y])
    K = np.asarray(kernel_matrix(Xj, Xj, GAMMA))
    rels = []
    for i in range(0, variants, 32):
        a_ref = np.zeros(n)
        a_ref[refs[i].support_] = np.abs(refs[i].dual_coef_[0])
        f_ref = _dual(K, Y[i], a_ref)
        rels.append(abs(float(ms.objective[i]) - f_ref) / abs(f_ref))
    print_table(f"{variants} label variants of an n={n} RBF SVM (10% random flips each)",
                ["solver", "compile s", "run s", "speed-up vs libsvm loop", "max dual rel. diff"],
                [["jaxpoison vmap(SMO), one call", comp, run, t_svc / run, max(rels)],
                 [f"libsvm SVC x{variants} (loop)", 0.0, t_svc, 1.0, 0.0]])


def bench_floral_moon(rounds=500):
    from jaxpoison.datasets import load_floral_moon

    d = load_floral_moon()
    X, y = jnp.asarray(d.X_train, float), jnp.asarray(d.y_train.astype(int))
    Xt, yt = jnp.asarray(d.X_test, float), jnp.asarray(d.y_test.astype(int))
    def one(key, X, y, Xt, yt):
        return floral(X, y, C=C, gamma=GAMMA, budget=25, steps=rounds, lr=0.01, key=key,
                      X_eval=Xt, y_eval=yt, throw=False)

    fn = jax.jit(one)
    comp, run, res = time_jax(fn, jax.random.key(0), X, y, Xt, yt, repeats=3)
    keys = jax.random.split(jax.random.key(1), 5)
    fn5 = jax.jit(jax.vmap(one, in_axes=(0, None, None, None, None)))
    comp5, run5, _ = time_jax(fn5, keys, X, y, Xt, yt, repeats=2)
    print_table(f"FLORAL on Moon (n=500 train, 1000 test evaluated every round), {rounds} "
                "rounds, float64",
                ["run", "compile s", "run s", "per round ms", "last-round acc"],
                [["1 replication", comp, run, 1e3 * run / rounds, float(res.last_accuracy)],
                 ["5 replications (vmap)", comp5, run5, 1e3 * run5 / rounds, ""]])


def bench_large(n, d, rounds):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, d)).astype(np.float32)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    w = rng.normal(size=d)
    y = np.where(X @ w + 0.3 * rng.normal(size=n) > 0, 1, -1)
    Xj = jnp.asarray(X, jnp.float32)
    k = n // 20
    fn = jax.jit(lambda key, X: floral(X, y, C=1.0, gamma=1.0, budget=k, steps=rounds, lr=1e-3,
                                       key=key, throw=False))
    # compile ahead of time and run once (a second run of 1,000 rounds would double the
    # benchmark's length just to separate compilation)
    start = time.perf_counter()
    compiled = fn.lower(jax.random.key(0), Xj).compile()
    compile_s = time.perf_counter() - start
    start = time.perf_counter()
    res = compiled(jax.random.key(1), Xj)
    res.lam.block_until_ready()
    run = time.perf_counter() - start
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2
    print_table(f"FLORAL at scale: n={n}, d={d}, float32, k={k}, {rounds} rounds",
                ["compile s", "run s", "per round ms", "process peak RSS GB",
                 "K size GB", "finite"],
                [[compile_s, run, 1e3 * run / rounds, peak_gb,
                  4 * n * n / 1e9, bool(np.all(np.isfinite(np.asarray(res.lam))))]])


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--large-only", action="store_true", help="only the n=20,000 problem")
    ap.add_argument("--large-rounds", type=int, default=1000)
    args = ap.parse_args(argv)
    if args.large_only:
        bench_large(20000, 384, args.large_rounds)
        return
    if args.quick:
        bench_single([500, 1000])
        bench_vmap(500, 64)
        bench_floral_moon(500)
        bench_large(4000, 384, 100)
    else:
        bench_single([1000, 2000, 5000])
        bench_vmap(500, 256)
        bench_floral_moon(500)
        bench_large(20000, 384, 1000)


if __name__ == "__main__":
    main()
