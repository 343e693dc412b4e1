"""Promises of the linear models and model-targeted attacks, tried with hypothesis.

* bad input -> ValueError / TypeError naming the argument;
* `fit_linear` is never worse than liblinear (scikit-learn) on the training objective, by
  at most 1e-7 (float64) / 1e-3 (float32) relative;
* `max_loss_difference` (hinge): the value matches HiGHS and `bound` is an upper bound on
  the exact maximum in both precisions;
* Theorem 2: the bound evaluated at any model never exceeds the number of poison points
  that actually produced the target (brute-force construction of tiny instances), in both
  precisions;
* the same key gives the same result; jit and vmap give the same numbers as plain calls.

Shapes are fixed per property so that each compiles once; `HYPOTHESIS_MAX_EXAMPLES`
scales the number of examples (default below; the CI budget).
"""

from __future__ import annotations

import os
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jaxpoison.attacks import (
    DiscreteFeatures,
    LogisticSearch,
    gradient_poisoning_attack,
    indiscriminate_targets,
    kkt_attack,
    max_loss_difference,
    model_targeted_attack,
    theorem2_lower_bound,
)
from jaxpoison.models import LinearModel, LinearSolver, fit_linear, linear_objective

sklearn = pytest.importorskip("sklearn")
scipy_optimize = pytest.importorskip("scipy.optimize")

EXAMPLES = int(os.environ.get("HYPOTHESIS_MAX_EXAMPLES", "15"))
PROFILE = settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
                   suppress_health_check=[HealthCheck.too_slow,
                                          HealthCheck.function_scoped_fixture])
DTYPES = (np.float32, np.float64)
# stated tolerances (relative): liblinear objective, float32 vs float64
OBJ_RTOL = {np.float64: 1e-7, np.float32: 1e-3}

N, D = 16, 3


def _data(seed: int, n: int = N, d: int = D, scale: float = 1.0):
    rng = np.random.default_rng(seed)
    X = scale * rng.normal(size=(n, d))
    y = np.where(X @ rng.normal(size=d) + 0.5 * rng.normal(size=n) > 0, 1, -1)
    y[0], y[1] = 1, -1  # both classes
    return X, y


def _liblinear(loss, X, y, reg):
    from sklearn.linear_model import LogisticRegression
    from sklearn.svm import LinearSVC

    C = 1.0 / (len(y) * reg)
    if loss == "hinge":
        est = LinearSVC(loss="hinge", C=C, tol=1e-12, max_iter=1_000_000,
                        intercept_scaling=1, dual=True, random_state=0)
    else:
        est = LogisticRegression(solver="liblinear", C=C, tol=1e-12, max_iter=100_000,
                                 intercept_scaling=1, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X, y)
    return LinearModel(jnp.asarray(est.coef_[0]), jnp.asarray(est.intercept_[0]))


# ----------------------------------------------------------------------------- fit_linear


@PROFILE
@given(seed=st.integers(0, 2**31 - 1), reg=st.floats(0.01, 1.0),
       scale=st.sampled_from([0.1, 1.0, 30.0]), loss=st.sampled_from(["hinge", "logistic"]))
def test_fit_never_worse_than_liblinear_in_both_precisions(seed, reg, scale, loss):
    X, y = _data(seed, scale=scale)
    ref = _liblinear(loss, X, y, reg)
    theirs = float(linear_objective(ref, X, y, loss=loss, reg=reg))
    for dtype in DTYPES:
        res = fit_linear(X.astype(dtype), y, loss=loss, reg=reg)  # default settings
        assert res.success and res.model.w.dtype == dtype
        m64 = LinearModel(res.model.w.astype(jnp.float64), res.model.b.astype(jnp.float64))
        ours = float(linear_objective(m64, X, y, loss=loss, reg=reg))
        assert ours <= theirs * (1 + OBJ_RTOL[dtype]) + 1e-12, (dtype, ours, theirs)


@PROFILE
@given(seed=st.integers(0, 2**31 - 1), loss=st.sampled_from(["hinge", "logistic"]))
def test_fit_jit_and_vmap_agree_with_plain_calls(seed, loss):
    X, y = _data(seed)
    regs = jnp.array([0.05, 0.3])

    def theta(reg):
        return fit_linear(X, y, loss=loss, reg=reg).model.theta

    batched = jax.vmap(theta)(regs)
    jitted = jax.jit(theta)(regs[0])
    np.testing.assert_allclose(jitted, theta(0.05), atol=1e-9)
    np.testing.assert_allclose(batched[1], theta(0.3), atol=1e-9)


_BAD_FIT = {
    "X": lambda X, y: dict(X=np.where(np.arange(X.size).reshape(X.shape) == 3, np.nan, X)),
    "X and y": lambda X, y: dict(X=X[:-1]),
    "y": lambda X, y: dict(y=(y + 1) // 2),
    "reg": lambda X, y: dict(reg=-0.5),
    "sample_weight": lambda X, y: dict(sample_weight=-np.ones(len(y))),
    "loss": lambda X, y: dict(loss="squared"),
    "tol": lambda X, y: dict(solver=LinearSolver(tol=0.0)),
    "max_iter": lambda X, y: dict(solver=LinearSolver(max_iter=-3)),
    "both classes": lambda X, y: dict(y=np.ones_like(y)),
}


@PROFILE
@given(which=st.sampled_from(sorted(_BAD_FIT)), seed=st.integers(0, 1000))
def test_fit_bad_input_names_the_argument(which, seed):
    X, y = _data(seed)
    kw = dict(X=X, y=y, loss="hinge", reg=0.1)
    kw.update(_BAD_FIT[which](X, y))
    with pytest.raises(ValueError, match=which):
        fit_linear(kw.pop("X"), kw.pop("y"), **kw)


# ------------------------------------------------------------------- max_loss_difference


def _highs_max(wt, bt, wp, bp, lo, hi):
    """Exact hinge max loss difference by LPs (both labels; both cases of the max)."""
    from scipy.optimize import linprog

    d = wt.size
    best = -np.inf
    box = list(zip(lo, hi, strict=True))
    for y in (1, -1):
        # max t  s.t.  t <= a(x), t <= a(x) - c(x), x in box
        A = np.vstack([np.r_[y * wt, 1.0], np.r_[y * (wt - wp), 1.0]])
        b = np.r_[1 - y * bt, -y * (bt - bp)]
        r = linprog(np.r_[np.zeros(d), -1.0], A_ub=A, b_ub=b, bounds=box + [(None, None)],
                    method="highs")
        best = max(best, -r.fun)
        r = linprog(-y * wp, bounds=box, method="highs")  # min c(x)
        best = max(best, min(0.0, -(1 - y * bp + r.fun)))
    return best


@PROFILE
@given(seed=st.integers(0, 2**31 - 1), scale=st.sampled_from([0.1, 1.0, 10.0]))
def test_hinge_max_loss_bound_holds_in_both_precisions(seed, scale):
    rng = np.random.default_rng(seed)
    d = 4
    for dtype in DTYPES:
        wt, wp = (scale * rng.normal(size=d)).astype(dtype), rng.normal(size=d).astype(dtype)
        bt, bp = dtype(rng.normal()), dtype(rng.normal())
        lo = (rng.normal(size=d) - 1).astype(dtype)
        hi = (lo + rng.uniform(0.1, 2.0, size=d)).astype(dtype)
        # the exact maximum for the (rounded) inputs, in float64 by HiGHS
        ref = _highs_max(*(np.asarray(a, np.float64) for a in (wt, bt, wp, bp, lo, hi)))
        pt = max_loss_difference(LinearModel(jnp.asarray(wt), jnp.asarray(bt)),
                                 LinearModel(jnp.asarray(wp), jnp.asarray(bp)),
                                 lower=lo, upper=hi)
        size = 1 + scale * d * 3
        assert pt.success and pt.x.dtype == dtype
        assert float(pt.bound) >= ref - 1e-9 * size, (dtype, float(pt.bound), ref)
        rtol = 1e-9 if dtype == np.float64 else 1e-4
        assert abs(float(pt.value) - ref) <= rtol * size
        x = np.asarray(pt.x)
        assert np.all(x >= lo) and np.all(x <= hi)


@PROFILE
@given(seed=st.integers(0, 2**31 - 1))
def test_max_loss_same_key_same_result_and_jit_vmap(seed):
    rng = np.random.default_rng(seed)
    mt = LinearModel(jnp.asarray(rng.normal(size=3)), jnp.asarray(rng.normal()))
    mp = LinearModel(jnp.asarray(rng.normal(size=3)), jnp.asarray(rng.normal()))
    key = jax.random.key(seed)
    kw = dict(loss="logistic", lower=0.0, upper=1.0, search=LogisticSearch(restarts=4, max_iter=30))
    a = max_loss_difference(mt, mp, key=key, **kw)
    b = max_loss_difference(mt, mp, key=key, **kw)
    assert np.array_equal(np.asarray(a.x), np.asarray(b.x)) and float(a.value) == float(b.value)
    # documented: usable under jit and vmap (the attacks call it in compiled rounds)
    j = jax.jit(lambda m: max_loss_difference(m, mp, lower=0.0, upper=1.0).value)(mt)
    h = max_loss_difference(mt, mp, lower=0.0, upper=1.0)
    assert float(j) == pytest.approx(float(h.value), abs=1e-12)
    both = jax.tree_util.tree_map(lambda u, v: jnp.stack([u, v]), mt, mp)
    v = jax.vmap(lambda m: max_loss_difference(m, mp, lower=0.0, upper=1.0).value)(both)
    assert float(v[0]) == pytest.approx(float(h.value), abs=1e-12)


_BAD_MAX = {
    "search": dict(loss="logistic", search=LogisticSearch(lr=-1.0)),
    "key": dict(loss="logistic", key=None),
    "search.restarts": dict(loss="logistic", search=LogisticSearch(restarts=0)),
    "lower": dict(lower=1.0, upper=1.0),
    "upper": dict(upper=np.ones(5)),
    "loss": dict(loss="squared"),
    "model_p": dict(model_p=LinearModel(jnp.zeros(2), jnp.zeros(()))),
}


@pytest.mark.parametrize("which", sorted(_BAD_MAX))
def test_max_loss_bad_input_names_the_argument(which):
    m = LinearModel(jnp.ones(3), jnp.zeros(()))
    kw = dict(model_t=m, model_p=m, lower=0.0, upper=1.0, key=jax.random.key(0))
    kw.update(_BAD_MAX[which])
    err = TypeError if which == "key" else ValueError
    with pytest.raises(err, match=which):
        max_loss_difference(kw.pop("model_t"), kw.pop("model_p"), **kw)


# ----------------------------------------------------------------------------- Theorem 2


@PROFILE
@given(seed=st.integers(0, 2**31 - 1), k=st.integers(0, 3), reg=st.floats(0.02, 0.5))
def test_theorem2_bound_never_exceeds_the_points_used(seed, k, reg):
    """Brute-force construction: the target is trained on D_c plus k known poison points in
    the box, so at most k points are needed; Theorem 2 at any model (the clean model, the
    models trained with fewer of the points, random ones) must not exceed k."""
    rng = np.random.default_rng(seed)
    X, y = _data(seed, n=10, d=2)
    X = 1 / (1 + np.exp(-X))  # in the box [0, 1]^2
    Xp = rng.uniform(0, 1, (k, 2))
    yp = rng.choice([-1, 1], k)
    tight = LinearSolver(tol=1e-12, max_iter=100_000)
    target = fit_linear(np.vstack([X, Xp]), np.r_[y, yp], reg=reg, solver=tight).model
    models = [fit_linear(np.vstack([X, Xp[:j]]), np.r_[y, yp[:j]], reg=reg,
                         solver=tight).model for j in range(k)]
    models += [LinearModel(target.w + jnp.asarray(rng.normal(size=2)),
                           target.b + rng.normal()) for _ in range(2)]
    for dtype in DTYPES:
        Xd = X.astype(dtype)
        tgt = LinearModel(target.w.astype(dtype), target.b.astype(dtype))
        for m in models:
            m = LinearModel(m.w.astype(dtype), m.b.astype(dtype))
            pt = max_loss_difference(m, tgt, lower=0.0, upper=1.0)
            lb = float(theorem2_lower_bound(m, tgt, Xd, y, loss="hinge", reg=reg,
                                            max_loss=pt.bound))
            # the target is optimal only to the solver's tolerance (1e-12, float64)
            assert lb <= k + 1e-6 * (1 + k), (dtype, lb, k)


def test_attack_bound_never_exceeds_its_own_points():
    """The attack's certified bound for a target built with 4 points is at most 4, and its
    run reaches the target; float32 and float64."""
    X, y = _data(3, n=30, d=2)
    X = 1 / (1 + np.exp(-X))
    Xp, yp = np.array([[0.9, 0.1], [0.8, 0.2], [0.1, 0.9], [0.2, 0.95]]), np.array(
        [1, 1, -1, -1])
    target = fit_linear(np.vstack([X, Xp]), np.r_[y, yp], reg=0.1).model
    for dtype in DTYPES:
        res = model_targeted_attack(X.astype(dtype), y, target, reg=0.1, lower=0.0,
                                    upper=1.0, eps=1e-3, budget=60, key=jax.random.key(0),
                                    throw=False)
        assert res.certified and res.best_lower_bound <= 4


# ----------------------------------------------------------------- attacks: input, keys

_BAD_ATTACK = {
    "budget": dict(budget=0),
    "key": dict(key=None),
    "X_eval and y_eval": dict(X_eval=np.zeros((3, D))),
    "both classes": dict(y="ones"),
    "search.lr": dict(loss="logistic", search=LogisticSearch(lr=-1.0)),
    "search": dict(loss="logistic", search="authors"),
    "discrete": dict(discrete=DiscreteFeatures.binary([0], num_features=D + 1)),
    "target.w": dict(target="short"),
    "reg": dict(reg=0.0),
    "copies": dict(copies=0),
}


@pytest.mark.parametrize("which", sorted(_BAD_ATTACK))
def test_attack_bad_input_names_the_argument(which):
    X, y = _data(0)
    kw = dict(reg=0.1, lower=-3.0, upper=3.0, budget=2, key=jax.random.key(0))
    target = LinearModel(jnp.ones(D), jnp.zeros(()))
    change = dict(_BAD_ATTACK[which])
    if change.get("y") == "ones":
        y = np.ones_like(y)
        change.pop("y")
    if change.get("target") == "short":
        target = LinearModel(jnp.ones(D - 1), jnp.zeros(()))
        change.pop("target")
    kw.update(change)
    err = TypeError if which in ("key", "search") else ValueError
    with pytest.raises(err, match=which):
        model_targeted_attack(X, y, target, **kw)


def test_baselines_bad_input_and_same_key():
    X, y = _data(1)
    target = LinearModel(jnp.ones(D), jnp.zeros(()))
    with pytest.raises(ValueError, match="budget"):
        kkt_attack(X, y, target, reg=0.1, lower=-3.0, upper=3.0, budget=0)
    with pytest.raises(ValueError, match="splits"):
        kkt_attack(X, y, target, reg=0.1, lower=-3.0, upper=3.0, budget=2, splits=1)
    with pytest.raises(TypeError, match="key"):
        gradient_poisoning_attack(X, y, X, y, reg=0.1, lower=-3.0, upper=3.0, budget=2)
    with pytest.raises(ValueError, match="lr"):
        gradient_poisoning_attack(X, y, X, y, reg=0.1, lower=-3.0, upper=3.0, budget=2,
                                  lr=0.0, key=jax.random.key(0))
    with pytest.raises(ValueError, match="target_errors"):
        indiscriminate_targets(X, y, reg=0.1, target_errors=[1.5])
    with pytest.raises(ValueError, match="X_pool and y_pool"):
        indiscriminate_targets(X, y, reg=0.1, target_errors=[0.1], X_pool=X)
    kw = dict(reg=0.1, lower=-3.0, upper=3.0, budget=3, steps=3, key=jax.random.key(7))
    a = gradient_poisoning_attack(X, y, X, y, **kw)
    b = gradient_poisoning_attack(X, y, X, y, **kw)
    assert np.array_equal(np.asarray(a.X_poison), np.asarray(b.X_poison))


# ------------------------------------------------- discrete (one-hot / binary) features

_DISC = DiscreteFeatures.one_hot([[0, 1, 2], [3]], num_features=5, drop_first=True)


def _brute_discrete_max(wt, bt, wp, bp, lo, hi):
    """Every discrete choice enumerated; the continuous feature by HiGHS (`_highs_max` with
    the discrete part folded into the biases)."""
    best = -np.inf
    for a in ([0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]):
        for c in ([0], [1]):
            xd = np.array(a + c, np.float64)
            best = max(best, _highs_max(wt[4:], bt + wt[:4] @ xd, wp[4:], bp + wp[:4] @ xd,
                                        lo[4:], hi[4:]))
    return best


@PROFILE
@given(seed=st.integers(0, 2**31 - 1), scale=st.sampled_from([0.3, 1.0, 5.0]))
def test_discrete_max_is_exact_and_bound_holds_in_both_precisions(seed, scale):
    rng = np.random.default_rng(seed)
    for dtype in DTYPES:
        wt = (scale * rng.normal(size=5)).astype(dtype)
        wp = (wt + scale * rng.normal(size=5)).astype(dtype)
        bt, bp = dtype(rng.normal()), dtype(rng.normal())
        lo = np.full(5, -0.5, dtype)
        hi = np.full(5, 1.5, dtype)
        ref = _brute_discrete_max(*(np.asarray(a, np.float64) for a in (wt, bt, wp, bp, lo, hi)))
        pt = max_loss_difference(LinearModel(jnp.asarray(wt), jnp.asarray(bt)),
                                 LinearModel(jnp.asarray(wp), jnp.asarray(bp)),
                                 lower=lo, upper=hi, discrete=_DISC)
        size = 1 + scale * 5 * 3
        assert pt.success and bool(pt.exact) and pt.x.dtype == dtype
        assert _DISC.contains(np.asarray(pt.x), lo, hi)
        assert float(pt.bound) >= ref - 1e-9 * size
        rtol = 1e-9 if dtype == np.float64 else 1e-4
        assert abs(float(pt.value) - ref) <= rtol * size
        assert float(pt.relaxed_bound) >= float(pt.bound) - rtol * size
