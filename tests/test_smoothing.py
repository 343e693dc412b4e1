"""Soft top-k, perturbed optimisers and the exact top-k's loud derivative
(jaxpoison.solvers.smoothing), and the box-hyperplane projection with real labels."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.scipy.stats import norm
from jax.test_util import check_grads
from scipy.optimize import minimize

from jaxpoison.solvers import project_box_hyperplane
from jaxpoison.solvers.smoothing import (
    NoDerivativeError,
    no_derivative,
    perturbed,
    soft_topk,
    topk_mask,
)


def _np_topk(s, k):
    out = np.zeros(len(s))
    out[np.argsort(-np.asarray(s), kind="stable")[:k]] = 1.0
    return out


def test_soft_topk_sums_to_k_and_tends_to_topk(rng):
    s = rng.normal(size=30)
    for k in (0, 1, 7, 29, 30):
        mu = np.asarray(soft_topk(s, k, scale=0.3))
        assert mu.sum() == pytest.approx(k, abs=1e-9)
        assert np.all((mu >= 0) & (mu <= 1))
        np.testing.assert_allclose(soft_topk(s, k, scale=1e-9), _np_topk(s, k), atol=1e-12)


def test_soft_topk_is_the_entropic_lp_solution(rng):
    # the closed form must maximise <s, mu> + scale * sum H(mu_i) over {sum mu = k, 0<=mu<=1}
    s, k, sc = rng.normal(size=8), 3, 0.5

    def neg(mu):
        mu = np.clip(mu, 1e-12, 1 - 1e-12)
        return -(s @ mu - sc * np.sum(mu * np.log(mu) + (1 - mu) * np.log(1 - mu)))

    ref = minimize(neg, np.full(8, k / 8), bounds=[(1e-9, 1 - 1e-9)] * 8, method="SLSQP",
                   constraints=[{"type": "eq", "fun": lambda m: m.sum() - k}],
                   options={"ftol": 1e-14, "maxiter": 500}).x
    np.testing.assert_allclose(soft_topk(s, k, scale=sc), ref, atol=1e-5)


def test_soft_topk_gradients_match_finite_differences(rng):
    s = jnp.asarray(rng.normal(size=12))
    w = jnp.asarray(rng.normal(size=12))
    check_grads(lambda s: soft_topk(s, 4, scale=0.2) @ w, (s,), order=1, modes=("rev", "fwd"))
    check_grads(lambda sc: soft_topk(s, 4, scale=sc) @ w, (0.2,), order=1, modes=("rev",))
    check_grads(lambda k: soft_topk(s, k, scale=0.2) @ w, (4.0,), order=1, modes=("rev",))


def test_soft_topk_ties_share_membership():
    mu = soft_topk(jnp.array([1.0, 1.0, 1.0, 0.0]), 2, scale=1e-6)
    np.testing.assert_allclose(mu, [2 / 3, 2 / 3, 2 / 3, 0.0], atol=1e-9)


def test_perturbed_argmax_matches_the_gaussian_closed_form():
    # E argmax(s + sigma Z) over two items = Phi((s1 - s2) / (sigma sqrt 2))
    p = perturbed(lambda s, _: topk_mask(s, 1), num_samples=100_000, key=jax.random.key(1))
    s, sc = jnp.array([0.2, -0.1]), 0.5
    z = 0.3 / (sc * np.sqrt(2))
    assert float(p(s, sc)[0]) == pytest.approx(float(norm.cdf(z)), abs=5e-3)
    J = jax.jacobian(lambda s: p(s, sc))(s)
    dens = float(norm.pdf(z)) / (sc * np.sqrt(2))
    np.testing.assert_allclose(J, [[dens, -dens], [-dens, dens]], atol=2e-2)
    dsc = jax.grad(lambda sc: p(s, sc)[0])(sc)
    assert float(dsc) == pytest.approx(-float(norm.pdf(z)) * z / sc, abs=2e-2)


def test_topk_mask_and_its_loud_derivative(rng):
    s = rng.normal(size=9)
    np.testing.assert_array_equal(topk_mask(s, 4), _np_topk(s, 4))
    np.testing.assert_array_equal(jax.jit(lambda s: topk_mask(s, 4))(s), _np_topk(s, 4))
    with pytest.raises(NoDerivativeError, match="scores"):
        jax.grad(lambda s: topk_mask(s, 4) @ s)(jnp.asarray(s))
    with pytest.raises(NoDerivativeError, match="hello"):
        jax.grad(lambda x: jnp.sum(no_derivative(x, "hello")))(jnp.ones(3))
    # a derivative not through the guarded value is unaffected
    g = jax.grad(lambda a: a * jnp.sum(no_derivative(jnp.ones(3), "x")))(2.0)
    assert float(g) == 3.0


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf")])
def test_bad_scale_names_the_argument(bad):
    with pytest.raises(ValueError, match="scale"):
        soft_topk(jnp.ones(3), 1, scale=bad)
    p = perturbed(lambda s, _: topk_mask(s, 1), num_samples=4, key=jax.random.key(0))
    with pytest.raises(ValueError, match="scale"):
        p(jnp.ones(3), bad)


def test_bad_arguments():
    with pytest.raises(ValueError, match="k"):
        soft_topk(jnp.ones(3), 4, scale=1.0)
    with pytest.raises(ValueError, match="num_samples"):
        perturbed(lambda s, _: s, num_samples=3, key=jax.random.key(0))
    with pytest.raises(TypeError, match="key"):
        perturbed(lambda s, _: s, num_samples=4, key=None)
    p = perturbed(lambda s, aux: s, num_samples=4, key=jax.random.key(0))
    with pytest.raises(TypeError, match="aux"):
        p(jnp.ones(3), 1.0, jnp.ones(3))


def test_projection_with_real_labels_matches_a_qp(rng):
    v = rng.normal(size=10) * 2
    y = rng.uniform(-1, 1, size=10)
    C = 1.5
    for method in ("sort", "bisect"):
        a = np.asarray(project_box_hyperplane(jnp.asarray(v), jnp.asarray(y), C, method=method))
        ref = minimize(lambda x: 0.5 * np.sum((x - v) ** 2), np.zeros(10), jac=lambda x: x - v,
                       bounds=[(0, C)] * 10, method="SLSQP",
                       constraints=[{"type": "eq", "fun": lambda x: y @ x, "jac": lambda x: y}],
                       options={"ftol": 1e-15, "maxiter": 500}).x
        np.testing.assert_allclose(a, ref, atol=1e-6)
    w = jnp.asarray(rng.normal(size=10))
    check_grads(lambda v: project_box_hyperplane(v, jnp.asarray(y), C, method="bisect") @ w,
                (jnp.asarray(v),), order=1, modes=("rev",), eps=1e-6)
