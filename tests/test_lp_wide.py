"""The wide LP solver (`method="wide"`, `"wide-f64"`) against HiGHS: exact objective, a vertex
with at most m fractional coordinates, degenerate problems, float32, jit/vmap, derivatives,
PCM on the pair operator, the one-triangle Gram product and the memory estimate."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.optimize import linprog as highs

from jaxpoison import SolverError, Status
from jaxpoison.attacks.pcm import pcm
from jaxpoison.solvers import DenseOperator, PairOperator, crossover, linprog
from jaxpoison.solvers.lp_wide import (
    check_wide_memory,
    gram_by_blocks,
    is_wide,
    pcg,
    refined_pcg,
    wide_memory_bytes,
)


def wide_problem(seed, m=20, n=2000, dup=0, zero=0):
    """Random wide LP with two-sided, one-sided and (optionally) duplicated / zero columns."""
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((m, n))
    lo = np.where(rng.random(n) < 0.1, -np.inf, -rng.random(n))
    hi = np.where((rng.random(n) < 0.1) & np.isfinite(lo), np.inf, rng.random(n) + 0.5)
    c = rng.standard_normal(n)
    c = np.where(np.isfinite(lo), c, -np.abs(c))
    c = np.where(np.isfinite(hi), c, np.abs(c))
    k = dup + zero
    if k:
        lo[-k:], hi[-k:] = -0.5, 0.7
        lo[:dup], hi[:dup] = -0.5, 0.7
    if dup:
        A[:, -dup:] = A[:, :dup]
        c[-dup:] = c[:dup]
    if zero:
        A[:, n - k:n - dup] = 0.0
    box_lo = np.where(np.isfinite(lo), lo, -1.0)
    box_hi = np.where(np.isfinite(hi), hi, 1.0)
    b = A @ np.clip(0.3 * rng.standard_normal(n), box_lo, box_hi)
    return c, A, b, lo, hi


def reference(c, A, b, lo, hi):
    r = highs(c, A_eq=A, b_eq=b, bounds=np.stack([lo, hi], 1), method="highs")
    assert r.status == 0
    return r.fun


def fractional(x, lo, hi, tol=1e-9):
    return int(np.sum((x > lo + tol) & (x < hi - tol)))


@pytest.mark.parametrize("method", ["wide", "wide-f64"])
@pytest.mark.parametrize("seed,dup,zero,vertex", [(0, 0, 0, True), (1, 0, 0, True),
                                                  (2, 20, 5, True), (3, 0, 10, True),
                                                  (4, 40, 0, False)])
def test_wide_matches_highs_at_a_vertex(method, seed, dup, zero, vertex):
    """Exact objective always; a vertex where the crossover verifies. With many duplicated
    columns (40 pairs, m = 20: a dual-degenerate optimal face) the crossover may not verify
    and the answer is the interior point's optimum (documented limitation)."""
    c, A, b, lo, hi = wide_problem(seed, dup=dup, zero=zero)
    ref = reference(c, A, b, lo, hi)
    res = linprog(c, A, b, lo, hi, method=method)
    assert int(res.status) == Status.SUCCESS
    assert abs(float(res.objective) - ref) <= 1e-9 * (1 + abs(ref))
    assert float(res.primal_residual) <= 1e-9 and float(res.gap) <= 1e-9
    x = np.asarray(res.x)
    assert np.all(x >= lo - 1e-12) and np.all(x <= hi + 1e-12)
    if vertex:
        assert fractional(x, lo, hi) <= A.shape[0]


def backward_error(A, b, x):
    """Normwise backward error of `A x = b` (rows scaled to unit max-norm, as the solver
    does), computed in float64: `||b - Ax|| / (1 + ||b|| + || |A||x| ||)` (infinity norms)."""
    A, b, x = (np.asarray(v, np.float64) for v in (A, b, x))
    r = 1.0 / np.max(np.abs(A), axis=1)
    As, bs = A * r[:, None], b * r
    return np.max(np.abs(bs - As @ x)) / (1 + np.max(np.abs(bs)) + np.max(np.abs(As) @ np.abs(x)))


def test_wide_float32_stated_accuracy():
    """Pure float32: SUCCESS, relative objective error <= 1e-4, and the primal backward error
    (float64 arithmetic on the float32 answer) <= 1e-5 = the default float32 tol."""
    for seed in range(3):
        c, A, b, lo, hi = wide_problem(seed, dup=10, zero=5)
        ref = reference(c, A, b, lo, hi)
        f32 = [jnp.asarray(a, jnp.float32) for a in (c, A, b, lo, hi)]
        res = linprog(*f32, method="wide")
        assert res.x.dtype == jnp.float32
        assert int(res.status) == Status.SUCCESS
        assert abs(float(res.objective) - ref) <= 1e-4 * (1 + abs(ref))
        assert backward_error(*f32[1:3], res.x) <= 1e-5
        assert float(res.gap) <= 1e-5 and float(res.dual_residual) <= 1e-5


@pytest.mark.slow
def test_auto_picks_wide_and_agrees_with_dense_ipm():
    assert is_wide(100, 20_000) and not is_wide(100, 1_000) and not is_wide(2_000, 20_000)
    c, A, b, lo, hi = wide_problem(5, m=10, n=20_000)
    auto = linprog(c, A, b, lo, hi)
    wide = linprog(c, A, b, lo, hi, method="wide")
    dense = linprog(c, A, b, lo, hi, method="ipm")
    np.testing.assert_array_equal(np.asarray(auto.x), np.asarray(wide.x))
    assert abs(float(wide.objective) - float(dense.objective)) <= 1e-9 * (
        1 + abs(float(dense.objective)))


def test_wide_infeasible_status():
    c, A, b, lo, hi = wide_problem(6)
    lo, hi = np.zeros_like(lo), np.ones_like(hi)
    A = np.abs(A)
    res = linprog(c, A, -np.ones(A.shape[0]), lo, hi, method="wide", throw=False)
    assert int(res.status) == Status.INFEASIBLE


@pytest.mark.slow
def test_wide_jit_vmap_and_envelope_gradient():
    c, A, b, lo, hi = wide_problem(7)
    bs = jnp.stack([jnp.asarray(b), jnp.asarray(b) * 0.9])
    f = jax.jit(jax.vmap(lambda bb: linprog(c, A, bb, lo, hi, method="wide", throw=False)))
    out = f(bs)
    for k in range(2):
        ref = reference(c, A, np.asarray(bs[k]), lo, hi)
        assert abs(float(out.objective[k]) - ref) <= 1e-9 * (1 + abs(ref))
    # d(optimal value)/dc = x*, d/db = y* (checked against HiGHS's marginals)
    g = jax.grad(lambda cc: linprog(cc, A, b, lo, hi, method="wide").objective)(jnp.asarray(c))
    r = highs(c, A_eq=A, b_eq=b, bounds=np.stack([lo, hi], 1), method="highs")
    np.testing.assert_allclose(np.asarray(g), r.x, atol=1e-7)
    gb = jax.grad(lambda bb: linprog(c, A, bb, lo, hi, method="wide").objective)(jnp.asarray(b))
    np.testing.assert_allclose(np.asarray(gb), r.eqlin.marginals, atol=1e-7)


def test_pcm_wide_matches_highs():
    rng = np.random.default_rng(0)
    n, N = 20, 3000
    phi = rng.standard_normal((n, N))
    to = (rng.random(N) < 0.7).astype(float)
    ta = to.copy()
    ta[rng.permutation(N)[:150]] = 1 - to[rng.permutation(N)[:150]]
    A = np.hstack([phi, -phi])
    bounds = np.stack([np.zeros(2 * N), np.concatenate([1 - to, to])], 1)
    r = highs(np.ones(2 * N), A_eq=A, b_eq=phi @ (ta - to), bounds=bounds, method="highs")
    for method in ("wide", "wide-f64"):
        res = pcm(phi, to, ta, method=method)
        assert abs(float(res.cost) - r.fun) <= 1e-9 * (1 + r.fun)
        assert float(res.residual) <= 1e-8 * np.linalg.norm(phi @ ta)
        theta = np.asarray(res.theta)
        assert int(np.sum((theta > 1e-9) & (theta < 1 - 1e-9))) <= n


def test_gram_by_blocks_matches_numpy():
    A = np.random.default_rng(1).standard_normal((70, 300))
    for block in (16, 32, 70, 100):
        np.testing.assert_allclose(np.asarray(gram_by_blocks(jnp.asarray(A), block)), A @ A.T,
                                   rtol=1e-12, atol=1e-10)


def test_memory_estimate_and_clear_error():
    # paper size, mixed precision: Φ (5.2 GB) + its float32 copy (2.6 GB) + m x m work,
    # within the 16 GB budget; float64 throughout and float32 input also fit
    data = 8 * 4096 * 160_000
    est = wide_memory_bytes(4096, 160_000)
    assert 1.5 * data <= est <= 2.2 * data and est <= 16e9
    assert data <= wide_memory_bytes(4096, 160_000, precision="float64") <= 16e9
    assert wide_memory_bytes(4096, 160_000, itemsize=4) <= 0.6 * est
    with pytest.raises(MemoryError, match="GB"):
        check_wide_memory(10**6, 10**7, available=16 * 2**30)
    check_wide_memory(100, 1000, available=16 * 2**30)


def test_gram_by_blocks_column_chunks_and_weights():
    """Chunked (fori_loop over column slices, with a remainder) and weighted Gram products
    against numpy's A diag(w) A^T."""
    rng = np.random.default_rng(2)
    A, w = rng.standard_normal((40, 1000)), rng.random(1000)
    for block, chunk in ((16, 128), (40, 300), (64, 1000)):
        got = gram_by_blocks(jnp.asarray(A), block, jnp.asarray(w), chunk=chunk)
        np.testing.assert_allclose(np.asarray(got), (A * w) @ A.T, rtol=1e-12, atol=1e-10)


def test_lazy_scaling_matches_explicit_matrix():
    """`scale` keeps Φ and stores vectors; every operator method equals the explicitly
    scaled dense matrix diag(r) [Φ, -Φ] diag(c, c) (numpy)."""
    rng = np.random.default_rng(3)
    m, N = 6, 50
    phi = rng.standard_normal((m, N))
    r, c = rng.random(m) + 0.5, rng.random(2 * N) + 0.5
    c[N:] = c[:N]
    A = r[:, None] * np.hstack([phi, -phi]) * c[None, :]
    x, y, d = rng.standard_normal(2 * N), rng.standard_normal(m), rng.random(2 * N)
    for op in (PairOperator(jnp.asarray(phi)).scale(jnp.asarray(r), jnp.asarray(c)),
               DenseOperator(jnp.asarray(np.hstack([phi, -phi]))).scale(jnp.asarray(r),
                                                                        jnp.asarray(c))):
        np.testing.assert_allclose(op.matvec(jnp.asarray(x)), A @ x, rtol=1e-12)
        np.testing.assert_allclose(op.rmatvec(jnp.asarray(y)), y @ A, rtol=1e-12)
        np.testing.assert_allclose(op.normal(jnp.asarray(d)), (A * d) @ A.T, rtol=1e-12)
        np.testing.assert_allclose(op.abs_matvec(jnp.asarray(x)), np.abs(A) @ np.abs(x),
                                   rtol=1e-12)
        np.testing.assert_allclose(op.row_abs_max(), np.abs(A).max(1), rtol=1e-12)
        np.testing.assert_allclose(op.col_abs_sum(), np.abs(A).sum(0), rtol=1e-12)
    big = np.tile(phi, (1, 400))      # 20,000 columns: the chunked |A| |x| path
    xb = rng.standard_normal(2 * big.shape[1])
    np.testing.assert_allclose(PairOperator(jnp.asarray(big)).abs_matvec(jnp.asarray(xb)),
                               np.abs(big) @ (np.abs(xb[:big.shape[1]])
                                              + np.abs(xb[big.shape[1]:])), rtol=1e-12)


def test_paper_scale_instance_refused_before_allocation():
    """The instance generator checks the estimate first: a MemoryError naming it, raised
    at once (nothing of the requested 8 TB is allocated)."""
    from jaxpoison.experiments.pcm_scale import scale_instance

    with pytest.raises(MemoryError, match=r"needs about [0-9.]+ GB; only"):
        scale_instance("gaussian", 100_000, 10_000_000)


def test_wide_float32_converges_past_its_rounding_floor():
    """A wide box LP whose float32 residual `b - Ax` cannot fall below ~1e-4 relative to
    `1 + ||b||` (|x| up to 1000, `||b||` ~ 100: rounding of the product dominates; before the
    backward-error test this ran to MAX_ITERATIONS): SUCCESS with objective within 1e-5
    of HiGHS, primal backward error (float64 arithmetic) and gap <= tol = 1e-5."""
    rng = np.random.default_rng(0)
    m, n = 10, 20_000
    A, c = rng.standard_normal((m, n)), rng.standard_normal(n)
    lo, hi = -1000.0 * np.ones(n), 1000.0 * np.ones(n)
    b = A @ rng.uniform(-1, 1, n)
    ref = reference(c, A, b, lo, hi)
    f32 = [jnp.asarray(a, jnp.float32) for a in (c, A, b, lo, hi)]
    res = linprog(*f32, method="wide")
    assert int(res.status) == Status.SUCCESS
    assert abs(float(res.objective) - ref) <= 1e-5 * abs(ref)
    assert backward_error(*f32[1:3], res.x) <= 1e-5
    assert float(res.gap) <= 1e-5 and float(res.dual_residual) <= 1e-5


@pytest.mark.slow
def test_near_degenerate_vertex_is_certified():
    """`scale_instance("gaussian", 512, 20000)`: the optimal vertex has a basic label within
    rounding of its bound, so the complementarity rule classifies only 511 of 512 basic
    variables as free. The crossover now solves the square basis (the 512 most-free
    variables), certifying in ~20 iterations; before, both `wide` and `wide-f64` ran to
    MAX_ITERATIONS (primal residual 4e-9 in float64). Objective against the dense
    interior point (`method="ipm"`, its own crossover) to 1e-9."""
    from jaxpoison.experiments.pcm_scale import fractional, scale_instance

    phi, to, ta = scale_instance("gaussian", 512, 20_000)
    ref = pcm(phi, to, ta, method="ipm")
    for method in ("wide", "wide-f64"):
        res = pcm(phi, to, ta, method=method)
        assert int(res.status) == Status.SUCCESS and int(res.iterations) < 50
        assert float(res.gap) <= 1e-9 and float(res.primal_residual) <= 1e-9
        assert abs(float(res.cost) - float(ref.cost)) <= 1e-9 * float(ref.cost)
        assert fractional(res.theta) <= 512


def _misclassified(seed, m=20, n=1000, wrong=1):
    """HiGHS's optimal vertex of a random box LP, dressed as an interior iterate that
    classifies the `wrong` basic variables nearest a bound at that bound and the `wrong`
    nonbasic ones of smallest reduced cost as free (what a stalled interior point hands the
    crossover: the ambiguous ones are the ones it gets wrong)."""
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((m, n))
    b = A @ rng.uniform(0.2, 0.8, n)
    c = rng.standard_normal(n)
    ref = highs(c, A_eq=A, b_eq=b, bounds=(0.0, 1.0), method="highs-ds")
    x, y = ref.x.copy(), ref.eqlin.marginals.copy()
    zl, zu = ref.lower.marginals.copy(), -ref.upper.marginals.copy()
    basic = np.flatnonzero((x > 1e-9) & (x < 1 - 1e-9))
    assert len(basic) == m                                  # a nondegenerate vertex
    gone = basic[np.argsort(np.minimum(x[basic], 1 - x[basic]))[:wrong]]
    lower = x[gone] < 0.5
    zl[gone[lower]] = zu[gone[~lower]] = 10.0                # looks at its nearer bound
    red = np.abs(c - A.T @ y)
    red[basic] = np.inf
    fake = np.argsort(red)[:wrong]                           # the least sure one: looks free
    x[fake] = np.where(x[fake] < 0.5, 0.05, 0.95)
    zl[fake] = zu[fake] = 1e-3
    args = [jnp.asarray(v) for v in (c, b, np.zeros(n), np.ones(n), x, y, zl, zu)]
    return A, args, ref


@pytest.mark.parametrize("seed,wrong", [(0, 1), (1, 1), (2, 1), (3, 1), (4, 2), (5, 2)])
def test_crossover_pivots_repair_a_misclassified_iterate(seed, wrong):
    """Without pivots the crossover of a misclassified iterate is rejected by its own
    verification; with them (primal and dual simplex pivots) it reaches HiGHS's vertex,
    verified. (Seed 2 needs the dual pivot: its first basis is primal infeasible.)"""
    A, (c, b, lo, hi, x, y, zl, zu), ref = _misclassified(seed, wrong=wrong)
    plain = crossover(c, A, b, lo, hi, x, y, zl, zu, tol=1e-9, pivots=0, throw=False)
    assert int(plain.status) == Status.MAX_ITERATIONS
    fixed = crossover(c, A, b, lo, hi, x, y, zl, zu, tol=1e-9)
    assert int(fixed.status) == Status.SUCCESS and 1 <= int(fixed.iterations) <= 8
    np.testing.assert_allclose(np.asarray(fixed.x), ref.x, atol=1e-9)
    assert abs(float(c @ fixed.x) - ref.fun) <= 1e-9 * (1 + abs(ref.fun))
    assert max(float(fixed.primal_residual), float(fixed.dual_residual),
               float(fixed.gap)) <= 1e-9


def test_crossover_rejects_bad_input_and_raises_when_unverified():
    A, (c, b, lo, hi, x, y, zl, zu), _ = _misclassified(0)
    with pytest.raises(ValueError, match="z_lower"):
        crossover(c, A, b, lo, hi, x, y, -zl - 1.0, zu)
    with pytest.raises(ValueError, match="y"):
        crossover(c, A, b, lo, hi, x, y[:-1], zl, zu)
    with pytest.raises(ValueError, match="pivots"):
        crossover(c, A, b, lo, hi, x, y, zl, zu, pivots=-1)
    with pytest.raises(SolverError):
        crossover(c, A, b, lo, hi, x, y, zl, zu, tol=1e-9, pivots=0)


def test_crossover_in_float32_reaches_the_float64_vertex():
    """The same repair in float32 (tol 1e-5): HiGHS's vertex to float32 accuracy."""
    A, args, ref = _misclassified(1)
    c, b, lo, hi, x, y, zl, zu = (np.asarray(a, np.float32) for a in args)
    res = crossover(c, A.astype(np.float32), b, lo, hi, x, y, zl, zu)
    assert res.x.dtype == jnp.float32 and int(res.status) == Status.SUCCESS
    np.testing.assert_allclose(np.asarray(res.x), ref.x, atol=1e-4)
    assert abs(float(res.objective) - ref.fun) <= 1e-4 * (1 + abs(ref.fun))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mixed_refinement_reaches_the_float64_residual(seed):
    """The mixed mode's normal-equation solve below the float32 CG floor: float32 CG alone
    stops at a float64 residual of ~1e-7 (its products' rounding), which would become the
    primal residual of the step; refinement against the float64 product reaches 1e-11."""
    rng = np.random.default_rng(seed)
    m, n = 40, 3000
    A = rng.normal(size=(m, n)) + 3.0 * rng.normal(size=(m, 1))
    theta = 10.0 ** rng.uniform(-8, 8, size=n)        # the late interior point's spread
    M = (A * theta) @ A.T
    A32, t32 = jnp.asarray(A, jnp.float32), jnp.asarray(theta, jnp.float32)
    A64, t64 = jnp.asarray(A), jnp.asarray(theta)

    def mv32(v):
        return (A32 @ (t32 * (v.astype(jnp.float32) @ A32))).astype(jnp.float64)

    def mv64(v):
        return A64 @ (t64 * (v @ A64))

    # an inexact preconditioner, as the solver's (heavy columns + mean field) is
    L = jnp.asarray(np.linalg.cholesky(M + 1e-3 * np.diag(np.diag(M))))

    def psolve(r):
        return jax.scipy.linalg.cho_solve((L, True), r)

    rhs = jnp.asarray(M @ rng.normal(size=m))

    def rel(x):
        return float(jnp.linalg.norm(rhs - M @ np.asarray(x)) / jnp.linalg.norm(rhs))

    x0 = jnp.zeros(m)
    plain, _ = pcg(mv32, psolve, rhs, x0, 1e-6, 200)
    none, _ = refined_pcg(mv32, mv64, psolve, rhs, x0, 1e-6, 1e-11, 0, 200)
    refined, k = refined_pcg(mv32, mv64, psolve, rhs, x0, 1e-6, 1e-11, 6, 200)
    assert rel(plain) > 1e-8                      # the float32 floor is real here
    assert rel(none) == pytest.approx(rel(plain), rel=1e-12)
    assert rel(refined) <= 2e-11
    assert int(k) <= 20


def test_paper_cell_reports_cost_bounds_and_the_papers_flip_rate():
    """`pcm-scale`'s paper-size cell, run small: optimum against HiGHS on the whole
    instance, lower bounds <= OPT <= upper bound <= naive, the attack's own flip rate 5%,
    and the paper's flip rate (annotations flipped after rounding to m = 5) within the
    rounding's reach of the cost: |round(5θ)/5 - θ| <= 0.1 on each touched pair."""
    from jaxpoison.experiments.pcm_scale import paper_cell, scale_instance

    n, N = 40, 20_000
    r = paper_cell("lowrank", 0, size=(n, N), sub=(20, 400))
    phi, to, ta = (np.asarray(a) for a in scale_instance("lowrank", n, N))
    ref = highs(np.ones(2 * N), A_eq=np.hstack([phi, -phi]), b_eq=phi @ (ta - to),
                bounds=np.stack([np.zeros(2 * N), np.concatenate([1 - to, to])], 1),
                method="highs").fun
    assert r["status"] == Status.SUCCESS and r["gap"] <= 1e-9
    assert abs(r["cost"] - ref) <= 1e-9 * ref
    assert r["theorem2"] <= r["lower"] <= ref + 1e-7
    assert ref - 1e-7 <= r["upper"] <= r["naive"] == 0.05 * N
    assert r["reduction"] == pytest.approx(1 - ref / r["naive"], rel=1e-9)
    assert r["naive_flip_rate"] == pytest.approx(0.05)
    assert (r["cost"] - 0.1 * r["flips"]) / N <= r["flip_rate"] + 1e-12
    assert r["flip_rate"] <= r["flips"] / N
    assert r["sub_relerr"] <= 1e-9
