r"""The classifier base shared by every model in jaxpoison.

A model is an `equinox.Module` (a pytree: it passes through `jit`, `vmap` and `grad`)
that defines `decision_function` and `num_features`; this base adds `predict` and
`accuracy` once, with one input check, so every model behaves the same:

* binary models return one score per row, $f(x) \in \mathbb R$, and predict
  $\operatorname{sign} f(x) \in \{-1, +1\}$ with a score of exactly 0 mapped to $+1$;
* multi-class models return one score per class (shape `(m, num_classes)`) and predict
  the class index $\arg\max_c f_c(x)$ (ties to the smaller index).

`predict` and `accuracy` check, before tracing, that `X` has `num_features` columns, and on
concrete input that it is finite: a wrong feature count or a NaN row is a `ValueError`
naming `X`, never a label.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from jaxpoison import _validate as V

__all__ = ["Classifier"]


class Classifier(eqx.Module):
    """Base of every model: subclasses define `decision_function` and `num_features`."""

    def decision_function(self, X: Float[Array, "m d"]) -> Array:
        """Scores: `(m,)` for a binary model, `(m, num_classes)` for a multi-class one."""
        raise NotImplementedError

    @property
    def num_features(self) -> int:
        """Number of input features `d` the model was trained on."""
        raise NotImplementedError

    def check_X(self, X, name: str = "X") -> jax.Array:
        """`X` as a float array of shape `(m, num_features)`, finite when concrete."""
        X = V.as_float_array(X, name, ndim=2)
        V.check_shape(X, name, (None, self.num_features))
        return X

    def predict(self, X: Float[Array, "m d"]) -> Array:
        """Labels in $\\{-1, +1\\}$ (binary, a score of 0 gives $+1$) or class indices."""
        scores = self.decision_function(self.check_X(X))
        if scores.ndim == 1:
            return jnp.where(scores >= 0, 1, -1)
        return jnp.argmax(scores, axis=-1)

    def accuracy(self, X: Float[Array, "m d"], y) -> jax.Array:
        """Fraction of the rows of `X` predicted as `y`."""
        X = self.check_X(X)
        y = jnp.asarray(y)
        V.check_same_length(X, "X", y, "y")
        return jnp.mean((self.predict(X) == y).astype(X.dtype))
