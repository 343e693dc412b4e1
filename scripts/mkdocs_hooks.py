"""MkDocs hook: serve the math engine from the built site.

MathJax 3 is taken at build time from the installed `django-static-mathjax` wheel (the
MathJax 3.2.2 distribution as package data; it has no dependencies — Django is not needed)
and added to the site under `assets/mathjax/`: the TeX-to-CHTML component, the CHTML fonts,
the TeX extensions it may autoload, and the menu / accessibility components it loads on
demand. Nothing is fetched from another host when a page is viewed.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File, Files

SITE_DIR = "assets/mathjax"
# Sub-folders of MathJax's `es5/` distribution that `tex-chtml.js` may load at view time.
PARTS = ("tex-chtml.js", "output/chtml", "input/tex/extensions", "ui", "a11y")


def _mathjax_root() -> Path:
    spec = importlib.util.find_spec("mathjax")
    root = None
    if spec is not None and spec.submodule_search_locations:
        root = Path(next(iter(spec.submodule_search_locations))) / "static" / "mathjax" / "es5"
    if root is None or not (root / "tex-chtml.js").is_file():
        raise PluginError("the docs need MathJax from the `django-static-mathjax` package: "
                          "pip install -e '.[docs]' (or bash scripts/setup.sh)")
    return root


def on_files(files: Files, config) -> Files:
    root = _mathjax_root()
    for part in PARTS:
        path = root / part
        paths = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        for p in paths:
            uri = f"{SITE_DIR}/{p.relative_to(root).as_posix()}"
            files.append(File.generated(config, uri, abs_src_path=str(p)))
    return files
