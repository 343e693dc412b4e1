"""NN and NN-PGD baselines: against scikit-learn's MLPClassifier, PGD against the closed-form
worst case of a linear model and a brute-force grid, robustness gained by PGD training,
determinism, vmap = loop, bad input."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.datasets import make_moons
from sklearn.neural_network import MLPClassifier

from jaxpoison.defenses import mlp_baseline, mlp_pgd_baseline, pgd_perturbation

KW = dict(width=16, depth=2, epochs=300, lr=2e-2, reg=1e-4)
EPS = 0.2


@pytest.fixture(scope="module")
def moons():
    X, y = make_moons(400, noise=0.15, random_state=0)
    y = 2 * y - 1
    return X[:300], y[:300], X[300:], y[300:]


@pytest.fixture(scope="module")
def plain(moons):
    X, y, _, _ = moons
    return mlp_baseline(X, y, key=jax.random.key(0), **KW)


@pytest.fixture(scope="module")
def robust(moons):
    X, y, _, _ = moons
    return mlp_pgd_baseline(X, y, key=jax.random.key(0), eps=EPS, steps=5, **KW)


def test_accuracy_matches_sklearn_mlp(moons, plain):
    X, y, Xt, yt = moons
    ref = MLPClassifier((16, 16), alpha=len(y) * 1e-4, learning_rate_init=2e-2,
                        batch_size=len(y), max_iter=300, random_state=0).fit(X, y)
    ours = float(plain.model.accuracy(Xt, yt))
    assert ours >= 0.9 and ours >= ref.score(Xt, yt) - 0.03, (ours, ref.score(Xt, yt))
    assert plain.success
    assert float(plain.loss[-1]) < 0.5 * float(plain.loss[0])


def test_pgd_reaches_the_linear_worst_case(moons):
    X, y, Xt, yt = moons
    lin = mlp_baseline(X, y, key=jax.random.key(1), depth=0, epochs=50).model
    w = np.asarray(lin.net.layers[0].weight).ravel()
    # step 2*eps: every signed step lands on (and stays at) the worst corner
    delta = pgd_perturbation(lin, Xt, yt, eps=EPS, key=jax.random.key(2), steps=20,
                             step_size=2 * EPS)
    np.testing.assert_allclose(delta, -EPS * yt[:, None] * np.sign(w)[None, :], atol=1e-12)
    delta2 = pgd_perturbation(lin, Xt, yt, eps=EPS, key=jax.random.key(2), norm="l2",
                              steps=60, step_size=2 * EPS)
    np.testing.assert_allclose(delta2, -EPS * yt[:, None] * (w / np.linalg.norm(w))[None, :],
                               atol=1e-9)


def test_pgd_matches_grid_search_on_the_mlp(moons, plain):
    _, _, Xt, yt = moons
    delta = pgd_perturbation(plain.model, Xt, yt, eps=EPS, key=jax.random.key(3), steps=20)
    f = plain.model.decision_function
    pgd_loss = np.logaddexp(0, -yt * np.asarray(f(Xt + delta)))
    g = np.linspace(-EPS, EPS, 41)
    grid = np.stack(np.meshgrid(g, g), -1).reshape(-1, 2)
    vals = np.asarray(f((Xt[:, None, :] + grid[None]).reshape(-1, 2))).reshape(len(Xt), -1)
    grid_loss = np.logaddexp(0, -yt[:, None] * vals).max(axis=1)
    assert np.all(np.abs(delta) <= EPS + 1e-12)
    # PGD is a local method (it can stall where ReLUs are flat): on most points it must
    # match the brute-force maximum over a 41 x 41 grid of the ball to 1%
    ratio = pgd_loss / grid_loss
    assert np.median(ratio) >= 0.999 and np.mean(ratio >= 0.99) >= 0.8, np.sort(ratio)[:10]


def test_pgd_training_is_more_robust(moons, plain, robust):
    _, _, Xt, yt = moons
    key = jax.random.key(4)

    def robust_acc(res):
        d = pgd_perturbation(res.model, Xt, yt, eps=EPS, key=key, steps=20)
        return float(res.model.accuracy(Xt + d, yt))

    assert robust_acc(robust) >= robust_acc(plain) + 0.05, (robust_acc(robust),
                                                             robust_acc(plain))
    assert float(robust.model.accuracy(Xt, yt)) >= 0.85


def test_deterministic_and_vmap_equals_loop(moons, plain):
    X, y, _, _ = moons
    again = mlp_baseline(X, y, key=jax.random.key(0), **KW)
    np.testing.assert_array_equal(again.loss, plain.loss)
    keys = jax.random.split(jax.random.key(5), 2)
    batched = jax.vmap(lambda k: mlp_baseline(X, y, key=k, throw=False, **KW).loss)(keys)
    for i in range(2):
        one = mlp_baseline(X, y, key=keys[i], **KW).loss
        np.testing.assert_allclose(batched[i], one, rtol=1e-10, atol=1e-12)


def test_float32(moons):
    X, y, Xt, yt = moons
    res = mlp_pgd_baseline(jnp.asarray(X, jnp.float32), y, key=jax.random.key(0), eps=EPS,
                           steps=1, depth=0, epochs=200, lr=0.05)
    assert res.loss.dtype == jnp.float32 and np.all(np.isfinite(res.loss))
    assert float(res.model.accuracy(Xt, yt)) > 0.75


def test_bad_input(moons):
    X, y, _, _ = moons
    key = jax.random.key(0)
    with pytest.raises(ValueError, match="y"):
        mlp_baseline(X, np.where(y > 0, 2, -1), key=key)
    with pytest.raises(ValueError, match="y"):
        mlp_baseline(X, y[:-1], key=key)
    bad = X.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="X"):
        mlp_baseline(bad, y, key=key)
    with pytest.raises(ValueError, match="lr"):
        mlp_baseline(X, y, key=key, lr=0.0)
    with pytest.raises(ValueError, match="epochs"):
        mlp_baseline(X, y, key=key, epochs=0)
    with pytest.raises(ValueError, match="eps"):
        mlp_pgd_baseline(X, y, key=key, eps=-0.1)
    with pytest.raises(ValueError, match="norm"):
        mlp_pgd_baseline(X, y, key=key, eps=0.1, norm="l1")
    with pytest.raises(ValueError, match="steps"):
        mlp_pgd_baseline(X, y, key=key, eps=0.1, steps=0)
    with pytest.raises(ValueError, match="reg"):
        mlp_baseline(X, y, key=key, reg=-1.0)
    with pytest.raises(ValueError, match="two|both"):
        mlp_baseline(X, np.ones(len(y)), key=key)
    with pytest.raises(TypeError, match="key"):
        mlp_baseline(X, y, key=None)


def test_model_is_a_classifier_that_checks_its_input(plain):
    from jaxpoison.models import Classifier, MLPModel

    m = plain.model
    assert isinstance(m, MLPModel) and isinstance(m, Classifier) and m.num_features == 2
    with pytest.raises(ValueError, match="X must have shape"):
        m.predict(np.zeros((4, 3)))
    with pytest.raises(ValueError, match="X must be finite"):
        m.predict(np.array([[np.inf, 0.0]]))
    with pytest.raises(ValueError, match="X must have shape"):
        pgd_perturbation(m, np.zeros((4, 3)), np.ones(4), eps=0.1, key=jax.random.key(0))
