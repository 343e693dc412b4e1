r"""Label attacks on preference data: random flips and RLHFPoison.

Convention: pair `i` compares a first (`chosen`) response `y_i` with a second
(`rejected`) response `z_i`; `θ_i ∈ [0, 1]` is the probability (fraction of annotators)
that `y_i` is preferred, and `φ_i = φ(x_i, y_i) - φ(x_i, z_i)`. Flipping a label maps
`θ_i -> 1 - θ_i`.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from jaxpoison import _validate as V
from jaxpoison._result import Result, Status

__all__ = ["random_flip", "rlhf_poison", "PreferenceAttack"]


class PreferenceAttack(Result):
    r"""Result of a preference attack.

    Attributes:
        theta: the attacked labels $\theta_A$.
        flipped: boolean mask of the flipped pairs.
        status: always `SUCCESS` (the attacks are closed-form selections).
        iterations: 0.
    """

    theta: jax.Array
    flipped: jax.Array


def _attack_result(theta, mask):
    return PreferenceAttack(status=jnp.asarray(Status.SUCCESS, jnp.int32),
                            iterations=jnp.asarray(0, jnp.int32),
                            theta=jnp.where(mask, 1.0 - theta, theta), flipped=mask)


def _check_fraction(x, name):
    if isinstance(x, bool) or not isinstance(x, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number in [0, 1]; got {type(x).__name__} {x!r}")
    V.check_in_range(x, name, 0.0, 1.0)


def random_flip(theta: Float[Array, " N"], budget_fraction: float, *, key,
                throw: bool = True) -> PreferenceAttack:
    r"""Flip `round(budget_fraction * N)` labels chosen uniformly without replacement
    ($\theta \to 1 - \theta$).

    Args:
        theta: original labels in $[0, 1]$ (N,).
        budget_fraction: fraction of pairs to flip, in $[0, 1]$ (a Python number: it sets
            the static count).
        key: JAX PRNG key (keyword-only, required).
        throw: accepted for the library-wide signature; this attack cannot fail.

    Returns:
        `PreferenceAttack`.
    """
    V.check_key(key)
    theta = V.as_float_array(theta, "theta", ndim=1)
    if theta.shape[0] == 0:
        raise ValueError("theta must have at least one entry; got shape (0,)")
    V.check_in_range(theta, "theta", 0.0, 1.0)
    _check_fraction(budget_fraction, "budget_fraction")
    k = int(round(float(budget_fraction) * theta.shape[0]))
    return _random_flip(theta, key, k)


@functools.partial(jax.jit, static_argnames=("k",))
def _random_flip(theta, key, k):
    idx = jax.random.permutation(key, theta.shape[0])[:k]
    mask = jnp.zeros(theta.shape, bool).at[idx].set(True)
    return _attack_result(theta, mask)


def rlhf_poison(
    phi: Float[Array, "n N"],
    theta: Float[Array, " N"],
    reward: Float[Array, " n"],
    chosen_length: Float[Array, " N"],
    rejected_length: Float[Array, " N"],
    *,
    quality_fraction: float = 0.25,
    budget_fraction: float = 0.05,
    largest_gap: bool = True,
    throw: bool = True,
) -> PreferenceAttack:
    r"""RLHFPoison-style length attack: make the reward prefer longer responses.

    1. *Candidates*: pairs whose chosen (first) response is shorter than the rejected one.
    2. *Quality filter*: among candidates keep the `quality_fraction * N` (default 25% of N)
       with the smallest clean-reward margin `|r_o^T φ_i|` (flips the clean model is least
       sure about, hence least detectable).
    3. *Selection*: among those, flip the `budget_fraction * N` (default 5% of N) with the
       largest length gap `rejected - chosen` (`largest_gap=False`: the smallest).

    Fewer pairs are flipped when fewer qualify. Deterministic; pure and `jit`-able once the
    counts (from `N` and the fractions) are fixed.

    Args:
        phi: feature differences (n, N).
        theta: original labels in `[0, 1]` (N,).
        reward: clean reward vector `r_o` (n,), e.g. from
            `jaxpoison.models.fit_bradley_terry`.
        chosen_length: lengths of the first (chosen) responses (N,), e.g. characters.
        rejected_length: lengths of the second responses (N,).
        quality_fraction: fraction of N kept by the quality filter, in $[0, 1]$.
        budget_fraction: fraction of N flipped, in $[0, 1]$.
        largest_gap: flip the largest length gaps (default) or, with `False`, the smallest
            ones (what the RLHFPoison authors' code does).
        throw: accepted for the library-wide signature; this attack cannot fail.

    Returns:
        `PreferenceAttack`.
    """
    phi = V.as_float_array(phi, "phi", ndim=2)
    n, N = phi.shape
    if n == 0 or N == 0:
        raise ValueError(f"phi must have at least one row and one column; got shape {(n, N)}")
    theta = V.as_float_array(theta, "theta", ndim=1, dtype=phi.dtype)
    V.check_shape(theta, "theta", (N,))
    V.check_in_range(theta, "theta", 0.0, 1.0)
    reward = V.as_float_array(reward, "reward", ndim=1, dtype=phi.dtype)
    V.check_shape(reward, "reward", (n,))
    cl = V.as_float_array(chosen_length, "chosen_length", ndim=1, dtype=phi.dtype)
    rl = V.as_float_array(rejected_length, "rejected_length", ndim=1, dtype=phi.dtype)
    V.check_shape(cl, "chosen_length", (N,))
    V.check_shape(rl, "rejected_length", (N,))
    _check_fraction(quality_fraction, "quality_fraction")
    _check_fraction(budget_fraction, "budget_fraction")
    kq = int(quality_fraction * N)
    kb = int(budget_fraction * N)
    return _rlhf_poison(phi, theta, reward, cl, rl, kq, kb, bool(largest_gap))


@functools.partial(jax.jit, static_argnums=(5, 6, 7))
def _rlhf_poison(phi, theta, reward, cl, rl, kq, kb, largest_gap):
    N = theta.shape[0]
    cand = cl < rl
    margin = jnp.abs(reward @ phi)
    order = jnp.argsort(jnp.where(cand, margin, jnp.inf))
    rank = jnp.zeros((N,), jnp.int32).at[order].set(jnp.arange(N, dtype=jnp.int32))
    quality = cand & (rank < kq)
    gap = rl - cl
    key = jnp.where(quality, -gap if largest_gap else gap, jnp.inf)
    order2 = jnp.argsort(key)
    rank2 = jnp.zeros((N,), jnp.int32).at[order2].set(jnp.arange(N, dtype=jnp.int32))
    mask = quality & (rank2 < kb)
    return _attack_result(theta, mask)
