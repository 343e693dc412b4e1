r"""Lethal-dose quantities (Wang, Levine & Feizi, "Lethal Dose Conjecture on Data
Poisoning", NeurIPS 2022) and DPA's approximate radius.

The conjecture: if the most data-efficient learner needs $n$ clean samples to
predict a test point correctly, then in a training set of size $N$ only
$\Theta(N/n)$ poisoned samples can be tolerated. DPA / FA with $k = N/n$
partitions (each part holding about $n$ samples) attains this order, which is why
a more data-efficient base learner (smaller $n$ at the same accuracy) directly buys
a larger certified radius.

For isotropic Gaussian classification (classes $\mathcal N(\mu_i, \sigma^2 I)$; all
distances below in units of $\sigma$) the paper's case analysis is governed, for a
test point $x_0$ at distances $d_1 < d_2$ from the two class means, by

$$
\Delta = \operatorname{erf}\!\left(\frac{d_2 - d_1}{\sqrt 2}\right)
= 2\Phi(d_2 - d_1) - 1 = \Pr\big[|Z| \le d_2 - d_1\big],\quad Z \sim \mathcal N(0,1),
$$

the probability mass a unit Gaussian puts within $d_2 - d_1$ of its mean (equally,
the total-variation distance between $\mathcal N(0,1)$ and
$\mathcal N(2(d_2-d_1), 1)$). It is 0 on the decision boundary and tends to 1 far
from it; the most data-efficient learner needs $n = \Theta(1/\Delta)$ samples and the
tolerable poison is $\Theta(N\Delta)$ -- the conjecture's $\Theta(N/n)$.

All functions are jnp-based, so they `jit`, `vmap` and differentiate.
"""

from __future__ import annotations

import jax.numpy as jnp
from jax.scipy.special import erf

__all__ = ["gaussian_delta", "tolerable_poison", "dpa_approx_radius"]


def gaussian_delta(d1, d2):
    r"""$\Delta = \operatorname{erf}((d_2 - d_1)/\sqrt 2)$ for isotropic Gaussian
    classification (distances of the test point to its own class mean, $d_1$, and
    to the other class mean, $d_2$, in units of the noise standard deviation).
    Negative when $x_0$ is closer to the other class. Equals
    `scipy.special.erf((d2 - d1) / sqrt(2))`."""
    d1 = jnp.asarray(d1)
    d2 = jnp.asarray(d2)
    return erf((d2 - d1) / jnp.sqrt(2.0).astype(jnp.result_type(d1, d2, float)))


def tolerable_poison(N, n):
    r"""The lethal-dose order $N/n$: poisoned samples tolerable in a training set of
    size $N$ when $n$ clean samples suffice (the constant of $\Theta$
    taken as 1)."""
    return jnp.asarray(N) / jnp.asarray(n)


def dpa_approx_radius(N, n, margin):
    r"""DPA's approximate certified radius $N \cdot \text{margin} / (2n)$.

    With $k = N/n$ parts of about $n$ samples each and a vote margin
    $(N_y - N_c)/k = \text{margin}$ (the fraction of learners by which the top class
    leads the runner-up), the DPA radius $\lfloor (N_y - N_c)/2 \rfloor$ is about
    $k \cdot \text{margin}/2 = N\,\text{margin}/(2n)$."""
    return jnp.asarray(N) * jnp.asarray(margin) / (2.0 * jnp.asarray(n))
