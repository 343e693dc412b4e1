r"""Lethal-dose closed forms (Wang, Levine & Feizi, "Lethal Dose Conjecture on Data
Poisoning", NeurIPS 2022) and DPA's approximate radius.

**The conjecture.** If the most data-efficient learner needs $n$ clean samples to
predict a test point $x_0$ correctly, then in a training set of size $N$ only
$\Theta(N/n)$ poisoned samples can be tolerated. DPA / FA with $k = N/n$ partitions
(each part holding about $n$ samples) attains this order, which is why a more
data-efficient base learner (smaller $n$ at the same accuracy) buys a larger
certified radius.

The paper proves the conjecture in three $k$-way classification tasks. For each we
give the two closed forms its proofs produce -- the clean sample size $n$ the most
data-efficient learner needs for accuracy $\tau$ at $x_0$ (a lower bound), and the
expected number of training samples a poisoning transform must change to break any
learner (an upper bound) -- with the constants the proofs give:

* Bijection Uncovering ($k$ inputs, $k$ classes): clean
  $n \ge \log(2 - 2\tau) / \log(1 - 2/k) = \Theta(k)$; poison $2N/k$.
* Instance Memorization ($m$ inputs, $k$ classes): clean
  $n \ge [\log(1-\tau) + \log(k/(k-1))] / \log(1 - 1/m) = \Theta(m)$; poison $N/m$.
* Isotropic Gaussians ($k$ classes, margin $\Delta$): clean
  $n \ge k(2\tau - 1)/\Delta = \Theta(k/\Delta)$; poison $N\Delta/k = \Theta(\Delta/k)\,N$.

(poison: an upper bound on $\mathbb E\lvert T(D_N) - D_N\rvert$ that breaks every learner.)
In every row the product of the two is $\Theta(N)$: the conjecture's $\Theta(N/n)$.
`jaxpoison.theory.simulation` simulates the optimal learners these bounds speak about
(the tests check every bound against it).

**Counting.** The paper's $\lvert T(D) - D\rvert$ counts *changed samples*; our DPA
certificates count insertions + removals, so one changed sample (say a relabel) is 2
in the certificates' unit.

**Isotropic Gaussians and the factor 2.** Classes are $\mathcal N(\mu_y, I)$ (distances
in units of the noise standard deviation); $d_1 < d_2$ are the distances from $x_0$ to
its closest and second-closest class mean. The paper *defines* $\Delta$ as the
total-variation distance between two unit-covariance Gaussians whose means are
$d_2 - d_1$ apart, $\Delta = \delta(\mathcal N(\mu, I), \mathcal N(\mu', I))$ with
$\lVert\mu - \mu'\rVert = d_2 - d_1$. Its Lemma 5 (Devroye et al.) gives
$\delta = \Pr[\lvert Z\rvert \le r]$ with $r = \lVert\mu - \mu'\rVert / 2$,
$Z \sim \mathcal N(0, 1)$. Hence

$$
\Delta = \Pr\Big[\lvert Z\rvert \le \tfrac{d_2 - d_1}{2}\Big]
= 2\Phi\Big(\tfrac{d_2 - d_1}{2}\Big) - 1
= \operatorname{erf}\Big(\frac{d_2 - d_1}{2\sqrt 2}\Big)
$$

(`gaussian_delta`). The paper then *displays*
$\Delta = \Pr[\lvert Z\rvert \le d_2 - d_1] = \operatorname{erf}((d_2 - d_1)/\sqrt 2)$,
which drops Lemma 5's $1/2$: it is the total-variation distance of means
$2(d_2 - d_1)$ apart (`gaussian_delta_displayed`). The two agree to first order only
up to the factor 2 ($\Delta \approx (d_2 - d_1)/\sqrt{2\pi}$ by the definition,
$\approx 2(d_2 - d_1)/\sqrt{2\pi}$ displayed), so the $\Theta(\cdot)$ statements hold
either way, but the constants differ by 2. We follow the definition, which is what the
proofs of Lemmas 6 and 7 use (Theorems 1 and 2 are statements about the total-variation
distance itself); a Monte-Carlo maximal coupling in the tests changes a fraction
`gaussian_delta`, not `gaussian_delta_displayed`, of the samples.

Input checks: concrete arguments are validated (`ValueError` naming the argument);
traced ones are not, so the jnp functions `jit`, `vmap` and differentiate.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from jax.scipy.special import erf

from jaxpoison import _validate as V
from jaxpoison._result import is_concrete

__all__ = [
    "gaussian_tv",
    "gaussian_delta",
    "gaussian_delta_displayed",
    "gaussian_min_samples",
    "gaussian_poison_budget",
    "bijection_accuracy",
    "bijection_accuracy_bound",
    "bijection_min_samples",
    "bijection_poison_budget",
    "memorization_accuracy",
    "memorization_min_samples",
    "memorization_poison_budget",
    "tolerable_poison",
    "dpa_approx_radius",
]


def _float(x, name):
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(jnp.result_type(float))
    V.check_finite(x, name)
    return x


def _check(cond_fn, x, name, what):
    if is_concrete(x) and not np.all(cond_fn(np.asarray(x))):
        raise ValueError(f"{name} must be {what}; got {np.asarray(x).reshape(-1)[:4]}")


def _int(x, name, low):
    return V.check_int(x, name, low=low)


def _tau(tau, low, name="tau"):
    tau = _float(tau, name)
    _check(lambda t: (t > low) & (t < 1), tau, name, f"in ({low:.4g}, 1)")
    return tau


# ------------------------------------------------------------------------ Gaussians


def gaussian_tv(distance):
    r"""Total-variation distance between $\mathcal N(\mu, I)$ and $\mathcal N(\mu', I)$
    with $\lVert\mu - \mu'\rVert =$ `distance` (Lemma 5):
    $\operatorname{erf}(\text{distance} / (2\sqrt 2))$.

    Args:
        distance: non-negative, finite (any shape).
    """
    distance = _float(distance, "distance")
    _check(lambda x: x >= 0, distance, "distance", "non-negative")
    return erf(distance / (2.0 * jnp.sqrt(2.0).astype(distance.dtype)))


def _d1_d2(d1, d2):
    d1, d2 = _float(d1, "d1"), _float(d2, "d2")
    _check(lambda x: x >= 0, d1, "d1", "a non-negative distance")
    if is_concrete(d1) and is_concrete(d2):
        a, b = np.broadcast_arrays(np.asarray(d1), np.asarray(d2))
        if np.any(b < a):
            raise ValueError("d2 must be >= d1 (d1: distance to the closest class mean, d2: "
                             f"to the second closest); got d1={a[b < a][:3]}, d2={b[b < a][:3]}")
    return d1, d2


def gaussian_delta(d1, d2):
    r"""The paper's $\Delta$ for isotropic Gaussian classification, from its definition:
    $\Delta = \operatorname{erf}((d_2 - d_1)/(2\sqrt 2))$ (see the module docstring for
    the derivation and the factor 2 with the displayed formula).

    Args:
        d1: distance of $x_0$ to the closest class mean (noise standard deviations), `>= 0`.
        d2: distance to the second-closest mean, `>= d1`.

    Returns:
        $\Delta \in [0, 1)$: 0 on the decision boundary, tending to 1 far from it.
    """
    d1, d2 = _d1_d2(d1, d2)
    return gaussian_tv(d2 - d1)


def gaussian_delta_displayed(d1, d2):
    r"""The formula the paper displays, $\operatorname{erf}((d_2 - d_1)/\sqrt 2)$ -- the
    total-variation distance of means $2(d_2 - d_1)$ apart, twice the definition's
    separation. Kept for comparison only; `gaussian_delta` is the definition's value."""
    d1, d2 = _d1_d2(d1, d2)
    return gaussian_tv(2.0 * (d2 - d1))


def gaussian_min_samples(k, delta, tau):
    r"""Lemma 6's lower bound on the clean samples the most data-efficient learner needs:
    $n \ge k (2\tau - 1)/\Delta$.

    From Theorem 1 ($\lvert \mathbb E_{U^m} f - \mathbb E_{V^m} f\rvert \le m\,\delta(U, V)$,
    by coupling the $m$ samples): a learner that predicts $x_0$'s maximum-likelihood class
    with probability $\ge \tau$ both when class $y_0$'s mean is $\mu_1$ and when it is
    moved to $\mu_1'$ ($\lVert\mu_1' - \mu_1\rVert \downarrow d_2 - d_1$, where the
    maximum-likelihood class changes) separates the two with advantage $\ge 2\tau - 1$
    from the $n/k$ samples of class $y_0$ it sees on average, so
    $(n/k)\,\Delta \ge 2\tau - 1$.

    Args:
        k: number of classes `>= 2`.
        delta: $\Delta \in (0, 1]$ (`gaussian_delta`).
        tau: target accuracy in $(1/2, 1)$.
    """
    k = _int(k, "k", 2)
    delta = _float(delta, "delta")
    _check(lambda x: (x > 0) & (x <= 1), delta, "delta", "in (0, 1]")
    tau = _tau(tau, 0.5)
    return k * (2.0 * tau - 1.0) / delta


def gaussian_poison_budget(N, k, delta):
    r"""Lemma 7's upper bound on the poison that breaks every learner: $N\Delta/k$
    expected changed samples (the maximal coupling of class $y_2$'s $N/k$ samples onto a
    mean moved just past $x_0$, Theorem 2).

    Args:
        N: training-set size `>= 0`.
        k: classes `>= 2`.
        delta: $\Delta \in [0, 1]$.
    """
    N = _float(N, "N")
    _check(lambda x: x >= 0, N, "N", "non-negative")
    k = _int(k, "k", 2)
    delta = _float(delta, "delta")
    _check(lambda x: (x >= 0) & (x <= 1), delta, "delta", "in [0, 1]")
    return N * delta / k


# ---------------------------------------------------------------- Bijection Uncovering


def bijection_accuracy(n: int, k: int) -> float:
    r"""Exact accuracy at $x_0$ of the optimal learner for Bijection Uncovering with $n$
    clean samples (inputs uniform over $k$; labels given by an unknown bijection).

    The optimal learner predicts $x_0$'s label if $(x_0, y_0)$ is in the training set,
    else guesses among the $U$ labels that appear in no sample (by symmetry each is
    $y_0$ with probability $1/U$):

    $$
    \Pr = 1 - (1 - \tfrac1k)^n + (1 - \tfrac1k)^n\, \mathbb E\Big[\frac{1}{k - S}\Big],
    $$

    $S$ the number of distinct inputs among $n$ uniform draws from the other $k - 1$
    (its law from the occupancy recursion, computed in float64 on the host). The paper's
    Lemma 1 bounds this by `bijection_accuracy_bound`.

    Args:
        n: clean samples `>= 0`.
        k: inputs = classes `>= 2`.
    """
    n = _int(n, "n", 0)
    k = _int(k, "k", 2)
    p = np.zeros(k)  # p[s] = Pr[S = s], s distinct among draws from k - 1 inputs
    p[0] = 1.0
    for _ in range(n):
        stay = p * np.arange(k) / (k - 1)
        move = np.concatenate([[0.0], p[:-1] * (k - 1 - np.arange(k - 1)) / (k - 1)])
        p = stay + move
    miss = (1.0 - 1.0 / k) ** n
    return float(1.0 - miss + miss * np.sum(p / (k - np.arange(k))))


def bijection_accuracy_bound(n, k):
    r"""Lemma 1's upper bound on any plausible learner's accuracy at $x_0$:
    $1 - \tfrac12 (1 - \tfrac1k)^n (1 - \tfrac1{k-1})^n = 1 - \tfrac12(1 - \tfrac2k)^n$.

    Args:
        n: clean samples `>= 0` (array-like allowed).
        k: `>= 2`.
    """
    n = _float(n, "n")
    _check(lambda x: x >= 0, n, "n", "non-negative")
    k = _int(k, "k", 2)
    return 1.0 - 0.5 * (1.0 - 2.0 / k) ** n


def bijection_min_samples(k, tau):
    r"""Lemma 1's bound on the clean samples needed for accuracy $\tau$:
    $n \ge \log(2 - 2\tau)/\log(1 - 2/k) = \Theta(k)$.

    Args:
        k: `>= 3` (with $k = 2$ one sample of the other input already reveals $y_0$).
        tau: in $(1/2, 1)$.
    """
    k = _int(k, "k", 3)
    tau = _tau(tau, 0.5)
    return jnp.log(2.0 - 2.0 * tau) / jnp.log(1.0 - 2.0 / k)


def bijection_poison_budget(N, k):
    r"""Lemma 2: swapping the labels $y_0 \leftrightarrow y_1$ changes $2N/k$ samples in
    expectation and drops any plausible learner to accuracy $\le 1/k$ at $x_0$."""
    N = _float(N, "N")
    _check(lambda x: x >= 0, N, "N", "non-negative")
    k = _int(k, "k", 2)
    return 2.0 * N / k


# --------------------------------------------------------------- Instance Memorization


def memorization_accuracy(n, m, k):
    r"""Accuracy at $x_0$ of the optimal (memorising) learner for Instance Memorization:
    $1 - (1 - \tfrac1m)^n (1 - \tfrac1k)$ -- right if $x_0$ was seen, a uniform guess
    among $k$ labels otherwise. This is Lemma 3's bound, attained.

    Args:
        n: clean samples `>= 0` (array-like allowed).
        m: inputs `>= 1`.
        k: classes `>= 2`.
    """
    n = _float(n, "n")
    _check(lambda x: x >= 0, n, "n", "non-negative")
    m = _int(m, "m", 1)
    k = _int(k, "k", 2)
    return 1.0 - (1.0 - 1.0 / m) ** n * (1.0 - 1.0 / k)


def memorization_min_samples(m, k, tau):
    r"""Lemma 3: $n \ge [\log(1 - \tau) + \log(k/(k-1))]/\log(1 - 1/m) = \Theta(m)$.

    Args:
        m: inputs `>= 2`.
        k: classes `>= 2`.
        tau: in $(1/k, 1)$.
    """
    m = _int(m, "m", 2)
    k = _int(k, "k", 2)
    tau = _tau(tau, 1.0 / k)
    return (jnp.log(1.0 - tau) + jnp.log(k / (k - 1.0))) / jnp.log(1.0 - 1.0 / m)


def memorization_poison_budget(N, m):
    r"""Lemma 4: removing every $(x_0, y_0)$ deletes $N/m$ samples in expectation and
    leaves any learner at accuracy $1/k$ at $x_0$."""
    N = _float(N, "N")
    _check(lambda x: x >= 0, N, "N", "non-negative")
    m = _int(m, "m", 1)
    return N / m


# ------------------------------------------------------------------------------ DPA


def tolerable_poison(N, n):
    r"""The lethal-dose order $N/n$: poisoned samples tolerable in a training set of
    size $N$ when $n$ clean samples suffice (the constant of $\Theta$ taken as 1).

    Args:
        N: `>= 0`.
        n: `> 0`.
    """
    N, n = _float(N, "N"), _float(n, "n")
    _check(lambda x: x >= 0, N, "N", "non-negative")
    _check(lambda x: x > 0, n, "n", "positive")
    return N / n


def dpa_approx_radius(N, n, margin):
    r"""DPA's approximate certified radius $N \cdot \text{margin} / (2n)$.

    With $k = N/n$ parts of about $n$ samples each and a vote margin
    $(N_y - N_c)/k = \text{margin}$ (the fraction of learners by which the top class
    leads the runner-up), the DPA radius $\lfloor (N_y - N_c)/2 \rfloor$ is about
    $k \cdot \text{margin}/2 = N\,\text{margin}/(2n)$.

    Args:
        N: `>= 0`.
        n: `> 0`.
        margin: in $[0, 1]$.
    """
    N, n, margin = _float(N, "N"), _float(n, "n"), _float(margin, "margin")
    _check(lambda x: x >= 0, N, "N", "non-negative")
    _check(lambda x: x > 0, n, "n", "positive")
    _check(lambda x: (x >= 0) & (x <= 1), margin, "margin", "in [0, 1]")
    return N * margin / (2.0 * n)
