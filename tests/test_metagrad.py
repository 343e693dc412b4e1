"""Smoothed attackers for meta-gradients: smoothed FLORAL and the smoothed top-k SV flip.

References: the exact game (`defenses.floral_validation_loss`), the exact attack
(`attacks.topk_sv_flip`, libsvm-based), and central finite differences.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.datasets import make_moons

from jaxpoison.attacks import topk_sv_flip
from jaxpoison.attacks.smooth_label_flip import (
    smooth_label_flip_validation_loss,
    smooth_topk_sv_flip,
)
from jaxpoison.datasets import load_floral_moon
from jaxpoison.defenses import floral_validation_loss
from jaxpoison.defenses.floral_smooth import smooth_floral, smooth_floral_validation_loss
from jaxpoison.solvers import SMO
from jaxpoison.solvers.smoothing import NoDerivativeError

N, ROUNDS, BUDGET = 200, 50, 10


@pytest.fixture(scope="module")
def moon():
    d = load_floral_moon()
    return (jnp.asarray(d.X_train[:N], float), jnp.asarray(d.y_train[:N]),
            jnp.asarray(d.X_val[:N], float), jnp.asarray(d.y_val[:N]))


def _smooth(moon, **kw):
    X, y, Xv, yv = moon
    base = dict(C=10.0, gamma=1.0, lr=0.01, budget=BUDGET, steps=ROUNDS, key=jax.random.key(0))
    return smooth_floral_validation_loss(X, y, Xv, yv, **{**base, **kw})


def _exact(moon, lr=0.01):
    X, y, Xv, yv = moon
    return floral_validation_loss(X, y, Xv, yv, C=10.0, gamma=1.0, lr=lr, budget=BUDGET,
                                  steps=ROUNDS, key=jax.random.key(0))


def test_small_scale_recovers_the_exact_game(moon):
    ref = float(_exact(moon))
    assert float(_smooth(moon, smoothing="exact")) == pytest.approx(ref, rel=1e-10)
    assert float(_smooth(moon, scale=1e-12)) == pytest.approx(ref, rel=1e-9)
    # a practical scale changes the value, and the perturbed estimate is close to entropic's
    assert abs(float(_smooth(moon, scale=0.1)) - ref) > 1e-3


@pytest.mark.slow
def test_smoothed_loss_is_continuous_where_the_exact_one_jumps(moon):
    # the grid: lr in [0.0099, 0.0101], 21 points
    X, y, Xv, yv = moon
    grid = jnp.linspace(0.0099, 0.0101, 21)
    exact = jax.vmap(lambda lr: floral_validation_loss(
        X, y, Xv, yv, C=10.0, gamma=1.0, lr=lr, budget=BUDGET, steps=ROUNDS,
        key=jax.random.key(0)))(grid)
    smooth = jax.vmap(lambda lr: _smooth(moon, lr=lr, scale=0.1))(grid)
    assert np.max(np.abs(np.diff(exact))) > 1e-2
    assert np.max(np.abs(np.diff(smooth))) < 1e-3


def test_gradient_matches_finite_differences(moon):
    # d/d(lr, C, gamma) at once, against central differences at a relative step of 1e-4
    x0 = jnp.array([0.01, 10.0, 1.0])
    f = jax.jit(lambda x: _smooth(moon, lr=x[0], C=x[1], gamma=x[2], scale=0.1))
    g = np.asarray(jax.grad(f)(x0))
    H = 1e-4 * np.diag(np.asarray(x0))
    vals = np.asarray(jax.vmap(f)(jnp.concatenate([x0 + H, x0 - H])))
    fd = (vals[:3] - vals[3:]) / (2 * np.diag(H))
    np.testing.assert_allclose(g, fd, rtol=1e-3, atol=1e-6)


def test_perturbed_smoothing_runs_and_differentiates(moon):
    def f(lr):
        return _smooth(moon, lr=lr, scale=0.5, smoothing="perturbed", num_samples=16)

    val, g = jax.value_and_grad(f)(0.01)
    assert np.isfinite(float(val)) and np.isfinite(float(g)) and float(g) != 0.0


def test_exact_path_refuses_derivatives(moon):
    with pytest.raises(NoDerivativeError, match="smoothing"):
        jax.grad(lambda lr: _smooth(moon, lr=lr, smoothing="exact"))(0.01)


def test_smooth_floral_result(moon):
    X, y, _, _ = moon
    res = smooth_floral(X, y, lr=0.01, budget=BUDGET, steps=20, key=jax.random.key(0),
                        scale=0.1)
    assert float(jnp.sum(res.flip_prob)) == pytest.approx(BUDGET, abs=1e-8)
    assert res.accuracy(X, y) > 0.5


@pytest.mark.parametrize("kw, match", [
    (dict(scale=0.0), "scale"), (dict(scale=-1.0), "scale"), (dict(scale=None), "scale"),
    (dict(smoothing="exact", scale=0.1), "scale"), (dict(smoothing="soft", scale=0.1),
                                                    "smoothing"),
    (dict(scale=0.1, num_samples=3), "num_samples"), (dict(scale=0.1, budget=-1), "budget"),
])
def test_bad_input_names_the_argument(moon, kw, match):
    with pytest.raises(ValueError, match=match):
        _smooth(moon, **kw)


# --------------------------------------------------------------------------- label flip


@pytest.fixture(scope="module")
def small():
    X, y = make_moons(120, noise=0.25, random_state=0)
    Xv, yv = make_moons(100, noise=0.25, random_state=1)
    return X, 2 * y - 1, Xv, 2 * yv - 1


def test_label_flip_exact_and_small_scale_match_topk_sv_flip(small):
    X, y, _, _ = small
    ref = np.asarray(topk_sv_flip(X, y, budget=10, C=1.0, gamma=1.0, solver=SMO(tol=1e-6)).flipped)
    ex = smooth_topk_sv_flip(X, y, budget=10, C=1.0, gamma=1.0, smoothing="exact", steps=2000)
    np.testing.assert_array_equal(np.asarray(ex.flip_prob) > 0.5, ref)
    sm = smooth_topk_sv_flip(X, y, budget=10, C=1.0, gamma=1.0, scale=1e-12, steps=2000)
    np.testing.assert_allclose(sm.flip_prob, ref.astype(float), atol=1e-9)
    np.testing.assert_allclose(sm.labels, np.where(ref, -y, y), atol=1e-9)


def test_label_flip_loss_gradient_matches_finite_differences(small):
    X, y, Xv, yv = small
    for name, x0 in (("gamma", 1.0), ("C", 1.0)):
        kw = {"gamma": 1.0, "C": 1.0}

        def loss(x, name=name, kw=kw):
            return smooth_label_flip_validation_loss(
                X, y, Xv, yv, budget=10, scale=0.2, steps=200, **{**kw, name: x})

        f = jax.jit(loss)
        h = 1e-4 * x0
        fd = (float(f(x0 + h)) - float(f(x0 - h))) / (2 * h)
        assert float(jax.grad(f)(x0)) == pytest.approx(fd, rel=2e-3, abs=1e-6)


def test_label_flip_bad_input(small):
    X, y, Xv, yv = small
    with pytest.raises(ValueError, match="scale"):
        smooth_topk_sv_flip(X, y, budget=3, scale=0.0)
    with pytest.raises(ValueError, match="scale"):
        smooth_topk_sv_flip(X, y, budget=3, scale=0.1, smoothing="exact")
    with pytest.raises(ValueError, match="key"):
        smooth_topk_sv_flip(X, y, budget=3, scale=0.1, key=jax.random.key(0))
    with pytest.raises(TypeError, match="key"):
        smooth_topk_sv_flip(X, y, budget=3, scale=0.1, smoothing="perturbed")
    with pytest.raises(NoDerivativeError, match="smoothing"):
        jax.grad(lambda g: smooth_label_flip_validation_loss(
            X, y, Xv, yv, budget=3, C=1.0, gamma=g, smoothing="exact", steps=20))(1.0)


# ------------------------------------------------- kernel-SVM implicit gradient (poisoning)


def test_kernel_svm_implicit_gradient_matches_finite_differences():
    # the map metagrad-poison differentiates: the SVM dual's KKT conditions with the bias
    # as the multiplier of y^T alpha = 0, F = [clip(alpha - (Q alpha - 1 + b y), 0, C) - alpha,
    # y^T alpha], solved by SMO and differentiated by attach_implicit_grad (dense adjoint)
    from jaxpoison.models import fit_kernel_svm, kernel_matrix
    from jaxpoison.solvers import attach_implicit_grad

    X, y = make_moons(80, noise=0.3, random_state=0)
    Xv, yv = make_moons(60, noise=0.3, random_state=1)
    y, yv = 2 * y - 1, 2.0 * yv - 1
    Xp, yp = X[:4] + 0.05, -y[:4]
    y_all = jnp.asarray(np.r_[y, yp], float)

    def F(sol, params):
        alpha, b = sol
        K, yy, C = params
        Q = (yy[:, None] * yy[None, :]) * K
        return jnp.clip(alpha - (Q @ alpha - 1.0 + b * yy), 0.0, C) - alpha, yy @ alpha

    def fit(P):
        m = fit_kernel_svm(np.vstack([X, P]), np.r_[y, yp], C=1.0, gamma=1.0,
                           solver=SMO(tol=1e-10)).model
        return m.alpha, m.intercept

    def loss(P, sol):
        Xa = jnp.concatenate([jnp.asarray(X, float), P])
        K = kernel_matrix(Xa, Xa, 1.0)
        a, b = attach_implicit_grad(F, sol, (K, y_all, jnp.asarray(1.0)), solve="dense")
        f = kernel_matrix(jnp.asarray(Xv, float), Xa, 1.0) @ (a * y_all) + b
        return jnp.mean(jnp.maximum(0.0, 1.0 - yv * f))

    G = np.asarray(jax.grad(loss)(jnp.asarray(Xp), fit(Xp)))
    E = np.random.default_rng(0).normal(size=Xp.shape)
    h = 1e-5
    fd = (float(loss(jnp.asarray(Xp + h * E), fit(Xp + h * E)))
          - float(loss(jnp.asarray(Xp - h * E), fit(Xp - h * E)))) / (2 * h)
    assert float((G * E).sum()) == pytest.approx(fd, rel=1e-3)
