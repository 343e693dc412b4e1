"""The `jaxpoison` command: `demo`, `reproduce NAME`, `list` and `bench`.

Examples:

```bash
jaxpoison --version
jaxpoison list
jaxpoison demo --out demo-out
jaxpoison reproduce pcm-synthetic --quick --seed 1 --out results
jaxpoison bench pcm
```
"""

from __future__ import annotations

import argparse
import os
import platform
import runpy
import sys
import time
from pathlib import Path

__all__ = ["main", "build_parser"]


def _version() -> str:
    from importlib import metadata

    from jaxpoison import __version__  # `import jaxpoison` does not start JAX

    try:
        installed = metadata.version("jaxpoison")
    except metadata.PackageNotFoundError:
        installed = None
    where = Path(__file__).resolve().parent
    extra = "" if installed in (None, __version__) else f" (metadata says {installed})"
    return f"jaxpoison {__version__}{extra} from {where}"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jaxpoison",
        description="Differentiable JAX solvers for data-poisoning attacks and certified "
        "defenses: PCM, FLORAL, model-targeted poisoning, DPA / Finite Aggregation.",
    )
    parser.add_argument("--version", action="version", version=_version())
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    common.add_argument("--out", type=Path, default=None,
                        help="output folder for tables, figures and reports "
                        "(default: jaxpoison-out/<command>)")
    common.add_argument("--float32", action="store_true",
                        help="run in float32 (default: float64 through jax_enable_x64)")
    common.add_argument("--no-progress", action="store_true", help="hide progress bars")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser("list", help="list the paper-reproduction recipes")
    sub.add_parser("demo", parents=[common],
                   help="a quick tour of every part on built-in data (tables, figures, report)")
    rep = sub.add_parser("reproduce", parents=[common], help="run a paper-table recipe")
    rep.add_argument("name", help="recipe name (see `jaxpoison list`)")
    rep.add_argument("--quick", action="store_true", help="a smaller, faster version")
    bench = sub.add_parser("bench", help="run benchmark scripts from a source checkout")
    bench.add_argument("names", nargs="*", help="benchmark names (default: all)")
    bench.add_argument("--quick", action="store_true", help="smaller sizes")
    return parser


def _setup_jax(float32: bool) -> str:
    import jax

    jax.config.update("jax_enable_x64", not float32)
    devices = jax.devices()
    kinds = sorted({d.device_kind for d in devices})
    return (f"JAX {jax.__version__} | backend {jax.default_backend()} | "
            f"{len(devices)} device(s): {', '.join(kinds)} | "
            f"{'float32' if float32 else 'float64 (x64)'} | Python {platform.python_version()}")


def _cmd_list() -> int:
    from jaxpoison.experiments import RECIPES, recipe_index

    entries = {name: (part, desc) for name, (_, desc, part) in recipe_index().items()}
    entries.update({r.name: (r.part, r.description) for r in RECIPES.values()})
    if not entries:
        print("no recipes registered")
        return 0
    width = max(len(n) for n in entries)
    for part in sorted({p for p, _ in entries.values()}):
        print(f"{part}:")
        for name in sorted(n for n, (p, _) in entries.items() if p == part):
            print(f"  {name:<{width}}  {entries[name][1]}")
    return 0


def _context(args, default_out: str):
    from jaxpoison.experiments import RecipeContext

    out = args.out if args.out is not None else Path("jaxpoison-out") / default_out
    return RecipeContext(quick=getattr(args, "quick", False), seed=args.seed, out=out,
                         show_progress=not args.no_progress)


def _note_skipped_figures(ctx, report) -> None:
    """Without matplotlib: drop figures that were not drawn and say so once."""
    from jaxpoison.experiments import PLOT_NOTE

    if ctx.plotting:
        return
    report.figures = [f for f in report.figures if (ctx.out / f).is_file()]
    if not any(PLOT_NOTE in n for n in report.notes):
        report.notes.append(PLOT_NOTE)


def _print_report(report) -> None:
    for table in report.tables:
        print()
        print(table.to_text())
    for note in report.notes:
        print(f"note: {note}")


def _cmd_demo(args, backend: str) -> int:
    from jaxpoison.experiments import DEMOS, Report, load_all

    load_all()
    ctx = _context(args, "demo")
    report = Report("demo", "jaxpoison demo")
    timings = {}
    sections = sorted(DEMOS.items(), key=lambda kv: (kv[1][0], kv[0]))
    for i, (part, (_, fn)) in enumerate(sections, 1):
        print(f"\n== {part} ==", flush=True)
        start = time.perf_counter()
        try:
            with ctx.section(f"demo {i}/{len(sections)}: {part}"):
                section = fn(ctx)
        except ImportError as err:  # a data source or optional package is not installed
            section = Report(part, part, notes=[f"section skipped: {err}"])
        timings[part] = time.perf_counter() - start
        _print_report(section)
        print(f"({part}: {timings[part]:.1f} s)", flush=True)
        report.extend(section)
    report.data["seconds"] = timings
    _note_skipped_figures(ctx, report)
    if not ctx.plotting:
        print(f"note: {report.notes[-1]}")
    md, js = report.write(ctx.out, meta={"backend": backend, "seed": args.seed},
                          header=f"Produced by `jaxpoison demo --seed {args.seed}` on: {backend}")
    print(f"\nreport: {md}  {js}")
    return 0


def _unknown_recipe(name: str) -> bool:
    """True (after printing the error) when `name` is not a recipe; imports no JAX."""
    from jaxpoison.experiments import RECIPES, recipe_index

    known = set(RECIPES) | set(recipe_index())
    if name in known:
        return False
    names = ", ".join(sorted(known)) or "(none)"
    print(f"jaxpoison: unknown recipe {name!r}; available: {names}", file=sys.stderr)
    return True


def _cmd_reproduce(args, backend: str) -> int:
    from jaxpoison.experiments import load_recipe

    recipe = load_recipe(args.name)
    if recipe is None:  # pragma: no cover - the index named a module that did not register it
        print(f"jaxpoison: recipe {args.name!r} did not register", file=sys.stderr)
        return 2
    ctx = _context(args, args.name)
    start = time.perf_counter()
    try:
        report = recipe.run(ctx)
    except ImportError as err:  # a data source or optional package is not installed
        print(f"jaxpoison: {args.name} cannot run here: {err}", file=sys.stderr)
        return 1
    seconds = time.perf_counter() - start
    _note_skipped_figures(ctx, report)
    _print_report(report)
    flags = " --quick" if args.quick else ""
    header = (f"Produced by `jaxpoison reproduce {args.name}{flags} --seed {args.seed}` in "
              f"{seconds:.1f} s on: {backend}")
    md, js = report.write(ctx.out, meta={"backend": backend, "seed": args.seed,
                                         "quick": args.quick, "seconds": seconds},
                          header=header)
    print(f"\nreport: {md}  {js}  ({seconds:.1f} s)")
    return 0


def _find_benchmarks() -> Path | None:
    for root in (Path.cwd(), Path(__file__).resolve().parent.parent):
        candidate = root / "benchmarks" / "run.py"
        if candidate.is_file():
            return candidate
    return None


def _cmd_bench(args) -> int:
    runner = _find_benchmarks()
    if runner is None:
        print("jaxpoison: benchmarks/run.py not found; run `jaxpoison bench` from a source "
              "checkout of jaxpoison", file=sys.stderr)
        return 2
    sys.argv = [str(runner), *args.names] + (["--quick"] if args.quick else [])
    try:
        runpy.run_path(str(runner), run_name="__main__")
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    if args.command == "list":
        return _cmd_list()
    if args.command == "bench":
        return _cmd_bench(args)
    if args.command == "reproduce" and _unknown_recipe(args.name):
        return 2  # before JAX starts
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    backend = _setup_jax(args.float32)
    print(backend, flush=True)
    if args.command == "demo":
        return _cmd_demo(args, backend)
    return _cmd_reproduce(args, backend)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
