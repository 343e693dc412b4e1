"""PCM benchmark: our structured LP solvers against HiGHS and jaxopt's BoxOSQP.

The LP is PCM's p-q form (θ_O = 1, Φ Gaussian, 5% random flips):
``min 1^T p + 1^T q  s.t.  Φ p - Φ q = Φ(θ_A - θ_O),  0 <= p <= 1 - θ_O,  0 <= q <= θ_O``.

Columns: wall time of the solve (JAX compile time reported apart), relative objective error
against HiGHS (the best of highs-ipm / highs-ds by time, both solving the same LP),
``||Φθ - Φθ_A||_2``, and the speed-up over HiGHS. A vmapped batch of 16 targets is compared
with 16 single solves. Run: ``python benchmarks/pcm.py [--quick]``.

``--wide [--paper] [--sizes 1000x100000]`` prints the wide-solver table instead: PCM at
(1000, 100k), (2000, 100k) and, with ``--paper``, (4096, 160k), time in units of one float64
GEMM Φ Φᵀ of the same shape measured in the same run, float64 (mixed precision and pure)
and float32 side by side (``--modes mixed,f64,f32``), compile time apart, peak RSS, HiGHS
on a subproblem (first ``min(n, 512)`` features and 8x as many pairs; ``--highs-sub``). The
paper-size run: ``python benchmarks/pcm.py --wide --sizes 4096x160000 --modes mixed,f32
--kinds gaussian,lowrank``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from _common import machine_line, print_table, time_call, time_jax  # noqa: E402
from scipy.optimize import linprog as scipy_linprog  # noqa: E402

from jaxpoison.attacks import pcm  # noqa: E402
from jaxpoison.datasets import gaussian_preference_features  # noqa: E402

FULL = [(50, 5_000), (100, 20_000), (200, 20_000), (300, 30_000), (1000, 100_000)]
QUICK = [(50, 2_000), (100, 5_000)]
HIGHS_MAX_NNZ = 2e7      # skip HiGHS beyond this (dense 2nN-entry matrix)
OSQP_MAX_N = 20_000
PDHG_MAX_N = 30_000
PDHG_ITERS = 3_000       # PDHG is the matrix-free option, not the accuracy target here


def instance(n, N, seed=0):
    phi = gaussian_preference_features(n, N, seed=seed)
    theta_o = np.ones(N)
    rng = np.random.default_rng(seed)
    theta_a = theta_o.copy()
    theta_a[rng.permutation(N)[: N // 20]] = 0.0
    return phi, theta_o, theta_a


def highs(phi, theta_o, theta_a, method):
    n, N = phi.shape
    A = np.hstack([phi, -phi])
    bounds = np.stack([np.zeros(2 * N), np.concatenate([1 - theta_o, theta_o])], 1)
    return scipy_linprog(np.ones(2 * N), A_eq=A, b_eq=phi @ (theta_a - theta_o),
                         bounds=bounds, method=method)


def ours(method, tol, max_iter):
    @jax.jit
    def run(phi, theta_o, theta_a):
        # the public function under jit: checks on values are skipped on tracers
        return pcm(phi, theta_o, theta_a, method=method, tol=tol, max_iter=max_iter,
                   throw=False)
    return run


def boxosqp(phi, theta_o, theta_a, maxiter=4000, tol=1e-6):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from jaxopt import BoxOSQP
    n, N = phi.shape
    b = phi @ (theta_a - theta_o)

    def matvec_A(P, x):
        return jnp.concatenate([P @ (x[:N] - x[N:]), x])

    solver = BoxOSQP(matvec_Q=lambda _, x: jnp.zeros_like(x), matvec_A=matvec_A, tol=tol,
                     maxiter=maxiter, jit=True)
    lo = jnp.concatenate([b, jnp.zeros(2 * N)])
    hi = jnp.concatenate([b, 1.0 - theta_o, theta_o])

    @jax.jit
    def run(c, P, lo, hi):
        sol = solver.run(params_obj=(None, c), params_eq=P, params_ineq=(lo, hi)).params
        x = sol.primal[0]
        return jnp.clip(x[:N], 0, 1 - theta_o), jnp.clip(x[N:], 0, theta_o)

    return lambda c: run(c, phi, lo, hi)


def main(quick: bool, sizes=None, batch: bool = True, lean: bool = False):
    sizes = sizes or (QUICK if quick else FULL)
    rows = []
    for n, N in sizes:
        phi_np, to_np, ta_np = instance(n, N)
        phi, to, ta = (jnp.asarray(a) for a in (phi_np, to_np, ta_np))
        row = {"n": n, "N": N}
        ref = None
        if 2 * n * N <= HIGHS_MAX_NNZ:
            best = None
            for meth in ("highs-ipm", "highs-ds"):
                t, res = time_call(highs, phi_np, to_np, ta_np, meth)
                row[meth] = t
                if res.status == 0 and (best is None or t < best[0]):
                    best = (t, res.fun, meth)
            row["highs"], ref, row["highs_best"] = best
        c_ipm, t_ipm, r_ipm = time_jax(ours("ipm", 1e-9, 100), phi, to, ta, repeats=1)
        row.update(ipm=t_ipm, ipm_compile=c_ipm, ipm_obj=float(r_ipm.cost),
                   ipm_res=float(r_ipm.residual), ipm_it=int(r_ipm.iterations),
                   ipm_status=int(r_ipm.status))
        if N <= PDHG_MAX_N and not lean:
            c_pd, t_pd, r_pd = time_jax(ours("pdhg", 1e-7, PDHG_ITERS), phi, to, ta, repeats=1)
            row.update(pdhg=t_pd, pdhg_compile=c_pd, pdhg_obj=float(r_pd.cost),
                       pdhg_res=float(r_pd.residual), pdhg_it=int(r_pd.iterations))
        if N <= OSQP_MAX_N and not lean:
            run = boxosqp(phi, to, ta)
            c_os, t_os, (p, q) = time_jax(run, jnp.ones(2 * N), repeats=1)
            theta = to + p - q
            row.update(osqp=t_os, osqp_compile=c_os, osqp_obj=float(jnp.sum(jnp.abs(theta - to))),
                       osqp_res=float(jnp.linalg.norm(phi @ (theta - ta))))
        if ref is None:
            ref = row["ipm_obj"]
        row["ref"] = ref
        rows.append(row)
        print(f"done n={n} N={N}: {row}", flush=True)

    def rel(v, ref):
        return abs(v - ref) / abs(ref) if v is not None else float("nan")

    nan = float("nan")
    table = []
    for r in rows:
        h = r.get("highs", float("nan"))
        table.append([
            r["n"], r["N"],
            r.get("highs-ipm", float("nan")), r.get("highs-ds", float("nan")),
            r.get("highs_best", "skipped"),
            r.get("osqp", float("nan")), rel(r.get("osqp_obj"), r["ref"]),
            r["ipm"], r["ipm_compile"], r["ipm_it"], rel(r["ipm_obj"], r["ref"]), r["ipm_res"],
            h / r["ipm"],
            r.get("pdhg", nan), r.get("pdhg_compile", nan), r.get("pdhg_it", "-"),
            rel(r.get("pdhg_obj"), r["ref"]), h / r.get("pdhg", nan),
        ])
    print_table(
        "PCM LP: time (s), relative objective error vs HiGHS, ||Φθ-Φθ_A||",
        ["n", "N", "highs-ipm s", "highs-ds s", "HiGHS best", "BoxOSQP s", "OSQP relerr",
         "ipm s", "ipm compile", "ipm it", "ipm relerr", "ipm resid", "HiGHS/ipm",
         "pdhg s", "pdhg compile", "pdhg it", "pdhg relerr", "HiGHS/pdhg"], table)

    if not batch:
        print(machine_line())
        return
    # vmapped batch of 16 targets vs 16 single solves
    n, N = (50, 2_000) if quick else (100, 10_000)
    phi_np, to_np, _ = instance(n, N)
    phi, to = jnp.asarray(phi_np), jnp.asarray(to_np)
    targets = []
    for k in range(16):
        _, _, ta = instance(n, N, seed=k + 1)
        targets.append(ta)
    tas = jnp.asarray(np.stack(targets))
    single = ours("ipm", 1e-9, 100)
    batched = jax.jit(jax.vmap(lambda ta, p, o: single(p, o, ta), in_axes=(0, None, None)))
    c_b, t_b, rb = time_jax(batched, tas, phi, to, repeats=1)
    time_jax(single, phi, to, tas[0], repeats=1)
    start = time.perf_counter()
    costs = [float(single(phi, to, tas[k]).cost) for k in range(16)]
    t_s = time.perf_counter() - start
    diff = float(np.max(np.abs(np.asarray(rb.cost) - np.asarray(costs))))
    print_table(f"vmapped batch of 16 PCM targets (n={n}, N={N}, ipm)",
                ["batch s", "batch compile", "16 singles s", "solves/s batch",
                 "solves/s single", "max |cost diff|", "all success"],
                [[t_b, c_b, t_s, 16 / t_b, 16 / t_s, diff, bool(np.all(np.asarray(rb.success)))]])
    print(machine_line())


WIDE = [(1000, 100_000), (2000, 100_000)]
PAPER = (4096, 160_000)


MODES = {"mixed": ("wide", jnp.float64), "f64": ("wide-f64", jnp.float64),
         "f32": ("wide", jnp.float32)}


def wide_main(sizes, kinds=("gaussian",), modes=("mixed", "f64", "f32"), highs_sub=None):
    """The wide LP solver at scale: time in units of one dense GEMM Φ Φᵀ of the same shape
    measured in this process, the chosen `modes` (float64 mixed and pure, float32) side by
    side, compile time apart, peak RSS so far, and HiGHS on the subproblem of the first
    `highs_sub = (n_sub, N_sub)` features and pairs (default `(min(n, 512), 8 n_sub)`),
    solved by our mixed mode and by HiGHS. The memory check (`check_wide_memory`) runs
    before Φ is generated."""
    import resource

    from jaxpoison.experiments.pcm_scale import (
        fractional,
        gemm_seconds,
        highs_cost,
        scale_instance,
        timed_pcm,
    )

    def rss_gb():
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9

    table = []
    for kind in kinds:
        for n, N in sizes:
            row = [kind, n, N]
            phi, to, ta = scale_instance(kind, n, N)
            ns, Ns = highs_sub or (min(n, 512), 8 * min(n, 512))
            sub = (jnp.array(phi[:ns, :Ns]), jnp.array(to[:Ns]), jnp.array(ta[:Ns]))
            g64 = gemm_seconds(phi, repeats=1)
            row += [g64]
            costs = {}
            for i, name in enumerate(modes):
                method, dt = MODES[name]
                if dt == jnp.float64:
                    args = (phi, to, ta)
                else:
                    args = tuple(a.astype(dt) for a in (phi, to, ta))
                    if all(MODES[m][1] != jnp.float64 for m in modes[i + 1:]):
                        del phi          # no float64 mode left: free the float64 Φ
                        phi = None
                tc, tr, res = timed_pcm(*args, method=method)
                costs[name] = float(res.cost)
                row += [tr, tr / g64, tc, int(res.iterations), int(res.status),
                        float(res.gap), float(res.primal_residual), fractional(res.theta)]
                print(f"{kind} n={n} N={N} {name}: {tr:.1f}s = {tr / g64:.2f} GEMM64, "
                      f"compile {tc:.1f}s, it {int(res.iterations)}, status "
                      f"{int(res.status)}, gap {float(res.gap):.2e}, pres "
                      f"{float(res.primal_residual):.2e}, fractional {fractional(res.theta)}, "
                      f"cost {float(res.cost):.10g}, peak RSS {rss_gb():.2f} GB", flush=True)
                del args, res
            ref = costs.get("mixed", costs.get("f64"))
            row.append(abs(costs["f32"] - ref) / ref if "f32" in costs and ref else "-")
            row.append(rss_gb())
            del phi
            t_h, hc = time_call(highs_cost, *sub)
            from jaxpoison.attacks.pcm import pcm
            ours = float(pcm(*sub, method="wide").cost)
            row += [f"{ns}x{Ns}", t_h, abs(ours - hc) / hc]
            print(f"HiGHS sub {ns}x{Ns}: {t_h:.1f}s cost {hc:.10g}, ours {ours:.10g}",
                  flush=True)
            table.append(row)
    heads = ["Φ", "n", "N", "GEMM64 s"]
    for name in modes:
        heads += [f"{name} s", f"{name} GEMMs", f"{name} compile", f"{name} it",
                  f"{name} status", f"{name} gap", f"{name} pres", f"{name} frac"]
    heads += ["f32 vs float64 cost", "peak RSS GB", "HiGHS sub", "HiGHS s", "sub rel err"]
    print_table("PCM with the wide LP solver: time in units of one float64 GEMM Φ Φᵀ of the "
                "same shape (measured in this run)", heads, table)
    print(machine_line())


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--sizes", default=None, help="e.g. 1000x100000,200x20000")
    ap.add_argument("--no-batch", action="store_true", help="skip the vmapped-batch table")
    ap.add_argument("--lean", action="store_true", help="HiGHS and our IPM only")
    ap.add_argument("--wide", action="store_true",
                    help="the wide-solver table at (1000, 100k) and (2000, 100k)")
    ap.add_argument("--paper", action="store_true",
                    help="add the paper's size (4096, 160k) to --wide (long)")
    ap.add_argument("--kinds", default="gaussian", help="Φ kinds for --wide: gaussian,lowrank")
    ap.add_argument("--modes", default="mixed,f64,f32",
                    help="--wide precision modes: mixed (float32 Gram/CG, float64 "
                    "certificate), f64, f32")
    ap.add_argument("--highs-sub", default=None,
                    help="--wide HiGHS subproblem n_sub x N_sub (default min(n,512) x 8 n_sub)")
    args = ap.parse_args()
    if args.wide:
        wide_sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")] \
            if args.sizes else WIDE + ([PAPER] if args.paper else [])
        hs = None if args.highs_sub is None else tuple(
            int(v) for v in args.highs_sub.split("x"))
        wide_main(wide_sizes, tuple(args.kinds.split(",")), tuple(args.modes.split(",")), hs)
        sys.exit(0)
    sizes = None if args.sizes is None else [
        tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]
    main(args.quick, sizes, not args.no_batch, args.lean)
