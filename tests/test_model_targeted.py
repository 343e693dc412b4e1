"""Model-targeted poisoning: exact inner maximisation vs HiGHS and exact enumeration,
Theorem-2 lower bound, convergence to the target, resume, baselines, bad input."""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxpoison import SolverError, Status
from jaxpoison.attacks import (
    LogisticSearch,
    corollary1_lower_bound,
    gradient_poisoning_attack,
    indiscriminate_targets,
    induced_lower_bound,
    kkt_attack,
    max_loss_difference,
    model_targeted_attack,
    subpopulation_target,
)
from jaxpoison.models import LinearModel, fit_linear

scipy_opt = pytest.importorskip("scipy.optimize")

D = 3
LAM = 0.05


def _hinge_diff(x, y, mt, mp):
    return max(0.0, 1 - y * (x @ mt[0] + mt[1])) - max(0.0, 1 - y * (x @ mp[0] + mp[1]))


def _highs_max(mt, mp, lo, hi):
    """max over box and label via two LPs per label (HiGHS)."""
    best = -np.inf
    bounds = list(zip(lo, hi, strict=True))
    for y in (1, -1):
        (wt, bt), (wp, bp) = mt, mp
        # max t  s.t. t <= a(x) = 1 - y(wt.x + bt),  t <= a(x) - c(x) = -y(wt-wp).x - y(bt-bp)
        A = np.vstack([np.r_[y * wt, 1.0], np.r_[y * (wt - wp), 1.0]])
        b = np.r_[1 - y * bt, -y * (bt - bp)]
        r = scipy_opt.linprog(np.r_[np.zeros(D), -1.0], A_ub=A, b_ub=b,
                              bounds=bounds + [(None, None)], method="highs")
        best = max(best, -r.fun)
        r = scipy_opt.linprog(-y * wp, bounds=bounds, method="highs")  # min c(x)
        best = max(best, min(0.0, -(1 - y * bp + r.fun)))
    return best


def _arrangement_max(mt, mp, lo, hi):
    """Exact brute force: the objective is linear on each cell cut by a(x)=0 and c(x)=0,
    so the maximum sits at a vertex of the arrangement: box vertices, box edges meeting
    one hyperplane, box 2-faces meeting both."""
    best = -np.inf
    (wt, bt), (wp, bp) = mt, mp
    for y in (1, -1):
        planes = [(-y * wt, 1 - y * bt), (-y * wp, 1 - y * bp)]  # a(x) = g.x + h = 0
        for free_k in (0, 1, 2):
            for free in itertools.combinations(range(D), free_k):
                fixed = [j for j in range(D) if j not in free]
                for corner in itertools.product(*[(lo[j], hi[j]) for j in fixed]):
                    x = np.zeros(D)
                    x[fixed] = corner
                    for eqs in itertools.combinations(planes, free_k):
                        if free_k:
                            A = np.array([[g[j] for j in free] for g, _ in eqs])
                            rhs = np.array([-(h + g[fixed] @ x[fixed]) for g, h in eqs])
                            if abs(np.linalg.det(A)) < 1e-12:
                                continue
                            x[list(free)] = np.linalg.solve(A, rhs)
                        if np.all(x >= lo - 1e-12) and np.all(x <= hi + 1e-12):
                            best = max(best, _hinge_diff(x, y, mt, mp))
    return best


def _vertex_max(mt, mp, lo, hi):
    return max(_hinge_diff(np.array(v), y, mt, mp)
               for v in itertools.product(*zip(lo, hi, strict=True)) for y in (1, -1))


def test_hinge_inner_max_is_exact():
    rng = np.random.default_rng(0)
    strictly_inside = 0
    for _ in range(25):
        mt = (rng.normal(size=D) * rng.choice([0.2, 1.0, 3.0]), rng.normal())
        mp = (rng.normal(size=D), rng.normal())
        lo = rng.normal(size=D) - 1
        hi = lo + rng.uniform(0.2, 2.0, size=D)
        pt = max_loss_difference(LinearModel(jnp.asarray(mt[0]), jnp.asarray(mt[1])),
                                 LinearModel(jnp.asarray(mp[0]), jnp.asarray(mp[1])),
                                 lower=lo, upper=hi)
        x, y, v = pt.x, pt.y, pt.value
        assert pt.success and float(pt.bound) >= float(v) - 1e-12
        assert abs(float(pt.bound) - float(v)) <= 1e-9 * max(1.0, abs(float(v)))
        ref = _highs_max(mt, mp, lo, hi)
        assert abs(float(v) - ref) <= 1e-7 * max(1.0, abs(ref))
        assert abs(float(v) - _arrangement_max(mt, mp, lo, hi)) <= 1e-9 * max(1.0, abs(ref))
        # the returned point attains the value and lies in the box
        assert np.all(np.asarray(x) >= lo - 1e-12) and np.all(np.asarray(x) <= hi + 1e-12)
        assert abs(_hinge_diff(np.asarray(x), int(y), mt, mp) - float(v)) <= 1e-9
        strictly_inside += float(v) > _vertex_max(mt, mp, lo, hi) + 1e-9
    # box vertices alone are not enough: some maxima lie on the hyperplane c(x) = 0
    assert strictly_inside >= 1


def test_logistic_inner_max_beats_dense_grid(key):
    mt = LinearModel(jnp.array([2.0, -1.0, 0.5]), jnp.array(0.3))
    mp = LinearModel(jnp.array([-1.0, 1.5, 0.2]), jnp.array(-0.2))
    pt = max_loss_difference(mt, mp, loss="logistic", lower=0.0, upper=1.0, key=key)
    x, y, v = pt.x, pt.y, pt.value
    g = np.linspace(0, 1, 21)
    pts = np.array(list(itertools.product(g, g, g)))

    def diff(P, yy):
        return (np.logaddexp(0, -yy * (P @ np.asarray(mt.w) + float(mt.b)))
                - np.logaddexp(0, -yy * (P @ np.asarray(mp.w) + float(mp.b))))

    grid_best = max(diff(pts, 1).max(), diff(pts, -1).max())
    assert float(v) >= grid_best - 1e-9
    assert abs(float(diff(np.asarray(x)[None], int(y))[0]) - float(v)) < 1e-9


@pytest.fixture(scope="module")
def problem():
    rng = np.random.default_rng(0)
    X = rng.uniform(0, 1, (60, D))
    y = np.where(X @ np.array([1.0, -1.0, 0.5]) - 0.25 > 0, 1, -1)
    idx = rng.choice(60, 8, replace=False)
    Xp, yp = X[idx], -y[idx]
    target = fit_linear(np.vstack([X, Xp]), np.r_[y, yp], reg=LAM).model
    return X, y, target, 8


@pytest.fixture(scope="module")
def run(problem):
    X, y, target, _ = problem
    return model_targeted_attack(X, y, target, reg=LAM, lower=0.0, upper=1.0, eps=0.01,
                                 budget=60, key=jax.random.key(0))


def test_attack_reaches_target_and_bound_is_valid(problem, run):
    X, y, target, n_true = problem
    assert run.status == Status.SUCCESS
    assert float(run.max_loss[-1]) <= 0.01
    # Theorem 2: no poison set smaller than the bound induces the target; the target was
    # built with n_true points, so the certified bound cannot exceed it
    assert run.certified
    assert 1 <= run.best_lower_bound <= n_true
    assert np.all(np.asarray(run.lower_bound) <= n_true + 1e-9)
    # the induced model approaches the target
    dist = np.asarray(run.param_distance)
    assert dist[-1] < 0.25 * dist[0]
    assert np.all(np.asarray(run.max_loss[1:]) <= float(run.max_loss[0]) + 1e-12)
    # poison points are in the box, and retraining on clean + poison gives the model
    assert run.X_poison.shape == (run.num_poison, D)
    assert np.all((np.asarray(run.X_poison) >= 0) & (np.asarray(run.X_poison) <= 1))
    refit = fit_linear(np.vstack([X, np.asarray(run.X_poison)]),
                       np.r_[y, np.asarray(run.y_poison)], reg=LAM)
    np.testing.assert_allclose(refit.model.theta, run.model.theta, atol=1e-6)
    # the lower bound evaluated for our own induced model cannot exceed our point count
    own = model_targeted_attack(X, y, run.model, reg=LAM, lower=0.0, upper=1.0,
                                budget=5, key=jax.random.key(0))
    assert own.best_lower_bound <= run.num_poison


def test_resume_matches_single_run(problem, run):
    X, y, target, _ = problem
    part = model_targeted_attack(X, y, target, reg=LAM, lower=0.0, upper=1.0, budget=60,
                                 eps=0.01, state=None, key=jax.random.key(0))
    np.testing.assert_allclose(part.max_loss, run.max_loss, atol=1e-9)
    short = model_targeted_attack(X, y, target, reg=LAM, lower=0.0, upper=1.0, budget=3,
                                  key=jax.random.key(0))
    assert short.num_poison == 3 and short.status == Status.SUCCESS
    resumed = model_targeted_attack(X, y, target, reg=LAM, lower=0.0, upper=1.0,
                                    budget=60, eps=0.01, state=short.state)
    assert resumed.num_poison == run.num_poison
    np.testing.assert_allclose(resumed.max_loss, run.max_loss, atol=1e-9)


def test_unattainable_target_exhausts_budget(problem):
    X, y, _, _ = problem
    far = LinearModel(jnp.array([50.0, 50.0, 50.0]), jnp.array(-80.0))
    res = model_targeted_attack(X, y, far, reg=LAM, lower=0.0, upper=1.0, eps=1e-3,
                                budget=4, key=jax.random.key(0), throw=False)
    assert res.status == Status.BUDGET_EXHAUSTED and res.num_poison == 4
    with pytest.raises(SolverError, match="BUDGET_EXHAUSTED"):
        model_targeted_attack(X, y, far, reg=LAM, lower=0.0, upper=1.0, eps=1e-3,
                              budget=4, key=jax.random.key(0))


def test_logistic_attack_and_float32(problem, key):
    X, y, _, _ = problem
    target = fit_linear(np.vstack([X, X[:6]]), np.r_[y, -y[:6]], loss="logistic",
                        reg=LAM).model
    res = model_targeted_attack(np.asarray(X, np.float32), y, target, loss="logistic",
                                reg=LAM, lower=0.0, upper=1.0, eps=0.02, budget=30,
                                key=key, search=LogisticSearch(restarts=8, max_iter=100))
    assert not res.certified
    assert res.X_poison.dtype == jnp.float32
    assert np.all(np.isfinite(np.asarray(res.param_distance)))
    assert float(res.param_distance[-1]) < float(res.param_distance[0])


def test_target_models(problem):
    X, y, _, _ = problem
    tm = indiscriminate_targets(X, y, reg=LAM, target_errors=[0.1, 0.2],
                                quantiles=(0.2, 0.4), repeats=(1, 3), throw=False)
    err, loss, chosen = np.asarray(tm.error), np.asarray(tm.clean_loss), np.asarray(tm.chosen)
    reached_all = all(err.max() >= e for e in (0.1, 0.2))
    assert int(tm.status) == (Status.SUCCESS if reached_all else Status.BUDGET_EXHAUSTED)
    for e, c in zip([0.1, 0.2], chosen, strict=True):
        ok = err >= e
        if ok.any():  # the chosen one has the lowest loss among those reaching the error
            assert err[c] >= e and loss[c] == loss[ok].min()
    sub = y == -1
    sub &= X[:, 0] < 0.4
    st = subpopulation_target(X, y, sub, reg=LAM, rates=(0.05, 0.2, 0.5, 1.0), throw=False)
    m = st.target(0)
    assert float(jnp.mean(m.predict(X[sub]) == y[sub])) <= float(jnp.mean(
        fit_linear(X, y, reg=LAM).model.predict(X[sub]) == y[sub]))


def test_kkt_attack_beats_a_known_feasible_poisoning(problem):
    X, y, _, _ = problem
    xp, xn = np.array([0.1, 0.9, 0.1]), np.array([0.9, 0.1, 0.9])  # flipped-side points
    Xa = np.vstack([X, np.repeat(xp[None], 5, 0), np.repeat(xn[None], 5, 0)])
    target = fit_linear(Xa, np.r_[y, np.ones(5), -np.ones(5)], reg=LAM).model
    w, b = np.asarray(target.w), float(target.b)
    assert w @ xp + b <= 1 and -(w @ xn + b) <= 1  # the known points satisfy the constraints
    res = kkt_attack(X, y, target, reg=LAM, lower=0.0, upper=1.0, budget=10, splits=3)

    def residual(x_pos, x_neg, k_pos, k_neg):  # Koh et al.'s stationarity residual
        m = y * (X @ w + b)
        coef = np.where(m < 1, -1.0, 0.0) * y
        g = np.r_[X.T @ coef, coef.sum()] + (len(y) + 10) * LAM * np.r_[w, b]
        return np.linalg.norm(g - k_pos * np.r_[x_pos, 1] + k_neg * np.r_[x_neg, 1])

    got = residual(np.asarray(res.x_pos), np.asarray(res.x_neg), int(res.n_pos),
                   int(res.n_neg))
    assert abs(got - float(res.residual)) < 1e-8
    assert got <= residual(xp, xn, 5, 5) + 1e-6
    for x, sign in ((res.x_pos, 1), (res.x_neg, -1)):
        x = np.asarray(x)
        assert np.all((x >= -1e-12) & (x <= 1 + 1e-12))
        assert sign * (w @ x + b) <= 1 + 1e-8
    assert res.X_poison.shape == (10, D)


def test_gradient_attack_increases_validation_loss(problem, key):
    X, y, _, _ = problem
    res = gradient_poisoning_attack(X, y, X, y, reg=LAM, lower=0.0, upper=1.0, budget=6,
                                    steps=15, lr=0.1, key=key)
    assert float(res.val_loss[-1]) > float(res.val_loss[0])


def test_bad_input(problem):
    X, y, target, _ = problem
    kw = dict(reg=LAM, lower=0.0, upper=1.0, budget=2, key=jax.random.key(0))
    with pytest.raises(ValueError, match="lower"):
        model_targeted_attack(X, y, target, reg=LAM, lower=1.0, upper=1.0)
    with pytest.raises(ValueError, match="target"):
        model_targeted_attack(X, y, LinearModel(jnp.array([np.nan, 0, 0]), jnp.array(0.0)),
                              **kw)
    with pytest.raises(ValueError, match="y"):
        model_targeted_attack(X, (y + 1) // 2, target, **kw)
    with pytest.raises(ValueError, match="reg"):
        model_targeted_attack(X, y, target, reg=-1.0, lower=0.0, upper=1.0)
    with pytest.raises(ValueError, match="eps"):
        model_targeted_attack(X, y, target, eps=0.0, **kw)
    with pytest.raises(ValueError, match="target.w"):
        model_targeted_attack(X, y, LinearModel(jnp.zeros(2), jnp.array(0.0)), **kw)
    with pytest.raises(TypeError, match="key"):
        model_targeted_attack(X, y, target, reg=LAM, lower=0.0, upper=1.0, budget=2)
    with pytest.raises(ValueError, match="budget"):
        model_targeted_attack(X, y, target, **{**kw, "budget": 0})
    with pytest.raises(ValueError, match="X_eval and y_eval"):
        model_targeted_attack(X, y, target, X_eval=X, **kw)
    with pytest.raises(ValueError, match="y must contain both classes"):
        model_targeted_attack(X, np.ones_like(y), target, **kw)
    with pytest.raises(ValueError, match="lr"):
        max_loss_difference(target, target, loss="logistic", lower=0.0, upper=1.0,
                            key=jax.random.key(0), search=LogisticSearch(lr=-1.0))
    with pytest.raises(TypeError, match="key"):
        max_loss_difference(target, target, loss="logistic", lower=0.0, upper=1.0)
    with pytest.raises(ValueError, match="budget"):
        kkt_attack(X, y, target, reg=LAM, lower=0.0, upper=1.0, budget=0)
    with pytest.raises(TypeError, match="key"):
        gradient_poisoning_attack(X, y, X, y, reg=LAM, lower=0.0, upper=1.0, budget=2)
    with pytest.raises(ValueError, match="upper"):
        max_loss_difference(target, target, lower=np.zeros(D), upper=np.ones(D + 1))


def test_authors_target_selection(problem):
    """selection="authors": error strictly above the goal, scored by mean hinge loss +
    lambda/2 |w|^2 without the bias (their generate_target_theta.py), recomputed here."""
    X, y, _, _ = problem
    tm = indiscriminate_targets(X, y, loss="logistic", reg=LAM, target_errors=[0.1],
                                quantiles=(0.2, 0.4), repeats=(1, 3), selection="authors",
                                throw=False)
    w, b = np.asarray(tm.candidates.w), np.asarray(tm.candidates.b)
    score = np.maximum(0, 1 - y[None] * (w @ X.T + b[:, None])).mean(1) + 0.5 * LAM * (
        w * w).sum(1)
    np.testing.assert_allclose(tm.clean_loss, score, rtol=1e-12)
    err = np.asarray(tm.error)
    ok = err > 0.1
    if ok.any():
        assert int(tm.chosen[0]) == int(np.where(ok)[0][np.argmin(score[ok])])
    else:
        assert int(tm.chosen[0]) == -1
    with pytest.raises(ValueError, match="selection"):
        indiscriminate_targets(X, y, reg=LAM, target_errors=[0.1], selection="theirs")


# ------------------------------------------------------- logistic search and label ties


def test_logistic_search_reaches_grid_maximum_and_stops_early():
    """d = 2: the search's value is attained at its point, is at least the maximum over a
    dense grid of the box (brute force, numpy), and convergence stops the starts early."""
    rng = np.random.default_rng(5)
    wt, wp = rng.normal(size=2) * 3, rng.normal(size=2) * 3
    bt, bp = rng.normal(size=2)
    mt = LinearModel(jnp.asarray(wt), jnp.asarray(bt))
    mp = LinearModel(jnp.asarray(wp), jnp.asarray(bp))
    g = np.linspace(0.0, 1.0, 401)
    G = np.stack(np.meshgrid(g, g), -1).reshape(-1, 2)

    def diff(x, y):
        return np.logaddexp(0, -y * (x @ wt + bt)) - np.logaddexp(0, -y * (x @ wp + bp))

    grid = max(diff(G, y).max() for y in (1, -1))
    for search in (LogisticSearch(), LogisticSearch.authors()):
        r = max_loss_difference(mt, mp, loss="logistic", lower=0.0, upper=1.0,
                                key=jax.random.key(0), search=search)
        x = np.asarray(r.x)
        assert abs(diff(x[None], int(r.y))[0] - float(r.value)) < 1e-10
        assert float(r.value) >= grid - 1e-6
        assert int(r.iterations) < search.max_iter          # stopped by the tolerance
    fixed = max_loss_difference(mt, mp, loss="logistic", lower=0.0, upper=1.0,
                                key=jax.random.key(0),
                                search=LogisticSearch(max_iter=50, tol=0.0))
    assert int(fixed.iterations) == 50


@pytest.mark.parametrize("loss", ["hinge", "logistic"])
def test_label_tie_goes_to_minus_one(loss):
    """theta_t = theta_p: the difference is 0 for every point and both labels (an exact
    tie); the authors' code keeps label -1."""
    m = LinearModel(jnp.array([0.5, -1.0]), jnp.asarray(0.2))
    r = max_loss_difference(m, m, loss=loss, lower=0.0, upper=1.0, key=jax.random.key(1))
    assert float(r.value) == 0.0 and int(r.y) == -1


# ------------------------------------------- the bound on the paper's protocol, Corollary 1


def test_induced_bound_never_exceeds_the_points_that_induced_the_model(problem, run):
    """The paper's protocol: a second run with our induced model as the target. That model
    was produced by `run.num_poison` points (checked by refitting), so neither rounding
    of the bound may exceed that count."""
    X, y, _, _ = problem
    refit = fit_linear(np.vstack([X, np.asarray(run.X_poison)]),
                       np.r_[y, np.asarray(run.y_poison)], reg=LAM)
    np.testing.assert_allclose(refit.model.theta, run.model.theta, atol=1e-6)
    ib = induced_lower_bound(X, y, run.model, reg=LAM, lower=0.0, upper=1.0, eps=0.01,
                             budget=60, key=jax.random.key(0), throw=False)
    lb = float(ib.lower_bound)
    assert ib.rounded_down == max(int(np.floor(lb)), 0)
    assert ib.rounded_up == max(int(np.ceil(lb)), 0)
    assert 0 <= ib.rounded_down <= ib.rounded_up <= run.num_poison
    assert ib.relaxed_rounded_up == ib.rounded_up          # no discrete features


def test_corollary1_bound_holds_for_an_eps_close_model(problem):
    """theta' is produced by n poison points and theta_p is a different model; with k*eps
    the exact max_x [hinge(theta_p) - hinge(theta')] (HiGHS), Corollary 1 at any theta (its
    max loss difference to theta_p also from HiGHS) cannot exceed n."""
    X, y, _, _ = problem
    rng = np.random.default_rng(7)
    lo, hi = np.zeros(D), np.ones(D)
    for n in (4, 10):
        idx = rng.choice(len(y), n, replace=False)
        prod = fit_linear(np.vstack([X, X[idx]]), np.r_[y, -y[idx]], reg=LAM).model
        wq = np.asarray(prod.w) + 0.05 * rng.normal(size=D)
        bq = float(prod.b) + 0.05 * rng.normal()
        target = LinearModel(jnp.asarray(wq), jnp.asarray(bq))
        k_eps = max(_highs_max((wq, bq), (np.asarray(prod.w), float(prod.b)), lo, hi), 0.0)
        for theta in (fit_linear(X, y, reg=LAM).model,
                      LinearModel(jnp.asarray(rng.normal(size=D)), jnp.asarray(0.1))):
            ml = _highs_max((np.asarray(theta.w), float(theta.b)), (wq, bq), lo, hi)
            c1 = corollary1_lower_bound(theta, target, X, y, loss="hinge", reg=LAM,
                                        max_loss=ml + 1e-9, k_eps=k_eps + 1e-9)
            assert float(c1) <= n + 1e-9
