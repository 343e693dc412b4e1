"""solvers.project_box_halfspace against SLSQP (an independent QP solve) on random instances."""

import numpy as np
import pytest
from scipy.optimize import minimize

from jaxpoison.solvers import project_box_halfspace


@pytest.mark.parametrize("seed", range(6))
def test_projection_matches_slsqp(seed):
    rng = np.random.default_rng(seed)
    d = 5
    v = rng.normal(size=d) * 2
    a = rng.normal(size=d)
    lo, hi = -np.ones(d), np.ones(d)
    beta = float(rng.uniform(-1.0, 1.0))
    x = np.asarray(project_box_halfspace(v, a, beta, lo, hi, steps=200))
    ref = minimize(lambda z: 0.5 * np.sum((z - v) ** 2), np.zeros(d), jac=lambda z: z - v,
                   bounds=list(zip(lo, hi, strict=True)), method="SLSQP",
                   constraints=[{"type": "ineq", "fun": lambda z: beta - a @ z,
                                 "jac": lambda z: -a}],
                   options={"ftol": 1e-14, "maxiter": 500}).x
    assert np.all(x >= lo - 1e-12) and np.all(x <= hi + 1e-12)
    assert a @ x <= beta + 1e-9
    np.testing.assert_allclose(x, ref, atol=1e-6)


def test_point_already_feasible_is_its_own_projection():
    v = np.array([0.2, -0.3])
    x = project_box_halfspace(v, np.array([1.0, 1.0]), 5.0, -np.ones(2), np.ones(2))
    np.testing.assert_allclose(np.asarray(x), v)
