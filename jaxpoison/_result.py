"""Status codes and result conventions shared by every solver in jaxpoison.

Every solver returns one result container (an `equinox.Module`, hence a pytree
that passes through `jit`, `vmap` and `grad`) holding the solution and at least

* `status` -- an integer array of `Status` codes (one per problem when vmapped),
* `iterations` -- the number of iterations the solver ran.

Solver families add their own fields (objective, duals, residuals, ...). Inside `jit`
nothing raises: a failure is a status. The public wrapper of a solver calls
`raise_if_failed` when `throw=True` so that a failed solve never passes silently
as a wrong answer: on the host it raises `SolverError`; when the wrapper is itself traced
(called under the caller's `jit`/`vmap`/`grad`) it attaches an `equinox.error_if` check,
so the compiled program raises at run time.
"""

from __future__ import annotations

import enum

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "Status",
    "SolverError",
    "Result",
    "status_message",
    "raise_if_failed",
    "is_concrete",
]


class Status(enum.IntEnum):
    """Outcome of a solver run. `SUCCESS` is 0; every other value is a failure."""

    SUCCESS = 0
    """Converged to the requested tolerance."""
    MAX_ITERATIONS = 1
    """Stopped at the iteration limit before reaching the tolerance."""
    INFEASIBLE = 2
    """The problem has no feasible point (certified by the solver)."""
    UNBOUNDED = 3
    """The objective is unbounded below on the feasible set."""
    NUMERICAL_ERROR = 4
    """A NaN/inf appeared or a factorisation broke down."""
    BUDGET_EXHAUSTED = 5
    """An attack or defense used its whole budget without reaching its goal."""


_MESSAGES = {
    Status.SUCCESS: "converged",
    Status.MAX_ITERATIONS: "reached the iteration limit before the tolerance; raise max_iter "
    "or loosen tol",
    Status.INFEASIBLE: "the problem is infeasible (no point satisfies the constraints)",
    Status.UNBOUNDED: "the problem is unbounded (the objective decreases without limit)",
    Status.NUMERICAL_ERROR: "numerical breakdown (NaN/inf or a failed factorisation); try "
    "float64 (jax_enable_x64) or rescale the data",
    Status.BUDGET_EXHAUSTED: "the budget was used up before the goal was reached",
}


def status_message(code: int | Status) -> str:
    """A human-readable explanation of a status code."""
    try:
        status = Status(int(code))
    except ValueError:
        return f"unknown status {int(code)}"
    return f"{status.name}: {_MESSAGES[status]}"


class SolverError(RuntimeError):
    """Raised by a public wrapper with `throw=True` when a solve did not succeed."""

    def __init__(self, what: str, status: Status, count: int = 1, total: int = 1):
        self.status = status
        self.count = count
        self.total = total
        where = "" if total == 1 else f" ({count} of {total} problems failed; first failure shown)"
        super().__init__(f"{what} failed{where}: {status_message(status)}")


def is_concrete(x) -> bool:
    """True when `x` holds actual values (not a tracer inside jit/vmap/grad)."""
    return not isinstance(x, jax.core.Tracer)


class Result(eqx.Module):
    """Base of the solver result containers: a `status` array and an iteration count.

    Subclasses add solution fields. `success` is `status == Status.SUCCESS` and has the
    same (batch) shape as `status`.
    """

    status: jax.Array
    iterations: jax.Array

    @property
    def success(self) -> jax.Array:
        return jnp.asarray(self.status) == Status.SUCCESS


def raise_if_failed(result: Result, what: str, *, throw: bool = True) -> Result:
    """Raise on a failed status when `throw` is set, on the host and inside `jit`.

    * Concrete status (the usual call outside any transformation): raise `SolverError`
      naming `what`, the first failed status and how many of a batch failed.
    * Traced status (the caller wrapped the public function in `jit`, `vmap`, `grad`):
      attach an `equinox.error_if` check to `result.status`, so the compiled program
      raises at run time (an `EquinoxRuntimeError` whose message names `what`) when any
      problem failed. With `throw=False` nothing is checked: inspect `result.status`.

    Returns `result` (with the run-time check attached to every array leaf when traced);
    the caller must use the returned value for the check to take effect under `jit`.
    """
    if not throw:
        return result
    if not is_concrete(result.status):
        # Every array leaf carries the check, so it survives dead-code elimination
        # whichever field the caller goes on to use.
        return eqx.error_if(
            result, jnp.asarray(result.status) != Status.SUCCESS,
            f"{what} failed (status != SUCCESS); pass throw=False and read result.status "
            "for the code (see jaxpoison.Status)")
    status = np.asarray(result.status).reshape(-1)
    failed = status[status != Status.SUCCESS]
    if failed.size:
        raise SolverError(what, Status(int(failed[0])), int(failed.size), int(status.size))
    return result
