"""Lethal-dose closed forms against numerical integration, exact enumeration and Monte
Carlo simulations of the optimal learners (fixed keys)."""

from __future__ import annotations

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate
from scipy.stats import norm

from jaxpoison.defenses import dpa_certify
from jaxpoison.theory import (
    bijection_accuracy,
    bijection_accuracy_bound,
    bijection_min_samples,
    bijection_poison_budget,
    dpa_approx_radius,
    gaussian_delta,
    gaussian_delta_displayed,
    gaussian_min_samples,
    gaussian_poison_budget,
    gaussian_tv,
    memorization_accuracy,
    memorization_min_samples,
    memorization_poison_budget,
    simulate_bijection,
    simulate_gaussian_clean,
    simulate_gaussian_poison,
    simulate_memorization,
    tolerable_poison,
)

KEY = jax.random.key(20221128)


def _tv_quad(t):
    """TV(N(0,1), N(t,1)) = 1/2 int |phi(x) - phi(x - t)| dx by quadrature."""
    val, _ = integrate.quad(lambda x: abs(norm.pdf(x) - norm.pdf(x - t)), -12, 12 + t,
                            points=[t / 2], limit=200)
    return 0.5 * val


@pytest.mark.parametrize("t", [0.0, 0.1, 0.5, 1.0, 2.5, 5.0])
def test_gaussian_tv_is_the_total_variation_distance(t):
    np.testing.assert_allclose(float(gaussian_tv(t)), _tv_quad(t), atol=1e-9)


def test_gaussian_delta_follows_the_definition_and_documents_the_factor_two():
    d1 = np.array([0.0, 0.5, 1.0, 1.5])
    d2 = np.array([0.0, 1.0, 2.5, 2.1])
    # definition: TV of means d2 - d1 apart (Lemma 5: r = (d2 - d1)/2)
    np.testing.assert_allclose(gaussian_delta(d1, d2), [_tv_quad(t) for t in d2 - d1],
                               atol=1e-9)
    np.testing.assert_allclose(gaussian_delta(d1, d2),
                               2 * norm.cdf((d2 - d1) / 2) - 1, atol=1e-12)
    # the paper's displayed formula is the TV of means 2 (d2 - d1) apart
    np.testing.assert_allclose(gaussian_delta_displayed(d1, d2),
                               [_tv_quad(2 * t) for t in d2 - d1], atol=1e-9)
    g = jax.grad(lambda b: gaussian_delta(0.3, b))(1.0)
    np.testing.assert_allclose(g, norm.pdf(0.35), rtol=1e-10)  # d/dt (2 Phi(t/2) - 1)
    assert jnp.shape(jax.vmap(gaussian_delta)(jnp.zeros(3), jnp.ones(3))) == (3,)
    assert float(jax.jit(gaussian_delta)(0.0, 1.0)) == pytest.approx(_tv_quad(1.0))


def test_gaussian_lemma7_coupling_changes_a_delta_fraction_and_breaks_the_learner():
    N, k, d1, d2, eps = 3000, 3, 1.0, 1.5, 0.2
    sim = simulate_gaussian_poison(KEY, N, k, d1, d2, eps=eps, trials=60)
    tv = float(gaussian_tv((1 + eps) * (d2 - d1)))
    expected = float(gaussian_poison_budget(N, k, tv))
    assert expected == pytest.approx(N * tv / k)
    # per trial, changed ~ Binomial(N, tv / k): standard error of the mean over trials
    se = math.sqrt(N * tv / k * (1 - tv / k) / 60)
    assert abs(float(sim.changed) - expected) < 4 * se, (float(sim.changed), expected)
    # ... and not the displayed formula's fraction (about twice as many)
    displayed = N / k * float(gaussian_delta_displayed(d1, d1 + (1 + eps) * (d2 - d1)))
    assert abs(float(sim.changed) - displayed) > 50 * se
    assert float(sim.accuracy) <= 1 / k  # the poisoned plug-in learner loses x0
    # eps -> 0 recovers N * gaussian_delta / k
    np.testing.assert_allclose(float(gaussian_poison_budget(N, k, gaussian_delta(d1, d2))),
                               N / k * _tv_quad(d2 - d1), rtol=1e-8)


@pytest.mark.parametrize("n", [2, 16, 128])
def test_gaussian_lemma6_advantage_bounded_by_theorem1(n):
    k, d1, d2, eps = 3, 1.0, 1.5, 0.05
    u, v = simulate_gaussian_clean(KEY, n, k, d1, d2, eps=eps, trials=10000)
    bound = n / k * float(gaussian_tv((1 + eps) * (d2 - d1)))
    adv = float(u.accuracy - v.accuracy)
    assert adv <= bound + 4 * float(u.stderr + v.stderr), (adv, bound)
    # the same inequality read as Lemma 6's sample size, n >= k (2 tau - 1) / Delta with
    # 2 tau - 1 = the (conservative) advantage the learner reached
    reached = adv - 4 * float(u.stderr + v.stderr)
    if reached > 0:
        tv = float(gaussian_tv((1 + eps) * (d2 - d1)))
        assert n >= float(gaussian_min_samples(k, tv, 0.5 + reached / 2))


def _bijection_exact(n, k):
    """Optimal accuracy by enumerating every training sequence (tiny n, k)."""
    total = 0.0
    for seq in itertools.product(range(k), repeat=n):
        if 0 in seq:
            total += 1.0
        else:
            total += 1.0 / (k - len(set(seq)))
    return total / k**n


@pytest.mark.parametrize("n,k", [(0, 3), (1, 3), (3, 4), (5, 3), (4, 5)])
def test_bijection_accuracy_exact_by_enumeration(n, k):
    assert bijection_accuracy(n, k) == pytest.approx(_bijection_exact(n, k), abs=1e-12)
    assert bijection_accuracy(n, k) <= float(bijection_accuracy_bound(n, k)) + 1e-12


@pytest.mark.parametrize("n", [0, 3, 12])
def test_bijection_simulation_matches_and_bounds_hold(n):
    k = 10
    sim = simulate_bijection(KEY, n, k, trials=20000)
    exact = bijection_accuracy(n, k)
    assert abs(float(sim.accuracy) - exact) < 4 * max(float(sim.stderr), 1e-3)
    assert exact <= float(bijection_accuracy_bound(n, k))
    # Lemma 1 as a sample size: the smallest n reaching tau respects the bound
    for tau in (0.6, 0.8, 0.95):
        n_star = next(m for m in range(1000) if bijection_accuracy(m, k) >= tau)
        assert n_star >= float(bijection_min_samples(k, tau))


def test_bijection_poisoning_lemma2():
    N, k = 200, 10
    sim = simulate_bijection(KEY, N, k, trials=4000, poison=True)
    assert float(sim.accuracy) <= 1 / k
    se = math.sqrt(N * 2 / k * (1 - 2 / k) / 4000)
    assert abs(float(sim.changed) - float(bijection_poison_budget(N, k))) < 4 * se


@pytest.mark.parametrize("n,m,k", [(0, 10, 4), (5, 10, 4), (40, 25, 2)])
def test_memorization_simulation_matches(n, m, k):
    sim = simulate_memorization(KEY, n, m, k, trials=20000)
    exact = float(memorization_accuracy(n, m, k))
    assert abs(float(sim.accuracy) - exact) < 4 * max(float(sim.stderr), 1e-3)


def test_memorization_min_samples_is_tight_and_poisoning_lemma4():
    m, k = 25, 4
    for tau in (0.5, 0.8, 0.95):
        n_star = next(n for n in range(10000) if memorization_accuracy(n, m, k) >= tau)
        assert n_star == math.ceil(float(memorization_min_samples(m, k, tau)) - 1e-9)
    N = 300
    sim = simulate_memorization(KEY, N, m, k, trials=4000, poison=True)
    assert abs(float(sim.accuracy) - 1 / k) < 4 * float(sim.stderr)
    se = math.sqrt(N / m * (1 - 1 / m) / 4000)
    assert abs(float(sim.changed) - float(memorization_poison_budget(N, m))) < 4 * se


def test_product_of_clean_and_poison_orders_is_N():
    """The conjecture's shape: (clean samples) x (poison fraction) = Theta(1) in each task."""
    tau = 0.8
    for k in (5, 20, 80):
        prod = float(bijection_min_samples(k, tau)) * float(bijection_poison_budget(1.0, k))
        assert 0.5 < prod < 2.0
    for m in (10, 100, 1000):
        prod = float(memorization_min_samples(m, 4, tau)) * float(memorization_poison_budget(1, m))
        assert 0.5 < prod < 2.0
    for delta in (0.05, 0.3, 0.9):
        prod = (float(gaussian_min_samples(4, delta, tau))
                * float(gaussian_poison_budget(1, 4, delta)))
        assert prod == pytest.approx(2 * tau - 1)


def test_bad_inputs_name_the_argument():
    with pytest.raises(ValueError, match="d2 must be >= d1"):
        gaussian_delta(1.0, 0.5)
    with pytest.raises(ValueError, match="d1"):
        gaussian_delta(-1.0, 0.5)
    with pytest.raises(ValueError, match="distance"):
        gaussian_tv(-0.1)
    with pytest.raises(ValueError, match="tau"):
        gaussian_min_samples(3, 0.5, 0.4)
    with pytest.raises(ValueError, match="delta"):
        gaussian_min_samples(3, 0.0, 0.8)
    with pytest.raises(ValueError, match="k"):
        bijection_min_samples(2, 0.8)
    with pytest.raises(ValueError, match="tau"):
        memorization_min_samples(10, 4, 0.2)
    with pytest.raises(ValueError, match="n"):
        tolerable_poison(100, 0)
    with pytest.raises(ValueError, match="margin"):
        dpa_approx_radius(100, 10, 1.5)
    with pytest.raises(ValueError, match="N"):
        bijection_poison_budget(-1, 3)
    with pytest.raises(TypeError, match="key"):
        simulate_bijection(None, 3, 4)
    with pytest.raises(ValueError, match="d1"):
        simulate_gaussian_clean(KEY, 3, 3, 2.0, 1.0)


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
