"""Paper-reproduction recipes and the demo tour, registered for the `jaxpoison` CLI.

A recipe is a function `run(ctx: RecipeContext) -> Report` registered with
`recipe`; a demo section is a quick function of the same form registered with
`demo`. Modules of this package are discovered automatically by
`load_all`, so adding a recipe is adding a module (no central list to edit).
`recipe_index` reads the recipe names from the modules' source without importing them
(hence without starting JAX), so `jaxpoison list` and an unknown name answer at once.
Recipes are the only library code that prints, plots or writes files.

Figures need matplotlib (`pip install jaxpoison[plot]`); a recipe draws them only when
`ctx.plotting` is true, and the CLI notes once that figures were skipped otherwise.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import pkgutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from jaxpoison.experiments._progress import progress, section
from jaxpoison.experiments._report import Report, Table

__all__ = ["Recipe", "RecipeContext", "Report", "Table", "recipe", "demo", "load_all",
           "load_recipe", "recipe_index", "can_plot", "progress", "section", "PLOT_NOTE",
           "RECIPES", "DEMOS"]

PLOT_NOTE = "figures skipped: they need matplotlib (pip install jaxpoison[plot])"


def can_plot() -> bool:
    """Whether matplotlib can be imported (without importing it)."""
    if "matplotlib" in sys.modules:
        return sys.modules["matplotlib"] is not None
    try:
        return importlib.util.find_spec("matplotlib") is not None
    except (ImportError, ValueError):
        return False


@dataclass
class RecipeContext:
    """What a recipe receives: run size, seed, output folder and a progress helper."""

    quick: bool = False
    seed: int = 0
    out: Path = field(default_factory=lambda: Path("jaxpoison-out"))
    show_progress: bool = True
    plotting: bool = field(default_factory=can_plot)

    def progress(self, items, desc: str = "", total: int | None = None):
        """A progress bar over `items` (tqdm on stderr; hidden by `--no-progress`)."""
        return progress(items, desc, total=total, enabled=self.show_progress)

    def section(self, desc: str):
        """A context manager showing `desc` and the elapsed time during one long call."""
        return section(desc, enabled=self.show_progress)

    def figure_path(self, name: str) -> Path:
        self.out.mkdir(parents=True, exist_ok=True)
        return self.out / name


@dataclass(frozen=True)
class Recipe:
    name: str
    description: str
    part: str
    run: Callable[[RecipeContext], Report]


RECIPES: dict[str, Recipe] = {}
DEMOS: dict[str, tuple[int, Callable[[RecipeContext], Report]]] = {}


def recipe(name: str, description: str, part: str):
    """Register `fn(ctx) -> Report` as `jaxpoison reproduce NAME`."""

    def register(fn):
        if name in RECIPES and RECIPES[name].run is not fn:
            raise ValueError(f"recipe {name!r} registered twice")
        RECIPES[name] = Recipe(name, description, part, fn)
        return fn

    return register


def demo(part: str, order: int = 50):
    """Register `fn(ctx) -> Report` as the `jaxpoison demo` section for `part`.

    Sections run in increasing `order`; each should take seconds, not minutes.
    """

    def register(fn):
        DEMOS[part] = (order, fn)
        return fn

    return register


def recipe_index() -> dict[str, tuple[str, str, str]]:
    """`{name: (module, description, part)}` for every `@recipe(...)` in this package,
    read from the source files (nothing is imported, so JAX does not start)."""
    index = {}
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("_"):
            continue
        path = Path(__path__[0]) / f"{info.name}.py"
        if not path.is_file():
            continue
        tree = ast.parse(path.read_text(), str(path))
        consts = {t.id: n.value.value for n in tree.body if isinstance(n, ast.Assign)
                  and isinstance(n.value, ast.Constant) for t in n.targets
                  if isinstance(t, ast.Name)}

        def literal(node, consts=consts):
            if isinstance(node, ast.Constant):
                return node.value
            return consts.get(getattr(node, "id", None))

        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and getattr(node.func, "id", "") == "recipe"):
                continue
            args = [literal(a) for a in node.args]
            kw = {k.arg: literal(k.value) for k in node.keywords}
            if args and isinstance(args[0], str):
                desc = args[1] if len(args) > 1 else kw.get("description", "")
                part = args[2] if len(args) > 2 else kw.get("part", "")
                index[args[0]] = (f"{__name__}.{info.name}", desc, part)
    return index


def load_recipe(name: str) -> Recipe | None:
    """The recipe `name`, importing only its module; `None` when there is no such recipe."""
    if name not in RECIPES:
        entry = recipe_index().get(name)
        if entry is None:
            return None
        importlib.import_module(entry[0])
    return RECIPES.get(name)


def load_all() -> None:
    """Import every module of this package so that its recipes and demos register."""
    for info in pkgutil.iter_modules(__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"{__name__}.{info.name}")
