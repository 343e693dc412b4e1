"""Shared timing helpers for the benchmark scripts (not a benchmark itself)."""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable

import jax


def machine_line() -> str:
    """One line naming the machine, backend and precision, printed above every table."""
    devices = jax.devices()
    return (f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPU "
            f"core(s) | JAX {jax.__version__} backend {jax.default_backend()} "
            f"({devices[0].device_kind} x{len(devices)}) | x64={jax.config.jax_enable_x64}")


def block(x):
    return jax.tree_util.tree_map(
        lambda a: a.block_until_ready() if hasattr(a, "block_until_ready") else a, x)


def time_jax(fn: Callable, *args, repeats: int = 3) -> tuple[float, float, object]:
    """Return ``(compile_seconds, best_run_seconds, output)`` for a jitted ``fn``.

    The first call (trace + compile + run) minus the best later run is reported as
    compile time; the best of ``repeats`` further calls is the run time.
    """
    start = time.perf_counter()
    out = block(fn(*args))
    first = time.perf_counter() - start
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        out = block(fn(*args))
        best = min(best, time.perf_counter() - start)
    return max(first - best, 0.0), best, out


def time_call(fn: Callable, *args, repeats: int = 1) -> tuple[float, object]:
    """Best wall time of ``repeats`` calls of a plain (non-JAX) function, and its output."""
    best, out = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn(*args)
        best = min(best, time.perf_counter() - start)
    return best, out


def print_table(title: str, headers: list[str], rows: list[list]) -> None:
    def fmt(v):
        if isinstance(v, float):
            return f"{v:.3g}" if abs(v) >= 1e-3 or v == 0 else f"{v:.2e}"
        return str(v)

    cells = [[fmt(c) for c in r] for r in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    line = "  ".join(f"{{:>{w}}}" for w in widths)
    print(f"\n{title}\n{machine_line()}")
    print(line.format(*headers))
    print(line.format(*("-" * w for w in widths)))
    for r in cells:
        print(line.format(*r))
