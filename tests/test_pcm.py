"""PCM against HiGHS, its bounds, discretisation, preference attacks and the BT reward."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.optimize import linprog as highs

from jaxpoison import SolverError, Status
from jaxpoison.attacks import (
    discretize,
    pcm,
    pcm_lower_bound,
    pcm_upper_bound,
    random_flip,
    rlhf_poison,
)
from jaxpoison.models import fit_bradley_terry

N_FEAT = 8


def _highs_pcm(phi, to, ta, w):
    n, N = phi.shape
    res = highs(np.concatenate([w, w]), A_eq=np.hstack([phi, -phi]), b_eq=phi @ (ta - to),
                bounds=np.stack([np.zeros(2 * N), np.concatenate([1 - to, to])], 1),
                method="highs")
    assert res.status == 0
    return res.fun


def _case(rng, N, soft, weighted, rate=0.15):
    phi = rng.normal(size=(N_FEAT, N))
    to = rng.uniform(0, 1, N) if soft else (rng.random(N) < 0.8).astype(float)
    flip = rng.random(N) < rate
    ta = np.where(flip, 1 - to, to)
    if soft:
        ta = np.where(rng.random(N) < rate, rng.uniform(0, 1, N), ta)
    w = rng.uniform(0.5, 2.0, N) if weighted else np.ones(N)
    return phi, to, ta, w


@pytest.mark.parametrize("N", [6, 400])
def test_pcm_matches_highs(N):
    """Binary and soft θ_O, with and without weights, N < n and N >> n (vmapped batch)."""
    rng = np.random.default_rng(N)
    cases = [_case(rng, N, soft, weighted) for soft in (False, True) for weighted in (False, True)
             for _ in range(2)]
    phi, to, ta, w = (np.stack(a) for a in zip(*cases, strict=True))
    res = jax.vmap(lambda p, o, a, ww: pcm(p, o, a, weights=ww, throw=False))(
        *map(jnp.asarray, (phi, to, ta, w)))
    for i in range(len(cases)):
        ref = _highs_pcm(phi[i], to[i], ta[i], w[i])
        assert int(res.status[i]) == Status.SUCCESS
        assert abs(float(res.cost[i]) - ref) <= 1e-7 * (1 + ref)
        theta = np.asarray(res.theta[i])
        assert theta.min() >= 0 and theta.max() <= 1
        np.testing.assert_allclose(phi[i] @ theta, phi[i] @ ta[i], atol=1e-7)
        assert float(res.residual[i]) <= 1e-7
        assert abs(float(res.cost[i]) - w[i] @ np.abs(theta - to[i])) <= 1e-9
        assert int(res.flips[i]) == int(np.sum(np.abs(theta - to[i]) > 1e-6))
        assert float(res.cost[i]) <= float(res.naive_cost[i]) + 1e-9
        if N < N_FEAT:  # Φ has full column rank: θ_A is the only solution, no saving
            np.testing.assert_allclose(theta, ta[i], atol=1e-6)
    if N > 50 * N_FEAT:  # N >> n: a real saving on every instance
        assert np.all(np.asarray(res.cost) < 0.8 * np.asarray(res.naive_cost))
        assert np.all(np.asarray(res.flips) < np.asarray(res.naive_flips))


def test_pcm_pdhg_matches_highs():
    rng = np.random.default_rng(3)
    phi, to, ta, w = _case(rng, 400, False, False)
    res = pcm(phi, to, ta, method="pdhg", tol=1e-7)
    ref = _highs_pcm(phi, to, ta, w)
    assert abs(float(res.cost) - ref) <= 1e-4 * (1 + ref)


def test_bounds_sandwich_optimum():
    rng = np.random.default_rng(11)
    cases = [_case(rng, 400, soft, weighted, rate) for soft in (False, True)
             for weighted in (False, True) for rate in (0.05, 0.3)]
    phi, to, ta, w = (jnp.asarray(np.stack(a)) for a in zip(*cases, strict=True))
    opt = jax.vmap(lambda p, o, a, ww: pcm(p, o, a, weights=ww, throw=False).cost)(phi, to, ta, w)
    lb2 = jax.vmap(lambda p, o, a, ww: pcm_lower_bound(p, o, a, weights=ww,
                                                       sharpen=False).bound)(phi, to, ta, w)
    lb = jax.vmap(lambda p, o, a, ww: pcm_lower_bound(p, o, a, weights=ww).bound)(phi, to, ta, w)
    ub = jax.vmap(lambda p, o, a, ww: pcm_upper_bound(p, o, a, weights=ww).bound)(phi, to, ta, w)
    naive = jnp.sum(w * jnp.abs(ta - to), axis=1)
    for i in range(len(cases)):
        ref = _highs_pcm(*(np.asarray(a[i]) for a in (phi, to, ta, w)))
        assert abs(float(opt[i]) - ref) <= 1e-7 * (1 + ref)
        assert float(lb2[i]) <= float(lb[i]) + 1e-9
        assert float(lb[i]) <= ref + 1e-7
        assert ref <= float(ub[i]) + 1e-7 <= float(naive[i]) + 1e-6
    # the support-restricted feasible point (concrete call) is a valid, better upper bound
    p, o, a, ww = (np.asarray(x[0]) for x in (phi, to, ta, w))
    ub_s = float(pcm_upper_bound(p, o, a, weights=ww).bound)
    assert float(opt[0]) - 1e-7 <= ub_s < float(naive[0])


def test_adaptive_embedding_keeps_reward_direction():
    rng = np.random.default_rng(5)
    phi, to, ta, _ = _case(rng, 400, False, False)
    r = rng.normal(size=N_FEAT)
    full = pcm(phi, to, ta)
    res = pcm(phi, to, ta, adaptive_embedding=r)
    assert abs(float(r @ phi @ np.asarray(res.theta)) - r @ phi @ ta) <= 1e-7 * (
        1 + abs(r @ phi @ ta))
    assert float(res.cost) <= float(full.cost) + 1e-9
    ref = highs(np.ones(800), A_eq=np.hstack([r @ phi, -(r @ phi)])[None],
                b_eq=[r @ phi @ (ta - to)],
                bounds=np.stack([np.zeros(800), np.concatenate([1 - to, to])], 1),
                method="highs").fun
    assert abs(float(res.cost) - ref) <= 1e-6 * (1 + ref)


def test_unrealisable_target_is_infeasible():
    rng = np.random.default_rng(0)
    phi = rng.normal(size=(N_FEAT, 6))
    target = 100.0 * np.abs(phi).sum(axis=1)       # outside Φ[0,1]^N
    res = pcm(phi, np.ones(6), target=target, throw=False)
    assert int(res.status) == Status.INFEASIBLE
    with pytest.raises(SolverError, match="INFEASIBLE"):
        pcm(phi, np.ones(6), target=target)


def test_float32_pcm_no_nan():
    rng = np.random.default_rng(9)
    phi, to, ta, w = _case(rng, 400, False, False)
    res = pcm(phi.astype(np.float32), to.astype(np.float32), ta.astype(np.float32), throw=False)
    assert np.all(np.isfinite(np.asarray(res.theta)))
    ref = _highs_pcm(phi, to, ta, w)
    assert abs(float(res.cost) - ref) <= 1e-3 * (1 + ref)


def test_discretize():
    rng = np.random.default_rng(2)
    phi = rng.normal(size=(N_FEAT, 50))
    theta = rng.uniform(0, 1, 50)
    for m in (1, 3, 10):
        d = discretize(theta, m, phi=phi)
        expect = np.round(theta * m) / m
        np.testing.assert_allclose(d.theta, expect)
        np.testing.assert_array_equal(d.counts, np.round(theta * m))
        assert float(d.max_error) <= 0.5 / m + 1e-12
        assert abs(float(d.gradient_error) - np.linalg.norm(phi @ (expect - theta))) < 1e-10
    assert np.isnan(float(discretize(theta, 2).gradient_error))


def test_rlhf_poison_hand_checked():
    # 8 pairs, 1-d features so that |r^T φ_i| = |φ_i| with r = 1
    phi = np.array([[0.1, -0.2, 3.0, 0.3, -0.05, 0.4, 2.0, 0.15]])
    theta = np.ones(8)
    chosen = np.array([10, 10, 10, 50, 10, 10, 10, 10.0])
    rejected = np.array([30, 90, 80, 20, 11, 40, 100, 60.0])
    # candidates (chosen shorter): all but pair 3. quality: 25% of 8 = 2 smallest |φ| among
    # candidates -> pairs 4 (0.05) and 0 (0.1). budget: 5% of 8 = 0 pairs -> use 0.25
    res = rlhf_poison(phi, theta, np.ones(1), chosen, rejected, budget_fraction=0.125)
    # 1 pair out of {0, 4}: largest gap is pair 0 (20 vs 1)
    np.testing.assert_array_equal(np.flatnonzero(res.flipped), [0])
    np.testing.assert_array_equal(res.theta, np.where(np.arange(8) == 0, 0.0, 1.0))
    res = rlhf_poison(phi, theta, np.ones(1), chosen, rejected, budget_fraction=0.125,
                      largest_gap=False)
    np.testing.assert_array_equal(np.flatnonzero(res.flipped), [4])
    res = rlhf_poison(phi, theta, np.ones(1), chosen, rejected, quality_fraction=0.5,
                      budget_fraction=0.25)
    # quality keeps 4: pairs 4, 0, 7 (0.15), 1 (0.2); largest gaps: 1 (80), 7 (50)
    np.testing.assert_array_equal(np.flatnonzero(res.flipped), [1, 7])


def test_random_flip(key):
    theta = np.linspace(0, 1, 40)
    res = random_flip(theta, 0.25, key=key)
    assert int(res.flipped.sum()) == 10
    np.testing.assert_allclose(res.theta, np.where(res.flipped, 1 - theta, theta))
    res2 = random_flip(theta, 0.25, key=jax.random.key(1))
    assert not np.array_equal(res.flipped, res2.flipped)
    with pytest.raises(TypeError, match="key"):
        random_flip(theta, 0.25, key=None)


def test_reward_matches_sklearn_and_is_kept_by_pcm():
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(4)
    phi, to, ta, _ = _case(rng, 400, False, False)
    theta = np.clip(ta + rng.uniform(-0.3, 0.3, ta.shape), 0, 1)   # soft labels
    l2 = 1e-2
    fit = fit_bradley_terry(phi, theta, reg=l2)
    N = phi.shape[1]
    X = np.vstack([phi.T, phi.T])
    y = np.concatenate([np.ones(N), np.zeros(N)])
    sw = np.concatenate([theta, 1 - theta])
    sk = LogisticRegression(C=1.0 / (N * l2), fit_intercept=False, tol=1e-12,
                            max_iter=10_000).fit(X, y, sample_weight=sw)
    np.testing.assert_allclose(fit.reward, sk.coef_[0], atol=1e-6)
    # PCM keeps the poisoned reward: fitted on θ* equals fitted on θ_A
    res = pcm(phi, to, ta)
    r_star = fit_bradley_terry(phi, res.theta, reg=l2).reward
    r_a = fit_bradley_terry(phi, ta, reg=l2).reward
    r_o = fit_bradley_terry(phi, to, reg=l2).reward
    np.testing.assert_allclose(r_star, r_a, atol=1e-7)
    assert np.linalg.norm(r_a - r_o) > 1e-2
    assert int(res.flips) < int(res.naive_flips)


def test_bad_inputs():
    phi, th = np.ones((3, 5)), np.ones(5)
    with pytest.raises(ValueError, match="theta_orig"):
        pcm(phi, np.ones(4), th)
    with pytest.raises(ValueError, match="theta_target"):
        pcm(phi, th, np.full(5, 1.5))
    with pytest.raises(ValueError, match="theta_orig"):
        pcm(phi, np.full(5, np.nan), th)
    with pytest.raises(ValueError, match="phi"):
        pcm(np.full((3, 5), np.inf), th, th)
    with pytest.raises(ValueError, match="weights"):
        pcm(phi, th, th, weights=-np.ones(5))
    with pytest.raises(ValueError, match="theta_target"):
        pcm(phi, th)
    with pytest.raises(ValueError, match="adaptive_embedding"):
        pcm(phi, th, th, adaptive_embedding=np.ones(4))
    with pytest.raises(ValueError, match="theta_target"):
        pcm_lower_bound(phi, th, np.full(5, -0.1))
    with pytest.raises(ValueError, match="m"):
        discretize(th, 0)
    with pytest.raises(ValueError, match="budget_fraction"):
        random_flip(th, 1.5, key=jax.random.key(0))
    with pytest.raises(ValueError, match="reward"):
        rlhf_poison(phi, th, np.ones(2), th, th)
    with pytest.raises(ValueError, match="theta"):
        fit_bradley_terry(phi, np.full(5, 2.0))


def test_float32_lower_bound_is_valid_when_N_below_n():
    """Issue 11: float32 Theorem-2/sharp bound on N < n exceeded the optimum (7.5 vs 3)."""
    rng = np.random.default_rng(4)
    phi = rng.normal(size=(50, 20))
    to = np.ones(20)
    ta = to.copy()
    ta[rng.permutation(20)[:3]] = 0.0
    ref = _highs_pcm(phi, to, ta, np.ones(20))        # = 3: Φ has full column rank
    args32 = [a.astype(np.float32) for a in (phi, to, ta)]
    for sharpen in (False, True):
        lb = pcm_lower_bound(*args32, sharpen=sharpen)
        assert lb.bound.dtype == jnp.float32
        assert 0.99 * ref <= float(lb.bound) <= ref
    ub = pcm_upper_bound(*args32)
    assert abs(float(ub.bound) - ref) <= 1e-5 * ref      # not the trivial fallback
    res = pcm(*args32)
    assert abs(float(res.cost) - ref) <= 1e-5 * ref
    assert int(res.flips) == 3


def test_flip_count_agrees_between_precisions():
    """Issue 11: flips must not depend on rounding noise (float32 counted 14, float64 8)."""
    rng = np.random.default_rng(9)
    phi, to, ta, _ = _case(rng, 400, False, False)
    r64 = pcm(phi, to, ta)
    r32 = pcm(*(a.astype(np.float32) for a in (phi, to, ta)))
    assert int(r32.flips) == int(r64.flips)
    assert int(r64.fractional) <= N_FEAT
    # the vertex: bound coordinates are exactly at their bound
    t = np.asarray(r64.theta)
    assert np.sum((t > 0) & (t < 1)) == int(r64.fractional)


def test_pcm_synthetic_cell_ends_in_success():
    """Issue 11: n = 50, N = 1000, RLHFPoison on the smallest gaps stopped at MAX_ITERATIONS."""
    from jaxpoison.datasets import gaussian_preference_features

    n, ratio = 50, 20
    N = n * ratio
    phi = np.asarray(gaussian_preference_features(n, N, seed=1000 * n + ratio))
    to = np.ones(N)
    rng = np.random.default_rng(ratio)
    chosen = rng.integers(20, 400, N).astype(float)
    rejected = rng.integers(20, 400, N).astype(float)
    r_o = fit_bradley_terry(phi, to, reg=1e-2).reward
    ta = np.asarray(rlhf_poison(phi, to, r_o, chosen, rejected, largest_gap=False).theta)
    res = pcm(phi, to, ta)                     # throw=True: raises unless SUCCESS
    ref = _highs_pcm(phi, to, ta, np.ones(N))
    assert abs(float(res.cost) - ref) <= 1e-9 * (1 + ref)
    assert int(res.fractional) <= n


def test_cost_gradient_in_phi_matches_finite_differences():
    """Issue 17: d cost / d Φ = y (θ_A - θ*)^T (envelope theorem) = central differences."""
    rng = np.random.default_rng(7)
    phi, to, ta, w = _case(rng, 60, False, True)

    def cost(p):
        return pcm(p, to, ta, weights=w).cost

    g = np.asarray(jax.grad(cost)(jnp.asarray(phi)))
    res = pcm(phi, to, ta, weights=w)
    np.testing.assert_allclose(g, np.outer(res.y, ta - np.asarray(res.theta)), atol=1e-9)
    assert np.abs(g).max() > 1e-3
    for k in range(3):
        E = np.random.default_rng(k).normal(size=phi.shape)
        h = 1e-6
        fd = (float(cost(phi + h * E)) - float(cost(phi - h * E))) / (2 * h)
        assert abs(fd - float(np.sum(g * E))) <= 1e-5 * (1 + abs(fd))
    # also under jit
    gj = jax.jit(jax.grad(cost))(jnp.asarray(phi))
    np.testing.assert_allclose(gj, g, atol=1e-10)


def test_discretize_flip_rate():
    theta = np.array([1.0, 0.0, 0.5, 0.93, 0.05])
    to = np.ones(5)
    d = discretize(theta, 5, theta_orig=to)
    # counts round(5 θ) = 5, 0, 2 (2.5 rounds to even), 5, 0 -> flipped annotations 0+5+3+0+5
    np.testing.assert_array_equal(d.counts, [5, 0, 2, 5, 0])
    assert float(d.flipped_annotations) == 13
    assert abs(float(d.flip_rate) - 13 / 25) < 1e-12


def test_bad_inputs_issue11():
    with pytest.raises(ValueError, match="phi"):
        pcm(np.ones((0, 5)), np.ones(5), np.ones(5))
    with pytest.raises(ValueError, match="phi"):
        pcm(np.ones((3, 0)), np.ones(0), np.ones(0))
    with pytest.raises(ValueError, match="tol"):
        pcm(np.ones((3, 5)), np.ones(5), np.ones(5), tol=-1)
    with pytest.raises(ValueError, match="tol"):
        pcm(np.ones((3, 5)), np.ones(5), np.ones(5), tol=1e-20)
    with pytest.raises(ValueError, match="method"):
        pcm(np.ones((3, 5)), np.ones(5), np.ones(5), method="simplex")
    with pytest.raises(TypeError, match="budget_fraction"):
        random_flip(np.ones(5), "0.1", key=jax.random.key(0))
    with pytest.raises(ValueError, match="reg"):
        fit_bradley_terry(np.ones((3, 5)), np.ones(5), reg=-1.0)
    with pytest.raises(ValueError, match="theta_orig"):
        discretize(np.ones(5), 3, theta_orig=np.ones(4))


def test_float32_lands_on_a_vertex_and_counts_flips_as_float64():
    """A float32 interior point that stops on the optimal face but off its vertices (11 free
    pairs for n = 10 rows before `_purify`) must still give a vertex, and so the float64
    flip count; the cost is checked against HiGHS."""
    rng = np.random.default_rng(113)
    phi = rng.normal(size=(10, 200))
    to = np.ones(200)
    ta = to.copy()
    ta[rng.choice(200, 40, replace=False)] = 0
    r64 = pcm(phi, to, ta)
    with jax.enable_x64(False):
        r32 = pcm(*(a.astype(np.float32) for a in (phi, to, ta)))
    assert int(r32.fractional) <= phi.shape[0]
    assert int(r32.flips) == int(r64.flips)
    A = np.hstack([phi, -phi])
    ref = highs(np.ones(400), A_eq=A, b_eq=phi @ (ta - to),
                  bounds=[(0, 1 - t) for t in to] + [(0, t) for t in to], method="highs")
    assert abs(float(r32.cost) - ref.fun) <= 1e-4 * (1 + ref.fun)


def test_bounds_of_a_wide_problem_use_the_normal_equations_and_stay_valid():
    """At wide shapes (`is_wide`) the bounds project through Cholesky of Φ Φᵀ with
    refinement instead of an SVD of Φᵀ: Theorem 2 agrees with numpy's least-squares
    projection, and lower <= HiGHS optimum <= upper < naive."""
    rng = np.random.default_rng(5)
    n, N = 12, 20_000
    phi = rng.normal(size=(n, N)) + rng.normal(size=(n, 1))
    to = rng.uniform(0.2, 0.8, N)           # soft labels: the line search has room
    ta = np.where(rng.random(N) < 0.05, 1 - to, to)
    from jaxpoison.solvers.lp_wide import is_wide

    assert is_wide(n, N)
    delta = ta - to
    pd = phi.T @ np.linalg.lstsq(phi.T, delta, rcond=None)[0]
    thm2 = pd @ pd / np.max(np.abs(pd))
    lb = pcm_lower_bound(phi, to, ta)
    ub = pcm_upper_bound(phi, to, ta, restrict_to_support=False)
    ref = _highs_pcm(phi, to, ta, np.ones(N))
    assert float(lb.theorem2) == pytest.approx(thm2, rel=1e-9)
    assert float(lb.theorem2) <= float(lb.bound) <= ref + 1e-7
    assert ref - 1e-7 <= float(ub.bound) < float(np.sum(np.abs(delta)))
