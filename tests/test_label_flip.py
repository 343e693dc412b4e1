"""Label-flip attacks and label-noise baselines against sklearn (libsvm, DBSCAN, kNN) and
exhaustive search on small cases."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from sklearn.cluster import DBSCAN
from sklearn.datasets import make_moons
from sklearn.metrics.pairwise import rbf_kernel
from sklearn.neighbors import NearestNeighbors
from sklearn.svm import SVC

from jaxpoison.attacks import (
    alfa,
    alfa_tilt,
    flip_budget,
    greedy_lfa,
    random_label_flip,
    topk_sv_flip,
)
from jaxpoison.defenses import curie, ln_svm, ls_svm, svm_baseline
from jaxpoison.defenses.baselines import dbscan_labels
from jaxpoison.solvers import SMO

C, GAMMA = 5.0, 1.0
TIGHT = SMO(tol=1e-9)


@pytest.fixture(scope="module")
def data():
    X, y = make_moons(60, noise=0.3, random_state=2)
    Xv, yv = make_moons(40, noise=0.3, random_state=5)
    return X, 2 * y - 1, Xv, 2 * yv - 1


def _svc(X, z):
    return SVC(C=C, gamma=GAMMA, tol=1e-10).fit(X, z)


def test_flip_budget():
    assert flip_budget(500, 0.05) == 25 and flip_budget(500, 0.25) == 125
    assert flip_budget(30, 0.1) == 3 and flip_budget(7, 0.1) == 1


def test_random_flip_count_and_determinism(data):
    _, y, _, _ = data
    a = random_label_flip(y, budget=7, key=jax.random.key(1))
    b = random_label_flip(y, budget=7, key=jax.random.key(1))
    assert int(a.num_flipped) == 7 and np.sum(np.asarray(a.labels) != y) == 7
    np.testing.assert_array_equal(np.asarray(a.labels), np.asarray(b.labels))


def test_topk_sv_flip_flips_largest_libsvm_duals():
    X, y = make_moons(60, noise=0.05, random_state=2)
    y = 2 * y - 1
    clf = SVC(C=1000.0, gamma=GAMMA, tol=1e-10).fit(X, y)  # large C: duals below the bound
    alpha = np.zeros(len(y))
    alpha[clf.support_] = np.abs(clf.dual_coef_[0])
    assert np.sort(alpha)[-5] < 999  # separable: no ties at the bound
    res = topk_sv_flip(X, y, budget=4, C=1000.0, gamma=GAMMA, solver=TIGHT)
    assert set(np.flatnonzero(np.asarray(res.flipped))) == set(np.argsort(-alpha)[:4])


def test_greedy_lfa_first_flip_is_the_exhaustive_best(data):
    """Brute force with libsvm over every single flip, same criterion (errors, then hinge)."""
    X, y, Xv, yv = data
    scores = []
    for i in range(len(y)):
        z = y.copy()
        z[i] = -z[i]
        f = _svc(X, z).decision_function(Xv)
        err = np.sum(np.where(f >= 0, 1, -1) != yv)
        h = np.mean(np.maximum(0, 1 - yv * f))
        scores.append(err + h / (1 + h))
    scores = np.array(scores)
    res = greedy_lfa(X, y, Xv, yv, budget=1, C=C, gamma=GAMMA, solver=TIGHT)
    i = int(np.flatnonzero(np.asarray(res.flipped))[0])
    assert scores[i] >= scores.max() - 1e-6
    assert float(res.score) == pytest.approx(scores.max(), abs=1e-6)


def test_alfa_returns_a_fixed_point_of_its_own_update(data):
    """Checked with libsvm: refit on ALFA's labels, recompute the LP's scores, the same
    flip set must be selected again (ALFA's stopping rule)."""
    X, y, _, _ = data
    L = 6
    res = alfa(X, y, budget=L, C=C, gamma=GAMMA, solver=TIGHT)
    assert int(res.status) == 0 and int(res.num_flipped) == L
    z = np.asarray(res.labels)
    f_clean = _svc(X, y).decision_function(X)
    f_z = _svc(X, z).decision_function(X)
    psi, psi_f = np.maximum(0, 1 - y * f_clean), np.maximum(0, 1 + y * f_clean)
    xi, xi_f = np.maximum(0, 1 - y * f_z), np.maximum(0, 1 + y * f_z)
    delta = (xi_f - psi_f) - (xi - psi)
    assert set(np.argsort(delta)[:L]) == set(np.flatnonzero(z != y))


def test_alfa_tilt_without_random_part_matches_libsvm_scores(data):
    """beta2 = 0 removes the random classifier: the flips are the L smallest
    alpha/C - beta1 * s (s = normalised libsvm margins)."""
    X, y, _, _ = data
    L = 5
    res = alfa_tilt(X, y, budget=L, variant="xiao", key=jax.random.key(0), C=C, gamma=GAMMA,
                    beta2=0.0,
                    num_trials=2, solver=TIGHT)
    clf = _svc(X, y)
    alpha = np.zeros(len(y))
    alpha[clf.support_] = np.abs(clf.dual_coef_[0])
    s = y * clf.decision_function(X)
    v = alpha / C - s / np.abs(s).max()
    assert set(np.flatnonzero(np.asarray(res.flipped))) == set(np.argsort(v)[:L])
    # the reported cosine is the tilt of that flip set, computed with libsvm
    z = np.asarray(res.labels)
    c2 = _svc(X, z)
    w2 = np.zeros(len(y))
    w2[c2.support_] = c2.dual_coef_[0]
    w = np.zeros(len(y))
    w[clf.support_] = clf.dual_coef_[0]
    K = rbf_kernel(X, X, gamma=GAMMA)
    cos = w2 @ K @ w / np.sqrt((w2 @ K @ w2) * (w @ K @ w))
    assert float(res.score) == pytest.approx(cos, abs=1e-5)


def _authors_alfa_tilt_port(X, y, L, C=1.0, gamma=1.0, tol=1e-3, beta1=1.0, beta2=1.0):
    """NumPy + scikit-learn port of the FLORAL authors' alfa-tilt script, written from
    reading `src/data/alfa_tilt_attack.py` of melisilaydabal/floral: libsvm fit, signed
    dual coefficients scattered to all points, signed margins y f(x) over their largest
    magnitude; the script's "random" SVM is the same clean fit, so q = s; flip the L
    smallest scores; the tilt angle is alpha'^T (K o z y^T) alpha over the norms."""
    clf = SVC(kernel="rbf", C=C, gamma=gamma, tol=tol).fit(X, y)
    a = np.zeros(len(y))
    a[clf.support_] = clf.dual_coef_[0]
    m = y * clf.decision_function(X)
    s = m / np.abs(m).max()
    q = s
    order = np.argsort(a / C - beta1 * s - beta2 * q, kind="stable")
    z = y.copy()
    z[order[:L]] = -z[order[:L]]
    c2 = SVC(kernel="rbf", C=C, gamma=gamma, tol=tol).fit(X, z)
    a2 = np.zeros(len(y))
    a2[c2.support_] = c2.dual_coef_[0]
    K = rbf_kernel(X, X, gamma=gamma)
    num = a2 @ (K * np.outer(z, y)) @ a
    den = np.sqrt(a2 @ (K * np.outer(z, z)) @ a2) * np.sqrt(a @ (K * np.outer(y, y)) @ a)
    return z, num / den


@pytest.mark.parametrize("L", [25, 50, 125])
def test_alfa_tilt_authors_variant_matches_a_port_of_their_script(L):
    """On the authors' Moon training split (C = gamma = 1, their 5/10/25% budgets): the same
    flipped labels as the port, at libsvm's default tolerance and at a tight one, and the
    same tilt angle."""
    from jaxpoison.datasets import load_floral_moon

    d = load_floral_moon()
    X, y = d.X_train, d.y_train.astype(int)
    for tol in (1e-3, 1e-10):
        z, tilt = _authors_alfa_tilt_port(X, y, L, tol=tol)
        res = alfa_tilt(X, y, budget=L, C=1.0, gamma=1.0, solver=SMO(tol=tol))
        np.testing.assert_array_equal(np.asarray(res.labels), z)
        assert int(res.num_flipped) == L
        assert float(res.score) == pytest.approx(tilt, abs=1e-4 if tol > 1e-6 else 1e-8)


def test_alfa_tilt_variants_differ_and_authors_ignores_the_key(data):
    X, y, _, _ = data
    a = alfa_tilt(X, y, budget=6, C=C, gamma=GAMMA)
    b = alfa_tilt(X, y, budget=6, C=C, gamma=GAMMA, key=jax.random.key(5), num_trials=4)
    np.testing.assert_array_equal(np.asarray(a.labels), np.asarray(b.labels))
    x = alfa_tilt(X, y, budget=6, C=C, gamma=GAMMA, variant="xiao", key=jax.random.key(5))
    assert not np.array_equal(np.asarray(a.labels), np.asarray(x.labels))


def test_alfa_tilt_hurts_more_than_random(data):
    X, y, Xv, yv = data
    # same static shape as the test above (budget 5, 2 trials): one compilation
    tilt = alfa_tilt(X, y, budget=5, variant="xiao", key=jax.random.key(3), C=C, gamma=GAMMA,
                     num_trials=2,
                     solver=TIGHT)
    rnd = random_label_flip(y, budget=5, key=jax.random.key(0))
    acc_tilt = _svc(X, np.asarray(tilt.labels)).score(Xv, yv)
    acc_rnd = _svc(X, np.asarray(rnd.labels)).score(Xv, yv)
    assert acc_tilt < acc_rnd


@pytest.mark.parametrize("fn", ["random", "topk", "alfa"])
def test_bad_budget_raises(data, fn):
    X, y, _, _ = data
    with pytest.raises(ValueError, match="budget"):
        if fn == "random":
            random_label_flip(y, budget=len(y) + 1, key=jax.random.key(0))
        elif fn == "topk":
            topk_sv_flip(X, y, budget=-1)
        else:
            alfa(X, y, budget=len(y) + 1)
    with pytest.raises(ValueError, match="y"):
        topk_sv_flip(X, np.zeros(len(y)), budget=1)


@pytest.mark.parametrize("call,exc,match", [
    (lambda X, y: alfa(X, np.ones(len(y)), budget=1), ValueError, "two classes"),
    (lambda X, y: alfa(X, y, budget=1, C=0.0), ValueError, "C"),
    (lambda X, y: alfa(X, y, budget=1, gamma=-1.0), ValueError, "gamma"),
    (lambda X, y: alfa(X, y, budget=1, max_iter=0), ValueError, "max_iter"),
    (lambda X, y: alfa_tilt(X, y, budget=1, variant="xiao", key=None), TypeError, "key"),
    (lambda X, y: alfa_tilt(X, y, budget=1, variant="xiao", key=jax.random.key(0),
                            num_trials=0), ValueError, "num_trials"),
    (lambda X, y: alfa_tilt(X, y, budget=1, variant="random"), ValueError, "variant"),
    (lambda X, y: alfa_tilt(X, y, budget=len(y) + 1), ValueError, "budget"),
    (lambda X, y: greedy_lfa(X, y, X[:, :1], y, budget=1), ValueError, "X_val"),
    (lambda X, y: flip_budget(10, 1.5), ValueError, "budget_fraction"),
    (lambda X, y: topk_sv_flip(X, y, budget=1, solver="smo"), TypeError, "solver"),
])
def test_bad_arguments_name_themselves(data, call, exc, match):
    X, y, _, _ = data
    with pytest.raises(exc, match=match):
        call(X, y)


# ------------------------------------------------------------------ baselines

def test_ln_svm_matches_libsvm_on_corrected_kernel(data):
    X, y, Xv, _ = data
    mu = 0.2
    s = 1 - 4 * mu * (1 - mu)
    K = rbf_kernel(X, X, gamma=GAMMA) * s
    np.fill_diagonal(K, 1.0)
    clf = SVC(kernel="precomputed", C=C, tol=1e-10).fit(K, y)
    res = ln_svm(X, y, C=C, gamma=GAMMA, mu=mu, solver=TIGHT)
    d_ref = clf.decision_function(rbf_kernel(Xv, X, gamma=GAMMA) * s)
    np.testing.assert_allclose(np.asarray(res.model.decision_function(Xv)), d_ref, atol=1e-5)
    plain = svm_baseline(X, y, C=C, gamma=GAMMA, solver=TIGHT)
    np.testing.assert_allclose(np.asarray(plain.model.decision_function(Xv)),
                               _svc(X, y).decision_function(Xv), atol=1e-5)


def test_dbscan_matches_sklearn_partition(data):
    X, _, _, _ = data
    ours = np.asarray(dbscan_labels(X, 0.3, 4))
    ref = DBSCAN(eps=0.3, min_samples=4).fit(X).labels_
    np.testing.assert_array_equal(ours == -1, ref == -1)
    core = DBSCAN(eps=0.3, min_samples=4).fit(X).core_sample_indices_
    for i in core:  # same clusters on core points (up to renaming)
        np.testing.assert_array_equal(ours[core] == ours[i], ref[core] == ref[i])


def test_curie_removes_points_from_training(data):
    X, y, _, _ = data
    res = curie(X, y, C=C, gamma=GAMMA, eps=0.5, min_samples=4, omega=2.0)
    kept = np.asarray(res.kept)
    assert 0 < kept.sum() < len(y)
    assert np.all(np.asarray(res.model.alpha)[~kept] == 0)


def test_ls_svm_relabels_like_knn_majority(data):
    X, y, _, _ = data
    z = y.copy()
    z[:5] = -z[:5]
    res = ls_svm(X, z, C=C, gamma=GAMMA, k=5, eta=0.5)
    nb = NearestNeighbors(n_neighbors=6).fit(X).kneighbors(X, return_distance=False)[:, 1:]
    disagree = np.mean(z[nb] != z[:, None], axis=1)
    np.testing.assert_array_equal(np.asarray(res.labels), np.where(disagree > 0.5, -z, z))


# --------------------------------------------- baselines on the FLORAL trajectory

def _replay_trajectory(K, y, Cv, lr, steps, Ke, ye, scale):
    """NumPy/SciPy replay of the projected-gradient loop (SLSQP projection, the authors'
    support-vector bias rule); returns per-step accuracy and the last decision values."""
    from scipy.optimize import minimize

    n = len(y)
    lam = np.zeros(n)
    accs = []
    for _ in range(steps):
        v = lam - lr * (y * (K @ (y * lam)) - 1)
        res = minimize(lambda a, v=v: 0.5 * np.sum((a - v) ** 2), np.clip(v, 0, Cv),
                       jac=lambda a, v=v: a - v, bounds=list(zip(np.zeros(n), Cv, strict=True)),
                       method="SLSQP", options={"ftol": 1e-15, "maxiter": 2000},
                       constraints=[{"type": "eq", "fun": lambda a: a @ y,
                                     "jac": lambda a: y}])
        lam = res.x
        sv = lam > 1e-5
        b = np.mean(y[sv] - K[sv][:, sv] @ (lam[sv] * y[sv]))
        f = scale * Ke[:, sv] @ (lam[sv] * y[sv]) + b
        accs.append(np.mean(np.where(f > 0, 1, -1) == ye))
    return np.array(accs), f


@pytest.mark.parametrize("name", ["svm", "ln", "curie", "klid"])
def test_baselines_on_the_trajectory_match_a_numpy_replay(data, name):
    from jaxpoison.defenses import Trajectory, k_lid_svm

    X, y, Xv, yv = data
    steps, lr, C2 = 5, 0.05, 2.0
    traj = Trajectory(steps=steps, lr=lr)
    K = rbf_kernel(X, X, gamma=GAMMA)
    Ke = rbf_kernel(Xv, X, gamma=GAMMA)
    scale, Cv = 1.0, np.full(len(y), C2)
    kw = dict(C=C2, gamma=GAMMA, solver=traj, X_eval=Xv, y_eval=yv)
    if name == "svm":
        res = svm_baseline(X, y, **kw)
    elif name == "ln":
        res = ln_svm(X, y, mu=0.2, **kw)
        scale = 1 - 4 * 0.2 * 0.8
        K = K * scale
        np.fill_diagonal(K, 1.0)
    elif name == "curie":
        res = curie(X, y, eps=0.5, min_samples=4, omega=2.0, **kw)
        Cv = C2 * np.asarray(res.kept, float)
        assert 0 < Cv.sum() < C2 * len(y)
    else:
        res = k_lid_svm(X, y, k=5, **kw)
        Cv = C2 * np.asarray(res.weights)
    acc, f = _replay_trajectory(K, y.astype(float), Cv, lr, steps, Ke, yv, scale)
    assert res.accuracy.shape == (steps,)
    np.testing.assert_allclose(np.asarray(res.accuracy), acc, atol=1e-12)
    np.testing.assert_allclose(np.asarray(res.model.decision_function(Xv)), f, atol=1e-6)


def test_converged_baseline_reports_its_accuracy(data):
    X, y, Xv, yv = data
    res = svm_baseline(X, y, C=C, gamma=GAMMA, X_eval=Xv, y_eval=yv, solver=TIGHT)
    assert res.accuracy.shape == (1,)
    assert float(res.accuracy[0]) == pytest.approx(_svc(X, y).score(Xv, yv))
    assert np.isnan(float(svm_baseline(X, y, C=C, gamma=GAMMA).accuracy[0]))


def test_k_lid_weights_match_a_numpy_reference(data):
    """Kernel distances, MLE LID over the k nearest same-label and other-label points,
    logistic map of the standardised ratio, max 1 -- recomputed in NumPy."""
    from jaxpoison.defenses import k_lid_weights

    X, y, _, _ = data
    k = 5
    K = rbf_kernel(X, X, gamma=GAMMA)
    D = np.sqrt(np.maximum(np.diag(K)[:, None] + np.diag(K)[None, :] - 2 * K, 0))

    def lid(i, mask):
        d = np.sort(D[i, mask])[:k]
        return -1.0 / np.mean(np.log(d / d[-1]))

    idx = np.arange(len(y))
    r = np.array([lid(i, (y == y[i]) & (idx != i)) / lid(i, y != y[i]) for i in idx])
    w = 1 / (1 + np.exp((r - np.median(r)) / r.std()))
    np.testing.assert_allclose(np.asarray(k_lid_weights(X, y, GAMMA, k=k)), w / w.max(),
                               rtol=1e-10)


def test_trajectory_and_k_lid_bad_input(data):
    from jaxpoison.defenses import Trajectory, k_lid_svm

    X, y, Xv, yv = data
    with pytest.raises(ValueError, match="Trajectory.steps"):
        Trajectory(steps=0)
    with pytest.raises(ValueError, match="Trajectory.lr"):
        Trajectory(lr=-1.0)
    with pytest.raises(ValueError, match="k"):
        k_lid_svm(X, y, k=len(y))
    with pytest.raises(ValueError, match="X_eval"):
        svm_baseline(X, y, X_eval=Xv[:, :1], y_eval=yv)
    with pytest.raises(TypeError, match="solver"):
        ln_svm(X, y, solver="trajectory")


def test_curve_best_last_is_max_and_end_of_the_mean_curve():
    from jaxpoison.defenses import curve_best_last

    curves = [np.array([0.5, 0.9, 0.6]), np.array([0.9, 0.5, 0.8])]
    best, last = curve_best_last(curves)
    assert best == pytest.approx(0.7) and last == pytest.approx(0.7)
    assert np.mean([c.max() for c in curves]) == pytest.approx(0.9)  # per-run maxima: higher
    with pytest.raises(ValueError, match="curves must all have the same length"):
        curve_best_last([np.ones(3), np.ones(4)])
    with pytest.raises(ValueError, match="accs"):
        curve_best_last([], name="accs")
