"""linprog (IPM and PDHG) against HiGHS, infeasibility, float32, jit/vmap, KKT derivatives."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.optimize import linprog as highs

from jaxpoison import SolverError, Status
from jaxpoison.solvers import linprog

M, N_VAR, BATCH = 5, 14, 12


def _instance(rng, kind):
    A = rng.normal(size=(M, N_VAR))
    x0 = rng.uniform(0.2, 0.8, N_VAR)
    c = rng.normal(size=N_VAR)
    lo = np.zeros(N_VAR)
    hi = np.full(N_VAR, rng.uniform(1.0, 3.0))
    b = A @ x0
    if kind == 1:                       # some upper bounds infinite
        hi[:4] = np.inf
        c[:4] = np.abs(c[:4])
    elif kind == 2:                     # free variables (zero cost) and shifted bounds
        lo[:2], hi[:2] = -np.inf, np.inf
        c[:2] = 0.0
        lo[2:5], hi[2:5] = -1.0, 2.0
    elif kind == 3:                     # a fixed variable and a lower-infinite one
        lo[0] = hi[0] = x0[0]
        lo[1], hi[1] = -np.inf, 1.5
        c[1] = -abs(c[1])
    elif kind == "infeasible":          # sum(x) = 100 > sum of upper bounds
        A[0] = 1.0
        b = A @ x0
        b[0] = 100.0
    elif kind == "infeasible_inf":      # sum(x) = -1 with x >= 0, no upper bounds
        A[0] = 1.0
        b = A @ x0
        b[0] = -1.0
        hi[:] = np.inf
    elif kind == "unbounded":           # ray e0 + e1 with A(e0 + e1) = 0, c^T(e0 + e1) < 0
        A[:, 1] = -A[:, 0]
        b = A @ x0
        hi[:2] = np.inf
        c[:2] = -1.0
    return c, A, b, lo, hi


SPECIAL = {BATCH: Status.INFEASIBLE, BATCH + 1: Status.INFEASIBLE, BATCH + 2: Status.UNBOUNDED}


def _highs(c, A, b, lo, hi):
    return highs(c, A_eq=A, b_eq=b, bounds=np.stack([lo, hi], 1), method="highs")


@pytest.fixture(scope="module")
def problems():
    rng = np.random.default_rng(42)
    kinds = [k % 4 for k in range(BATCH)] + ["infeasible", "infeasible_inf", "unbounded"]
    probs = [_instance(rng, k) for k in kinds]
    return [np.stack(p) for p in zip(*probs, strict=True)]


@pytest.fixture(scope="module")
def references(problems):
    return [_highs(*(a[i] for a in problems)) for i in range(BATCH + len(SPECIAL))]


def _batched(problems, method):
    f = jax.vmap(lambda c, A, b, lo, hi: linprog(c, A, b, lo, hi, method=method, throw=False))
    return f(*map(jnp.asarray, problems))


@pytest.fixture(scope="module")
def ipm_batch(problems):
    return _batched(problems, "ipm")


def test_ipm_matches_highs(ipm_batch, references):
    for i, ref in enumerate(references[:BATCH]):
        assert ref.status == 0
        assert int(ipm_batch.status[i]) == Status.SUCCESS
        obj = float(ipm_batch.objective[i])
        assert abs(obj - ref.fun) <= 1e-8 * (1 + abs(ref.fun))
        np.testing.assert_allclose(ipm_batch.x[i], ref.x, atol=1e-6)
        np.testing.assert_allclose(ipm_batch.y[i], ref.eqlin.marginals, atol=1e-6)
        np.testing.assert_allclose(ipm_batch.z_lower[i], ref.lower.marginals, atol=1e-6)
        np.testing.assert_allclose(ipm_batch.z_upper[i], -ref.upper.marginals, atol=1e-6)


def test_pdhg_matches_highs(problems, references):
    res = _batched(problems, "pdhg")
    for i, ref in enumerate(references[:BATCH]):
        assert int(res.status[i]) == Status.SUCCESS
        assert abs(float(res.objective[i]) - ref.fun) <= 1e-5 * (1 + abs(ref.fun))
        np.testing.assert_allclose(res.x[i], ref.x, atol=1e-4)
    for i, status in SPECIAL.items():
        assert int(res.status[i]) == status


def test_infeasible_and_unbounded_status(problems, references, ipm_batch):
    for i, status in SPECIAL.items():
        assert references[i].status == (2 if status == Status.INFEASIBLE else 3)
        assert int(ipm_batch.status[i]) == status
        assert np.all(np.isfinite(np.asarray(ipm_batch.x[i])))
    with pytest.raises(SolverError, match="INFEASIBLE"):
        linprog(*(a[BATCH] for a in problems))
    with pytest.raises(SolverError, match="UNBOUNDED"):
        linprog(*(a[BATCH + 2] for a in problems))


def test_vmap_equals_single_solves(problems, ipm_batch):
    for i in (0, 3, 6):
        single = linprog(*(jnp.asarray(a[i]) for a in problems))
        np.testing.assert_allclose(single.x, ipm_batch.x[i], atol=1e-10)
        np.testing.assert_allclose(single.y, ipm_batch.y[i], atol=1e-10)


def test_float32_no_nan(problems, references):
    for i in (0, 1, 2, 3, BATCH):
        args = [jnp.asarray(a[i], jnp.float32) for a in problems]
        res = linprog(*args, throw=False)
        assert res.x.dtype == jnp.float32
        assert np.all(np.isfinite(np.asarray(res.x))) and np.all(np.isfinite(np.asarray(res.y)))
        if i < BATCH:
            assert int(res.status) in (Status.SUCCESS, Status.MAX_ITERATIONS)
            ref = references[i].fun
            assert abs(float(res.objective) - ref) <= 1e-3 * (1 + abs(ref))


def test_pdhg_float32_no_nan(problems, references):
    args = [jnp.asarray(a[0], jnp.float32) for a in problems]
    res = linprog(*args, method="pdhg", throw=False)
    assert res.x.dtype == jnp.float32
    assert np.all(np.isfinite(np.asarray(res.x))) and np.all(np.isfinite(np.asarray(res.y)))
    assert int(res.status) == Status.SUCCESS
    assert abs(float(res.objective) - references[0].fun) <= 1e-3 * (1 + abs(references[0].fun))


def _directions(problems, k=3, seed=1):
    rng = np.random.default_rng(seed)
    return [(rng.normal(size=N_VAR), rng.normal(size=(M, N_VAR)), rng.normal(size=M))
            for _ in range(k)]


def _fd_dir(f, args, direction, h=1e-5):
    plus = [a + h * d for a, d in zip(args, direction, strict=True)]
    minus = [a - h * d for a, d in zip(args, direction, strict=True)]
    return (np.asarray(f(*plus)) - np.asarray(f(*minus))) / (2 * h)


def test_value_gradients_match_finite_differences(problems):
    c, A, b, lo, hi = (np.asarray(a[0]) for a in problems)

    def value(c, A, b):
        return linprog(c, A, b, lo, hi, tol=1e-11).objective

    gc, gA, gb = jax.grad(value, argnums=(0, 1, 2))(jnp.asarray(c), jnp.asarray(A),
                                                  jnp.asarray(b))
    res = linprog(c, A, b, lo, hi, tol=1e-11)
    # envelope theorem: df/dc = x*, df/db = y*, df/dA = -y* x*^T
    np.testing.assert_allclose(gc, res.x, atol=1e-8)
    np.testing.assert_allclose(gb, res.y, atol=1e-8)
    np.testing.assert_allclose(gA, -np.outer(res.y, res.x), atol=1e-8)
    for dc, dA, db in _directions(problems):
        fd = _fd_dir(value, (c, A, b), (dc, dA, db))
        ad = float(gc @ dc + jnp.sum(gA * dA) + gb @ db)
        assert abs(ad - float(fd)) <= 1e-5 * (1 + abs(ad))


def test_solution_derivatives_match_finite_differences(problems):
    """At a nondegenerate vertex (random instance) dx*, dy* from the KKT system = FD."""
    c, A, b, lo, hi = (np.asarray(a[0]) for a in problems)

    def sol(c, A, b):
        r = linprog(c, A, b, lo, hi, tol=1e-11)
        return jnp.concatenate([r.x, r.y])

    args = tuple(jnp.asarray(a) for a in (c, A, b))
    v = np.linspace(-1.0, 1.0, M + N_VAR)
    grads = jax.grad(lambda *a: sol(*a) @ v, argnums=(0, 1, 2))(*args)
    moved = False
    for direction in _directions(problems):
        _, tangent = jax.jvp(sol, args, tuple(jnp.asarray(d) for d in direction))
        fd = _fd_dir(sol, (c, A, b), direction)
        np.testing.assert_allclose(tangent, fd, atol=1e-5)
        moved |= bool(np.abs(fd).max() > 1e-3)
        # reverse mode (transposed JVP rule) agrees with forward mode
        rev = sum(float(jnp.sum(g * d)) for g, d in zip(grads, direction, strict=True))
        assert abs(rev - float(tangent @ v)) <= 1e-8 * (1 + abs(rev))
    assert moved  # the test would fail for a zero derivative


def test_bad_inputs():
    c, A, b = np.ones(3), np.ones((2, 3)), np.ones(2)
    with pytest.raises(ValueError, match="A_eq"):
        linprog(c, np.ones(3), b)
    with pytest.raises(ValueError, match="b_eq"):
        linprog(c, A, np.ones(3))
    with pytest.raises(ValueError, match="c"):
        linprog(np.ones(4), A, b)
    with pytest.raises(ValueError, match="c"):
        linprog(np.array([1.0, np.nan, 1.0]), A, b)
    with pytest.raises(ValueError, match="lower"):
        linprog(c, A, b, lower=2.0, upper=1.0)
    with pytest.raises(ValueError, match="upper"):
        linprog(c, A, b, upper=np.ones(4))
    with pytest.raises(ValueError, match="method"):
        linprog(c, A, b, method="simplex")
    with pytest.raises(ValueError, match="tol"):
        linprog(c, A, b, tol=-1.0)


def test_options_objects_and_traced_tol(problems, references):
    from jaxpoison.solvers import IPM, LP_METHODS, PDHG, Wide, WideF64

    assert LP_METHODS == {"ipm": IPM, "pdhg": PDHG, "wide": Wide, "wide-f64": WideF64}
    c, A, b, lo, hi = (np.asarray(a[0]) for a in problems)
    ref = references[0].fun
    res = linprog(c, A, b, lo, hi, method=IPM(tol=1e-10, max_iter=80))
    assert abs(float(res.objective) - ref) <= 1e-8 * (1 + abs(ref))

    # tol is traced: one compiled function serves several tolerances
    @jax.jit
    def value(tol):
        return linprog(c, A, b, lo, hi, method=IPM(tol=tol)).objective

    for tol in (1e-6, 1e-9):
        assert abs(float(value(tol)) - ref) <= 10 * tol * (1 + abs(ref))
    with pytest.raises(ValueError, match="tol"):
        linprog(c, A, b, lo, hi, method=IPM(tol=1e-8), tol=1e-8)
    with pytest.raises(TypeError, match="method"):
        linprog(c, A, b, lo, hi, method=object())


def test_pair_operator_matches_dense_and_its_derivative():
    """`PairOperator(Φ)` = dense `[Φ, -Φ]`; d objective / dΦ = -y (x_p - x_q)^T + y Δ^T by FD."""
    from jaxpoison.solvers import PairOperator

    rng = np.random.default_rng(3)
    phi = rng.normal(size=(3, 20))
    c = rng.uniform(0.5, 1.5, 40)
    hi = np.concatenate([np.zeros(20), np.ones(20)])
    b = phi @ (-(rng.random(20) < 0.3).astype(float))

    def value(p):
        return linprog(c, PairOperator(p), b, 0.0, hi).objective

    dense = linprog(c, np.hstack([phi, -phi]), b, 0.0, hi)
    assert abs(float(value(phi)) - float(dense.objective)) <= 1e-9
    g = np.asarray(jax.grad(value)(jnp.asarray(phi)))
    x = np.asarray(dense.x)
    np.testing.assert_allclose(g, -np.outer(dense.y, x[:20] - x[20:]), atol=1e-8)
    E = rng.normal(size=phi.shape)
    h = 1e-6
    fd = (float(value(phi + h * E)) - float(value(phi - h * E))) / (2 * h)
    assert abs(fd - float(np.sum(g * E))) <= 1e-5 * (1 + abs(fd))
