r"""A binary MLP classifier $x \mapsto \operatorname{sign} f_\theta(x)$.

$f_\theta : \mathbb R^d \to \mathbb R$ is an `equinox.nn.MLP` with a scalar output (the
logit of class $+1$); the model predicts $\operatorname{sign} f_\theta(x)$ with ties to
$+1$ through the shared `jaxpoison.models.Classifier` base. Trained by
`jaxpoison.defenses.mlp_baseline` ("NN") and `jaxpoison.defenses.mlp_pgd_baseline`
("NN-PGD").
"""

from __future__ import annotations

import equinox as eqx
import jax
from jaxtyping import Array, Float

from jaxpoison.models.classifier import Classifier

__all__ = ["MLPModel"]


class MLPModel(Classifier):
    """A trained binary MLP classifier (a pytree; `vmap`-ed training gives a batched model).

    Attributes:
        net: the `equinox.nn.MLP` $f_\\theta$ (input size $d$, scalar output).
    """

    net: eqx.nn.MLP

    @property
    def num_features(self) -> int:
        return self.net.in_size

    def decision_function(self, X: Float[Array, "m d"]) -> Float[Array, " m"]:
        """$f_\\theta(x)$ for every row of `X` (checked: `num_features` columns, finite)."""
        X = self.check_X(X).astype(self.net.layers[0].weight.dtype)
        return jax.vmap(self.net)(X)
