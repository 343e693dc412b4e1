r"""Interior point with preconditioned CG and crossover for *wide* bounded-variable LPs.

$$
\min_x c^T x \quad\text{s.t.}\quad A x = b,\; l \le x \le u, \qquad A \in \mathbb{R}^{m\times n},
\; m \ll n
$$

(PCM: `A = [Φ, -Φ]`, `m` features, `n = 2N` for `N` pairs). The dense interior point
(`.lp_ipm`) forms the normal matrix $A\Theta A^T$ every iteration: $m^2 n$ multiply-adds, one
dense GEMM of the data's shape per iteration. This solver forms it **never**:

1. **Gram matrix once.** $G = A A^T$ is computed once, by blocks of one triangle (a symmetric
   rank-$n$ update, about half the flops of a GEMM), in float32 in the mixed mode.
2. **Preconditioned CG per iteration.** Each Mehrotra predictor--corrector step solves the
   normal equations $(A\Theta A^T + \delta I)\,dy = r$ by conjugate gradients, one product
   $A(\Theta(A^T v))$ (two passes over the data, memory-bound) per CG step, preconditioned by
   $$
   P = \bar\theta\, G + A_S(\Theta_S - \bar\theta)A_S^T + \delta I,
   $$
   where $S$ holds the $k = 2m$ columns with the largest weights $\Theta_i$ (with $k = m$
   the CG needed twice the steps at (1000, 100k): 213 against 104 in 24 iterations) and
   $\bar\theta$ is the mean weight of the others: exact for the heavy columns (late
   iterations: the free variables), the mean-field of the rest through the exact Gram matrix
   (early iterations: nearly uniform weights). $P$ costs $k m^2 + m^3/3$ (no pass over
   the data).
3. **Crossover.** Once the iterate is within `crossover_tol`, variables are split by the
   complementarity rule (at a bound when its slack is below its multiplier), the
   $\le m$ free ones are solved exactly from $A_F x_F = b - A_N x_N$ and the multipliers
   from $A_F^T y = c_F$ (least squares by semi-normal equations with refinement, nearest to
   the interior-point $y$), and the result is **verified**: primal residual, dual residual
   and duality gap all $\le$ `tol` (one pass for $Ax$, one for $A^T y$). A failed
   crossover takes up to `crossover_pivots` simplex pivots from its basis: a *primal* one
   when the basis is primal feasible (the variable at a bound with the largest wrong-sign
   reduced cost enters, the ratio test picks the leaving one), a *dual* one when the exact
   solve put a basic variable outside its box (it leaves at the violated bound, the dual
   ratio test $\min_j |c_j - a_j^Ty| / |\alpha_j|$ over the row $\alpha = e_k^TB^{-1}A$ picks
   the entering one; one more pass), each followed by the same exact solve and
   verification. An interior point whose residuals stall classifies a few variables
   wrongly; the pivots repair that. A verified crossover ends the run with a vertex (at
   most $m$ coordinates strictly inside their bounds); a failed one lets the interior
   point continue, and the crossover is tried again at the next iterate. Without a
   verified crossover the run ends as the plain interior point would (status `SUCCESS` at
   `tol`, or `MAX_ITERATIONS`). `crossover` runs the same procedure on a point from any
   solver (`jaxpoison.solvers.crossover`).

Precision (`precision`): `"float64"` does everything in the input dtype; `"mixed"` (float64
input) holds a float32 copy of the data for the Gram matrix and the CG products -- the
$O(m^2 n)$ and $O(mn)$ work -- while residuals, the $m \times m$ factorisation, crossover and
verification stay in float64, so the answer is certified to float64 `tol`. Float32 CG
cannot push the normal-equation residual below about $10^{-6}\|r\|$, and late in the run
(where $\|r\|$ grows like $1/\mu$) that error would become the primal residual of every
step; so once the accuracy the iterate needs falls below that floor, the mixed mode
*refines* (`refined_pcg`): the residual against the float64 operator (two float64 passes),
a float32 CG correction, repeated up to `refine_steps` times to the requested accuracy.

Float32 input runs everything in float32 (default `tol` 1e-5), with two changes that make
that tolerance reachable at any size: the primal test is the normwise backward error
$\|b-Ax\|_\infty \le \text{tol}\,(1+\|b\|_\infty+\||A||x|\|_\infty)$ (`primal_tolerance`:
the rounding floor of a float32 $Ax$ grows with the number of columns), and once the
interior point is within 10 `tol` a failed vertex crossover is followed by a *face*
crossover (surplus free variables keep their interior values, the kept $m$ restore
$Ax = b$), verified the same way. Float32 `SUCCESS` thus certifies gap, dual residual and
primal backward error $\le$ `tol`, but not a vertex.

Memory: the data are never copied except for the mixed mode's float32 copy; scalings are
vectors applied on the fly (`._lp_ops`), the Gram product takes column chunks
(`wide_memory_bytes` gives the peak).

Infeasibility and unboundedness are detected as in `.lp_ipm` (Farkas / recession rays of
the iterates, `._lp_common`).
"""

from __future__ import annotations

import os
from typing import ClassVar, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
from jax import lax

from jaxpoison._result import Status
from jaxpoison.solvers._lp_common import (
    LPRaw,
    abs_max,
    dual_infeasibility_certificate,
    interior_step,
    kkt_measures_from_products,
    make_bounds,
    primal_infeasibility_certificate,
)
from jaxpoison.solvers._lp_ops import DenseOperator, PairOperator

__all__ = ["Wide", "WideF64", "WideOptions", "DEFAULT_OPTIONS", "wide_solve", "crossover_raw",
           "wide_solve_info", "gram_by_blocks", "primal_tolerance", "is_wide",
           "wide_memory_bytes", "check_wide_memory", "available_memory_bytes", "pcg",
           "refined_pcg"]

PRECISIONS = ("float64", "mixed")
GRAM_CHUNK = 16_384
"""Columns per chunk of the one-triangle Gram product (`gram_by_blocks`)."""


class WideOptions(eqx.Module):
    """Internal options of the wide solver (static under `jit`).

    Attributes:
        precision: `"mixed"` (float32 Gram matrix and CG products, float64 residuals,
            factorisation and crossover; the default) or `"float64"`. Ignored (float32
            throughout) for float32 input.
        crossover_tol: the interior point tries a crossover once its relative residuals
            and gap are all below this.
        crossover_pivots: simplex pivots a failed crossover may take before the interior
            point continues (`_repivot`).
        cg_max_iter: CG iterations per normal-equation solve.
        refine_steps: mixed mode: iterative-refinement steps (a float64 residual, a float32
            CG correction) per normal-equation solve once the requested CG accuracy is below
            the float32 floor.
        block: row-block size of the one-triangle Gram product.
    """

    precision: str = eqx.field(static=True, default="mixed")
    crossover_tol: float = eqx.field(static=True, default=1e-3)
    crossover_pivots: int = eqx.field(static=True, default=8)
    cg_max_iter: int = eqx.field(static=True, default=200)
    block: int = eqx.field(static=True, default=512)
    refine_steps: int = eqx.field(static=True, default=6)


REFINE_FLOOR = 1e-11
"""Mixed mode: the smallest relative residual asked of the refined normal-equation solve."""

DEFAULT_OPTIONS = WideOptions()


class Wide(eqx.Module):
    """Options of the wide solver (`method="wide"` of `linprog`/`pcm`): interior point with
    preconditioned CG and verified crossover (module docstring).

    Attributes:
        tol: relative tolerance on the primal and dual residuals and the gap; `None` means
            `1e-9` in float64 and `1e-5` in float32. Traced.
        max_iter: interior-point iteration limit (static).
        precision: `"mixed"` (default; float32 Gram matrix and CG products, everything that
            decides the answer in float64) or `"float64"`; float32 input runs in float32.
    """

    tol: float | jax.Array | None = None
    max_iter: int = eqx.field(static=True, default=100)
    precision: str = eqx.field(static=True, default="mixed")
    name: ClassVar[str] = "wide"

    def default_tol(self, dtype) -> float:
        return 1e-9 if jnp.dtype(dtype) == jnp.float64 else 1e-5

    def solve(self, op, c, b, lower, upper) -> LPRaw:
        return wide_solve(op, c, b, lower, upper, tol=self.tol, max_iter=self.max_iter,
                          options=WideOptions(precision=self.precision))


class WideF64(Wide):
    """`Wide` in float64 throughout (`method="wide-f64"`)."""

    precision: str = eqx.field(static=True, default="float64")
    name: ClassVar[str] = "wide-f64"


def is_wide(m: int, n: int) -> bool:
    """Whether `linprog`/`pcm` should use the wide solver for an (m, n) constraint matrix:
    at least 20,000 columns and at most one row per 20 columns."""
    return n >= 20_000 and 20 * m <= n


RUNTIME_BYTES = 1_000_000_000
"""Resident memory of a JAX process around a wide solve that does not scale with the
problem (runtime, compiled code, allocator slack; measured 0.86 GB at (2048, 80k))."""


def wide_memory_bytes(m: int, n: int, itemsize: int = 8, precision: str = "mixed") -> int:
    r"""Estimate of the peak resident memory (bytes) of a process running the wide solver
    on an (m, n) base matrix (PCM: m = features, n = N pairs) with data of `itemsize` bytes.

    $$
    \text{peak} \approx R + D + D_{32} + D_{64}/4 + 12 \cdot 8m^2 + 1.25\, m\,c\,s + 40 \cdot 8n,
    $$

    with $R$ = `RUNTIME_BYTES`, $D = mn\cdot$`itemsize` the caller's matrix (shared with the
    solver, never copied: scalings are lazy), $D_{32} = 4mn$ its float32 copy in the mixed
    mode, $D_{64}/4$ a quarter-size transient of the float64 mode, about twelve m x m
    float64 matrices (Gram matrix, preconditioner, its Cholesky factor, crossover
    factors), the column chunks of the Gram product ($c$ = 16,384 columns of
    $s$-byte working precision) and length-n work vectors. The coefficients come from
    XLA's buffer assignment (`compiled.memory_analysis()`) at (512, 40k), (2048, 80k) and
    (4096, 160k) in the three modes, and agree with measured peak RSS (`/usr/bin/time -v`)
    of `pcm` at (2048, 80k) and (4096, 40k) to within 5% (docs/pcm.md).
    """
    data = m * n * itemsize
    mixed = precision == "mixed" and itemsize == 8
    work = 4 if (mixed or itemsize == 4) else itemsize
    copy = m * n * 4 if mixed else 0
    f64 = data // 4 if (itemsize == 8 and not mixed) else 0
    chunk = min(n, GRAM_CHUNK)
    return int(RUNTIME_BYTES + data + copy + f64 + 12 * 8 * m * m + 1.25 * m * chunk * work
               + 40 * 8 * n)


def available_memory_bytes() -> int:
    """Memory available to this process now (`MemAvailable` of `/proc/meminfo`, else the
    physical memory)."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


def check_wide_memory(m: int, n: int, itemsize: int = 8, precision: str = "mixed",
                      available: int | None = None) -> int:
    """Raise `MemoryError` *before allocating* when the wide solver's estimated peak memory
    (`wide_memory_bytes`) on an (m, n) base matrix exceeds `available` (default: what the
    system has available now: `MemAvailable`; conservative in a process that already holds
    the JAX runtime, which the estimate counts again). Returns the estimate in bytes."""
    need = wide_memory_bytes(m, n, itemsize, precision)
    if available is None:
        available = available_memory_bytes()
    if need > available:
        raise MemoryError(
            f"the wide LP solver on a {m} x {n} matrix ({jnp.dtype(f'f{itemsize}').name}, "
            f"precision={precision!r}) needs about {need / 2**30:.1f} GB; only "
            f"{available / 2**30:.1f} GB is available")
    return need


def gram_by_blocks(A: jax.Array, block: int = 512, weights: jax.Array | None = None,
                   chunk: int = GRAM_CHUNK) -> jax.Array:
    r"""$A\,\operatorname{diag}(w)\,A^T$ (m x m; $w = 1$ when `weights` is `None`) by blocks of
    one triangle (about half the flops of a GEMM), without copying `A`.

    Columns are taken `chunk` at a time (a `fori_loop` over column slices, so the only
    transients are m x `chunk`); within a chunk, rows are split into blocks of `block` and
    only the blocks $(i, j)$ with $j \ge i$ are multiplied (one product
    $A_{i,J} A_{i:,J}^T$ per block row), the lower triangle mirrored.
    """
    m, n = A.shape

    def tri(Ac, wc):
        Aw = Ac if wc is None else Ac * wc.astype(Ac.dtype)
        if m <= block:
            return Aw @ Ac.T
        out = jnp.zeros((m, m), A.dtype)
        for i in range(0, m, block):
            prod = Aw[i:i + block] @ Ac[i:].T            # blocks (i, j >= i)
            out = out.at[i:i + block, i:].set(prod)
            out = out.at[i + block:, i:i + block].set(prod[:, block:].T)
        return out

    if n <= chunk:
        return tri(A, weights)
    k = n // chunk

    def body(j, acc):
        Ac = lax.dynamic_slice_in_dim(A, j * chunk, chunk, axis=1)
        wc = None if weights is None else lax.dynamic_slice_in_dim(weights, j * chunk, chunk)
        return acc + tri(Ac, wc)

    acc = lax.fori_loop(0, k, body, jnp.zeros((m, m), A.dtype))
    if k * chunk < n:
        acc = acc + tri(A[:, k * chunk:], None if weights is None else weights[k * chunk:])
    return acc


class _Columns(NamedTuple):
    """The operator seen as `A = diag(row) base diag(col) * sign` on folded columns (pair or
    dense); `row`/`col` are the operator's lazy scalings (`None` = 1)."""

    base: jax.Array      # (m, nb): Φ for the pair operator, A for a dense one
    pair: bool
    row: jax.Array | None
    col: jax.Array | None

    def fold(self, t):
        if self.pair:
            nb = self.base.shape[1]
            return t[:nb] + t[nb:]
        return t

    def gather(self, idx):
        nb = self.base.shape[1]
        j = idx % nb if self.pair else idx
        cols = self.base[:, j]
        if self.col is not None:
            cols = cols * self.col[j]
        if self.row is not None:
            cols = self.row[:, None] * cols
        if self.pair:
            return jnp.where(idx < nb, 1.0, -1.0).astype(cols.dtype) * cols
        return cols

    def weights(self, d):
        """Folded column weights `d` times the squared column scaling."""
        return d if self.col is None else d * self.col ** 2


def _columns(op) -> _Columns:
    if isinstance(op, PairOperator):
        return _Columns(op.Phi, True, op.row, op.col)
    if isinstance(op, DenseOperator):
        return _Columns(op.A, False, op.row, op.col)
    raise TypeError(f"op must be a DenseOperator or a PairOperator; got {type(op).__name__}")


class _State(NamedTuple):
    x: jax.Array
    sl: jax.Array
    su: jax.Array
    y: jax.Array
    zl: jax.Array
    zu: jax.Array
    it: jax.Array
    status: jax.Array
    pres: jax.Array
    dres: jax.Array
    gap: jax.Array
    cg: jax.Array         # total CG iterations
    xo: jax.Array         # crossover result (valid when status == SUCCESS and crossed)
    yo: jax.Array
    zlo: jax.Array
    zuo: jax.Array
    crossed: jax.Array
    ax: jax.Array         # A x and A^T y of the current iterate
    aty: jax.Array
    free: jax.Array       # complementarity classification of the previous iterate


def _inf(v):
    return jnp.max(jnp.abs(v), initial=0.0)


def _measures(c, b, bd, x, y, zl, zu, ax, aty):
    """KKT measures from precomputed `A x` and `A^T y` (no pass over `A`)."""
    return kkt_measures_from_products(c, b, bd, x, y, zl, zu, ax, aty)[:3] + (b - ax,)


def primal_tolerance(op, b, x, tol, backward: bool):
    r"""The tolerance on the relative primal residual $\|b - Ax\|_\infty / (1 + \|b\|_\infty)$.

    In float64 (`backward=False`) it is `tol`. In float32 the residual of a computed
    $Ax$ cannot fall below the rounding error of the product, about
    $\varepsilon_{32}\,\||A||x|\|_\infty$, which at PCM's paper size exceeds $10^{-5}(1+\|b\|)$
    (it grows with the number of columns and with $\|x\|$); the test is then the normwise
    backward error $\|b - Ax\|_\infty / (1 + \|b\|_\infty + \||A||x|\|_\infty) \le$ `tol`
    (Rigal--Gaches: $x$ solves $A' x = b'$ exactly with $|A'-A|$, $|b'-b|$ within `tol`
    relative), i.e. the tolerance
    $\text{tol}\,(1 + \||A||x|\|_\infty / (1 + \|b\|_\infty))$. One more pass over $A$.
    """
    if not backward:
        return tol
    return tol * (1.0 + _inf(op.abs_matvec(x)) / (1.0 + _inf(b)))


def _max_step(s, ds, mask):
    ratio = jnp.where(mask & (ds < 0), -s / jnp.where(ds < 0, ds, -1.0), jnp.inf)
    return jnp.min(ratio, initial=jnp.inf)


def pcg(matvec, psolve, rhs, x0, rtol, max_iter):
    """Preconditioned CG from `x0` to `||r|| <= rtol ||rhs||` (at most `max_iter` steps)."""
    r0 = rhs - matvec(x0)
    z0 = psolve(r0)
    target = rtol * jnp.sqrt(rhs @ rhs)

    def cond(s):
        x, r, z, p, rz, k = s
        return (jnp.sqrt(r @ r) > target) & (k < max_iter)

    def body(s):
        x, r, z, p, rz, k = s
        q = matvec(p)
        a = rz / jnp.where(p @ q != 0, p @ q, 1.0)
        x = x + a * p
        r = r - a * q
        z = psolve(r)
        rzn = r @ z
        p = z + (rzn / jnp.where(rz != 0, rz, 1.0)) * p
        return x, r, z, p, rzn, k + 1

    x, r, z, p, rz, k = lax.while_loop(cond, body, (x0, r0, z0, z0, r0 @ z0, jnp.asarray(0)))
    return x, k


def refined_pcg(matvec, matvec64, psolve, rhs, x0, rtol, refine_rtol, steps, max_iter):
    r"""Mixed-precision iterative refinement of $Mx = $ `rhs`: CG with the low-precision
    product `matvec` to `rtol` (its floor), then while the residual against the exact
    product `matvec64` exceeds `refine_rtol` $\|$`rhs`$\|$ (at most `steps` times): CG on
    that residual, started from zero, to the accuracy still missing (never below `rtol`),
    and the correction added. Each step costs one exact product and a few cheap ones; the
    error contracts while `rtol` times the condition of the preconditioned system stays
    below one. Returns the solution and the total CG iterations."""
    x, k = pcg(matvec, psolve, rhs, x0, rtol, max_iter)
    target = refine_rtol * jnp.sqrt(rhs @ rhs)
    tiny = jnp.finfo(rhs.dtype).tiny

    def more(st):
        _, r, _, j = st
        return (jnp.sqrt(r @ r) > target) & (j < steps)

    def refine(st):
        x, r, k, j = st
        inner = jnp.clip(target / jnp.maximum(jnp.sqrt(r @ r), tiny), rtol, 1e-2)
        dx, kk = pcg(matvec, psolve, r, jnp.zeros_like(r), inner, max_iter)
        x = x + dx
        return x, rhs - matvec64(x), k + kk, j + 1

    x, _, k, _ = lax.while_loop(more, refine, (x, rhs - matvec64(x), k, jnp.asarray(0)))
    return x, k


class _Split(NamedTuple):
    """A crossover's classification: variables at their lower / upper bound, and the score
    that ranks the candidates for the m-column basis (free ones first)."""
    at_lo: jax.Array
    at_hi: jax.Array
    score: jax.Array


def _split(bd, sl, su, zl, zu) -> _Split:
    """The complementarity rule: at a bound when its slack is below its multiplier. The
    score is the slack-to-multiplier ratio: >= 1 for the free variables, then the most
    ambiguous ones at a bound."""
    hl, hu, fixed = bd.has_lo, bd.has_hi, bd.fixed
    tiny = jnp.finfo(sl.dtype).tiny
    at_lo = (hl & (sl < zl)) | fixed
    at_hi = hu & (su < zu) & ~at_lo
    rl = jnp.where(hl, sl / jnp.maximum(zl, tiny), jnp.inf)
    ru = jnp.where(hu, su / jnp.maximum(zu, tiny), jnp.inf)
    return _Split(at_lo, at_hi, jnp.where(fixed, -1.0, jnp.minimum(rl, ru)))


class _Pivot(NamedTuple):
    """One simplex pivot proposed by a failed crossover (`_crossover`)."""
    found: jax.Array      # a pivot exists (a wrong-sign reduced cost / an entering variable)
    enter: jax.Array      # the most violated one
    leave: jax.Array      # the basic variable the ratio test stops at
    leave_hi: jax.Array   # ... at its upper bound
    flip: jax.Array       # the entering variable reaches its other bound first


def _repivot(split: _Split, bd, basic, x_basic, pivot: _Pivot) -> _Split:
    """The next split after a failed crossover: one simplex pivot (`_crossover` proposes
    it, primal or dual). The entering variable joins the basis, the leaving one goes to the
    bound it reaches; or the entering one flips to its other bound."""
    n = basic.shape[0]
    e = jnp.zeros((n,), bool).at[pivot.enter].set(pivot.found)
    flip = e & pivot.flip
    enter = e & ~flip
    lv = jnp.zeros((n,), bool).at[pivot.leave].set(jnp.any(enter))
    leave_lo, leave_hi = lv & ~pivot.leave_hi, lv & pivot.leave_hi
    at_lo = (split.at_lo & ~enter & ~flip & ~leave_hi) | leave_lo | (flip & split.at_hi)
    at_hi = (split.at_hi & ~enter & ~flip & ~leave_lo) | leave_hi | (flip & split.at_lo)
    top = jnp.max(jnp.where(jnp.isfinite(split.score), split.score, 0.0), initial=1.0)
    score = jnp.where(enter, 2.0 * top + 2.0, jnp.where(lv, -0.5, split.score))
    return _Split(at_lo, at_hi, score)


def _crossover(op, cols, c, b, bd, x, sl, su, y, split: _Split, tol, backward, face=False):
    """Exact solve on the free set of `split`, then KKT verification. With `face` (traced
    bool) free variables beyond the m kept ones keep their interior value (a point of the
    optimal face) instead of going to their nearer bound (a vertex). Returns the verdict,
    the point and multipliers, their measures, and `(basic, x_basic, pivot)`: the basis,
    the exact solve before clipping, and the proposed simplex pivot (`_Pivot`)."""
    m = b.shape[0]
    hl, hu, fixed = bd.has_lo, bd.has_hi, bd.fixed
    at_lo, at_hi, score = split
    free = ~(at_lo | at_hi)
    # the m variables of highest score: the free ones first, then the most ambiguous ones
    # at a bound. All m enter the primal solve (a square basis, so a near-degenerate vertex
    # -- a basic variable within rounding of its bound, classified at it -- still gets
    # A x = b exactly; a variable truly at its bound comes out at it); only the
    # classified-free ones fix the duals.
    _, idx = lax.top_k(score, m)
    mask = free[idx]
    pmask = ~fixed[idx]
    # free variables beyond the m kept ones go to their nearer finite bound (a vertex), or
    # with `face` keep their interior value, the kept m restoring A x = b
    near_hi = hu & (~hl | (su < sl))
    extra = jnp.where(near_hi, bd.hi, jnp.where(hl, bd.lo, x))
    extra = jnp.where(face, jnp.clip(x, jnp.where(hl, bd.lo, -jnp.inf),
                                     jnp.where(hu, bd.hi, jnp.inf)), extra)
    xn = jnp.where(at_lo, bd.lo, jnp.where(at_hi, bd.hi, extra))
    xn = xn.at[idx].set(jnp.where(pmask, 0.0, xn[idx]))
    B = cols.gather(idx) * pmask.astype(x.dtype)
    G0 = B.T @ B
    scale = 1.0 + jnp.max(jnp.diag(G0), initial=0.0)
    ridge = 1e3 * jnp.finfo(x.dtype).eps * scale * jnp.eye(m, dtype=x.dtype)
    L = jnp.linalg.cholesky(G0 + jnp.diag(jnp.where(pmask, 0.0, scale)) + ridge)
    mf = mask.astype(x.dtype)
    Ld = jnp.linalg.cholesky(G0 * mf[:, None] * mf[None, :]
                             + jnp.diag(jnp.where(mask, 0.0, scale)) + ridge)

    def gsolve(v):
        return jax.scipy.linalg.cho_solve((L, True), v)

    def dsolve(v):
        return jax.scipy.linalg.cho_solve((Ld, True), v)

    r = b - op.matvec(xn)
    xb = gsolve(B.T @ r)
    for _ in range(2):                       # refinement of the semi-normal equations
        xb = xb + gsolve(B.T @ (r - B @ xb))
    Bd = B * mf
    cb = jnp.where(mask, c[idx], 0.0)
    yy = y
    for _ in range(3):
        yy = yy + Bd @ dsolve(cb - Bd.T @ yy)
    xo = xn.at[idx].set(jnp.where(pmask, xb, xn[idx]))
    basic = jnp.zeros(x.shape, bool).at[idx].set(pmask)
    x_basic = xo
    xc = jnp.where(fixed, bd.lo, jnp.clip(xo, jnp.where(hl, bd.lo, -jnp.inf),
                                          jnp.where(hu, bd.hi, jnp.inf)))
    # A x of the clipped point without a pass: A x_N + B x_B, corrected for the clipping
    ax = (b - r) + B @ jnp.where(pmask, xc[idx], 0.0)
    xo = xc
    aty = op.rmatvec(yy)
    red = c - aty
    zlo = jnp.where(hl | fixed, jnp.maximum(red, 0.0), 0.0)
    zuo = jnp.where(hu | fixed, jnp.maximum(-red, 0.0), 0.0)
    pres, dres, gap, _ = _measures(c, b, bd, xo, yy, zlo, zuo, ax, aty)
    ok = (pres <= primal_tolerance(op, b, xo, tol, backward)) & (dres <= tol) \
        & (gap <= tol) & jnp.all(jnp.isfinite(xo)) \
        & jnp.all(jnp.isfinite(yy))
    # for a pivot: the variable at a bound with the largest wrong-sign reduced cost enters
    # (moving off its bound), and the ratio test picks the basic variable that reaches a
    # bound first as it moves (or the entering one reaches its other bound: a bound flip)
    thr = 1e-2 * jnp.sqrt(jnp.finfo(x.dtype).eps) * (1.0 + jnp.max(jnp.abs(c), initial=0.0))
    wrong = ~basic & ~fixed & ((at_lo & hl & (red < -thr)) | (at_hi & hu & (red > thr)))
    e = jnp.argmax(jnp.where(wrong, jnp.abs(red), -1.0))
    ae = cols.gather(e[None])[:, 0]
    dirn = gsolve(B.T @ ae)
    dirn = dirn + gsolve(B.T @ (ae - B @ dirn))
    rate = jnp.where(at_lo[e], -dirn, dirn) * pmask      # d x_B / d t as x_e leaves its bound
    xbv, lo_b, hi_b = x_basic[idx], bd.lo[idx], bd.hi[idx]
    tiny = jnp.finfo(x.dtype).tiny
    t = jnp.where((rate < -tiny) & hl[idx], (xbv - lo_b) / jnp.where(rate < 0, -rate, 1.0),
                  jnp.where((rate > tiny) & hu[idx], (hi_b - xbv) / jnp.where(rate > 0, rate,
                                                                              1.0), jnp.inf))
    t = jnp.maximum(t, 0.0)
    k = jnp.argmin(t)
    width = jnp.where(hl[e] & hu[e], bd.hi[e] - bd.lo[e], jnp.inf)
    bounded = jnp.isfinite(t[k]) | jnp.isfinite(width)     # else a ray: no pivot to take
    primal = _Pivot(jnp.any(wrong) & bounded, e, idx[k], rate[k] > 0,
                    jnp.isfinite(width) & (width <= t[k]))
    # if the basis is primal infeasible, a dual simplex pivot instead: the basic variable
    # farthest outside its box leaves at the bound it violates; the entering one is the
    # variable at a bound that moves it back, by the dual ratio test min |red_j / alpha_j|
    # over row alpha = e_k^T B^{-1} A (one pass)
    under = jnp.where(pmask & hl[idx], lo_b - xbv, 0.0)
    over = jnp.where(pmask & hu[idx], xbv - hi_b, 0.0)
    kd = jnp.argmax(jnp.maximum(under, over))
    infeasible = jnp.maximum(under[kd], over[kd]) > 0
    up = under[kd] >= over[kd]                             # must rise to its lower bound
    w = B @ gsolve(jnp.zeros((m,), x.dtype).at[kd].set(1.0))
    alpha = op.rmatvec(w)
    helps = jnp.where(up, -alpha, alpha)                   # > 0: raising x_j helps
    cand = ~basic & ~fixed & ((at_lo & hl & (helps > tiny)) | (at_hi & hu & (helps < -tiny)))
    ratio = jnp.where(cand, jnp.abs(red) / jnp.maximum(jnp.abs(alpha), tiny), jnp.inf)
    jd = jnp.argmin(ratio)
    dual = _Pivot(infeasible & jnp.any(cand), jd, idx[kd], ~up, jnp.asarray(False))
    pivot = jax.tree.map(lambda a, b: jnp.where(infeasible, a, b), dual, primal)
    return (ok, xo, yy, zlo, zuo, pres, dres, gap), (basic, x_basic, pivot)


def _pivoting_crossover(op, cols, c, b, bd, x, sl, su, y, zl, zu, tol, backward,
                        pivots: int):
    """`_crossover` on the complementarity split; while it fails, up to `pivots` block
    pivots (`_repivot`). Returns the last crossover's outputs and the pivots taken."""
    split = _split(bd, sl, su, zl, zu)
    first, info = _crossover(op, cols, c, b, bd, x, sl, su, y, split, tol, backward)

    def more(st):
        return ~st[1][0] & (st[0] < pivots)

    def pivot(st):
        k, _, split, info = st
        split = _repivot(split, bd, *info)
        res, info = _crossover(op, cols, c, b, bd, x, sl, su, y, split, tol, backward)
        return k + 1, res, split, info

    k, res, _, _ = lax.while_loop(more, pivot, (jnp.asarray(0), first, split, info))
    return res, k


def crossover_raw(op, c, b, lower, upper, x, y, z_lower, z_upper, *, tol,
                  pivots: int) -> LPRaw:
    """The core of `jaxpoison.solvers.crossover` (no validation; traceable): the wide
    solver's pivoting crossover on a point from any solver. `status` is `SUCCESS` when the
    point passed its verification, else `MAX_ITERATIONS` (the pivots ran out);
    `iterations` counts the pivots taken."""
    bd = make_bounds(lower, upper)
    sl = jnp.where(bd.has_lo, jnp.maximum(x - bd.lo, 0.0), 1.0)
    su = jnp.where(bd.has_hi, jnp.maximum(bd.hi - x, 0.0), 1.0)
    (ok, xo, yo, zl, zu, pres, dres, gap), k = _pivoting_crossover(
        op, _columns(op), c, b, bd, x, sl, su, y, z_lower, z_upper, tol,
        c.dtype != jnp.float64, pivots)
    status = jnp.where(ok, Status.SUCCESS, Status.MAX_ITERATIONS).astype(jnp.int32)
    return LPRaw(xo, yo, zl, zu, status, k.astype(jnp.int32), pres, dres, gap)


def wide_solve(op, c, b, lower, upper, *, tol, max_iter: int,
               options: WideOptions | None = None) -> LPRaw:
    """Run the wide solver on `min c^T x, op x = b, lower <= x <= upper`.

    `op` is a `._lp_ops.DenseOperator` or `PairOperator`. Pure and traceable
    (`jit`/`vmap`); returns the core `LPRaw` (the public wrappers build results).
    """
    return wide_solve_info(op, c, b, lower, upper, tol=tol, max_iter=max_iter,
                           options=options)[0]


def wide_solve_info(op, c, b, lower, upper, *, tol, max_iter: int,
                    options: WideOptions | None = None):
    """`wide_solve` plus diagnostics: `(raw, cg_iterations, crossed)` where `crossed` says
    whether the answer is a verified crossover vertex."""
    options = DEFAULT_OPTIONS if options is None else options
    dtype = c.dtype
    if options.precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}; got {options.precision!r}")
    eps = jnp.finfo(dtype).eps
    floor = jnp.sqrt(jnp.finfo(dtype).tiny)
    m = b.shape[0]
    cols = _columns(op)
    nb = cols.base.shape[1]
    k_heavy = min(2 * m, nb)
    low = options.precision == "mixed" and dtype == jnp.float64
    backward = dtype != jnp.float64          # float32: primal test by backward error
    work = cols.base.astype(jnp.float32) if low else cols.base
    wrow = None if cols.row is None else cols.row.astype(work.dtype)
    gram = gram_by_blocks(work, options.block, cols.weights(jnp.ones((nb,), dtype))
                          if cols.col is not None else None).astype(dtype)
    if cols.row is not None:
        gram = cols.row[:, None] * gram * cols.row[None, :]

    bd = make_bounds(lower, upper)
    a_max = abs_max(op)        # loop-invariant, for the infeasibility certificates
    hl, hu, fixed = bd.has_lo, bd.has_hi, bd.fixed
    nbnd = jnp.maximum(jnp.sum(hl) + jnp.sum(hu), 1)
    rho = jnp.sqrt(eps) * 1e-2
    delta = eps ** 0.75
    eta = 0.99 if dtype == jnp.float64 else 0.95
    cscale = 1.0 + jnp.max(jnp.abs(c), initial=0.0)
    cg_floor = 1e-10 if dtype == jnp.float64 else 1e-6
    if low:
        cg_floor = 1e-6

    both = hl & hu
    x0 = jnp.where(both, 0.5 * (bd.lo + bd.hi),
                   jnp.where(hl, bd.lo + 1.0, jnp.where(hu, bd.hi - 1.0, 0.0)))
    x0 = jnp.where(fixed, bd.lo, x0)
    width = jnp.where(both, bd.hi - bd.lo, 2.0)
    sl0 = jnp.where(hl, 0.5 * width, 1.0)
    su0 = jnp.where(hu, 0.5 * width, 1.0)
    zl0 = jnp.where(hl, cscale, 0.0)
    zu0 = jnp.where(hu, cscale, 0.0)
    y0 = jnp.zeros((m,), dtype)

    ax0, aty0 = op.matvec(x0), op.rmatvec(y0)
    p0, d0, g0, _ = _measures(c, b, bd, x0, y0, zl0, zu0, ax0, aty0)
    zero = jnp.asarray(0, jnp.int32)
    init = _State(x0, sl0, su0, y0, zl0, zu0, zero,
                  jnp.asarray(Status.MAX_ITERATIONS, jnp.int32), p0, d0, g0, zero,
                  x0, y0, zl0, zu0, jnp.asarray(False), ax0, aty0,
                  jnp.zeros(c.shape, bool))

    def cond(s: _State):
        return (s.status == Status.MAX_ITERATIONS) & (s.it < max_iter)

    def body(s: _State):
        x, sl, su, y, zl, zu = s.x, s.sl, s.su, s.y, s.zl, s.zu
        rp = b - s.ax
        rd = jnp.where(fixed, 0.0, c - s.aty - zl + zu)
        mu = (jnp.sum(jnp.where(hl, sl * zl, 0.0)) + jnp.sum(jnp.where(hu, su * zu, 0.0))) \
            / nbnd
        qinv = jnp.where(hl, zl / sl, 0.0) + jnp.where(hu, zu / su, 0.0) + rho
        theta = jnp.where(fixed, 0.0, 1.0 / qinv)
        d = cols.fold(theta)
        # heavy columns exactly, the rest through the Gram matrix at their mean weight
        dh, idx = lax.top_k(d, k_heavy)
        rest = jnp.maximum(jnp.sum(d) - jnp.sum(dh), 0.0) / max(nb - k_heavy, 1)
        Bh = cols.gather(idx)
        P = rest * gram + (Bh * (dh - rest)) @ Bh.T
        dmax = jnp.max(jnp.diag(P), initial=0.0)
        reg = delta * (1.0 + dmax)
        P = P + reg * jnp.eye(m, dtype=dtype)
        L = jnp.linalg.cholesky(P)
        dw = cols.weights(d).astype(work.dtype)

        def nmv(v):
            vw = v.astype(work.dtype)
            vw = vw if wrow is None else wrow * vw
            t = work @ (dw * (vw @ work))
            t = t if wrow is None else wrow * t
            return t.astype(dtype) + reg * v

        def psolve(r):
            return jax.scipy.linalg.cho_solve((L, True), r)

        want = 0.01 * jnp.maximum(jnp.maximum(s.pres, s.dres), s.gap)
        rtol = jnp.clip(want, cg_floor, 1e-2)

        def nmv64(v):
            return op.matvec(theta * op.rmatvec(v)) + reg * v

        def normal_solve(rhs, dy0, refine):
            if not (low and refine):
                return pcg(nmv, psolve, rhs, dy0, rtol, options.cg_max_iter)
            # mixed mode: the float32 CG stops at its floor (relative residual 1e-6 of a
            # right-hand side that grows like 1/mu), and that error would become the primal
            # residual of the step; below the floor, refine against the float64 operator.
            # Only the corrector's solve: the predictor's direction only sets the centring
            # and the second-order term, the step taken is the corrector's
            return lax.cond(
                want < cg_floor,
                lambda: refined_pcg(nmv, nmv64, psolve, rhs, dy0, rtol,
                                     jnp.clip(want, REFINE_FLOOR, 1e-2),
                                     options.refine_steps, options.cg_max_iter),
                lambda: pcg(nmv, psolve, rhs, dy0, rtol, options.cg_max_iter))

        def newton(rcl, rcu, dy0, refine):
            rhat = rd - jnp.where(hl, rcl / sl, 0.0) + jnp.where(hu, rcu / su, 0.0)
            rhs = rp + op.matvec(theta * rhat)
            dy, k = normal_solve(rhs, dy0, refine)
            atdy = op.rmatvec(dy)
            dx = theta * (atdy - rhat)
            dzl = jnp.where(hl, (rcl - zl * dx) / sl, 0.0)
            dzu = jnp.where(hu, (rcu + zu * dx) / su, 0.0)
            return dx, dy, dzl, dzu, k, atdy

        def steps(dx, dzl, dzu):
            ap = jnp.minimum(_max_step(sl, dx, hl), _max_step(su, -dx, hu))
            ad = jnp.minimum(_max_step(zl, dzl, hl), _max_step(zu, dzu, hu))
            return ap, ad

        dxa, dya, dzla, dzua, k1, _ = newton(-sl * zl, -su * zu, jnp.zeros_like(y),
                                              refine=False)
        apa, ada = steps(dxa, dzla, dzua)
        apa, ada = jnp.minimum(1.0, apa), jnp.minimum(1.0, ada)
        mu_aff = (jnp.sum(jnp.where(hl, (sl + apa * dxa) * (zl + ada * dzla), 0.0))
                  + jnp.sum(jnp.where(hu, (su - apa * dxa) * (zu + ada * dzua), 0.0))) / nbnd
        sigma = jnp.clip((mu_aff / jnp.maximum(mu, floor)) ** 3, 0.0, 1.0)
        rcl = sigma * mu - sl * zl - dxa * dzla
        rcu = sigma * mu - su * zu + dxa * dzua
        dx, dy, dzl, dzu, k2, atdy = newton(rcl, rcu, dya, refine=True)
        ap, ad = steps(dx, dzl, dzu)
        ap, ad = jnp.minimum(1.0, eta * ap), jnp.minimum(1.0, eta * ad)

        xn, sln, sun, yn, zln, zun, finite = interior_step(
            x, sl, su, y, zl, zu, dx, dy, dzl, dzu, ap, ad, hl, hu, floor)
        axn = op.matvec(xn)
        atyn = jnp.where(finite, s.aty + ad * atdy, s.aty)
        pres, dres, gap, _ = _measures(c, b, bd, xn, yn, zln, zun, axn, atyn)
        ptol_n = primal_tolerance(op, b, xn, tol, backward)
        conv = (pres <= ptol_n) & (dres <= tol) & (gap <= tol)
        # try the crossover when near optimal and the free set has not changed since the
        # previous iterate (or once the interior point alone is within 100 tol)
        free_now = ~((hl & (sln < zln)) | (hu & (sun < zun)) | fixed)
        stable = jnp.all(free_now == s.free) | (jnp.maximum(jnp.maximum(pres, dres), gap)
                                                <= 100 * tol)
        near = stable & (pres <= options.crossover_tol) & (dres <= options.crossover_tol) \
            & (gap <= options.crossover_tol) & finite

        def try_cross(_):
            # a failed crossover pivots (an iterate whose residuals stall -- the mixed
            # mode's float32 CG floor -- classifies a few variables wrongly)
            first, _ = _pivoting_crossover(op, cols, c, b, bd, xn, sln, sun, yn, zln, zun,
                                           tol, backward, options.crossover_pivots)
            if not backward:
                return first
            # float32: the iterates stall (rounding of the bound multipliers) before the
            # classification is clean; once the interior point is within 10 tol, a failed
            # vertex crossover is followed by a point of the optimal face (verified alike)
            late = (pres <= 10 * ptol_n) & (dres <= 10 * tol) & (gap <= 10 * tol)
            return lax.cond(first[0] | ~late, lambda _: first,
                            lambda _: _crossover(op, cols, c, b, bd, xn, sln, sun, yn,
                                                 _split(bd, sln, sun, zln, zun), tol,
                                                 backward, face=True)[0], None)

        def no_cross(_):
            return (jnp.asarray(False), xn, yn, zln, zun, pres, dres, gap)

        ok, xo, yo, zlo, zuo, po, do, go = lax.cond(near, try_cross, no_cross, None)
        def certificates(_):
            return (primal_infeasibility_certificate(op, b, bd, yn, jnp.sqrt(tol), a_max),
                    dual_infeasibility_certificate(op, c, bd, xn, sln, sun, jnp.sqrt(tol),
                                                   a_max))

        infeas, unb = lax.cond(near, lambda _: (jnp.asarray(False), jnp.asarray(False)),
                               certificates, None)
        status = jnp.where(~finite, Status.NUMERICAL_ERROR,
                           jnp.where(ok | conv, Status.SUCCESS,
                                     jnp.where(infeas, Status.INFEASIBLE,
                                               jnp.where(unb, Status.UNBOUNDED,
                                                         Status.MAX_ITERATIONS))))
        pres, dres, gap = (jnp.where(ok, po, pres), jnp.where(ok, do, dres),
                           jnp.where(ok, go, gap))
        return _State(xn, sln, sun, yn, zln, zun, s.it + 1, status.astype(jnp.int32),
                      pres, dres, gap, s.cg + k1 + k2, xo, yo, zlo, zuo, ok, axn, atyn, free_now)

    s = lax.while_loop(cond, body, init)
    red = c - op.rmatvec(s.y)
    zl = jnp.where(fixed, jnp.maximum(red, 0.0), s.zl)
    zu = jnp.where(fixed, jnp.maximum(-red, 0.0), s.zu)
    x = jnp.where(fixed, bd.lo, s.x)
    x = jnp.where(s.crossed, s.xo, x)
    y = jnp.where(s.crossed, s.yo, s.y)
    zl = jnp.where(s.crossed, s.zlo, zl)
    zu = jnp.where(s.crossed, s.zuo, zu)
    return LPRaw(x, y, zl, zu, s.status, s.it, s.pres, s.dres, s.gap), s.cg, s.crossed
