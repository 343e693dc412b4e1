"""The documentation site: it renders offline and its API reference lists public names only.

The site is built once with `--strict` (a docstring griffe cannot parse fails here too) into a
temporary folder and its HTML/CSS are scanned.
"""

import importlib
import inspect
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("mkdocs")
pytest.importorskip("mkdocstrings")

ROOT = Path(__file__).resolve().parent.parent

# An external script or style: what a browser would fetch from another host to show a page.
EXTERNAL = [
    re.compile(r"<script\b[^>]*\bsrc=[\"']?(?:https?:)?//", re.I),
    re.compile(r"<link\b[^>]*\bhref=[\"']?(?:https?:)?//", re.I),
    re.compile(r"@import\s+(?:url\()?[\"']?(?:https?:)?//", re.I),
    re.compile(r"url\([\"']?(?:https?:)?//", re.I),
]
HEADING = re.compile(r'<h\d id="([^"]+)" class="doc doc-heading"')



@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("site")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "-d", str(out)],
        cwd=ROOT, capture_output=True, text=True, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert result.returncode == 0, result.stderr
    return out


def test_no_page_loads_a_script_or_style_from_another_host(site):
    offenders = []
    for path in sorted(site.rglob("*")):
        if path.suffix not in (".html", ".css"):
            continue
        text = path.read_text(errors="replace")
        for pattern in EXTERNAL:
            for match in pattern.finditer(text):
                snippet = text[match.start():match.start() + 120].splitlines()[0]
                offenders.append(f"{path.relative_to(site)}: {snippet}")
    assert not offenders, "external scripts/styles:\n" + "\n".join(offenders[:20])


def test_math_engine_and_fonts_are_served_from_the_site(site):
    page = (site / "pcm" / "index.html").read_text()
    scripts = re.findall(r'<script\b[^>]*\bsrc="([^"]+)"', page)
    mathjax = [s for s in scripts if s.endswith("tex-chtml.js")]
    assert mathjax, scripts
    assert (site / "pcm" / mathjax[0]).resolve().is_file()
    fonts = site / "assets" / "mathjax" / "output" / "chtml" / "fonts" / "woff-v2"
    assert (fonts / "MathJax_Main-Regular.woff").is_file()
    # arithmatex wrapped the math for MathJax (generic mode), rather than leaving raw `$`.
    assert 'class="arithmatex"' in page


def _public_objects():
    """Every object a user reaches as `jaxpoison.NAME` or `jaxpoison.SUB.NAME`."""
    import jaxpoison

    objects = {}
    for sub in ("", "solvers", "models", "attacks", "defenses", "theory", "datasets",
                "sklearn"):
        try:
            module = importlib.import_module("jaxpoison" + (f".{sub}" if sub else ""))
        except ImportError:  # jaxpoison.sklearn without scikit-learn
            continue
        for name in dir(module):  # dir(): jaxpoison's own names are loaded lazily
            obj = getattr(module, name)
            if not name.startswith("_") and not inspect.ismodule(obj):
                objects[id(obj)] = f"{module.__name__}.{name}"
    assert jaxpoison.Result is not None
    return objects


def _resolve(path):
    parts = path.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for name in parts[cut:]:
            obj = getattr(obj, name)
        return obj, parts[:cut], parts[cut:]
    raise LookupError(path)


def _api_entries(site):
    for page in sorted((site / "api").rglob("index.html")):
        for path in HEADING.findall(page.read_text()):
            yield page.parent.name, path


def _private_entries(site):
    public = _public_objects()
    bad = set()
    for page, path in _api_entries(site):
        obj, module_parts, attrs = _resolve(path)
        if any(p.startswith("_") for p in module_parts + attrs):
            bad.add(f"{page}: {path}")
        elif not attrs:  # a module heading (its members are checked one by one)
            continue
        elif len(attrs) == 1 and id(obj) not in public:
            bad.add(f"{page}: {path}")
        elif len(attrs) > 1:  # a member of a class: public when the class is
            owner, _, _ = _resolve(".".join(module_parts + attrs[:1]))
            if id(owner) not in public:
                bad.add(f"{page}: {path}")
    return bad


def test_api_reference_lists_public_names_only(site):
    bad = _private_entries(site)
    assert not bad, ("documented but not exported from jaxpoison or a subpackage:\n"
                     + "\n".join(sorted(bad)))


def test_api_reference_has_no_restructuredtext_markup(site):
    rest = re.compile(r":(?:func|class|meth|mod|attr|data|obj):`|\.\. (?:math|note|code)::"
                      r"|``[^`\s][^`]*``")
    found = []
    for page in sorted((site / "api").rglob("index.html")):
        found += [f"{page.parent.name}: {m.group(0)}" for m in rest.finditer(page.read_text())]
    assert not found, "reST markup shown as text:\n" + "\n".join(found[:20])


def test_docs_use_the_jaxpoison_command():
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    found = [f"{p.relative_to(ROOT)}:{i}" for p in pages
             for i, line in enumerate(p.read_text().splitlines(), 1)
             if "python -m jaxpoison.cli" in line]
    assert not found, "use the `jaxpoison` command:\n" + "\n".join(found)
