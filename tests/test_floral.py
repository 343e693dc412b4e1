"""FLORAL: a NumPy/SciPy replay of the rounds (SLSQP projection) as reference, invariants
(feasibility, exactly k flips from the top-2k support vectors), determinism, vmap = loop,
the multi-class variant, gradients vs finite differences and bad input."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.optimize import minimize
from sklearn.datasets import make_blobs, make_moons
from sklearn.metrics.pairwise import rbf_kernel

from jaxpoison.defenses import floral, floral_attack, floral_multiclass, floral_validation_loss

N, K_FLIP, T, LR, C, GAMMA = 40, 3, 6, 0.05, 2.0, 1.0


@pytest.fixture(scope="module")
def data():
    X, y = make_moons(N + 60, noise=0.2, random_state=3)
    y = 2 * y - 1
    return X[:N], y[:N], X[N:], y[N:]


@pytest.fixture(scope="module")
def run(data):
    X, y, Xe, ye = data
    return floral(X, y, C=C, gamma=GAMMA, budget=K_FLIP, steps=T, lr=LR, key=jax.random.key(7),
                  X_eval=Xe, y_eval=ye, record_lam=True)


def _slsqp_projection(v, y, C):
    n = len(v)
    res = minimize(lambda a: 0.5 * np.sum((a - v) ** 2), np.clip(v, 0, C), jac=lambda a: a - v,
                   bounds=[(0, C)] * n, method="SLSQP",
                   constraints=[{"type": "eq", "fun": lambda a: a @ y, "jac": lambda a: y}],
                   options={"ftol": 1e-15, "maxiter": 2000})
    return res.x


def test_rounds_match_numpy_scipy_replay(data, run):
    """Replay the game in NumPy with the attacker's recorded flips and an SLSQP projection."""
    X, y, Xe, ye = data
    K = rbf_kernel(X, X, gamma=GAMMA)
    Ke = rbf_kernel(Xe, X, gamma=GAMMA)
    lam, y_adv = np.zeros(N), y.astype(float)
    lams = np.asarray(run.history.lam)
    flips = np.asarray(run.history.flips)
    for t in range(T):
        grad = y_adv * (K @ (y_adv * lam)) - 1
        lam = _slsqp_projection(lam - LR * grad, y_adv, C)
        np.testing.assert_allclose(lams[t], lam, atol=1e-6)
        lam = lams[t]  # continue from ours to avoid compounding SLSQP's tolerance
        sv = lam > 1e-5
        b = np.mean(y_adv[sv] - K[sv][:, sv] @ (lam[sv] * y_adv[sv]))
        assert abs(float(run.history.intercept[t]) - b) < 1e-8
        acc = np.mean(np.where(Ke[:, sv] @ (lam[sv] * y_adv[sv]) + b > 0, 1, -1) == ye)
        assert abs(float(run.history.accuracy[t]) - acc) < 1e-12
        # attacker: k distinct indices among the top min(#SV, 2k) by lambda (ties allowed)
        f = flips[t]
        assert len(set(f.tolist())) == K_FLIP and np.all(f >= 0)
        kth = np.sort(lam[sv])[::-1][min(sv.sum(), 2 * K_FLIP) - 1]
        assert np.all(sv[f]) and np.all(lam[f] >= kth - 1e-15)
        y_adv = y.astype(float).copy()
        y_adv[f] *= -1  # rebuilt from the ORIGINAL labels every round
    np.testing.assert_array_equal(np.asarray(run.y_adv), y_adv)
    assert float(run.best_accuracy) == pytest.approx(np.max(np.asarray(run.history.accuracy)))
    assert float(run.last_accuracy) == float(run.history.accuracy[-1])
    np.testing.assert_allclose(np.asarray(run.model.decision_function(Xe)),
                               Ke @ (lam * (lam > 1e-5) * np.asarray(run.model.y_train))
                               + float(run.history.intercept[-1]), atol=1e-10)


def test_sort_projection_gives_the_same_game(data, run):
    """The non-default root finder (sorted breakpoints) plays the same game as the default
    bisection (both are checked against brute force in test_kernel_svm.py)."""
    X, y, Xe, ye = data
    other = floral(X, y, C=C, gamma=GAMMA, budget=K_FLIP, steps=T, lr=LR, key=jax.random.key(7),
                   X_eval=Xe, y_eval=ye, record_lam=True, projection="sort")
    np.testing.assert_array_equal(np.asarray(other.history.flips),
                                  np.asarray(run.history.flips))
    np.testing.assert_allclose(np.asarray(other.history.lam), np.asarray(run.history.lam),
                               rtol=0, atol=1e-11)


def test_lambda_feasible_every_round(data, run):
    _, y, _, _ = data
    lams = np.asarray(run.history.lam)
    flips = np.asarray(run.history.flips)
    y_used = np.tile(y.astype(float), (T, 1))
    for t in range(1, T):
        y_used[t, flips[t - 1]] *= -1
    assert np.all(lams >= 0) and np.all(lams <= C)
    np.testing.assert_allclose(np.sum(lams * y_used, axis=1), 0.0, atol=1e-12)


def test_exactly_k_flips_and_determinism(data, run):
    X, y, Xe, ye = data
    assert int(np.sum(np.asarray(run.y_adv) != y)) == K_FLIP
    again = floral(X, y, C=C, gamma=GAMMA, budget=K_FLIP, steps=T, lr=LR, key=jax.random.key(7),
                   X_eval=Xe, y_eval=ye, record_lam=True)
    np.testing.assert_array_equal(np.asarray(again.history.flips),
                                  np.asarray(run.history.flips))
    np.testing.assert_array_equal(np.asarray(again.lam), np.asarray(run.lam))
    other = floral(X, y, C=C, gamma=GAMMA, budget=K_FLIP, steps=T, lr=LR, key=jax.random.key(8),
                   X_eval=Xe, y_eval=ye, record_lam=True)
    assert not np.array_equal(np.asarray(other.history.flips), np.asarray(run.history.flips))


def test_vmap_over_keys_and_datasets_equals_loop(data):
    X, y, Xe, ye = data
    keys = jax.random.split(jax.random.key(0), 3)
    Xs = jnp.stack([X, X * 1.1, X * 0.9])

    def one(Xi, key):
        return floral(Xi, y, C=C, gamma=GAMMA, budget=K_FLIP, steps=T, lr=LR, key=key,
                      X_eval=Xe, y_eval=ye, record_lam=True, throw=False)

    batched = jax.vmap(one)(Xs, keys)
    for i in range(3):
        single = one(Xs[i], keys[i])
        np.testing.assert_array_equal(batched.history.flips[i], single.history.flips)
        np.testing.assert_allclose(batched.lam[i], single.lam, atol=1e-12)
        assert float(batched.best_accuracy[i]) == float(single.best_accuracy)


def test_attacker_with_fewer_support_vectors_than_k():
    """Fewer SVs than k: every SV is flipped and the missing draws are marked -1."""
    lam = jnp.array([0.0, 2.0, 0.0, 1.0, 0.0, 3.0])
    y = jnp.array([1.0, -1, 1, -1, 1, 1])
    y_new, idx = jax.jit(floral_attack, static_argnames=("budget", "candidate_factor"))(
        lam, y, jax.random.key(0), budget=4, candidate_factor=2)
    assert sorted(np.asarray(idx)[np.asarray(idx) >= 0].tolist()) == [1, 3, 5]
    assert np.sum(np.asarray(idx) < 0) == 1
    np.testing.assert_array_equal(np.asarray(y_new), [1, 1, 1, 1, 1, -1])


def test_float32_runs_without_nan(data):
    X, y, Xe, ye = data
    res = floral(jnp.asarray(X, jnp.float32), y, C=C, gamma=GAMMA, budget=K_FLIP, steps=T,
                 lr=LR, key=jax.random.key(7), X_eval=Xe, y_eval=ye)
    assert res.lam.dtype == jnp.float32
    assert np.all(np.isfinite(np.asarray(res.lam))) and 0 <= float(res.best_accuracy) <= 1


def test_multiclass_one_vs_rest():
    X, y = make_blobs(90, centers=3, cluster_std=1.0, random_state=0)
    res = floral_multiclass(X[:60], y[:60], num_classes=3, C=1.0, gamma=0.5, budget=0,
                            steps=T, lr=0.05, key=jax.random.key(0), X_eval=X[60:],
                            y_eval=y[60:])
    pred = np.asarray(res.model.predict(X[60:]))
    assert float(res.last_accuracy) == pytest.approx(np.mean(pred == y[60:]))
    assert float(res.best_accuracy) >= 0.8  # well-separated blobs; chance is 1/3
    # with no attacker each one-vs-rest game is the binary game on +-1 labels
    for c in range(3):
        yc = np.where(y[:60] == c, 1, -1)
        b = floral(X[:60], yc, C=1.0, gamma=0.5, budget=0, steps=T, lr=0.05,
                   key=jax.random.key(0))
        np.testing.assert_allclose(res.model.coef[c], b.model.alpha * b.model.y_train,
                                   atol=1e-12)
        np.testing.assert_allclose(res.model.intercept[c], b.model.intercept, atol=1e-12)


def test_validation_loss_gradients_match_finite_differences(data):
    X, y, Xe, ye = data

    def loss(p):
        return floral_validation_loss(X, y, Xe, ye, C=p[0], gamma=p[1], lr=p[2],
                                      budget=K_FLIP, steps=4, key=jax.random.key(7))

    vg = jax.jit(jax.value_and_grad(loss))
    p = jnp.array([0.3, GAMMA, LR])  # small C so that some lambda sit at the bound
    _, g = vg(p)
    assert np.all(np.isfinite(np.asarray(g))) and np.all(np.asarray(g) != 0)
    for i in range(3):
        h = 1e-6 * max(1.0, float(p[i]))
        e = jnp.zeros(3).at[i].set(h)
        fd = (vg(p + e)[0] - vg(p - e)[0]) / (2 * h)
        assert abs(float(fd) - float(g[i])) <= 1e-5 * max(1.0, abs(float(fd))), i


@pytest.mark.parametrize("kwargs,match", [
    ({"budget": N + 1}, "budget"),
    ({"budget": -1}, "budget"),
    ({"steps": 0}, "steps"),
    ({"C": np.ones(3)}, "C"),
    ({"X_val": np.zeros((3, 2))}, "X_val"),
    ({"X_val": np.zeros((3, 5)), "y_val": np.ones(3)}, "X_val"),
    ({"y": np.ones(N)}, "two classes"),
    ({"C": 0.0}, "C"),
    ({"gamma": -1.0}, "gamma"),
    ({"lr": 0.0}, "lr"),
    ({"y": np.zeros(N)}, "y"),
    ({"y": np.ones(N - 1)}, "X and y"),
    ({"X_eval": np.zeros((3, 2))}, "X_eval"),
    ({"X": np.full((N, 2), np.nan)}, "X"),
    ({"lr_schedule": "cosine"}, "lr_schedule"),
])
def test_bad_input_raises(data, kwargs, match):
    X, y, _, _ = data
    args = {"X": X, "y": y, "C": 1.0, "gamma": 1.0, "budget": 2, "steps": 2, "lr": 0.1,
            "key": jax.random.key(0)}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        floral(args.pop("X"), args.pop("y"), **args)


def test_missing_key_is_a_type_error(data):
    X, y, _, _ = data
    with pytest.raises(TypeError, match="key"):
        floral(X, y, budget=2, steps=2, key=None)


def test_validation_selected_round_is_the_best_validation_round(data):
    """selected_model is the model of the round with the highest validation accuracy
    (first on ties), rebuilt here from the recorded lambdas and flips with sklearn's
    kernel; selected_accuracy is its evaluation accuracy."""
    X, y, Xe, ye = data
    Xv, yv = Xe[:30], ye[:30]
    res = floral(X, y, C=C, gamma=GAMMA, budget=K_FLIP, steps=T, lr=LR,
                 key=jax.random.key(7), X_eval=Xe, y_eval=ye, X_val=Xv, y_val=yv,
                 record_lam=True)
    lams, flips = np.asarray(res.history.lam), np.asarray(res.history.flips)
    b = np.asarray(res.history.intercept)
    Y = np.tile(y.astype(float), (T, 1))
    for t in range(1, T):
        Y[t, flips[t - 1]] *= -1
    coef = np.where(lams > 1e-5, lams * Y, 0.0)
    dv = rbf_kernel(Xv, X, gamma=GAMMA) @ coef.T + b
    acc_v = np.mean(np.where(dv > 0, 1, -1) == yv[:, None], axis=0)
    np.testing.assert_allclose(np.asarray(res.history.val_accuracy), acc_v, atol=1e-12)
    t = int(np.argmax(acc_v))
    assert int(res.selected_round) == t + 1
    de = rbf_kernel(Xe, X, gamma=GAMMA) @ coef[t] + b[t]
    np.testing.assert_allclose(np.asarray(res.selected_model.decision_function(Xe)), de,
                               atol=1e-10)
    assert float(res.selected_accuracy) == pytest.approx(np.mean(np.where(de > 0, 1, -1) == ye))
    # without validation data the selected model is the last one
    plain = floral(X, y, C=C, gamma=GAMMA, budget=K_FLIP, steps=T, lr=LR,
                   key=jax.random.key(7), X_eval=Xe, y_eval=ye)
    assert int(plain.selected_round) == T
    assert float(plain.selected_accuracy) == float(plain.last_accuracy)


def test_multiclass_bad_input():
    X, y = make_blobs(60, centers=3, random_state=0)
    kw = dict(budget=1, steps=2, key=jax.random.key(0))
    with pytest.raises(ValueError, match="y must only contain labels"):
        floral_multiclass(X, y, num_classes=2, **kw)
    with pytest.raises(ValueError, match="num_classes"):
        floral_multiclass(X, y, num_classes=1, **kw)
    with pytest.raises(ValueError, match="budget"):
        floral_multiclass(X, y, num_classes=3, budget=61, steps=2, key=jax.random.key(0))
    with pytest.raises(ValueError, match="X must have shape"):
        floral_multiclass(X, y, num_classes=3, **kw).model.predict(np.zeros((2, 3)))


def test_moon_loader_regenerates_the_data_per_seed():
    """source="make_moons": make_moons(2000, noise=0.2, random_state=seed), standardised,
    split 1000 test / 500 train / 500 validation, a different draw per seed."""
    from jaxpoison.datasets import load_floral_moon

    a = load_floral_moon(source="make_moons", seed=3)
    b = load_floral_moon(source="make_moons", seed=4)
    assert (a.X_train.shape, a.X_val.shape, a.X_test.shape) == ((500, 2), (500, 2), (1000, 2))
    X, y = make_moons(2000, noise=0.2, random_state=3)
    Xs = (X - X.mean(0)) / X.std(0)
    allX = np.concatenate([a.X_train, a.X_val, a.X_test])
    ally = np.concatenate([a.y_train, a.y_val, a.y_test])
    order = np.lexsort(allX.T)
    ref = np.lexsort(Xs.T)
    np.testing.assert_allclose(allX[order], Xs[ref], atol=1e-12)
    np.testing.assert_array_equal(ally[order], 2 * y[ref] - 1)
    assert not np.allclose(a.X_train, b.X_train)
    with pytest.raises(ValueError, match="source"):
        load_floral_moon(source="moons")
