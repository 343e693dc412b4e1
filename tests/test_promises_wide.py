"""Promises of the wide LP solver (property-based): bad input, float32 vs float64, bounds in
both precisions, determinism, the one-triangle Gram product and the memory check.

All linprog examples share one shape (one compilation per precision)."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.optimize import linprog as highs

from jaxpoison.solvers import linprog
from jaxpoison.solvers.lp_wide import check_wide_memory, gram_by_blocks, wide_memory_bytes

settings.register_profile("wide", max_examples=4, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
M, N = 6, 300
seeds = st.integers(0, 2**31 - 1)


def box_problem(seed):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((M, N))
    c = rng.standard_normal(N)
    lo, hi = -rng.random(N), rng.random(N) + 0.1
    b = A @ (lo + (hi - lo) * rng.random(N))
    return c, A, b, lo, hi


@settings(settings.get_profile("wide"))
@given(seeds)
def test_float64_exact_float32_within_stated_accuracy(seed):
    """float64 (mixed): objective = HiGHS to 1e-9; float32: to 1e-4 relative, with primal
    backward error, gap and dual residual <= 1e-5; bounds hold in both precisions; the same
    input gives the same output."""
    c, A, b, lo, hi = box_problem(seed)
    ref = highs(c, A_eq=A, b_eq=b, bounds=np.stack([lo, hi], 1), method="highs").fun
    r64 = linprog(c, A, b, lo, hi, method="wide")
    assert abs(float(r64.objective) - ref) <= 1e-9 * (1 + abs(ref))
    again = linprog(c, A, b, lo, hi, method="wide")
    np.testing.assert_array_equal(np.asarray(r64.x), np.asarray(again.x))
    f32 = [jnp.asarray(a, jnp.float32) for a in (c, A, b, lo, hi)]
    r32 = linprog(*f32, method="wide")
    assert abs(float(r32.objective) - ref) <= 1e-4 * (1 + abs(ref))
    # float32 SUCCESS certifies the primal backward error (float64 arithmetic, rows scaled
    # to unit max-norm), the gap and the dual residual to tol = 1e-5
    As, bs, x = (np.asarray(v, np.float64) for v in (f32[1], f32[2], r32.x))
    rs = 1.0 / np.max(np.abs(As), axis=1)
    As, bs = As * rs[:, None], bs * rs
    assert np.max(np.abs(bs - As @ x)) <= 1e-5 * (
        1 + np.max(np.abs(bs)) + np.max(np.abs(As) @ np.abs(x)))
    assert float(r32.gap) <= 1e-5 and float(r32.dual_residual) <= 1e-5
    for r, dt, eps in ((r64, np.float64, 0.0), (r32, np.float32, 1e-6)):
        x = np.asarray(r.x)
        assert x.dtype == dt
        assert np.all(x >= lo.astype(dt) - eps) and np.all(x <= hi.astype(dt) + eps)


def test_bad_method_and_shapes_name_the_argument():
    c, A, b, lo, hi = box_problem(0)
    with pytest.raises(ValueError, match="method"):
        linprog(c, A, b, lo, hi, method="wide-f16")
    with pytest.raises(ValueError, match="b_eq"):
        linprog(c, A, b[:-1], lo, hi, method="wide")
    with pytest.raises(ValueError, match="lower"):
        linprog(c, A, b, hi + 1.0, hi, method="wide")


@settings(max_examples=10, deadline=None)
@given(st.integers(1, 40), st.integers(1, 60), st.integers(1, 50))
def test_gram_by_blocks_is_the_gram_matrix(m, n, block):
    A = np.random.default_rng(m * 1000 + n).standard_normal((m, n))
    np.testing.assert_allclose(np.asarray(gram_by_blocks(jnp.asarray(A), block)), A @ A.T,
                               rtol=1e-12, atol=1e-10)


@settings(max_examples=10, deadline=None)
@given(st.integers(1, 5000), st.integers(1, 10**6))
def test_memory_estimate_monotone_and_checked(m, n):
    est = wide_memory_bytes(m, n)
    assert est >= 8 * m * n and wide_memory_bytes(m + 1, n) > est
    with pytest.raises(MemoryError, match="needs about"):
        check_wide_memory(m, n, available=est - 1)
    assert check_wide_memory(m, n, available=est) == est
