"""docs/design.md's map of the house names every source file, and only files that exist."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _map_files() -> set[str]:
    text = (ROOT / "docs" / "design.md").read_text()
    block = text.split("## The house", 1)[1].split("```", 2)[1]
    files, stack = set(), []
    for line in block.splitlines():
        if not line.strip():
            continue
        level = (len(line) - len(line.lstrip(" "))) // 2
        first = line.split()[0]
        stack = stack[:level]
        if first.endswith("/"):
            stack.append(first)
            continue
        if level == 0:
            continue
        # a file row ("name.py  comment") or a row of several file names (benchmarks)
        names = [t for t in line.split() if re.fullmatch(r"[\w.-]+\.(py|sh)", t)]
        names = names if len(names) > 1 else [first]
        files.update("".join(stack) + name for name in names)
    return files


def _source_files() -> set[str]:
    out = subprocess.run(["git", "ls-files", "jaxpoison", "benchmarks", "scripts"],
                         cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    tracked = {f for f in out if f.endswith((".py", ".sh"))}
    tracked |= {str(p.relative_to(ROOT)) for d in ("jaxpoison", "benchmarks", "scripts")
                for p in (ROOT / d).rglob("*") if p.suffix in (".py", ".sh")
                and "__pycache__" not in p.parts}
    return {f for f in tracked
            if not (f.endswith("__init__.py") and f != "jaxpoison/__init__.py"
                    and f != "jaxpoison/experiments/__init__.py")}


def test_every_file_on_the_map_exists():
    missing = sorted(f for f in _map_files() if not (ROOT / f).exists())
    assert not missing, f"docs/design.md names files that do not exist: {missing}"


def test_every_source_file_is_on_the_map():
    absent = sorted(_source_files() - _map_files())
    assert not absent, f"source files missing from docs/design.md's map: {absent}"
