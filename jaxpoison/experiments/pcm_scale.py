"""Recipe `pcm-scale`: PCM at the paper's problem size with the wide LP solver.

The paper (arXiv 2511.09105) solves PCM for reward-model features of a 7B model (n = 4096)
on HH-RLHF-sized preference sets (N = 160,000 pairs). This recipe times `pcm` with the wide
solver (`jaxpoison.solvers.lp_wide`) on a Gaussian Φ and on a low-rank-plus-noise Φ (what
real embedding differences look like), reports time in units of one dense float64 GEMM
$\\Phi\\Phi^T$ of the same shape measured in the same process (a figure that survives a
shared, noisy machine), the solver's own certificate (relative duality gap and primal
residual), the number of fractional labels (a vertex has at most n) and an objective check
against HiGHS on a subproblem HiGHS can finish; it writes a growth table in n and N
(n in `GROWTH_N` at N = 40,000; N in `GROWTH_NN` at n = 512), a least-squares growth fit
with its extrapolation to the paper's size, and a log-log plot. `--quick` runs three small
sizes. The full run starts with the paper's size itself (`paper_cell`: about 11 GB and
5-10 minutes per solve on this 2-core machine, with the cost reduction, the paper's flip
rate and the bounds); `python benchmarks/pcm.py --wide --paper` times the same solve
beside the float32 and float64 modes.
"""

from __future__ import annotations

import functools
import time

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxpoison.attacks.pcm import pcm
from jaxpoison.experiments import RecipeContext, Report, Table, recipe
from jaxpoison.solvers.lp_wide import check_wide_memory

FLIP_RATE = 0.05
PAPER = (4096, 160_000)
GROWTH_N = (256, 512, 1024, 2048)          # n at N = 40,000
GROWTH_NN = (20_000, 40_000, 80_000, 160_000)  # N at n = 512


GEN_BLOCK = 4096


@functools.partial(jax.jit, static_argnums=(0, 1, 2, 3))
def _generate(kind: str, n: int, N: int, dtype, key):
    """Φ generated column block by column block into one buffer (in-place
    `dynamic_update_slice` in a `fori_loop`), so the peak is Φ plus one n x `GEN_BLOCK` block
    instead of several full-size temporaries."""
    block = min(GEN_BLOCK, N)
    nblocks = -(-N // block)
    k1, k2, k3 = jax.random.split(key, 3)
    r = 32
    U = jax.random.normal(k1, (n, r), dtype) if kind == "lowrank" else None

    def body(j, phi):
        start = jnp.minimum(j * block, N - block)
        if kind == "gaussian":
            blk = jax.random.normal(jax.random.fold_in(k2, j), (n, block), dtype)
        else:
            V = jax.random.normal(jax.random.fold_in(k2, j), (r, block), dtype)
            blk = (U @ V) / np.sqrt(r) + 0.3 * jax.random.normal(
                jax.random.fold_in(k3, j), (n, block), dtype)
        return lax.dynamic_update_slice_in_dim(phi, blk, start, axis=1)

    phi = lax.fori_loop(0, nblocks, body, jnp.zeros((n, N), dtype))
    if kind == "lowrank":                   # centre the rows, block by block in place
        mean = jnp.mean(phi, axis=1, keepdims=True)
        full = N // block

        def centre(j, phi):
            blk = lax.dynamic_slice_in_dim(phi, j * block, block, axis=1)
            return lax.dynamic_update_slice_in_dim(phi, blk - mean, j * block, axis=1)

        phi = lax.fori_loop(0, full, centre, phi)
        if full * block < N:
            phi = phi.at[:, full * block:].add(-mean)
    return phi


def scale_instance(kind: str, n: int, N: int, seed: int = 0, dtype=jnp.float64,
                   precision: str = "mixed"):
    """A PCM instance `(Φ, θ_O, θ_A)`: `θ_O = 1`, 5% of the pairs flipped at random.

    `kind` is `"gaussian"` (i.i.d. N(0, 1) entries) or `"lowrank"` (rank-32 signal plus
    0.3-scaled Gaussian noise, rows mean-centred: the spectrum of real embedding
    differences). Generated with `jax.random` directly in `dtype`, one column block at a
    time (peak: Φ plus one block). The memory the wide solver will need for `precision`
    is checked first (`check_wide_memory`: `MemoryError` with the estimate, before
    anything is allocated).
    """
    if kind not in ("gaussian", "lowrank"):
        raise ValueError(f"kind must be 'gaussian' or 'lowrank'; got {kind!r}")
    check_wide_memory(n, N, jnp.dtype(dtype).itemsize, precision)
    key = jax.random.key(seed)
    k_phi, k_flip = jax.random.split(key)
    phi = _generate(kind, n, N, jnp.dtype(dtype), k_phi)
    theta_o = jnp.ones((N,), dtype)
    flip = jax.random.permutation(k_flip, N)[: int(FLIP_RATE * N)]
    theta_a = theta_o.at[flip].set(0.0)
    return phi, theta_o, theta_a


GEMM_MAX_COLS = 20_000


def gemm_seconds(phi, repeats: int = 2, max_cols: int = GEMM_MAX_COLS) -> float:
    """Best of `repeats` timed runs of the dense float64 GEMM $\\Phi\\Phi^T$ (compiled
    ahead, after one untimed warm-up run: the first execution pays one-time costs -- the
    thread pool, the output's first-touch page faults -- that made it up to 4x slower
    than the next at (1000, 100k)). For more than `max_cols` columns the GEMM of the first
    `max_cols` columns is timed and scaled by `N / max_cols` (its cost is linear in N),
    which keeps the reference cheap and without a full-size temporary at the paper's
    size."""
    N = phi.shape[1]
    part = phi if N <= max_cols else phi[:, :max_cols]
    part = part.astype(jnp.float64)
    f = jax.jit(lambda a: a @ a.T).lower(part).compile()
    jax.block_until_ready(f(part))                  # warm-up, untimed
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(f(part))
        best = min(best, time.perf_counter() - t0)
    return best * N / part.shape[1]


_COMPILED: dict = {}


def timed_pcm(phi, theta_o, theta_a, method: str = "wide"):
    """`(compile_seconds, run_seconds, result)` of `pcm` (compiled ahead once per shape,
    dtype and method -- 0 compile seconds when reused -- then run once)."""
    key = (phi.shape, jnp.dtype(phi.dtype).name, method)
    t0 = time.perf_counter()
    if key not in _COMPILED:
        fn = jax.jit(lambda p, o, a: pcm(p, o, a, method=method, throw=False))
        _COMPILED[key] = fn.lower(phi, theta_o, theta_a).compile()
    compiled = _COMPILED[key]
    t_compile = time.perf_counter() - t0
    t0 = time.perf_counter()
    res = jax.block_until_ready(compiled(phi, theta_o, theta_a))
    return t_compile, time.perf_counter() - t0, res


def fractional(theta, tol: float = 1e-9) -> int:
    t = np.asarray(theta)
    return int(np.sum((t > tol) & (t < 1 - tol)))


def highs_cost(phi, theta_o, theta_a) -> float:
    """PCM's optimal cost by HiGHS on the p-q LP (dense; small sizes only)."""
    from scipy.optimize import linprog as highs

    phi, to, ta = (np.asarray(a, np.float64) for a in (phi, theta_o, theta_a))
    N = phi.shape[1]
    r = highs(np.ones(2 * N), A_eq=np.hstack([phi, -phi]), b_eq=phi @ (ta - to),
              bounds=np.stack([np.zeros(2 * N), np.concatenate([1 - to, to])], 1),
              method="highs")
    return float(r.fun) if r.status == 0 else float("nan")


def _timed_row(phi, to, ta, kind: str, method: str) -> tuple[dict, object]:
    """The timed solve of a cell, with its GEMM unit and certificate: `(row, result)`."""
    n, N = phi.shape
    g = gemm_seconds(phi, repeats=1 if n * N > 10**8 else 2)
    tc, tr, res = timed_pcm(phi, to, ta, method)
    row = dict(kind=kind, n=n, N=N, method=method, dtype=jnp.dtype(phi.dtype).name, gemm=g,
               compile=tc, seconds=tr, gemm_units=tr / g, status=int(res.status),
               iterations=int(res.iterations), cost=float(res.cost), gap=float(res.gap),
               primal_residual=float(res.primal_residual), fractional=fractional(res.theta),
               flips=int(res.flips), naive=float(res.naive_cost))
    return row, res


def _highs_check(phi, to, ta, method: str) -> dict:
    """The same solver against HiGHS on a (small) subproblem."""
    ours = pcm(phi, to, ta, method=method, throw=False)
    ref = highs_cost(phi, to, ta)
    return dict(sub_cost=float(ours.cost), highs_cost=ref,
                sub_relerr=abs(float(ours.cost) - ref) / max(abs(ref), 1e-300))


def scale_cell(kind: str, n: int, N: int, seed: int = 0, method: str = "wide",
               dtype=jnp.float64, highs_sub: int | None = None) -> dict:
    """One timed PCM solve with its GEMM unit, certificate and (optionally) a HiGHS check of
    the first `highs_sub` pairs (the same solver on that subproblem against HiGHS)."""
    phi, to, ta = scale_instance(kind, n, N, seed, dtype)
    row, _ = _timed_row(phi, to, ta, kind, method)
    if highs_sub:
        sub = tuple(a[..., :highs_sub] for a in (phi, to, ta))
        del phi
        row.update(highs_sub=highs_sub, **_highs_check(*sub, method))
    return row


PAPER_SUB = (512, 4096)
"""HiGHS check of a paper-size cell: the first 512 features x 4,096 pairs (HiGHS: ~20 s)."""
M_ANNOT = 5
"""Annotations per pair for the paper's flip rate (flipped annotations out of m N)."""


def paper_cell(kind: str, seed: int = 0, size=PAPER, sub=PAPER_SUB) -> dict:
    """The paper-size cell (`size`: n = 4096, N = 160,000) of `pcm-scale`: `scale_cell`'s timing and
    certificate, plus what the paper reports around the optimum -- the cost reduction
    against the attack's own flips (naive), the flip rate as the paper counts it
    (`discretize` to m = 5 annotations: flipped annotations out of m N) beside the touched
    pairs, our lower bound and the paper's Theorem 2 (`pcm_lower_bound`), and our upper
    bound (`pcm_upper_bound`: the null-space line search, and PCM restricted to the 8,000
    flipped pairs solved by the wide solver) -- with the seconds of each, and the same
    solver against HiGHS on the subproblem `sub` (features, pairs). `--quick` runs it at a
    small size."""
    from jaxpoison.attacks import discretize, pcm_lower_bound, pcm_upper_bound

    n, N = size
    phi, to, ta = scale_instance(kind, n, N, seed)
    row, res = _timed_row(phi, to, ta, kind, "wide")
    row.update(flip_rate=float(discretize(res.theta, M_ANNOT, theta_orig=to).flip_rate),
               naive_flip_rate=float(discretize(ta, M_ANNOT, theta_orig=to).flip_rate))
    row["reduction"] = 1.0 - row["cost"] / row["naive"]
    t0 = time.perf_counter()
    lb = jax.block_until_ready(pcm_lower_bound(phi, to, ta, throw=False))
    row.update(lower=float(lb.bound), theorem2=float(lb.theorem2),
               lower_seconds=time.perf_counter() - t0)
    t0 = time.perf_counter()
    ub = jax.block_until_ready(pcm_upper_bound(phi, to, ta, method="wide", throw=False))
    row.update(upper=float(ub.bound), upper_seconds=time.perf_counter() - t0)
    fs, ps = sub
    part = (phi[:fs, :ps], to[:ps], ta[:ps])
    del phi
    row.update(highs_sub=f"{fs}x{ps}", **_highs_check(*part, "wide"))
    return row


def paper_table(rows) -> Table:
    """The paper-size cells as a table (`paper_cell` rows)."""
    return Table(
        "PCM at the paper's size, mixed precision: cost, bounds, certificate",
        ["Φ", "n", "N", "status", "iterations", "solve s", "GEMM s", "GEMM units", "rel. gap",
         "primal res.", "fractional θ", "PCM cost", "naive cost", "cost reduction",
         "touched pairs", f"flip rate (m={M_ANNOT})", f"naive flip rate (m={M_ANNOT})",
         "LB (ours)", "LB Thm 2", "UB (ours)", "bounds s", "HiGHS sub", "sub rel. err"],
        [[r["kind"], r["n"], r["N"], r["status"], r["iterations"], r["seconds"], r["gemm"],
          r["gemm_units"],
          r["gap"], r["primal_residual"], r["fractional"], r["cost"], r["naive"],
          r["reduction"], r["flips"], r["flip_rate"], r["naive_flip_rate"], r["lower"],
          r["theorem2"], r["upper"], r["lower_seconds"] + r["upper_seconds"],
          r["highs_sub"], r["sub_relerr"]] for r in rows],
        caption="θ_O = 1, 5% random flips (the attack θ_A). Cost reduction = 1 - PCM cost / "
        "naive cost. Flip rate: flipped annotations out of m·N after rounding θ* to m = 5 "
        "annotations (the paper's count); touched pairs: pairs with θ* ≠ θ_O. LB (ours): "
        "the sharpened dual bound; LB Thm 2: the paper's Theorem 2; UB (ours): our feasible "
        "points (not the paper's Theorem 3). Sub rel. err: the same solver against HiGHS "
        "on the subproblem of the first features x pairs.")


def growth_fit(rows):
    """Least-squares fit of `log(seconds) = c + a_n log n + a_N log N` over `rows`;
    `(c, a_n, a_N)`, or `None` when the rows do not vary both n and N."""
    if len({r["n"] for r in rows}) < 2 or len({r["N"] for r in rows}) < 2:
        return None
    X = np.array([[1.0, np.log(r["n"]), np.log(r["N"])] for r in rows])
    y = np.log([r["seconds"] for r in rows])
    coef = np.linalg.lstsq(X, y, rcond=None)[0]
    return float(coef[0]), float(coef[1]), float(coef[2])


def _plot(rows, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for kind, mark in (("gaussian", "o"), ("lowrank", "s")):
        sel = [r for r in rows if r["kind"] == kind]
        for ax, var, fixed in ((axes[0], "n", "N"), (axes[1], "N", "n")):
            groups = sorted({r[fixed] for r in sel})
            for g in groups:
                pts = sorted((r[var], r["seconds"]) for r in sel if r[fixed] == g)
                if len(pts) < 2:
                    continue
                ax.loglog(*zip(*pts, strict=True), mark + "-", label=f"{kind}, {fixed}={g}")
    for ax, var in ((axes[0], "n (features)"), (axes[1], "N (pairs)")):
        ax.set_xlabel(var)
        ax.set_ylabel("PCM solve time (s)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle("PCM with the wide LP solver: growth of the solve time (log-log)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


@recipe("pcm-scale", "PCM at the paper's size (n = 4096, N = 160,000; Gaussian and "
        "low-rank Φ) with the wide LP solver: time in GEMM units, growth table and plot",
        part="PCM")
def pcm_scale(ctx: RecipeContext) -> Report:
    if ctx.quick:
        grid, check = [(50, 10_000), (100, 10_000), (100, 20_000)], ((100, 20_000), 200)
        size, sub = (100, 20_000), (50, 400)
    else:
        grid = [(n, 40_000) for n in GROWTH_N] + [(512, N) for N in GROWTH_NN if N != 40_000]
        check = ((512, 160_000), 2048)
        size, sub = PAPER, PAPER_SUB
    paper = [paper_cell(kind, ctx.seed, size, sub)
             for kind in ctx.progress(("gaussian", "lowrank"), desc="pcm-scale paper size")]
    rows = []
    cells = [(kind, n, N) for kind in ("gaussian", "lowrank") for n, N in grid]
    for kind, n, N in ctx.progress(cells, desc="pcm-scale"):
        sub = check[1] if (n, N) == check[0] else None
        rows.append(scale_cell(kind, n, N, seed=ctx.seed, highs_sub=sub))
    table = Table(
        "PCM with the wide LP solver (mixed precision): time and certificate",
        ["Φ", "n", "N", "status", "iterations", "solve s", "compile s", "GEMM s",
         "GEMM units", "rel. gap", "primal res.", "fractional θ", "cost", "naive cost",
         "HiGHS sub N", "sub rel. err"],
        [[r["kind"], r["n"], r["N"], r["status"], r["iterations"], r["seconds"], r["compile"],
          r["gemm"], r["gemm_units"], r["gap"], r["primal_residual"], r["fractional"],
          r["cost"], r["naive"], r.get("highs_sub", "-"), r.get("sub_relerr", "-")]
         for r in rows],
        caption="θ_O = 1, 5% random flips. GEMM units = solve time / time of one dense "
        "float64 Φ Φᵀ of the same shape measured in the same process. Status 0 = "
        "certified (gap and residual ≤ 1e-9). Sub rel. err: the same solver against HiGHS "
        "on the first `HiGHS sub N` pairs.")
    figures = []
    if ctx.plotting:
        figures = ["pcm-scale.png"]
        _plot(rows, ctx.figure_path(figures[0]))
    notes = []
    for kind in ("gaussian", "lowrank"):
        sel = [r for r in rows if r["kind"] == kind]
        fit = growth_fit(sel)
        if fit is not None:
            c0, a_n, a_N = fit
            note = f"{kind}: least-squares fit solve s ~ n^{a_n:.2f} N^{a_N:.2f}"
            if max(r["n"] for r in sel) >= 1000:     # below, memory-bound passes dominate
                pred = np.exp(c0) * PAPER[0] ** a_n * PAPER[1] ** a_N
                note += (f"; extrapolated to (4096, 160k): {pred:.0f} s on this machine "
                         "under this run's load")
            notes.append(note)
    return Report("pcm-scale", "PCM at scale (wide LP solver)",
                  tables=[paper_table(paper), table], figures=figures, notes=notes,
                  data={"paper": paper, "rows": rows})
