"""Lethal-dose closed forms against scipy and Monte Carlo."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from scipy.special import erf

from jaxpoison.defenses import dpa_certify
from jaxpoison.theory import dpa_approx_radius, gaussian_delta, tolerable_poison


def test_gaussian_delta_closed_form_and_monte_carlo(rng):
    d1 = np.array([0.0, 0.5, 1.0, 2.0, 1.5])
    d2 = np.array([0.0, 1.0, 2.5, 2.1, 1.0])
    np.testing.assert_allclose(gaussian_delta(d1, d2), erf((d2 - d1) / np.sqrt(2)),
                               rtol=1e-12, atol=1e-14)
    z = np.abs(rng.standard_normal(400_000))
    for a, b in zip(d1, d2, strict=True):
        t = b - a
        mc = np.mean(z <= t) if t >= 0 else -np.mean(z <= -t)
        assert abs(float(gaussian_delta(a, b)) - mc) < 4e-3
    # the total-variation reading: TV(N(0,1), N(2t,1)) by Monte Carlo of 1/2 E|1 - p/q|
    t = 0.7
    x = rng.standard_normal(400_000)
    ratio = np.exp(-0.5 * (x - 2 * t) ** 2 + 0.5 * x**2)
    assert abs(0.5 * np.mean(np.abs(1 - ratio)) - float(gaussian_delta(0.0, t))) < 1e-2
    g = jax.grad(lambda b: gaussian_delta(0.3, b))(1.0)
    np.testing.assert_allclose(g, np.sqrt(2 / np.pi) * np.exp(-0.7**2 / 2), rtol=1e-10)


def test_scalings_and_dpa_radius():
    assert float(tolerable_poison(60000, 50)) == 1200.0
    np.testing.assert_allclose(dpa_approx_radius(60000, 50, 0.5), 300.0)
    # a DPA ensemble of k = N/n learners with vote margin m has radius ~ k m / 2
    k, n = 1200, 50
    margin = 0.4
    top = int(k * (1 + margin) / 2)
    preds = np.concatenate([np.zeros(top, int), np.ones(k - top, int)])[None]
    r = int(dpa_certify(preds, [0], 2).radius[0])
    assert abs(r - float(dpa_approx_radius(k * n, n, margin))) <= 1
    assert jnp.shape(jax.vmap(gaussian_delta)(jnp.zeros(3), jnp.ones(3))) == (3,)
