import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxpoison import Result, SolverError, Status
from jaxpoison._result import raise_if_failed, status_message


def _result(status):
    return Result(status=jnp.asarray(status), iterations=jnp.asarray(3))


def test_success_property_tracks_status():
    assert bool(_result(Status.SUCCESS).success)
    assert not bool(_result(Status.MAX_ITERATIONS).success)
    batch = _result([0, 2, 0])
    np.testing.assert_array_equal(batch.success, [True, False, True])


def test_raise_if_failed_names_the_status_and_count():
    with pytest.raises(SolverError, match=r"INFEASIBLE.*") as info:
        raise_if_failed(_result([0, 2, 2]), "linprog")
    assert info.value.status is Status.INFEASIBLE
    assert info.value.count == 2 and info.value.total == 3
    assert "2 of 3" in str(info.value)


def test_raise_if_failed_passes_success_and_respects_throw_false():
    ok = _result(0)
    assert raise_if_failed(ok, "x") is ok
    bad = _result(Status.NUMERICAL_ERROR)
    assert raise_if_failed(bad, "x", throw=False) is bad


def test_raise_if_failed_raises_under_jit_and_vmap():
    def solve(s, throw):
        r = raise_if_failed(Result(status=s, iterations=jnp.asarray(0)), "x", throw=throw)
        return r.iterations  # the check must survive even when status itself is unused

    f = jax.jit(lambda s: solve(s, True))
    assert int(f(jnp.asarray(Status.SUCCESS))) == 0
    with pytest.raises(Exception, match="x failed"):
        f(jnp.asarray(Status.INFEASIBLE)).block_until_ready()
    batched = jax.jit(jax.vmap(lambda s: solve(s, True)))
    assert batched(jnp.zeros(3, jnp.int32)).shape == (3,)
    with pytest.raises(Exception, match="x failed"):
        batched(jnp.asarray([0, 2, 0])).block_until_ready()
    # throw=False: no check, the status is the caller's to read
    quiet = jax.jit(lambda s: raise_if_failed(
        Result(status=s, iterations=jnp.asarray(0)), "x", throw=False).status)
    assert int(quiet(jnp.asarray(Status.INFEASIBLE))) == Status.INFEASIBLE


def test_status_message_unknown_code():
    assert "unknown status 99" == status_message(99)
    assert status_message(Status.UNBOUNDED).startswith("UNBOUNDED")
