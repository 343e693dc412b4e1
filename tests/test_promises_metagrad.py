"""Promises of the meta-gradient area (smoothing, smoothed FLORAL, smoothed label flip),
stated as properties and tried with hypothesis.

* `soft_topk`: memberships in [0, 1] summing to k in float64 (1e-9) and float32 (1e-3),
  float32 within 1e-4 of float64, eager = `jit`, `vmap` = loop;
* `perturbed`: the same key gives identical values and derivatives;
* bad input (non-positive or non-finite scale, a scale on an exact call, a key where no
  randomness is used, odd `num_samples`) -> ValueError / TypeError naming the argument;
* smoothed FLORAL: float32 and float64 losses within 1e-3 for a few rounds, flip
  probabilities summing to the budget.

Each property runs `EXAMPLES[name]` examples (times `JAXPOISON_HYPOTHESIS_SCALE`).
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jaxpoison.attacks import smooth_topk_sv_flip
from jaxpoison.defenses import smooth_floral, smooth_floral_validation_loss
from jaxpoison.solvers import perturbed, soft_topk, topk_mask

SCALE = int(os.environ.get("JAXPOISON_HYPOTHESIS_SCALE", "1"))
EXAMPLES = {"soft_topk": 25, "precision": 15, "perturbed": 5, "bad": 20, "floral": 3}
N = 16


def _settings(name):
    return settings(max_examples=EXAMPLES[name] * SCALE, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


_soft_jit = jax.jit(lambda s, k, sc: soft_topk(s, k, scale=sc))
scores = st.lists(st.floats(-5, 5, allow_nan=False, width=32), min_size=N, max_size=N)


@_settings("soft_topk")
@given(s=scores, k=st.integers(0, N), scale=st.floats(1e-3, 10.0))
def test_soft_topk_is_a_relaxed_mask(s, k, scale):
    s = jnp.asarray(s, jnp.float64)
    mu = np.asarray(_soft_jit(s, float(k), scale))
    assert np.all((mu >= 0) & (mu <= 1))
    assert mu.sum() == pytest.approx(k, abs=1e-9)


def test_soft_topk_eager_equals_jit(rng):
    s = jnp.asarray(rng.normal(size=N))
    np.testing.assert_allclose(soft_topk(s, 3, scale=0.2), _soft_jit(s, 3.0, 0.2), atol=1e-12)


@_settings("precision")
@given(s=scores, k=st.integers(1, N - 1), scale=st.floats(0.05, 5.0))
def test_soft_topk_float32_agrees_with_float64(s, k, scale):
    s64 = jnp.asarray(s, jnp.float64)
    s32 = jnp.asarray(s, jnp.float32)
    mu64 = np.asarray(_soft_jit(s64, float(k), scale))
    mu32 = np.asarray(_soft_jit(s32, np.float32(k), np.float32(scale)))
    assert mu32.dtype == np.float32
    assert np.all((mu32 >= 0) & (mu32 <= 1))
    assert float(mu32.sum()) == pytest.approx(k, abs=1e-3)
    np.testing.assert_allclose(mu32, mu64, atol=1e-4)


def test_soft_topk_vmap_equals_loop(rng):
    S = jnp.asarray(rng.normal(size=(5, N)))
    ks = jnp.arange(1.0, 6.0)
    batched = jax.vmap(lambda s, k: soft_topk(s, k, scale=0.3))(S, ks)
    for i in range(5):
        np.testing.assert_allclose(batched[i], soft_topk(S[i], float(ks[i]), scale=0.3),
                                   atol=1e-12)


@_settings("perturbed")
@given(s=scores, seed=st.integers(0, 2**16))
def test_perturbed_same_key_same_result(s, seed):
    s = jnp.asarray(s, jnp.float64)
    w = jnp.arange(N, dtype=jnp.float64)

    def val(s):
        p = perturbed(lambda z, _: topk_mask(z, 3), num_samples=32, key=jax.random.key(seed))
        return p(s, 0.5) @ w

    a, ga = jax.value_and_grad(val)(s)
    b, gb = jax.value_and_grad(val)(s)
    assert float(a) == float(b)
    np.testing.assert_array_equal(ga, gb)


@_settings("bad")
@given(scale=st.sampled_from([0.0, -1.0, -1e-9, float("nan"), float("inf"), -float("inf")]))
def test_bad_scale_is_named(scale):
    with pytest.raises(ValueError, match="scale"):
        soft_topk(jnp.ones(N), 2, scale=scale)
    X = np.random.default_rng(0).normal(size=(20, 2))
    y = np.where(X[:, 0] > 0, 1, -1)
    with pytest.raises(ValueError, match="scale"):
        smooth_topk_sv_flip(X, y, budget=2, scale=scale)
    with pytest.raises(ValueError, match="scale"):
        smooth_floral(X, y, budget=2, steps=2, key=jax.random.key(0), scale=scale)


def test_scale_on_exact_call_and_stray_key_are_named():
    X = np.random.default_rng(0).normal(size=(20, 2))
    y = np.where(X[:, 0] > 0, 1, -1)
    with pytest.raises(ValueError, match="scale"):
        smooth_floral(X, y, budget=2, steps=2, key=jax.random.key(0), scale=0.1,
                      smoothing="exact")
    with pytest.raises(ValueError, match="key"):
        smooth_topk_sv_flip(X, y, budget=2, scale=0.1, key=jax.random.key(0))
    with pytest.raises(TypeError, match="key"):
        smooth_floral(X, y, budget=2, steps=2, key=None, scale=0.1)
    with pytest.raises(ValueError, match="num_samples"):
        smooth_floral(X, y, budget=2, steps=2, key=jax.random.key(0), scale=0.1,
                      smoothing="perturbed", num_samples=5)


@_settings("floral")
@given(seed=st.integers(0, 2**16), scale=st.floats(0.05, 1.0))
def test_smoothed_floral_float32_agrees_and_budget_holds(seed, scale):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(40, 2))
    y = np.where(X[:, 0] + 0.3 * rng.normal(size=40) > 0, 1, -1)
    kw = dict(C=1.0, gamma=1.0, lr=0.05, budget=3, steps=5, key=jax.random.key(seed),
              scale=scale)
    l64 = float(smooth_floral_validation_loss(X, y, X, y, **kw))
    l32 = float(smooth_floral_validation_loss(X.astype(np.float32), y,
                                              X.astype(np.float32), y, **kw))
    assert l32 == pytest.approx(l64, abs=1e-3)
    res = smooth_floral(X, y, **kw)
    assert float(jnp.sum(res.flip_prob)) == pytest.approx(3.0, abs=1e-8)
