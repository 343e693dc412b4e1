"""Exact inner maximisation over one-hot / binary features x box, against HiGHS's MILP
(`scipy.optimize.milp`) on random instances, and its use in the attack and the bound."""

from __future__ import annotations

import zlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxpoison.attacks import (
    DiscreteFeatures,
    max_loss_difference,
    model_targeted_attack,
    theorem2_lower_bound,
)
from jaxpoison.models import LinearModel, fit_linear

scipy_opt = pytest.importorskip("scipy.optimize")


def _milp_max(wt, bt, wp, bp, lo, hi, disc):
    """max over labels and the mixed set of hinge(t) - hinge(p), by case split into MILPs:
    region c >= 0: max a - c and max -c; region c <= 0: max(0, max a).

    Returns HiGHS's optimal value and its best point, snapped onto the feasible set (the
    largest option of each block, the continuous features clipped to the box): HiGHS accepts
    constraint violations up to its feasibility tolerances (1e-7, integrality 1e-6), so its
    value may exceed the true maximum by about that much, while the snapped point is exactly
    feasible and its hinge difference a true lower bound on the maximum."""
    O, valid = disc.option_matrix()
    d, cm = len(wt), disc.continuous_mask()
    nb, m = valid.shape
    nv = d + nb * m
    rows, lb, ub = [], [], []
    for j in np.flatnonzero(~cm):          # x_j = sum_k z_bk O[b, k, j]
        r = np.zeros(nv)
        r[j] = 1.0
        r[d:] -= O[:, :, j].reshape(-1)
        rows.append(r)
        lb.append(0.0)
        ub.append(0.0)
    for b in range(nb):                    # one option per block
        r = np.zeros(nv)
        r[d + b * m:d + (b + 1) * m] = valid[b]
        rows.append(r)
        lb.append(1.0)
        ub.append(1.0)
    bounds = scipy_opt.Bounds(np.r_[np.where(cm, lo, -np.inf), np.zeros(nb * m)],
                              np.r_[np.where(cm, hi, np.inf), valid.reshape(-1)])
    integ = np.r_[np.zeros(d), np.ones(nb * m)]
    best, best_point = -np.inf, None
    for y in (1, -1):
        ga, ha, gc, hc = -y * wt, 1 - y * bt, -y * wp, 1 - y * bp

        def solve(g, h, sign, gc=gc, hc=hc):  # max g.x + h  s.t.  sign * c(x) >= 0
            r = np.zeros(nv)
            r[:d] = sign * gc
            cons = [scipy_opt.LinearConstraint(np.array(rows), lb, ub),
                    scipy_opt.LinearConstraint(r[None], -sign * hc, np.inf)]
            res = scipy_opt.milp(-np.r_[g, np.zeros(nb * m)], constraints=cons, bounds=bounds,
                                 integrality=integ, options={"mip_rel_gap": 1e-12})
            return None if res.x is None else (-res.fun + h, res.x)

        for sol in (solve(ga - gc, ha - hc, 1), solve(-gc, -hc, 1), solve(ga, ha, -1)):
            if sol is not None and sol[0] > best:
                best, best_point = sol[0], (sol[1], y)
        best = max(best, 0.0)   # region c <= 0 (the third solve) also admits the value 0
    v, y = best_point
    z = v[d:].reshape(nb, m)
    k = np.argmax(np.where(valid, z, -np.inf), axis=1)
    x = np.clip(v[:d], lo, hi)
    x[~cm] = O[np.arange(nb), k][:, ~cm].sum(axis=0)
    assert disc.contains(x, lo, hi)
    return best, _hinge_difference(x, y, wt, bt, wp, bp)


def _hinge_difference(x, y, wt, bt, wp, bp):
    return max(0.0, 1 - y * (x @ wt + bt)) - max(0.0, 1 - y * (x @ wp + bp))


def _structure(kind, rng, d_cont):
    sizes = {"one_hot": [4, 1, 3], "drop_first": [5, 2], "binary": [7]}[kind]
    d = d_cont + sum(sizes)
    perm = list(rng.permutation(d))
    blocks, pos = [], d_cont
    for s in sizes:
        blocks.append(perm[pos:pos + s])
        pos += s
    if kind == "binary":
        return DiscreteFeatures.binary(blocks[0], num_features=d), d
    return DiscreteFeatures.one_hot(blocks, num_features=d,
                                    drop_first=kind == "drop_first"), d


@pytest.mark.parametrize("kind,d_cont", [("one_hot", 3), ("drop_first", 2), ("binary", 0),
                                         ("binary", 4)])
def test_discrete_max_matches_highs_milp(kind, d_cont):
    rng = np.random.default_rng(zlib.crc32(f"{kind}-{d_cont}".encode()))   # not hash(): salted
    disc, d = _structure(kind, rng, d_cont)
    lo = rng.uniform(-1.0, 0.0, d)
    hi = lo + rng.uniform(0.5, 2.0, d)
    for _ in range(5):
        wt = rng.normal(size=d)
        wp = wt + rng.uniform(0.2, 1.5) * rng.normal(size=d)
        bt, bp = rng.normal(size=2)
        r = max_loss_difference(LinearModel(jnp.asarray(wt), jnp.asarray(bt)),
                                LinearModel(jnp.asarray(wp), jnp.asarray(bp)),
                                lower=lo, upper=hi, discrete=disc, capacity=64)
        ref, attained = _milp_max(wt, bt, wp, bp, lo, hi, disc)
        x, y = np.asarray(r.x), int(r.y)
        assert bool(r.exact)
        assert disc.contains(x, lo, hi)
        h = _hinge_difference(x, y, wt, bt, wp, bp)
        value, bound, tol = float(r.value), float(r.bound), 1e-12 * (1 + abs(ref))
        assert abs(h - value) <= tol                                   # value is attained
        assert value >= attained - tol                                 # no worse than HiGHS's point
        assert value <= ref + 1e-6 * (1 + abs(ref))                    # within HiGHS's tolerances
        assert value - tol <= bound <= ref + 1e-6 * (1 + abs(ref))     # certified
        assert float(r.relaxed_bound) >= float(r.bound) - 1e-12


def test_capacity_overflow_keeps_a_valid_bound():
    """With a frontier capacity of 1 the search cannot be exact: it must say so, return a
    feasible point, and fall back to the relaxation's bound (still >= the true max)."""
    rng = np.random.default_rng(3)
    disc = DiscreteFeatures.binary(range(10), num_features=10)
    hits = 0
    for _ in range(4):
        wt, wp = rng.normal(size=10), rng.normal(size=10)
        r = max_loss_difference(LinearModel(jnp.asarray(wt), jnp.asarray(0.3)),
                                LinearModel(jnp.asarray(wp), jnp.asarray(-0.2)),
                                lower=0.0, upper=1.0, discrete=disc, capacity=1)
        _, best = _milp_max(wt, 0.3, wp, -0.2, np.zeros(10), np.ones(10), disc)
        assert disc.contains(np.asarray(r.x))
        assert float(r.value) <= best + 1e-9 <= float(r.bound) + 2e-9   # all features binary
        hits += not bool(r.exact)
        if not bool(r.exact):
            assert float(r.bound) == float(r.relaxed_bound)
    assert hits > 0


def test_discrete_features_bad_input_names_the_argument():
    with pytest.raises(ValueError, match="blocks"):
        DiscreteFeatures.one_hot([[0, 1], [1, 2]], num_features=4)
    with pytest.raises(ValueError, match="blocks"):
        DiscreteFeatures.one_hot([[0, 5]], num_features=4)
    with pytest.raises(ValueError, match="blocks"):
        DiscreteFeatures.one_hot([[]], num_features=4)
    with pytest.raises(TypeError, match="features"):
        DiscreteFeatures.binary([0.5], num_features=4)
    with pytest.raises(ValueError, match="num_features"):
        DiscreteFeatures.binary([0], num_features=0)
    m = LinearModel(jnp.ones(4), jnp.asarray(0.0))
    with pytest.raises(ValueError, match="discrete"):
        max_loss_difference(m, m, lower=0.0, upper=1.0,
                            discrete=DiscreteFeatures.binary([0], num_features=3))
    with pytest.raises(TypeError, match="discrete"):
        max_loss_difference(m, m, lower=0.0, upper=1.0, discrete=[[0, 1]])
    with pytest.raises(ValueError, match="max_loss"):
        theorem2_lower_bound(m, m, np.ones((3, 4)), np.array([1, -1, 1]), loss="hinge",
                             reg=0.1)


@pytest.mark.slow
def test_attack_keeps_points_discrete_and_reports_both_bounds():
    rng = np.random.default_rng(0)
    n, d = 120, 7
    disc = DiscreteFeatures.one_hot([[2, 3, 4], [5, 6]], num_features=d, drop_first=True)
    X = rng.uniform(size=(n, d))
    X[:, 2:] = 0.0
    X[np.arange(n), 2 + rng.integers(0, 3, n)] = 1.0
    X[np.arange(n), 5 + rng.integers(0, 2, n)] = 1.0
    y = np.where(X[:, 0] + 0.5 * X[:, 2] - X[:, 5] + 0.1 * rng.normal(size=n) > 0.5, 1, -1)
    yf = y.copy()
    yf[:15] = -yf[:15]
    target = fit_linear(np.vstack([X, X[:15]]), np.r_[yf, yf[:15]], reg=0.05).model
    res = model_targeted_attack(X, y, target, reg=0.05, lower=0.0, upper=1.0, eps=0.05,
                                budget=60, discrete=disc, key=jax.random.key(0), throw=False)
    assert res.num_poison > 0
    for x in np.asarray(res.X_poison):
        assert disc.contains(x, 0.0, 1.0)
    # the bound over the binary set is at least the relaxed (conservative) one, and each
    # equals Theorem 2 recomputed from the feasible set
    lb, rlb = np.asarray(res.lower_bound), np.asarray(res.relaxed_lower_bound)
    assert np.all(lb >= rlb - 1e-9)
    assert res.best_lower_bound >= res.best_relaxed_lower_bound
    assert res.best_lower_bound <= res.num_poison or not bool(res.success)
    m0 = fit_linear(X, y, reg=0.05).model
    direct = theorem2_lower_bound(m0, target, X, y, loss="hinge", reg=0.05, lower=0.0,
                                  upper=1.0, discrete=disc)
    assert abs(float(direct) - lb[0]) <= 1e-6 * (1 + abs(lb[0]))
