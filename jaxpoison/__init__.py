"""jaxpoison: differentiable JAX solvers for data-poisoning attacks and certified defenses.

Subpackages:

* `jaxpoison.solvers` -- generic numerics (LP, QP / SVM dual, implicit differentiation)
* `jaxpoison.models` -- trainable models as pure fit / predict / loss functions
* `jaxpoison.attacks` -- the attacker's side (PCM, label flips, model-targeted attack)
* `jaxpoison.defenses` -- the defender's side (FLORAL, baselines, DPA / FA)
* `jaxpoison.theory` -- closed-form bounds
* `jaxpoison.datasets` -- loaders that return arrays
* `jaxpoison.sklearn` -- scikit-learn estimators (needs scikit-learn)

Every algorithm is a pure function that can be `jax.jit`-ed and `jax.vmap`-ed. Enable
float64 with `jax.config.update("jax_enable_x64", True)` where accuracy matters.

Subpackages are imported on first use (`import jaxpoison` alone does not start JAX), so the
`jaxpoison` command answers `--version`, `list` and unknown recipe names at once.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

_SUBPACKAGES = ("attacks", "datasets", "defenses", "models", "solvers", "theory")
_RESULT_NAMES = ("Result", "SolverError", "Status")

if TYPE_CHECKING:  # what static tools (type checkers, the API reference) see
    from jaxpoison import attacks as attacks
    from jaxpoison import datasets as datasets
    from jaxpoison import defenses as defenses
    from jaxpoison import models as models
    from jaxpoison import solvers as solvers
    from jaxpoison import theory as theory
    from jaxpoison._result import Result as Result
    from jaxpoison._result import SolverError as SolverError
    from jaxpoison._result import Status as Status

__all__ = [*_SUBPACKAGES, *_RESULT_NAMES, "__version__"]


def __getattr__(name: str):
    if name in _SUBPACKAGES:
        return importlib.import_module(f"jaxpoison.{name}")
    if name in _RESULT_NAMES:
        return getattr(importlib.import_module("jaxpoison._result"), name)
    raise AttributeError(f"module 'jaxpoison' has no attribute {name!r}")


def __dir__():
    return sorted({*globals(), *_SUBPACKAGES, *_RESULT_NAMES})
