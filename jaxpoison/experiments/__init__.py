"""Paper-reproduction recipes and the demo tour, registered for the `jaxpoison` CLI.

A recipe is a function `run(ctx: RecipeContext) -> Report` registered with
`recipe`; a demo section is a quick function of the same form registered with
`demo`. Modules of this package are discovered automatically by
`load_all`, so adding a recipe is adding a module (no central list to edit).
Recipes are the only library code that prints, plots or writes files.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from jaxpoison.experiments._progress import progress
from jaxpoison.experiments._report import Report, Table

__all__ = ["Recipe", "RecipeContext", "Report", "Table", "recipe", "demo", "load_all",
           "RECIPES", "DEMOS"]


@dataclass
class RecipeContext:
    """What a recipe receives: run size, seed, output folder and a progress helper."""

    quick: bool = False
    seed: int = 0
    out: Path = field(default_factory=lambda: Path("jaxpoison-out"))
    show_progress: bool = True

    def progress(self, items, desc: str = "", total: int | None = None):
        return progress(items, desc, total=total, enabled=self.show_progress)

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


def load_all() -> None:
    """Import every module of this package so that its recipes and demos register."""
    for info in pkgutil.iter_modules(__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"{__name__}.{info.name}")
