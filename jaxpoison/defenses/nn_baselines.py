r"""Neural-network baselines for label poisoning: a plain MLP and an MLP with PGD training.

FLORAL (Bal et al., ICLR 2025) is compared with a neural network trained on the poisoned
labels ("NN") and the same network trained adversarially with projected gradient descent
("NN-PGD", Madry et al., ICLR 2018). Both are binary classifiers
$f_\theta : \mathbb R^d \to \mathbb R$ (a ReLU MLP, `equinox.nn.MLP`) predicting
$\operatorname{sign} f_\theta(x)$ (ties to $+1$), trained full batch with optax
Adam on the logistic loss with weight decay on the weight matrices,

$$
\min_\theta\; \frac1n \sum_{i=1}^n \log\bigl(1 + e^{-y_i f_\theta(x_i + \delta_i)}\bigr)
+ \frac{\lambda}{2} \sum_{W \in \theta} \lVert W \rVert_F^2 .
$$

* `mlp_baseline`: $\delta = 0$.
* `mlp_pgd_baseline`: before every step, $\delta_i$ approximately maximises
  the loss over the ball $\lVert\delta_i\rVert \le \varepsilon$ (`"linf"` or
  `"l2"`) by `pgd_perturbation` -- a random start in the ball and `steps`
  ascent steps (signed gradient for $\ell_\infty$, normalised gradient for
  $\ell_2$), each followed by the projection onto the ball -- and the network is
  trained on the perturbed points only (Madry et al.'s min-max objective).

Both are one jitted `lax.scan` over the training steps, `vmap` over keys and label
vectors of one shape, and return an `MLPResult` whose model is a
`jaxpoison.models.MLPModel` (a `jaxpoison.models.Classifier`, like the kernel SVMs).
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, Float

from jaxpoison import _validate as v
from jaxpoison._result import Result, Status, is_concrete, raise_if_failed
from jaxpoison.models.mlp import MLPModel

__all__ = ["MLPResult", "mlp_baseline", "mlp_pgd_baseline", "pgd_perturbation"]

NORMS = ("linf", "l2")


class MLPResult(Result):
    """Outcome of `mlp_baseline` / `mlp_pgd_baseline`.

    Attributes:
        model: the trained `MLPModel`.
        loss: training objective (on the perturbed points for PGD training) before each
            step, `(epochs,)`.
        status: success, or numerical error if the parameters are not finite.
        iterations: the number of training steps.
    """

    model: MLPModel
    loss: jax.Array


def _logistic(margin):
    return jnp.logaddexp(0.0, -margin)


def _perturb(net, X, yf, key, eps, step_size, steps, norm, random_start=True):
    """PGD in the `norm` ball of radius `eps` around every row."""
    if steps == 0:
        return jnp.zeros_like(X)

    def loss_of(delta):
        return jnp.sum(_logistic(yf * jax.vmap(net)(X + delta)))

    def project(delta):
        if norm == "linf":
            return jnp.clip(delta, -eps, eps)
        nrm = jnp.linalg.norm(delta, axis=1, keepdims=True)
        return delta * jnp.minimum(1.0, eps / jnp.maximum(nrm, 1e-30))

    if not random_start:
        delta = jnp.zeros_like(X)
    elif norm == "linf":
        delta = jax.random.uniform(key, X.shape, X.dtype, -1.0, 1.0) * eps
    else:  # uniform direction, radius eps * U^(1/d)
        kd, kr = jax.random.split(key)
        g = jax.random.normal(kd, X.shape, X.dtype)
        g = g / jnp.maximum(jnp.linalg.norm(g, axis=1, keepdims=True), 1e-30)
        r = jax.random.uniform(kr, (X.shape[0], 1), X.dtype) ** (1.0 / X.shape[1])
        delta = g * r * eps

    def body(delta, _):
        g = jax.grad(loss_of)(delta)
        if norm == "linf":
            step = jnp.sign(g)
        else:
            step = g / jnp.maximum(jnp.linalg.norm(g, axis=1, keepdims=True), 1e-30)
        return project(delta + step_size * step), None

    delta, _ = jax.lax.scan(body, delta, None, length=steps)
    return jax.lax.stop_gradient(delta)


def _penalty(net):
    mats = [w for w in jax.tree_util.tree_leaves(eqx.filter(net, eqx.is_array))
            if w.ndim >= 2]
    return 0.5 * sum(jnp.sum(w * w) for w in mats)


@eqx.filter_jit  # the network holds its activation function: not a jit-able array
def _train(X, y, key, lr, reg, eps, step_size, *, width, depth, epochs, pgd_steps, norm,
           random_start=True):
    dtype = X.dtype
    yf = y.astype(dtype)
    k_init, k_pgd = jax.random.split(key)
    net = eqx.nn.MLP(X.shape[1], "scalar", width, depth, activation=jax.nn.relu,
                     key=k_init, dtype=dtype)
    params, static = eqx.partition(net, eqx.is_array)
    opt = optax.adam(lr)
    state = opt.init(params)

    def objective(p, Xb):
        m = eqx.combine(p, static)
        return jnp.mean(_logistic(yf * jax.vmap(m)(Xb))) + reg * _penalty(m)

    def step(carry, k):
        p, s = carry
        delta = _perturb(eqx.combine(p, static), X, yf, k, eps, step_size, pgd_steps, norm,
                         random_start)
        val, g = jax.value_and_grad(objective)(p, X + delta)
        upd, s = opt.update(g, s, p)
        return (optax.apply_updates(p, upd), s), val

    (params, _), losses = jax.lax.scan(step, (params, state), jax.random.split(k_pgd, epochs))
    net = eqx.combine(params, static)
    finite = jnp.all(jnp.stack([jnp.all(jnp.isfinite(a))
                                for a in jax.tree_util.tree_leaves(params)]))
    status = jnp.where(finite, Status.SUCCESS, Status.NUMERICAL_ERROR).astype(jnp.int32)
    return MLPResult(status=status, iterations=jnp.asarray(epochs, jnp.int32),
                     model=MLPModel(net), loss=losses)


def _check(X, y, width, depth, epochs, lr, reg, key):
    X = v.as_float_array(X, "X", ndim=2)
    if X.shape[0] == 0:
        raise ValueError(f"X must have at least one row; got shape {tuple(X.shape)}")
    y = v.as_label_array(y, "y", allowed=(-1, 1))
    v.check_same_length(X, "X", y, "y")
    if is_concrete(y) and np.unique(np.asarray(y)).size < 2:
        raise ValueError(f"y must contain both labels -1 and +1; got only "
                         f"{np.unique(np.asarray(y)).tolist()}")
    width = v.check_int(width, "width", low=1)
    depth = v.check_int(depth, "depth", low=0)
    epochs = v.check_int(epochs, "epochs", low=1)
    v.check_positive(lr, "lr")
    v.check_nonnegative(reg, "reg")
    v.check_key(key)
    return X, y, width, depth, epochs


def mlp_baseline(
    X: Float[Array, "n d"], y, *, key, width: int = 32, depth: int = 2, epochs: int = 1000,
    lr: float = 1e-2, reg: float = 1e-4, throw: bool = True,
) -> MLPResult:
    r"""Train the "NN" baseline: a ReLU MLP on the (possibly poisoned) labels.

    Args:
        X: training points `(n, d)`; y: labels in $\{-1, +1\}$.
        key: PRNG key (initialisation; keyword-only).
        width, depth: hidden units per layer and number of hidden layers (`depth=0` is a
            linear model $w^\top x + b$).
        epochs: full-batch Adam steps. lr: Adam's learning rate.
        reg: weight decay $\lambda$ on the weight matrices.
        throw: raise on a non-finite result (skipped under transformations).

    Returns:
        `MLPResult`. Comparable to `sklearn.neural_network.MLPClassifier` with
        `solver="adam"`, full batches and `alpha = n * reg` (sklearn sums the loss over
        the batch and scales its penalty by `1 / n`).
    """
    X, y, width, depth, epochs = _check(X, y, width, depth, epochs, lr, reg, key)
    zero = jnp.asarray(0.0, X.dtype)
    res = _train(X, y, key, jnp.asarray(lr, X.dtype), jnp.asarray(reg, X.dtype), zero, zero,
                 width=width, depth=depth, epochs=epochs, pgd_steps=0, norm="linf")
    return raise_if_failed(res, "mlp_baseline", throw=throw)


def mlp_pgd_baseline(
    X: Float[Array, "n d"], y, *, key, eps: float, norm: str = "linf", steps: int = 10,
    step_size: float | None = None, random_start: bool = True, width: int = 32,
    depth: int = 2, epochs: int = 1000, lr: float = 1e-2, reg: float = 1e-4,
    throw: bool = True,
) -> MLPResult:
    r"""Train the "NN-PGD" baseline: the MLP of `mlp_baseline` trained adversarially.

    Every step replaces each training point by $x_i + \delta_i$ with
    $\delta_i$ from `pgd_perturbation` against the current network (random
    start, `steps` steps of size `step_size`, default
    $2.5\,\varepsilon/\text{steps}$ as in Madry et al.) and takes one Adam
    step on the perturbed points. Arguments not listed below are as in `mlp_baseline`.

    Args:
        eps: radius $\varepsilon \ge 0$ of the perturbation ball (`0`: plain
            training with a zero perturbation).
        norm: `"linf"` or `"l2"`.
        steps: PGD ascent steps per training step (`>= 1`).
        step_size: PGD ascent step size (positive; default above).
        random_start: start each ascent at a uniform point of the ball (Madry et al.);
            `False` starts at $\delta = 0$ (the FLORAL authors' code).

    Returns:
        `MLPResult` (`loss` is the objective on the perturbed points).
    """
    X, y, width, depth, epochs = _check(X, y, width, depth, epochs, lr, reg, key)
    v.check_nonnegative(eps, "eps")
    v.check_choice(norm, "norm", NORMS)
    steps = v.check_int(steps, "steps", low=1)
    if step_size is None:
        step_size = 2.5 * eps / steps
    else:
        v.check_positive(step_size, "step_size")
    res = _train(X, y, key, jnp.asarray(lr, X.dtype), jnp.asarray(reg, X.dtype),
                 jnp.asarray(eps, X.dtype), jnp.asarray(step_size, X.dtype),
                 width=width, depth=depth, epochs=epochs, pgd_steps=steps, norm=norm,
                 random_start=bool(random_start))
    return raise_if_failed(res, "mlp_pgd_baseline", throw=throw)


@eqx.filter_jit
def _pgd_jit(net, X, yf, key, eps, step_size, *, steps, norm):
    return _perturb(net, X, yf, key, eps, step_size, steps, norm)


def pgd_perturbation(
    model: MLPModel, X: Float[Array, "m d"], y, *, eps: float, key, norm: str = "linf",
    steps: int = 10, step_size: float | None = None,
) -> Float[Array, "m d"]:
    r"""PGD perturbations $\delta_i$ with $\lVert\delta_i\rVert \le \varepsilon$
    that (approximately) maximise the logistic loss $\log(1 + e^{-y_i f(x_i+\delta_i)})$.

    Random start in the ball, then `steps` iterations of
    $\delta \leftarrow \Pi_{\lVert\cdot\rVert\le\varepsilon}(\delta + \alpha\, s)$ with
    $s = \operatorname{sign}\nabla_\delta$ ($\ell_\infty$) or
    $\nabla_\delta / \lVert\nabla_\delta\rVert_2$ ($\ell_2$). For a linear
    model the maximiser is $-\varepsilon\, y\, \operatorname{sign}(w)$
    ($\ell_\infty$) or $-\varepsilon\, y\, w / \lVert w \rVert_2$ ($\ell_2$),
    which one step of size $\ge 2\varepsilon$ reaches exactly.

    Returns:
        `(m, d)` perturbations; evaluate robustness with
        `model.accuracy(X + delta, y)`.
    """
    if not isinstance(model, MLPModel):
        raise TypeError(f"model must be an MLPModel; got {type(model).__name__}")
    X = model.check_X(X)
    y = v.as_label_array(y, "y", allowed=(-1, 1))
    v.check_same_length(X, "X", y, "y")
    v.check_nonnegative(eps, "eps")
    v.check_choice(norm, "norm", NORMS)
    steps = v.check_int(steps, "steps", low=1)
    v.check_key(key)
    if step_size is None:
        step_size = 2.5 * eps / steps
    else:
        v.check_positive(step_size, "step_size")
    return _pgd_jit(model.net, X, y.astype(X.dtype), key, jnp.asarray(eps, X.dtype),
                    jnp.asarray(step_size, X.dtype), steps=steps, norm=norm)
