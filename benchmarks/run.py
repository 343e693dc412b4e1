"""Run benchmark scripts and print their ratio tables.

Usage::

    python benchmarks/run.py            # every benchmarks/*.py script
    python benchmarks/run.py pcm floral # chosen ones
    python benchmarks/run.py --quick    # smaller sizes (each script reads --quick)
    python benchmarks/run.py --list

Each script is a standalone program (``python benchmarks/NAME.py [--quick]``) that times
jaxpoison next to its anchors (HiGHS, libsvm, liblinear, scikit-learn, jaxopt) in one
process and prints a table with time ratios; compile time is reported apart from run
time. This runner executes them one after another in fresh processes, so one script's
JIT caches and thread pools cannot flatter another's.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def available() -> list[str]:
    return sorted(p.stem for p in HERE.glob("*.py") if p.stem not in {"run", "_common"}
                  and not p.stem.startswith("_"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="benchmark names (default: all)")
    parser.add_argument("--quick", action="store_true", help="smaller sizes")
    parser.add_argument("--list", action="store_true", help="list the benchmarks")
    args = parser.parse_args(argv)
    names = available()
    if args.list:
        print("\n".join(names) if names else "(no benchmarks)")
        return 0
    chosen = args.names or names
    unknown = sorted(set(chosen) - set(names))
    if unknown:
        print(f"unknown benchmark(s) {unknown}; available: {names}", file=sys.stderr)
        return 2
    failed = []
    for name in chosen:
        print(f"\n===== benchmarks/{name}.py{' --quick' if args.quick else ''} =====", flush=True)
        start = time.perf_counter()
        cmd = [sys.executable, str(HERE / f"{name}.py")] + (["--quick"] if args.quick else [])
        code = subprocess.call(cmd)
        print(f"===== {name}: exit {code}, {time.perf_counter() - start:.1f} s wall =====")
        if code:
            failed.append(name)
    if failed:
        print(f"failed: {failed}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
