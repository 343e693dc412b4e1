"""Smoothed ALFA, ALFA-tilt and greedy LFA (`attacks.smooth_alfa`, `attacks.smooth_greedy_lfa`).

References: the exact attacks of `attacks.label_flip` (SMO fits), the victim refitted by
SMO (`models.fit_kernel_svm`) on the exact attack's labels, and central finite
differences.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.datasets import make_moons

from jaxpoison.attacks import alfa, alfa_tilt, greedy_lfa
from jaxpoison.attacks.smooth_alfa import (
    smooth_alfa,
    smooth_alfa_tilt,
    smooth_alfa_tilt_validation_loss,
    smooth_alfa_validation_loss,
)
from jaxpoison.attacks.smooth_greedy_lfa import (
    smooth_greedy_lfa,
    smooth_greedy_lfa_validation_loss,
)
from jaxpoison.models import fit_kernel_svm
from jaxpoison.solvers import SMO
from jaxpoison.solvers.smoothing import NoDerivativeError

SMO_TIGHT = SMO(tol=1e-8)
BUDGET, GREEDY_BUDGET = 6, 4


@pytest.fixture(scope="module")
def moons():
    X, y = make_moons(60, noise=0.25, random_state=0)
    Xv, yv = make_moons(100, noise=0.25, random_state=1)
    return X, 2 * y - 1, Xv, 2 * yv - 1


@pytest.fixture(scope="module")
def tiny(moons):
    X, y, Xv, yv = moons
    return X[:30], y[:30], Xv[:40], yv[:40]


def _loss_of_labels(X, labels, C, gamma, Xv, yv):
    """The victim refitted by SMO on the exact attack's labels: mean logistic loss."""
    m = fit_kernel_svm(X, np.asarray(labels), C=C, gamma=gamma, solver=SMO_TIGHT).model
    return float(jnp.mean(jax.nn.softplus(-yv * m.decision_function(jnp.asarray(Xv)))))


def _max_jump(values):
    return float(np.max(np.abs(np.diff(np.asarray(values)))))


# ------------------------------------------------------- small scale = the exact attacks


def test_alfa_exact_and_small_scale_give_alfas_flips(moons):
    X, y, _, _ = moons
    ref = alfa(X, y, budget=BUDGET, C=1.0, gamma=1.0, solver=SMO_TIGHT)
    alt = int(ref.iterations) + 1          # the exact attack stopped on a repeat
    ex = smooth_alfa(X, y, budget=BUDGET, C=1.0, gamma=1.0, smoothing="exact", steps=500,
                     alternations=alt)
    np.testing.assert_array_equal(np.asarray(ex.flip_prob) > 0.5, np.asarray(ref.flipped))
    assert float(ex.change) == 0.0
    sm = smooth_alfa(X, y, budget=BUDGET, C=1.0, gamma=1.0, scale=1e-6, steps=500,
                     alternations=alt)
    np.testing.assert_allclose(sm.flip_prob, np.asarray(ref.flipped, float), atol=1e-6)
    np.testing.assert_allclose(sm.labels, np.asarray(ref.labels), atol=1e-5)


@pytest.mark.parametrize("variant", ["authors", pytest.param("xiao", marks=pytest.mark.slow)])
def test_alfa_tilt_exact_and_small_scale_give_alfa_tilts_flips(moons, variant):
    X, y, _, _ = moons
    kw = dict(key=jax.random.key(3), num_trials=5) if variant == "xiao" else {}
    ref = alfa_tilt(X, y, budget=BUDGET, C=1.0, gamma=1.0, variant=variant, solver=SMO_TIGHT,
                    **kw)
    ex = smooth_alfa_tilt(X, y, budget=BUDGET, C=1.0, gamma=1.0, variant=variant,
                          smoothing="exact", steps=1000, **kw)
    np.testing.assert_array_equal(np.asarray(ex.flip_prob) > 0.5, np.asarray(ref.flipped))
    assert float(ex.score) == pytest.approx(float(ref.score), abs=5e-3)
    sm = smooth_alfa_tilt(X, y, budget=BUDGET, C=1.0, gamma=1.0, variant=variant,
                          scale=1e-6, steps=1000, **kw)
    np.testing.assert_allclose(sm.flip_prob, np.asarray(ref.flipped, float), atol=1e-6)


def test_greedy_lfa_exact_and_small_scale_give_greedy_lfas_flips(tiny):
    X, y, Xv, yv = tiny
    ref = greedy_lfa(X, y, Xv, yv, budget=GREEDY_BUDGET, C=1.0, gamma=1.0, solver=SMO_TIGHT)
    ex = smooth_greedy_lfa(X, y, Xv, yv, budget=GREEDY_BUDGET, C=1.0, gamma=1.0,
                           smoothing="exact", steps=300)
    np.testing.assert_array_equal(np.asarray(ex.flip_prob) > 0.5, np.asarray(ref.flipped))
    assert float(ex.score) == pytest.approx(float(ref.score), abs=5e-3)
    sm = smooth_greedy_lfa(X, y, Xv, yv, budget=GREEDY_BUDGET, C=1.0, gamma=1.0, scale=1e-6,
                           steps=300)
    np.testing.assert_allclose(sm.flip_prob, np.asarray(ref.flipped, float), atol=1e-6)


def test_greedy_relaxation_keeps_probabilities_and_budget(tiny):
    X, y, Xv, yv = tiny
    res = smooth_greedy_lfa(X, y, Xv, yv, budget=GREEDY_BUDGET, scale=0.5, steps=100)
    mu = np.asarray(res.flip_prob)
    assert np.all((mu >= 0) & (mu <= 1))
    assert 1.0 <= mu.sum() <= GREEDY_BUDGET + 1e-9


# -------------------------------------- continuity: the exact attack's loss jumps, ours not


def test_smooth_alfa_loss_is_continuous_where_alfas_jumps(moons):
    # ALFA's flip set changes between C = 0.95 and C = 1.0 on these data
    X, y, Xv, yv = moons
    grid = np.linspace(0.95, 1.0, 11)
    exact = [_loss_of_labels(X, alfa(X, y, budget=BUDGET, C=c, gamma=1.0,
                                     solver=SMO_TIGHT).labels, c, 1.0, Xv, yv)
             for c in grid]
    smooth = jax.jit(jax.vmap(lambda c: smooth_alfa_validation_loss(
        X, y, Xv, yv, budget=BUDGET, C=c, gamma=1.0, scale=0.3, steps=300,
        alternations=3)))(jnp.asarray(grid))
    assert _max_jump(exact) > 0.05
    assert _max_jump(smooth) < 0.1 * _max_jump(exact)


def test_smooth_alfa_tilt_loss_is_continuous_where_alfa_tilts_jumps(moons):
    # the authors' ALFA-tilt flip set changes between gamma = 1.1 and 1.2
    X, y, Xv, yv = moons
    grid = np.linspace(1.1, 1.2, 11)
    exact = [_loss_of_labels(X, alfa_tilt(X, y, budget=BUDGET, C=1.0, gamma=g,
                                          solver=SMO_TIGHT).labels, 1.0, g, Xv, yv)
             for g in grid]
    smooth = jax.jit(jax.vmap(lambda g: smooth_alfa_tilt_validation_loss(
        X, y, Xv, yv, budget=BUDGET, C=1.0, gamma=g, scale=0.1, steps=300)))(jnp.asarray(grid))
    assert _max_jump(exact) > 0.02
    assert _max_jump(smooth) < 0.1 * _max_jump(exact)


def test_smooth_greedy_loss_is_continuous_where_greedys_jumps(tiny):
    # greedy LFA's picks change between C = 0.6 and 0.7
    X, y, Xv, yv = tiny
    grid = np.linspace(0.6, 0.7, 11)
    exact = [_loss_of_labels(X, greedy_lfa(X, y, Xv, yv, budget=GREEDY_BUDGET, C=c, gamma=1.0,
                                           solver=SMO_TIGHT).labels, c, 1.0, Xv, yv)
             for c in grid]
    smooth = jax.jit(jax.vmap(lambda c: smooth_greedy_lfa_validation_loss(
        X, y, Xv, yv, budget=GREEDY_BUDGET, C=c, gamma=1.0, scale=0.5,
        steps=150)))(jnp.asarray(grid))
    assert _max_jump(exact) > 0.05
    assert _max_jump(smooth) < 0.1 * _max_jump(exact)


# --------------------------------------------------------- gradients vs finite differences


def _check_fd(f, x0, rel=1e-5, rtol=5e-3, atol=1e-5):
    """Reverse-mode gradient against central differences at a relative step `rel`.

    One compiled `value_and_grad` serves both (no second compilation). The smoothed
    losses are continuous and piecewise smooth: the unrolled dual's clip to [0, C] puts
    kinks at a fine spacing, so the step is 1e-5 (docs/metagrad.md has the table).
    """
    vg = jax.jit(jax.value_and_grad(f))
    x0 = jnp.asarray(x0, float)
    g = np.asarray(vg(x0)[1])
    fd = []
    for i in range(x0.shape[0]):
        h = rel * float(x0[i])
        e = jnp.zeros_like(x0).at[i].set(h)
        fd.append((float(vg(x0 + e)[0]) - float(vg(x0 - e)[0])) / (2 * h))
    np.testing.assert_allclose(g, fd, rtol=rtol, atol=atol)


def test_smooth_alfa_gradient_in_C_gamma_matches_finite_differences(moons):
    X, y, Xv, yv = moons
    _check_fd((lambda p: smooth_alfa_validation_loss(
        X, y, Xv, yv, budget=BUDGET, C=p[0], gamma=p[1], scale=1.0, steps=200,
        alternations=2)), [1.0, 1.0])


@pytest.mark.slow
def test_smooth_alfa_gradient_in_X_matches_a_directional_difference(moons):
    X, y, Xv, yv = moons
    X = jnp.asarray(X[:40])
    y = y[:40]

    def f(Xa):
        return smooth_alfa_validation_loss(Xa, y, Xv, yv, budget=4, C=1.0, gamma=1.0,
                                           scale=1.0, steps=200, alternations=2)

    vg = jax.jit(jax.value_and_grad(f))
    E = jnp.asarray(np.random.default_rng(0).normal(size=X.shape))
    g = vg(X)[1]
    h = 1e-6
    fd = (float(vg(X + h * E)[0]) - float(vg(X - h * E)[0])) / (2 * h)
    assert float(jnp.sum(g * E)) == pytest.approx(fd, rel=5e-3)


@pytest.mark.parametrize("variant", ["authors", pytest.param("xiao", marks=pytest.mark.slow)])
def test_smooth_alfa_tilt_gradient_matches_finite_differences(moons, variant):
    X, y, Xv, yv = moons
    kw = dict(key=jax.random.key(3), num_trials=4) if variant == "xiao" else {}
    _check_fd((lambda p: smooth_alfa_tilt_validation_loss(
        X, y, Xv, yv, budget=BUDGET, C=p[0], gamma=p[1], variant=variant, scale=0.3,
        steps=200, **kw)), [1.0, 1.0])


def test_smooth_greedy_gradient_matches_finite_differences(tiny):
    X, y, Xv, yv = tiny
    _check_fd((lambda p: smooth_greedy_lfa_validation_loss(
        X, y, Xv, yv, budget=3, C=p[0], gamma=p[1], scale=0.5, steps=150)), [1.0, 1.0])


@pytest.mark.slow
def test_perturbed_smoothing_runs_and_differentiates(tiny):
    X, y, Xv, yv = tiny

    def f(c):
        return smooth_alfa_validation_loss(X, y, Xv, yv, budget=3, C=c, gamma=1.0, scale=0.5,
                                           smoothing="perturbed", key=jax.random.key(0),
                                           num_samples=16, steps=100, alternations=2)

    val, g = jax.value_and_grad(f)(1.0)
    assert np.isfinite(float(val)) and np.isfinite(float(g)) and float(g) != 0.0


# ------------------------------------------------------------------------------ bad input


def _calls(X, y, Xv, yv):
    return {
        "alfa": lambda **kw: smooth_alfa(X, y, budget=2, steps=5, alternations=1, **kw),
        "tilt": lambda **kw: smooth_alfa_tilt(X, y, budget=2, steps=5, **kw),
        "greedy": lambda **kw: smooth_greedy_lfa(X, y, Xv, yv, budget=2, steps=5, **kw),
    }


@pytest.mark.parametrize("name", ["alfa", "tilt", "greedy"])
@pytest.mark.parametrize("kw, exc, match", [
    (dict(scale=0.0), ValueError, "scale"), (dict(scale=-1.0), ValueError, "scale"),
    (dict(), ValueError, "scale"),
    (dict(smoothing="exact", scale=0.1), ValueError, "scale"),
    (dict(smoothing="soft", scale=0.1), ValueError, "smoothing"),
    (dict(smoothing="perturbed", scale=0.1), TypeError, "key"),
    (dict(scale=0.1, key=jax.random.key(0)), ValueError, "key"),
    (dict(scale=0.1, C=0.0), ValueError, "C"),
    (dict(scale=0.1, gamma=-1.0), ValueError, "gamma"),
])
def test_bad_input_names_the_argument(tiny, name, kw, exc, match):
    with pytest.raises(exc, match=match):
        _calls(*tiny)[name](**kw)


def test_bad_input_specific_to_each_attack(tiny):
    X, y, Xv, yv = tiny
    with pytest.raises(TypeError, match="key"):      # xiao draws random classifiers
        smooth_alfa_tilt(X, y, budget=2, variant="xiao", scale=0.1, steps=5)
    with pytest.raises(ValueError, match="variant"):
        smooth_alfa_tilt(X, y, budget=2, variant="tilt", scale=0.1, steps=5)
    with pytest.raises(ValueError, match="alternations"):
        smooth_alfa(X, y, budget=2, scale=0.1, steps=5, alternations=0)
    with pytest.raises(ValueError, match="budget"):
        smooth_alfa(X, y, budget=31, scale=0.1, steps=5)
    with pytest.raises(ValueError, match="X_val"):
        smooth_greedy_lfa(X, y, Xv[:, :1], yv, budget=2, scale=0.1, steps=5)


@pytest.mark.parametrize("which", ["alfa", "authors", "xiao", "greedy"])
def test_exact_path_refuses_derivatives(tiny, which):
    X, y, Xv, yv = tiny

    def f(c):
        kw = dict(budget=2, C=c, gamma=1.0, smoothing="exact", steps=5)
        if which == "alfa":
            return smooth_alfa_validation_loss(X, y, Xv, yv, alternations=1, **kw)
        if which == "greedy":
            return smooth_greedy_lfa_validation_loss(X, y, Xv, yv, **kw)
        key = jax.random.key(0) if which == "xiao" else None
        return smooth_alfa_tilt_validation_loss(X, y, Xv, yv, variant=which, key=key,
                                                num_trials=2, **kw)

    assert np.isfinite(float(f(1.0)))
    with pytest.raises(NoDerivativeError, match="smoothing"):
        jax.grad(f)(1.0)
