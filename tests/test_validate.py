import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxpoison import _validate as v


def test_float_array_promotes_ints_and_keeps_float32():
    assert v.as_float_array([1, 2], "x").dtype == jnp.float64
    x32 = np.ones(3, np.float32)
    assert v.as_float_array(x32, "x").dtype == jnp.float32


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nonfinite_values_name_the_argument(bad):
    with pytest.raises(ValueError, match=r"^X must be finite; got 1 NaN/inf"):
        v.as_float_array([[0.0, bad]], "X", ndim=2)


def test_rank_and_shape_messages():
    with pytest.raises(ValueError, match=r"X must be 2-D; got an array of shape \(3,\)"):
        v.as_float_array([1.0, 2.0, 3.0], "X", ndim=2)
    with pytest.raises(ValueError, match=r"phi must have shape \(any, 4\); got .*\(2, 3\)"):
        v.check_shape(np.zeros((2, 3)), "phi", (None, 4))
    with pytest.raises(ValueError, match=r"X and y must have the same number.*X with 3.*y with 2"):
        v.check_same_length(np.zeros((3, 2)), "X", np.zeros(2), "y")


def test_strings_and_objects_are_type_errors():
    with pytest.raises(TypeError, match="X must be a numeric array"):
        v.as_float_array(["a", "b"], "X")
    with pytest.raises(TypeError, match="k must be an integer"):
        v.check_int(2.0, "k")
    with pytest.raises(TypeError, match="k must be an integer"):
        v.check_int(True, "k")


def test_labels():
    np.testing.assert_array_equal(v.as_label_array([1, -1, 1.0], "y"), [1, -1, 1])
    with pytest.raises(ValueError, match=r"y must only contain labels \[-1, 1\]; got also \[0\]"):
        v.as_label_array([1, 0, -1], "y")
    with pytest.raises(ValueError, match="y must hold whole numbers"):
        v.as_label_array([1, 0.5], "y")


@pytest.mark.parametrize("value", [0.0, -1.0, np.nan, np.inf])
def test_positive(value):
    with pytest.raises(ValueError, match="C must be positive and finite"):
        v.check_positive(value, "C")
    v.check_positive(1e-9, "C")


def test_nonnegative_range_less_int_choice():
    with pytest.raises(ValueError, match="weights must be non-negative"):
        v.check_nonnegative([1.0, -0.1], "weights")
    with pytest.raises(ValueError, match=r"theta must lie in \[0, 1\]; got 1 value\(s\) outside"):
        v.check_in_range([0.0, 1.5, 1.0], "theta", 0, 1)
    with pytest.raises(ValueError, match=r"theta must lie in \[0, 1\]"):
        v.check_in_range([np.nan], "theta", 0, 1)
    with pytest.raises(ValueError, match="lower must be smaller than upper"):
        v.check_less([0.0, 1.0], "lower", 1.0, "upper")
    with pytest.raises(ValueError, match=r"k must be an integer in \[1, 5\]; got 6"):
        v.check_int(6, "k", low=1, high=5)
    assert v.check_int(np.int64(3), "k", low=1) == 3
    with pytest.raises(ValueError, match=r"method must be one of \['ipm', 'pdhg'\]"):
        v.check_choice("simplex", "method", ["ipm", "pdhg"])


def test_keys():
    v.check_key(jax.random.key(0))
    v.check_key(jax.random.PRNGKey(0))
    with pytest.raises(TypeError, match="key is required"):
        v.check_key(None)
    with pytest.raises(TypeError, match="key must be a JAX PRNG key"):
        v.check_key(np.zeros(3))


def test_value_checks_are_skipped_under_tracing():
    @jax.jit
    def f(x):
        x = v.as_float_array(x, "x", ndim=1)
        v.check_positive(x, "x")
        v.check_in_range(x, "x", 0, 1)
        return x * 2

    # Negative and out-of-range values pass through the traced checks untouched...
    np.testing.assert_allclose(f(jnp.array([-1.0, 3.0])), [-2.0, 6.0])
    # ...but shape checks still fire at trace time.
    with pytest.raises(ValueError, match="x must be 1-D"):
        f(jnp.ones((2, 2)))
