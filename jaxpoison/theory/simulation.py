r"""Monte-Carlo simulations of the optimal learners behind the lethal-dose lemmas.

Each function draws `trials` independent training sets with `jax.random` (same key,
same numbers), runs the learner the corresponding proof speaks about, and returns a
`Simulation` with the mean accuracy at $x_0$ (and its standard error) and, for the
poisoning transforms, the mean number of training samples the transform changed. The
closed forms in `jaxpoison.theory.lethal_dose` are checked against these in the tests
and plotted side by side in the `lethal-dose` recipe.

* **Bijection Uncovering** ($k$ inputs, label $g(x)$ an unknown bijection; $x_0 = 0$,
  $y_0 = 0$ without loss of generality): the optimal learner returns $x_0$'s label when
  $x_0$ is in the training set, else a uniformly random label among those that appear
  in no sample. Poisoning (Lemma 2): swap labels $0 \leftrightarrow 1$.
* **Instance Memorization** ($m$ inputs, independent uniform labels over $k$): the
  memorising learner returns $x_0$'s label when seen, else a uniform guess. Poisoning
  (Lemma 4): remove every sample at $x_0$.
* **Isotropic Gaussians** (one dimension is enough: the construction moves means along
  the line through $x_0$): $x_0 = 0$, class 0 centred at $-d_1$, class 1 at $+d_2$,
  the other $k - 2$ classes far away ($\pm(d_2 + 20 + i)$); labels uniform. The learner
  is the plug-in maximum-likelihood rule (nearest empirical class mean; a uniform guess
  with no sample). Lemma 6's two worlds: class 0 at $\mu_1 = -d_1$ or at
  $\mu_1' = -d_1 - (1+\epsilon)(d_2 - d_1)$. Lemma 7's poisoning: the maximal coupling of
  class 1's samples from $\mathcal N(d_2, 1)$ onto $\mathcal N(d_1 - \epsilon(d_2 - d_1), 1)$
  (a sample moves with probability $\min(1, v/u)$'s complement; a moved one is drawn
  from the normalised residual $(v - u)_+$ by rejection from $v$ on the half-line
  where $v > u$), so the expected fraction of class-1 samples changed is the
  total-variation distance `gaussian_tv((1+eps)(d2 - d1))`.
"""

from __future__ import annotations

import functools

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.scipy.special import ndtr, ndtri

from jaxpoison import _validate as V

__all__ = [
    "Simulation",
    "simulate_bijection",
    "simulate_memorization",
    "simulate_gaussian_clean",
    "simulate_gaussian_poison",
]


class Simulation(eqx.Module):
    """Monte-Carlo estimate at $x_0$.

    Attributes:
        accuracy: mean of [prediction at $x_0$ = $y_0$] over the trials.
        stderr: its standard error $\\sqrt{a(1-a)/\\text{trials}}$.
        changed: mean number of training samples the poisoning transform changed (0 for
            clean runs).
    """

    accuracy: jax.Array
    stderr: jax.Array
    changed: jax.Array


def _result(correct, changed, trials):
    acc = jnp.mean(correct.astype(float))
    return Simulation(acc, jnp.sqrt(acc * (1 - acc) / trials), jnp.mean(changed.astype(float)))


def _guess_among(key, allowed):
    """A uniformly random index among the True entries of each row (Gumbel-max)."""
    g = jax.random.gumbel(key, allowed.shape)
    return jnp.argmax(jnp.where(allowed, g, -jnp.inf), axis=-1)


@functools.partial(jax.jit, static_argnames=("n", "k", "trials", "poison"))
def _bijection(key, n, k, trials, poison):
    k_draw, k_guess = jax.random.split(key)
    x = jax.random.randint(k_draw, (trials, n), 0, k)
    labels = x  # g = identity (the learner does not know it)
    changed = jnp.sum(labels <= 1, axis=1) if poison else jnp.zeros(trials, jnp.int32)
    if poison:  # T swaps labels 0 <-> 1
        labels = jnp.where(labels == 0, 1, jnp.where(labels == 1, 0, labels))
    seen_x0 = jnp.any(x == 0, axis=1)
    label_x0 = jnp.max(jnp.where(x == 0, labels, -1), axis=1, initial=-1)
    label_seen = jnp.any(labels[..., None] == jnp.arange(k), axis=1)  # (trials, k)
    guess = _guess_among(k_guess, ~label_seen)
    pred = jnp.where(seen_x0, label_x0, guess)
    return _result(pred == 0, changed, trials)


def simulate_bijection(key, n: int, k: int, *, trials: int = 20000,
                       poison: bool = False) -> Simulation:
    """Bijection Uncovering with `n` samples and `k` classes (see the module docstring);
    `poison=True` applies Lemma 2's label swap first."""
    V.check_key(key)
    n, k = V.check_int(n, "n", low=0), V.check_int(k, "k", low=2)
    trials = V.check_int(trials, "trials", low=1)
    return _bijection(key, n, k, trials, bool(poison))


@functools.partial(jax.jit, static_argnames=("n", "m", "k", "trials", "poison"))
def _memorization(key, n, m, k, trials, poison):
    k_g, k_draw, k_guess = jax.random.split(key, 3)
    g = jax.random.randint(k_g, (trials, m), 0, k)  # the unknown labelling
    x = jax.random.randint(k_draw, (trials, n), 0, m)
    at_x0 = x == 0
    changed = jnp.sum(at_x0, axis=1) if poison else jnp.zeros(trials, jnp.int32)
    seen = jnp.any(at_x0, axis=1) & (not poison)  # T removes every sample at x0
    guess = jax.random.randint(k_guess, (trials,), 0, k)
    pred = jnp.where(seen, g[:, 0], guess)
    return _result(pred == g[:, 0], changed, trials)


def simulate_memorization(key, n: int, m: int, k: int, *, trials: int = 20000,
                          poison: bool = False) -> Simulation:
    """Instance Memorization with `n` samples, `m` inputs and `k` classes; `poison=True`
    applies Lemma 4's removal of every sample at $x_0$."""
    V.check_key(key)
    n = V.check_int(n, "n", low=0)
    m, k = V.check_int(m, "m", low=1), V.check_int(k, "k", low=2)
    trials = V.check_int(trials, "trials", low=1)
    return _memorization(key, n, m, k, trials, bool(poison))


def _means(k, d1, d2):
    others = jnp.asarray([(d2 + 20.0 + i) * (-1.0) ** i for i in range(k - 2)])
    return jnp.concatenate([jnp.stack([-d1, d2]), others])


def _plug_in(x, labels, k, key):
    """Nearest empirical class mean to x0 = 0 (classes with no sample ignored)."""
    onehot = labels[..., None] == jnp.arange(k)  # (trials, n, k)
    cnt = onehot.sum(axis=1)
    mean = jnp.sum(onehot * x[..., None], axis=1) / jnp.maximum(cnt, 1)
    dist = jnp.where(cnt > 0, jnp.abs(mean), jnp.inf)
    guess = jax.random.randint(key, (x.shape[0],), 0, k)
    return jnp.where(jnp.any(cnt > 0, axis=1), jnp.argmin(dist, axis=1), guess)


def _gaussian_draw(key, n, k, means, trials):
    k_lab, k_x = jax.random.split(key)
    labels = jax.random.randint(k_lab, (trials, n), 0, k)
    x = means[labels] + jax.random.normal(k_x, (trials, n), dtype=means.dtype)
    return labels, x


@functools.partial(jax.jit, static_argnames=("n", "k", "trials"))
def _gaussian_clean(key, n, k, d1, d2, eps, trials):
    k_u, k_v, k_gu, k_gv = jax.random.split(key, 4)
    means = _means(k, d1, d2)
    moved = means.at[0].add(-(1.0 + eps) * (d2 - d1))
    lab_u, x_u = _gaussian_draw(k_u, n, k, means, trials)
    lab_v, x_v = _gaussian_draw(k_v, n, k, moved, trials)
    in_u = _plug_in(x_u, lab_u, k, k_gu) == 0
    in_v = _plug_in(x_v, lab_v, k, k_gv) == 0
    return _result(in_u, jnp.zeros(trials), trials), _result(in_v, jnp.zeros(trials), trials)


def _check_gaussian_setup(key, k, d1, d2, eps, trials):
    """The checks the two Gaussian simulations share; returns `(k, trials)` as ints."""
    V.check_key(key)
    k = V.check_int(k, "k", low=2)
    trials = V.check_int(trials, "trials", low=1)
    V.check_nonnegative(d1, "d1")
    V.check_less(d1, "d1", d2, "d2")
    V.check_positive(eps, "eps")
    return k, trials


def simulate_gaussian_clean(key, n: int, k: int, d1: float, d2: float, *,
                            eps: float = 0.05, trials: int = 20000):
    """Lemma 6's two worlds for the plug-in learner with `n` samples: returns
    `(world_u, world_v)`, the `Simulation`s with class 0 centred at $-d_1$ (where $y_0 = 0$
    is the maximum-likelihood class at $x_0 = 0$) and at $-d_1 - (1+\\epsilon)(d_2 - d_1)$
    (where it is not). Theorem 1 bounds the advantage
    `world_u.accuracy - world_v.accuracy` by `(n / k) * gaussian_tv((1+eps)(d2-d1))`."""
    n = V.check_int(n, "n", low=0)
    k, trials = _check_gaussian_setup(key, k, d1, d2, eps, trials)
    return _gaussian_clean(key, n, k, jnp.asarray(d1, float), jnp.asarray(d2, float),
                           jnp.asarray(eps, float), trials)


@functools.partial(jax.jit, static_argnames=("N", "k", "trials", "rounds"))
def _gaussian_poison(key, N, k, d1, d2, eps, trials, rounds):
    k_d, k_keep, k_prop, k_acc, k_g = jax.random.split(key, 5)
    means = _means(k, d1, d2)
    labels, x = _gaussian_draw(k_d, N, k, means, trials)
    mu, nu = d2, d2 - (1.0 + eps) * (d2 - d1)  # U = N(mu, 1) -> V = N(nu, 1), nu < mu
    log_ratio = lambda z: -0.5 * (z - nu) ** 2 + 0.5 * (z - mu) ** 2  # noqa: E731  log v/u
    keep = jnp.log(jax.random.uniform(k_keep, x.shape)) <= jnp.minimum(log_ratio(x), 0.0)
    # residual (v - u)+ lives on z < (mu + nu)/2; propose from v restricted there (inverse
    # CDF), accept with probability 1 - u/v; the first accepted proposal is used
    mid = 0.5 * (mu + nu)
    top = ndtr(mid - nu)
    u = jax.random.uniform(k_prop, (rounds,) + x.shape, minval=1e-12, maxval=1.0)
    z = nu + ndtri(u * top)
    acc = jax.random.uniform(k_acc, z.shape) < 1.0 - jnp.exp(-log_ratio(z))
    first = jnp.argmax(acc, axis=0)
    z_new = jnp.take_along_axis(z, first[None], axis=0)[0]
    moved = (labels == 1) & ~keep
    x_new = jnp.where(moved, z_new, x)
    pred = _plug_in(x_new, labels, k, k_g)
    return _result(pred == 0, jnp.sum(moved, axis=1), trials)


def simulate_gaussian_poison(key, N: int, k: int, d1: float, d2: float, *,
                             eps: float = 0.05, trials: int = 2000) -> Simulation:
    """Lemma 7's poisoning of a size-`N` training set (maximal coupling of class 1 onto a
    mean just past $x_0$), then the plug-in learner at $x_0$. `changed` estimates
    `(N / k) * gaussian_tv((1 + eps) * (d2 - d1))`."""
    N = V.check_int(N, "N", low=1)
    k, trials = _check_gaussian_setup(key, k, d1, d2, eps, trials)
    return _gaussian_poison(key, N, k, jnp.asarray(d1, float), jnp.asarray(d2, float),
                            jnp.asarray(eps, float), trials, 32)
