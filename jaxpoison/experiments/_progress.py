"""A dependency-free progress line for long recipe runs (written to stderr)."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

__all__ = ["progress"]


def progress(items: Iterable[T], desc: str = "", *, total: int | None = None,
             enabled: bool = True, stream=None, min_interval: float = 0.5) -> Iterator[T]:
    """Yield from `items` while printing `desc  i/total  elapsed  eta` to stderr.

    The line is redrawn at most every `min_interval` seconds and finished with a newline.
    """
    stream = stream or sys.stderr
    if total is None:
        try:
            total = len(items)  # type: ignore[arg-type]
        except TypeError:
            total = None
    start = last = time.perf_counter()
    count = 0

    def draw(final: bool = False) -> None:
        elapsed = time.perf_counter() - start
        if total:
            eta = elapsed / max(count, 1) * (total - count)
            msg = f"\r{desc}  {count}/{total}  {elapsed:6.1f}s  eta {eta:6.1f}s"
        else:
            msg = f"\r{desc}  {count}  {elapsed:6.1f}s"
        stream.write(msg + ("\n" if final else ""))
        stream.flush()

    for item in items:
        yield item
        count += 1
        now = time.perf_counter()
        if enabled and now - last >= min_interval:
            draw()
            last = now
    if enabled:
        draw(final=True)
