"""Reports that recipes return: tables, figures and notes, written as Markdown + JSON.

A recipe builds a `Report`; the CLI prints its tables and writes
`<out>/<name>.md` and `<out>/<name>.json` (figures are saved by the recipe into
`out` and listed by file name).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tabulate import tabulate

__all__ = ["Table", "Report", "format_value", "markdown_cell"]


def format_value(value: Any, digits: int = 4) -> str:
    """Format a table cell: floats with `digits` significant digits, the rest as str."""
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        v = float(value)
        if math.isnan(v):
            return "nan"
        if v != 0 and (abs(v) >= 1e5 or abs(v) < 1e-3):
            return f"{v:.{digits - 1}e}"
        return f"{v:.{digits}g}"
    return str(value)


def markdown_cell(text: str) -> str:
    """`text` made safe for one cell of a Markdown table (GFM and Python-Markdown, which
    renders the docs): line breaks become spaces, backslashes and `|` are escaped, and so
    are backticks when their count is odd (an unpaired one would open a code span that
    swallows the next cell separators)."""
    text = str(text).replace("\r", " ").replace("\n", " ")
    text = text.replace("\\", "\\\\").replace("|", "\\|")
    if text.count("`") % 2:
        text = text.replace("`", "\\`")
    return text


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.ndarray,)) or hasattr(value, "__array__"):
        return _jsonable(np.asarray(value).tolist())
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        v = float(value)
        return v if math.isfinite(v) else str(v)
    if isinstance(value, (np.bool_,)):
        return bool(value)
    if isinstance(value, Path):
        return str(value)
    return value


@dataclass
class Table:
    """A titled table: `headers` and `rows` (lists of cells)."""

    title: str
    headers: list[str]
    rows: list[list[Any]]
    caption: str = ""

    def to_markdown(self) -> str:
        """The table as GitHub-flavoured Markdown (tabulate's `pipe` format, cells escaped)."""
        cells = [[markdown_cell(format_value(c)) for c in row] for row in self.rows]
        headers = [markdown_cell(h) for h in self.headers]
        lines = [f"### {self.title}", ""]
        if self.caption:
            lines += [self.caption, ""]
        lines.append(tabulate(cells, headers=headers, tablefmt="pipe", disable_numparse=True,
                              stralign="right"))
        return "\n".join(lines) + "\n"

    def to_text(self) -> str:
        """The table as aligned plain text for the terminal."""
        cells = [[format_value(c) for c in row] for row in self.rows]
        out = [self.title, tabulate(cells, headers=self.headers, tablefmt="simple",
                                    disable_numparse=True, stralign="right")]
        if self.caption:
            out.append(self.caption)
        return "\n".join(out) + "\n"

    def to_json(self) -> dict:
        return {"title": self.title, "caption": self.caption, "headers": self.headers,
                "rows": _jsonable(self.rows)}


@dataclass
class Report:
    """What a recipe returns: tables, figure files (relative to the output folder), notes
    and free-form data for the JSON file."""

    name: str
    title: str
    tables: list[Table] = field(default_factory=list)
    figures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)

    def extend(self, other: Report) -> None:
        """Append another report's content (used by `jaxpoison demo`)."""
        self.tables += other.tables
        self.figures += other.figures
        self.notes += [f"[{other.name}] {n}" for n in other.notes]
        self.data[other.name] = other.data

    def to_markdown(self, header: str = "") -> str:
        parts = [f"# {self.title}", ""]
        if header:
            parts += [header, ""]
        for table in self.tables:
            parts.append(table.to_markdown())
        for fig in self.figures:
            parts += [f"![{fig}]({fig})", ""]
        if self.notes:
            parts += ["## Notes", ""] + [f"- {n}" for n in self.notes] + [""]
        return "\n".join(parts)

    def to_json(self, meta: dict | None = None) -> dict:
        return {"name": self.name, "title": self.title, "meta": _jsonable(meta or {}),
                "tables": [t.to_json() for t in self.tables], "figures": self.figures,
                "notes": self.notes, "data": _jsonable(self.data)}

    def write(self, out: Path, meta: dict | None = None, header: str = "") -> tuple[Path, Path]:
        out.mkdir(parents=True, exist_ok=True)
        md = out / f"{self.name}.md"
        js = out / f"{self.name}.json"
        md.write_text(self.to_markdown(header))
        js.write_text(json.dumps(self.to_json(meta), indent=2))
        return md, js
