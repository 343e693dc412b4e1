"""Promises of the smoothed ALFA / ALFA-tilt / greedy LFA, stated as properties and tried
with hypothesis.

* bad `scale` (zero, negative, NaN, inf) -> ValueError naming `scale`, for every attack;
* flip probabilities in [0, 1]; the ALFA family's sum to `budget` (1e-8 in float64, 1e-3 in
  float32), the greedy attack's to at most `budget`;
* float32 and float64 validation losses within 2e-3 (few unrolled steps);
* the same key gives identical results (`variant="xiao"`, `smoothing="perturbed"`);
* the closures run under `jit` and `vmap` (over C) and agree with the eager calls.

Each property runs `EXAMPLES[name]` examples (times `JAXPOISON_HYPOTHESIS_SCALE`); the
budget and float32 properties compile every attack in both precisions and are marked slow.
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jaxpoison.attacks import (
    smooth_alfa,
    smooth_alfa_tilt,
    smooth_alfa_validation_loss,
    smooth_greedy_lfa,
    smooth_greedy_lfa_validation_loss,
)

SCALE = int(os.environ.get("JAXPOISON_HYPOTHESIS_SCALE", "1"))
EXAMPLES = {"bad": 12, "budget": 4, "precision": 3, "key": 3}
N, NV, STEPS = 16, 20, 40


def _settings(name):
    return settings(max_examples=EXAMPLES[name] * SCALE, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


def _data(seed, dtype=np.float64):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(N + NV, 2))
    y = np.where(X[:, 0] + 0.5 * rng.normal(size=N + NV) > 0, 1, -1)
    y[0], y[1] = 1, -1
    X = X.astype(dtype)
    return X[:N], y[:N], X[N:], y[N:]


@_settings("bad")
@given(scale=st.sampled_from([0.0, -1.0, -1e-9, float("nan"), float("inf"), -float("inf")]),
       which=st.sampled_from(["alfa", "authors", "xiao", "greedy"]))
def test_bad_scale_is_named(scale, which):
    X, y, Xv, yv = _data(0)
    with pytest.raises(ValueError, match="scale"):
        if which == "alfa":
            smooth_alfa(X, y, budget=2, scale=scale, steps=STEPS)
        elif which == "greedy":
            smooth_greedy_lfa(X, y, Xv, yv, budget=2, scale=scale, steps=STEPS)
        else:
            smooth_alfa_tilt(X, y, budget=2, variant=which, scale=scale, steps=STEPS,
                             key=jax.random.key(0) if which == "xiao" else None)


@pytest.mark.slow
@_settings("budget")
@given(seed=st.integers(0, 2**16), scale=st.floats(0.05, 2.0), f32=st.booleans())
def test_flip_probabilities_respect_the_budget(seed, scale, f32):
    # budget is static (one compilation per dtype), the data and the scale vary
    X, y, Xv, yv = _data(seed, np.float32 if f32 else np.float64)
    tol, budget = (1e-3 if f32 else 1e-8), 3
    kw = dict(budget=budget, scale=scale, steps=STEPS)
    for res in (smooth_alfa(X, y, alternations=2, **kw),
                smooth_alfa_tilt(X, y, variant="xiao", key=jax.random.key(seed), num_trials=3,
                                 **kw)):
        mu = np.asarray(res.flip_prob)
        assert mu.dtype == (np.float32 if f32 else np.float64)
        assert np.all((mu >= -tol) & (mu <= 1 + tol))
        assert float(mu.sum()) == pytest.approx(budget, abs=tol * budget)
    mu = np.asarray(smooth_greedy_lfa(X, y, Xv, yv, **kw).flip_prob)
    assert np.all((mu >= -tol) & (mu <= 1 + tol)) and mu.sum() <= budget + tol


@pytest.mark.slow
@_settings("precision")
@given(seed=st.integers(0, 2**16), scale=st.floats(0.2, 2.0))
def test_float32_agrees_with_float64(seed, scale):
    kw = dict(budget=2, C=1.0, gamma=1.0, scale=scale, steps=STEPS)
    for f in (lambda X, y, Xv, yv: smooth_alfa_validation_loss(X, y, Xv, yv, alternations=2,
                                                               **kw),
              lambda X, y, Xv, yv: smooth_greedy_lfa_validation_loss(X, y, Xv, yv, **kw)):
        l64 = float(f(*_data(seed)))
        l32 = f(*_data(seed, np.float32))
        assert l32.dtype == jnp.float32
        assert float(l32) == pytest.approx(l64, abs=2e-3)


@_settings("key")
@given(seed=st.integers(0, 2**16))
def test_same_key_same_result(seed):
    X, y, Xv, yv = _data(seed)
    key = jax.random.key(seed)
    kw = dict(budget=2, scale=0.3, steps=STEPS)
    a = smooth_alfa_tilt(X, y, variant="xiao", key=key, num_trials=3, **kw)
    b = smooth_alfa_tilt(X, y, variant="xiao", key=key, num_trials=3, **kw)
    np.testing.assert_array_equal(a.flip_prob, b.flip_prob)
    a = smooth_alfa(X, y, smoothing="perturbed", key=key, num_samples=8, alternations=1, **kw)
    b = smooth_alfa(X, y, smoothing="perturbed", key=key, num_samples=8, alternations=1, **kw)
    np.testing.assert_array_equal(a.flip_prob, b.flip_prob)


def test_closures_run_under_jit_and_vmap():
    X, y, Xv, yv = _data(1)
    Cs = jnp.asarray([0.5, 1.0, 2.0])

    def f(C):
        return smooth_alfa_validation_loss(X, y, Xv, yv, budget=2, C=C, gamma=1.0, scale=0.3,
                                           steps=STEPS, alternations=2)

    batched = np.asarray(jax.jit(jax.vmap(f))(Cs))
    for i, C in enumerate([0.5, 1.0, 2.0]):
        assert batched[i] == pytest.approx(float(f(C)), rel=1e-10)
