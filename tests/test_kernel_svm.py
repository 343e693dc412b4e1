"""Kernels, the box-hyperplane projection and the SVM-dual solvers against independent
references: sklearn's pairwise kernels, scipy SLSQP / KKT enumeration, libsvm (SVC)."""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.optimize import minimize
from sklearn.datasets import load_breast_cancer, make_blobs, make_moons
from sklearn.metrics.pairwise import linear_kernel, polynomial_kernel, rbf_kernel
from sklearn.svm import SVC

from jaxpoison import SolverError
from jaxpoison.models import fit_kernel_svm, fit_kernel_svm_precomputed, kernel_matrix
from jaxpoison.solvers import PGD, SMO, project_box_hyperplane

SOLVERS = {"smo": SMO, "pgd": PGD}


def _moons():
    X, y = make_moons(120, noise=0.25, random_state=0)
    return X, 2 * y - 1


def _cancer():
    X, y = load_breast_cancer(return_X_y=True)
    X = (X - X.mean(0)) / X.std(0)
    idx = np.random.default_rng(0).choice(len(y), 120, replace=False)
    return X[idx], 2 * y[idx] - 1


def _blobs():
    X, y = make_blobs(120, centers=2, cluster_std=2.5, random_state=1)
    return X / 4, 2 * y - 1


DATA = {"moons": _moons, "cancer": _cancer, "blobs": _blobs}


# ---------------------------------------------------------------- kernels

@pytest.mark.parametrize("kernel", ["rbf", "linear", "polynomial"])
def test_kernels_match_sklearn(kernel, rng):
    X1, X2 = rng.normal(size=(37, 4)), rng.normal(size=(11, 4))
    ref = {"rbf": rbf_kernel(X1, X2, gamma=0.3), "linear": linear_kernel(X1, X2),
           "polynomial": polynomial_kernel(X1, X2, degree=3, gamma=0.3, coef0=1.0)}[kernel]
    # one block; 5 balanced blocks of 8 rows with 3 padded; 37 blocks of 1 row, no padding
    for block in (2048, 8, 1):
        K = kernel_matrix(jnp.array(X1), jnp.array(X2), 0.3, kernel=kernel, coef0=1.0,
                          block_size=block)
        np.testing.assert_allclose(K, ref, rtol=1e-10, atol=1e-12)


# ---------------------------------------------------------------- projection

def _project_kkt_enumeration(v, y, C):
    """Brute force: enumerate which coordinates sit at 0, at C or are free; for each
    pattern the equality fixes mu in closed form; keep the feasible, optimal one."""
    n = len(v)
    best, best_val = None, np.inf
    for pattern in itertools.product((0, 1, 2), repeat=n):
        pattern = np.array(pattern)
        free = pattern == 2
        fixed = np.where(pattern == 1, C, 0.0)
        if free.any():
            mu = (np.sum(y[free] * v[free]) + np.sum(y[~free] * fixed[~free])) / free.sum()
            a = np.where(free, v - mu * y, fixed)
        else:
            a = fixed
        if abs(a @ y) > 1e-9 or np.any(a < -1e-12) or np.any(a > C + 1e-12):
            continue
        val = 0.5 * np.sum((a - v) ** 2)
        if val < best_val - 1e-12:
            best, best_val = a, val
    return best


@pytest.mark.parametrize("method", ["sort", "bisect"])
def test_projection_matches_brute_force(method, rng):
    for _ in range(6):
        n = 6
        v = rng.normal(size=n) * 2
        y = rng.choice([-1.0, 1.0], n)
        y[0], y[1] = 1.0, -1.0
        C = 1.5
        ref = _project_kkt_enumeration(v, y, C)
        got = project_box_hyperplane(jnp.array(v), jnp.array(y), C, method=method)
        np.testing.assert_allclose(got, ref, atol=1e-10)


def test_projection_vector_C_against_slsqp(rng):
    n = 8
    v = rng.normal(size=n) * 2
    y = np.array([1, -1, 1, 1, -1, -1, 1, -1.0])
    C = rng.uniform(0.5, 2.0, n)
    res = minimize(lambda a: 0.5 * np.sum((a - v) ** 2), np.zeros(n), jac=lambda a: a - v,
                   bounds=list(zip(np.zeros(n), C, strict=True)), method="SLSQP",
                   constraints=[{"type": "eq", "fun": lambda a: a @ y, "jac": lambda a: y}],
                   options={"ftol": 1e-15, "maxiter": 1000})
    got = project_box_hyperplane(jnp.array(v), jnp.array(y), jnp.array(C))
    np.testing.assert_allclose(got, res.x, atol=1e-7)


def test_projection_gradient_matches_finite_differences(rng):
    n = 7
    v = rng.normal(size=n)
    y = jnp.array([1, -1, 1, -1, 1, 1, -1.0])
    w = jnp.array(rng.normal(size=n))

    def f(v, C):
        return w @ project_box_hyperplane(v, y, C)

    g_v, g_C = jax.grad(f, argnums=(0, 1))(jnp.array(v), 0.8)
    eps = 1e-6
    for i in range(n):
        e = jnp.zeros(n).at[i].set(eps)
        fd = (f(jnp.array(v) + e, 0.8) - f(jnp.array(v) - e, 0.8)) / (2 * eps)
        assert abs(fd - g_v[i]) < 1e-6
    fd_C = (f(jnp.array(v), 0.8 + eps) - f(jnp.array(v), 0.8 - eps)) / (2 * eps)
    assert abs(fd_C - g_C) < 1e-6


def test_projection_vmaps():
    V = jnp.array(np.random.default_rng(1).normal(size=(5, 6)))
    y = jnp.array([1, -1, 1, -1, 1, -1.0])
    out = jax.vmap(lambda v: project_box_hyperplane(v, y, 1.0))(V)
    loop = jnp.stack([project_box_hyperplane(v, y, 1.0) for v in V])
    np.testing.assert_allclose(out, loop, atol=1e-14)


# ---------------------------------------------------------------- SVM vs libsvm

CASES = [("moons", "rbf", 10.0, 1.0), ("cancer", "rbf", 1.0, "scale"),
         ("cancer", "linear", 0.1, 1.0), ("blobs", "poly", 1.0, 1.0)]


def _dual_obj(y, alpha, K):
    return 0.5 * (alpha * y) @ K @ (alpha * y) - alpha.sum()


def _ref(name, kernel, C, gamma):
    X, y = DATA[name]()
    coef0 = 1.0 if kernel == "poly" else 0.0
    clf = SVC(C=C, kernel=kernel, gamma=gamma, coef0=coef0, tol=1e-10).fit(X, y)
    K = {"rbf": lambda: rbf_kernel(X, X, gamma=clf._gamma),
         "linear": lambda: linear_kernel(X, X),
         "poly": lambda: polynomial_kernel(X, X, degree=3, gamma=clf._gamma, coef0=coef0)}
    a_ref = np.zeros(len(y))
    a_ref[clf.support_] = np.abs(clf.dual_coef_[0])
    return X, y, K[kernel](), clf, a_ref


@pytest.mark.parametrize("case", CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_smo_and_pgd_match_libsvm_dual(case):
    """Both solvers on the same Gram matrix reach libsvm's optimum and intercept."""
    X, y, K, clf, a_ref = _ref(*case)
    f_ref = _dual_obj(y, a_ref, K)
    for method in ("smo", "pgd"):
        res = fit_kernel_svm_precomputed(K, y, C=case[2], solver=SOLVERS[method](tol=1e-9))
        assert int(res.status) == 0
        assert abs(float(res.objective) - f_ref) <= 1e-6 * abs(f_ref), method
        assert abs(float(res.intercept) - clf.intercept_[0]) < 1e-4 * max(
            1, abs(clf.intercept_[0])), method
        # predictions on the training points (decision values from the dual)
        d = K @ (np.asarray(res.alpha) * y) + float(res.intercept)
        d_ref = clf.decision_function(X)
        sure = np.abs(d_ref) > 1e-3
        np.testing.assert_array_equal(np.sign(d[sure]), np.sign(d_ref[sure]))


@pytest.mark.parametrize("method", ["smo", "pgd"])
def test_fit_kernel_svm_matches_svc_end_to_end(method):
    X, y, K, clf, a_ref = _ref("moons", "rbf", 10.0, 1.0)
    fit = fit_kernel_svm(X, y, C=10.0, kernel="rbf", gamma=1.0,
                         solver=SOLVERS[method](tol=1e-9))
    m = fit.model
    Xt = X + 0.05
    d_ref = clf.decision_function(Xt)
    d = np.asarray(m.decision_function(Xt))
    np.testing.assert_allclose(d, d_ref, atol=1e-4 * max(1.0, np.abs(d_ref).max()))
    sure = np.abs(d_ref) > 1e-3
    np.testing.assert_array_equal(np.asarray(m.predict(Xt))[sure], clf.predict(Xt)[sure])
    np.testing.assert_allclose(np.asarray(m.alpha), a_ref, atol=1e-5)


def test_precomputed_and_vector_C_match_libsvm():
    X, y = _moons()
    K = rbf_kernel(X, X, gamma=0.5)
    w = np.linspace(0.5, 2.0, len(y))
    clf = SVC(kernel="precomputed", C=3.0, tol=1e-10).fit(K, y, sample_weight=w)
    res = fit_kernel_svm_precomputed(K, y, C=3.0 * w, solver=SMO(tol=1e-9))
    a_ref = np.zeros(len(y))
    a_ref[clf.support_] = np.abs(clf.dual_coef_[0])
    f_ref = _dual_obj(y, a_ref, K)
    assert abs(float(res.objective) - f_ref) <= 1e-6 * abs(f_ref)
    assert abs(float(res.intercept) - clf.intercept_[0]) < 1e-4


def test_vmap_over_labels_C_and_gamma_equals_loop():
    X, y = _moons()
    rng = np.random.default_rng(3)
    Y = np.stack([np.where(rng.random(len(y)) < 0.1, -y, y) for _ in range(3)])
    Cs = jnp.array([0.5, 2.0, 8.0])
    gs = jnp.array([0.3, 1.0, 2.0])
    batched = jax.vmap(lambda yy, c, g: fit_kernel_svm(X, yy, C=c, gamma=g, solver=SMO(1e-8),
                                                       throw=False))(jnp.array(Y), Cs, gs)
    for i in range(3):
        single = fit_kernel_svm(X, Y[i], C=float(Cs[i]), gamma=float(gs[i]),
                                solver=SMO(1e-8))
        np.testing.assert_allclose(batched.objective[i], single.objective, rtol=1e-12)
        np.testing.assert_allclose(batched.model.alpha[i], single.model.alpha, atol=1e-10)


def test_float32_runs_without_nan():
    X, y = _moons()
    X32 = jnp.asarray(X, jnp.float32)
    clf = SVC(C=10.0, gamma=1.0, tol=1e-10).fit(X, y)
    m = fit_kernel_svm(X32, y, C=10.0, gamma=1.0, solver=SMO(tol=1e-3)).model
    assert m.alpha.dtype == jnp.float32
    assert np.all(np.isfinite(np.asarray(m.alpha)))
    assert np.mean(np.asarray(m.predict(X)) == clf.predict(X)) > 0.98
    K32 = jnp.asarray(rbf_kernel(X, X, gamma=1.0), jnp.float32)
    res = fit_kernel_svm_precomputed(K32, y, C=10.0, solver=PGD(tol=1e-2))
    assert res.alpha.dtype == jnp.float32 and np.all(np.isfinite(np.asarray(res.alpha)))
    d = np.asarray(K32 @ (res.alpha * y) + res.intercept)
    assert np.mean(np.sign(d) == clf.predict(X)) > 0.98


def test_iteration_limit_gives_status_and_raises():
    X, y = _moons()
    K = rbf_kernel(X, X, gamma=10.0)
    for method in ("smo", "pgd"):
        solver = SOLVERS[method](tol=1e-9, max_iter=3)
        res = fit_kernel_svm_precomputed(K, y, C=10.0, solver=solver, throw=False)
        assert int(res.status) == 1 and int(res.iterations) == 3
        with pytest.raises(SolverError, match="MAX_ITERATIONS"):
            fit_kernel_svm_precomputed(K, y, C=10.0, solver=solver)


def test_tol_and_max_iter_are_traced_not_static():
    """Changing the solver's tol / max_iter reuses the compiled program (one trace)."""
    X, y = _moons()
    traces = []

    @jax.jit
    def fit(solver):
        traces.append(1)
        return fit_kernel_svm(X, y, C=1.0, gamma=1.0, solver=solver, throw=False).objective

    a = fit(SMO(tol=1e-3, max_iter=50_000))
    b = fit(SMO(tol=1e-9, max_iter=60_000))
    assert len(traces) == 1 and float(b) <= float(a) + 1e-12


def test_throw_raises_under_jit():
    X, y = _moons()
    fit = jax.jit(lambda X: fit_kernel_svm(X, y, C=10.0, gamma=10.0,
                                           solver=SMO(tol=1e-9, max_iter=3)).objective)
    with pytest.raises(Exception, match="fit_kernel_svm"):
        jax.block_until_ready(fit(jnp.asarray(X)))


def test_predict_checks_its_input():
    """Wrong feature count or NaN rows: a ValueError naming X (not an XLA error, not labels)."""
    X, y = _moons()
    m = fit_kernel_svm(X, y, C=1.0, gamma=1.0).model
    with pytest.raises(ValueError, match=r"X must have shape \(any, 2\)"):
        m.predict(np.zeros((3, 5)))
    with pytest.raises(ValueError, match="X must be finite"):
        m.predict(np.array([[0.0, np.nan]]))
    with pytest.raises(ValueError, match="X must have shape"):
        m.decision_function(np.zeros((3, 1)))
    with pytest.raises(ValueError, match="X and y"):
        m.accuracy(X, y[:-1])


@pytest.mark.parametrize("solver,match", [
    (lambda: SMO(tol=0.0), "SMO.tol"),
    (lambda: SMO(tol=float("nan")), "SMO.tol"),
    (lambda: SMO(max_iter=0), "SMO.max_iter"),
    (lambda: PGD(max_iter=2.5), "PGD.max_iter"),
    (lambda: PGD(projection="newton"), "PGD.projection"),
])
def test_bad_solver_options_raise(solver, match):
    with pytest.raises(ValueError, match=match):
        solver()


@pytest.mark.parametrize("kwargs,match", [
    ({"y": np.r_[np.zeros(60), np.ones(60)]}, "y"),
    ({"C": 0.0}, "C"),
    ({"C": -1.0}, "C"),
    ({"gamma": 0.0}, "gamma"),
    ({"y": np.ones(5)}, "X and y"),
    ({"X": np.full((120, 2), np.nan)}, "X"),
    ({"kernel": "sigmoid"}, "kernel"),
    ({"gamma": "median"}, "gamma"),
    ({"gamma": float("inf")}, "gamma"),
    ({"degree": 0}, "degree"),
    ({"C": np.ones(3)}, "C"),
    ({"X": np.zeros((0, 2)), "y": np.zeros(0)}, "X"),
])
def test_bad_input_raises(kwargs, match):
    X, y = _moons()
    args = {"X": X, "y": y, "C": 1.0, "gamma": 1.0}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        fit_kernel_svm(args.pop("X"), args.pop("y"), **args)


def test_solver_of_wrong_type_is_a_type_error():
    X, y = _moons()
    with pytest.raises(TypeError, match="solver"):
        fit_kernel_svm(X, y, solver="smo")
