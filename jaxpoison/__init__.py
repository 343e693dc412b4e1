"""jaxpoison: differentiable JAX solvers for data-poisoning attacks and certified defenses.

Subpackages:

* `jaxpoison.solvers` -- generic numerics (LP, QP / SVM dual, implicit differentiation)
* `jaxpoison.models` -- trainable models as pure fit / predict / loss functions
* `jaxpoison.attacks` -- the attacker's side (PCM, label flips, model-targeted attack)
* `jaxpoison.defenses` -- the defender's side (FLORAL, baselines, DPA / FA)
* `jaxpoison.theory` -- closed-form bounds
* `jaxpoison.datasets` -- loaders that return arrays

Every algorithm is a pure function that can be `jax.jit`-ed and `jax.vmap`-ed. Enable
float64 with `jax.config.update("jax_enable_x64", True)` where accuracy matters.
"""

from jaxpoison import attacks as attacks
from jaxpoison import datasets as datasets
from jaxpoison import defenses as defenses
from jaxpoison import models as models
from jaxpoison import solvers as solvers
from jaxpoison import theory as theory
from jaxpoison._result import Result as Result
from jaxpoison._result import SolverError as SolverError
from jaxpoison._result import Status as Status

__version__ = "0.1.0"
