"""Recipe `pcm-scale`: PCM at the paper's problem size with the wide LP solver.

The paper (arXiv 2511.09105) solves PCM for reward-model features of a 7B model (n = 4096)
on HH-RLHF-sized preference sets (N = 160,000 pairs). This recipe times `pcm` with the wide
solver (`jaxpoison.solvers.lp_wide`) on a Gaussian Φ and on a low-rank-plus-noise Φ (what
real embedding differences look like), reports time in units of one dense float64 GEMM
$\\Phi\\Phi^T$ of the same shape measured in the same process (a figure that survives a
shared, noisy machine), the solver's own certificate (relative duality gap and primal
residual), the number of fractional labels (a vertex has at most n) and an objective check
against HiGHS on a subproblem HiGHS can finish; it writes a growth table in n and N and a
log-log plot. `--quick` runs small sizes in well under a minute.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np

from jaxpoison.attacks.pcm import pcm
from jaxpoison.experiments import RecipeContext, Report, Table, recipe
from jaxpoison.solvers.lp_wide import check_wide_memory

FLIP_RATE = 0.05
PAPER = (4096, 160_000)


def scale_instance(kind: str, n: int, N: int, seed: int = 0, dtype=jnp.float64):
    """A PCM instance `(Φ, θ_O, θ_A)`: `θ_O = 1`, 5% of the pairs flipped at random.

    `kind` is `"gaussian"` (i.i.d. N(0, 1) entries) or `"lowrank"` (rank-32 signal plus
    0.3-scaled Gaussian noise, rows mean-centred: the spectrum of real embedding
    differences). Generated with `jax.random` directly in `dtype`; the memory the wide
    solver will need is checked first (`MemoryError` with the estimate).
    """
    check_wide_memory(n, N, jnp.dtype(dtype).itemsize)
    key = jax.random.key(seed)
    k1, k2, k3, k4 = jax.random.split(key, 4)
    if kind == "gaussian":
        phi = jax.random.normal(k1, (n, N), dtype)
    elif kind == "lowrank":
        r = 32
        U = jax.random.normal(k1, (n, r), dtype)
        V = jax.random.normal(k2, (r, N), dtype)
        phi = (U @ V) / np.sqrt(r) + 0.3 * jax.random.normal(k3, (n, N), dtype)
        phi = phi - jnp.mean(phi, axis=1, keepdims=True)
    else:
        raise ValueError(f"kind must be 'gaussian' or 'lowrank'; got {kind!r}")
    theta_o = jnp.ones((N,), dtype)
    flip = jax.random.permutation(k4, N)[: int(FLIP_RATE * N)]
    theta_a = theta_o.at[flip].set(0.0)
    return phi, theta_o, theta_a


def gemm_seconds(phi, repeats: int = 2) -> float:
    """Best of `repeats` timed runs of the dense GEMM $\\Phi\\Phi^T$ (compiled ahead)."""
    f = jax.jit(lambda a: a @ a.T).lower(phi).compile()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(f(phi))
        best = min(best, time.perf_counter() - t0)
    return best


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


def scale_cell(kind: str, n: int, N: int, seed: int = 0, method: str = "wide",
               dtype=jnp.float64, highs_sub: int | None = None) -> dict:
    """One timed PCM solve with its GEMM unit, certificate and (optionally) a HiGHS check of
    the first `highs_sub` pairs (the same solver on that subproblem against HiGHS)."""
    phi, to, ta = scale_instance(kind, n, N, seed, dtype)
    g = gemm_seconds(phi, repeats=1 if n * N > 10**8 else 2)
    tc, tr, res = timed_pcm(phi, to, ta, method)
    row = dict(kind=kind, n=n, N=N, method=method, dtype=jnp.dtype(dtype).name, gemm=g,
               compile=tc, seconds=tr, gemm_units=tr / g, status=int(res.status),
               iterations=int(res.iterations), cost=float(res.cost), gap=float(res.gap),
               primal_residual=float(res.primal_residual), fractional=fractional(res.theta),
               flips=int(res.flips), naive=float(res.naive_cost))
    if highs_sub:
        sub = tuple(a[..., :highs_sub] for a in (phi, to, ta))
        del phi
        ours = pcm(*sub, method=method, throw=False)
        ref = highs_cost(*sub)
        row.update(highs_sub=highs_sub, sub_cost=float(ours.cost), highs_cost=ref,
                   sub_relerr=abs(float(ours.cost) - ref) / max(abs(ref), 1e-300))
    return row


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
        grid = [(50, 10_000), (100, 10_000), (100, 20_000)]
        paper, sub = [], 2_000
    else:
        grid = [(250, 50_000), (500, 50_000), (1000, 50_000), (1000, 25_000),
                (1000, 100_000)]
        paper, sub = [PAPER], 10_000
    rows = []
    cells = [(kind, n, N) for kind in ("gaussian", "lowrank") for n, N in grid + paper]
    for kind, n, N in ctx.progress(cells, desc="pcm-scale"):
        # HiGHS check on a subproblem for the largest size of each kind
        check = sub if (n, N) == (grid + paper)[-1] else None
        rows.append(scale_cell(kind, n, N, seed=ctx.seed, highs_sub=check))
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
    fig = "pcm-scale.png"
    _plot(rows, ctx.figure_path(fig))
    notes = []
    for kind in ("gaussian", "lowrank"):
        sel = [r for r in rows if r["kind"] == kind]
        slopes = []
        for var, fixed in (("n", "N"), ("N", "n")):
            for g in sorted({r[fixed] for r in sel}):
                pts = sorted((r[var], r["seconds"]) for r in sel if r[fixed] == g)
                if len(pts) >= 2:
                    (x0, t0), (x1, t1) = pts[0], pts[-1]
                    slopes.append(f"time ~ {var}^{np.log(t1 / t0) / np.log(x1 / x0):.2f} "
                                  f"at {fixed}={g}")
        if slopes:
            notes.append(f"{kind}: " + "; ".join(slopes))
    return Report("pcm-scale", "PCM at scale (wide LP solver)", tables=[table],
                  figures=[fig], notes=notes, data={"rows": rows})
