"""Property-based promises of the LP / PCM area (hypothesis), checked against HiGHS.

Promises (each property states its example count in `@settings`):

* bad input -> `ValueError`/`TypeError` naming the argument (linprog, pcm, the bounds,
  discretize, random_flip, rlhf_poison, fit_bradley_terry);
* a feasible, bounded LP never ends in a failure status, on random, degenerate (duplicate and
  zero columns, redundant rows, vertices with coordinates at their bounds) and badly scaled
  (rows and costs scaled by 1e-4 .. 1e4) instances, and its optimum is HiGHS's;
* a feasible PCM instance ends in SUCCESS with HiGHS's optimum, including duplicate and zero
  columns of Φ and scaled Φ;
* lower bound <= optimum <= upper bound in float64 and in float32 (the lower bound exactly; the
  upper bound to the working precision's LP tolerance, since its point is feasible to it);
* float32 and float64 agree: PCM cost within `1e-4 (1 + OPT)`, same flip count;
* same key -> same `random_flip`; `pcm` under `jit` and `vmap` equals the eager call.

Shapes are fixed within a property, so each compiles once; instances come from a drawn seed
and drawn structure flags (hypothesis shrinks those).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.optimize import linprog as highs

from jaxpoison import Status
from jaxpoison.attacks import (
    discretize,
    pcm,
    pcm_lower_bound,
    pcm_upper_bound,
    random_flip,
    rlhf_poison,
)
from jaxpoison.models import fit_bradley_terry
from jaxpoison.solvers import linprog

FAST = settings(max_examples=25, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow])
MEDIUM = settings(max_examples=15, deadline=None, derandomize=True,
                  suppress_health_check=[HealthCheck.too_slow])

M, NV = 4, 12          # LP shape
NF, NP = 5, 40         # PCM shape (n features, N pairs)


# ----------------------------------------------------------------------------- bad input

def _bad_calls():
    phi, th = np.ones((3, 5)), np.ones(5)
    c, A, b = np.ones(3), np.ones((2, 3)), np.ones(2)
    key = jax.random.key(0)
    return [
        ("A_eq", lambda: linprog(c, np.ones(3), b)),
        ("b_eq", lambda: linprog(c, A, np.ones(3))),
        ("c", lambda: linprog(np.array([1.0, np.inf, 0.0]), A, b)),
        ("c", lambda: linprog(np.ones(0), np.ones((2, 0)), b)),
        ("lower", lambda: linprog(c, A, b, lower=np.array([0.0, np.nan, 0.0]))),
        ("tol", lambda: linprog(c, A, b, tol=-1.0)),
        ("tol", lambda: linprog(c, A, b, tol=float("nan"))),
        ("max_iter", lambda: linprog(c, A, b, max_iter=0)),
        ("method", lambda: linprog(c, A, b, method="simplex")),
        ("phi", lambda: pcm(np.ones((0, 5)), th, th)),
        ("phi", lambda: pcm(np.full((3, 5), np.nan), th, th)),
        ("phi", lambda: pcm(np.ones(5), th, th)),
        ("theta_orig", lambda: pcm(phi, np.ones(4), th)),
        ("theta_orig", lambda: pcm(phi, np.full(5, 2.0), th)),
        ("theta_target", lambda: pcm(phi, th, np.full(5, -0.5))),
        ("weights", lambda: pcm(phi, th, th, weights=-1.0)),
        ("tol", lambda: pcm(phi, th, th, tol=-1)),
        ("target", lambda: pcm(phi, th, target=np.ones(4))),
        ("theta_target", lambda: pcm_lower_bound(phi, th, np.full(5, 1.5))),
        ("weights", lambda: pcm_upper_bound(phi, th, th, weights=np.ones(3))),
        ("m", lambda: discretize(th, 0)),
        ("theta", lambda: discretize(np.full(5, 1.2), 3)),
        ("theta_orig", lambda: discretize(th, 3, theta_orig=np.full(5, -1.0))),
        ("budget_fraction", lambda: random_flip(th, 1.5, key=key)),
        ("key", lambda: random_flip(th, 0.5, key=None)),
        ("theta", lambda: random_flip(np.ones(0), 0.5, key=key)),
        ("reward", lambda: rlhf_poison(phi, th, np.ones(2), th, th)),
        ("chosen_length", lambda: rlhf_poison(phi, th, np.ones(3), np.ones(4), th)),
        ("quality_fraction", lambda: rlhf_poison(phi, th, np.ones(3), th, th,
                                                 quality_fraction=2.0)),
        ("reg", lambda: fit_bradley_terry(phi, th, reg=-1.0)),
        ("theta", lambda: fit_bradley_terry(phi, np.full(5, 3.0))),
        ("tol", lambda: fit_bradley_terry(phi, th, tol=0.0)),
    ]


BAD = _bad_calls()


@settings(max_examples=len(BAD), deadline=None, derandomize=True)
@given(st.sampled_from(range(len(BAD))))
def test_bad_input_raises_named_error(i):
    name, call = BAD[i]
    with pytest.raises((ValueError, TypeError)) as info:
        call()
    assert name in str(info.value), (name, str(info.value))


# ------------------------------------------------------------------- feasible LPs vs HiGHS

def _lp_instance(seed, dup, zero, redundant, at_bounds, scale_exp):
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(M, NV))
    if dup:
        A[:, 1] = A[:, 0]
    if zero:
        A[:, 2] = 0.0
    if redundant:
        A[-1] = A[0] + A[1]
    lo = np.zeros(NV)
    hi = rng.uniform(0.5, 2.0, NV)
    x0 = rng.uniform(0.1, 0.9, NV) * hi
    if at_bounds:   # a degenerate feasible point: half the coordinates at a bound
        x0[: NV // 2] = np.where(rng.random(NV // 2) < 0.5, 0.0, hi[: NV // 2])
    c = rng.normal(size=NV)
    rs = 10.0 ** rng.uniform(-scale_exp, scale_exp, M)
    A = rs[:, None] * A
    if redundant:
        A[-1] = A[0] / rs[0] * rs[-1] + A[1] / rs[1] * rs[-1]
    c = c * 10.0 ** rng.uniform(-scale_exp, scale_exp)
    return c, A, A @ x0, lo, hi


@FAST
@given(st.integers(0, 10_000), st.booleans(), st.booleans(), st.booleans(), st.booleans(),
       st.integers(0, 4))
def test_feasible_lp_succeeds_and_matches_highs(seed, dup, zero, redundant, at_bounds, sexp):
    c, A, b, lo, hi = _lp_instance(seed, dup, zero, redundant, at_bounds, sexp)
    ref = highs(c, A_eq=A, b_eq=b, bounds=np.stack([lo, hi], 1), method="highs")
    assert ref.status == 0
    res = linprog(c, A, b, lo, hi, throw=False)
    assert int(res.status) == Status.SUCCESS
    scale = np.abs(c) @ np.maximum(np.abs(lo), np.abs(hi))
    assert abs(float(res.objective) - ref.fun) <= 1e-8 * (1 + scale)
    x = np.asarray(res.x)
    assert np.all(x >= lo - 1e-9) and np.all(x <= hi + 1e-9)


# ------------------------------------------------------------------------ PCM vs HiGHS

def _pcm_instance(seed, dup, zero, soft, scale_exp, rate=0.3):
    rng = np.random.default_rng(seed)
    phi = rng.normal(size=(NF, NP))
    if dup:
        phi[:, 1] = phi[:, 0]
        phi[:, 3] = -phi[:, 2]
    if zero:
        phi[:, 4] = 0.0
    phi = phi * 10.0 ** rng.uniform(-scale_exp, scale_exp, (NF, 1))
    to = rng.uniform(0, 1, NP) if soft else (rng.random(NP) < 0.8).astype(float)
    flip = rng.random(NP) < rate
    ta = np.where(flip, 1 - to, to)
    return phi, to, ta


def _highs_pcm(phi, to, ta):
    n, N = phi.shape
    res = highs(np.ones(2 * N), A_eq=np.hstack([phi, -phi]), b_eq=phi @ (ta - to),
                bounds=np.stack([np.zeros(2 * N), np.concatenate([1 - to, to])], 1),
                method="highs")
    assert res.status == 0
    return res.fun


@MEDIUM
@given(st.integers(0, 10_000), st.booleans(), st.booleans(), st.booleans(), st.integers(0, 4))
def test_feasible_pcm_succeeds_and_matches_highs(seed, dup, zero, soft, sexp):
    phi, to, ta = _pcm_instance(seed, dup, zero, soft, sexp)
    ref = _highs_pcm(phi, to, ta)
    res = pcm(phi, to, ta, throw=False)
    assert int(res.status) == Status.SUCCESS
    assert abs(float(res.cost) - ref) <= 1e-8 * (1 + ref)


@MEDIUM
@given(st.integers(0, 10_000), st.booleans(), st.sampled_from([0.05, 0.3]))
def test_bounds_sandwich_optimum_in_both_precisions(seed, soft, rate):
    phi, to, ta = _pcm_instance(seed, False, False, soft, 0, rate)
    ref = _highs_pcm(phi, to, ta)
    for dtype, utol in ((np.float64, 1e-9), (np.float32, 1e-5)):
        args = [a.astype(dtype) for a in (phi, to, ta)]
        lb2 = float(pcm_lower_bound(*args, sharpen=False).bound)
        lb = float(pcm_lower_bound(*args).bound)
        ub = float(pcm_upper_bound(*args, support_pad=NP).bound)   # one compiled shape
        # certified lower bounds: no slack beyond HiGHS's own accuracy (1e-9 relative)
        assert lb2 <= ref + 1e-9 * (1 + ref)
        assert lb <= ref + 1e-9 * (1 + ref)
        assert ub >= ref - utol * (1 + ref) * 10


@MEDIUM
@given(st.integers(0, 10_000), st.booleans())
def test_float32_agrees_with_float64(seed, soft):
    phi, to, ta = _pcm_instance(seed, False, False, soft, 0)
    r64 = pcm(phi, to, ta)
    r32 = pcm(*(a.astype(np.float32) for a in (phi, to, ta)), throw=False)
    assert r32.theta.dtype == jnp.float32
    assert int(r32.status) == Status.SUCCESS
    opt = float(r64.cost)
    assert abs(float(r32.cost) - opt) <= 1e-4 * (1 + opt)
    if not soft:
        assert int(r32.flips) == int(r64.flips)


# ---------------------------------------------------------------------- keys, jit, vmap

@FAST
@given(st.integers(0, 2**31 - 1), st.sampled_from([0.0, 0.1, 0.5, 1.0]))
def test_same_key_same_flips(seed, frac):       # few fractions: the count is static
    theta = np.linspace(0.0, 1.0, 30)
    a = random_flip(theta, frac, key=jax.random.key(seed))
    b = random_flip(theta, frac, key=jax.random.key(seed))
    np.testing.assert_array_equal(a.flipped, b.flipped)
    assert int(a.flipped.sum()) == int(round(frac * 30))


# compiled once at module level (fixed shapes), so the examples do not recompile
_JIT = jax.jit(lambda p, o, t: pcm(p, o, t))
_VMAP = jax.jit(jax.vmap(lambda p, o, t: pcm(p, o, t, throw=False), in_axes=(None, None, 0)))


@settings(max_examples=5, deadline=None, derandomize=True)
@given(st.integers(0, 10_000))
def test_pcm_jit_and_vmap_equal_eager(seed):
    phi, to, ta = _pcm_instance(seed, False, False, False, 0)
    tas = np.stack([ta, 1 - to, to])
    eager = [pcm(phi, to, t) for t in tas]
    jitted = _JIT(phi, to, tas[0])
    batched = _VMAP(phi, to, jnp.asarray(tas))
    assert abs(float(jitted.cost) - float(eager[0].cost)) <= 1e-12 * (1 + float(eager[0].cost))
    for k, e in enumerate(eager):
        assert int(batched.status[k]) == Status.SUCCESS
        assert abs(float(batched.cost[k]) - float(e.cost)) <= 1e-9 * (1 + float(e.cost))
