"""Progress bars for recipes and demo sections (tqdm, written to stderr).

* `progress(items, desc)` -- a bar over a loop, advanced once per item;
* `section(desc)` -- a context manager for a step that is one long call (a compiled
  solve, a training run): the bar shows the elapsed time, redrawn once a second by a
  background thread, so a section that takes 30 s is never silent.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")

__all__ = ["progress", "section"]


def progress(items: Iterable[T], desc: str = "", *, total: int | None = None,
             enabled: bool = True, stream=None) -> Iterator[T]:
    """Yield from `items` while a tqdm bar `desc  i/total [elapsed<eta]` runs on stderr."""
    yield from tqdm(items, desc=desc, total=total, disable=not enabled,
                    file=stream or sys.stderr, dynamic_ncols=True, mininterval=0.5)


@contextlib.contextmanager
def section(desc: str, *, enabled: bool = True, stream=None, interval: float = 1.0):
    """Show `desc` and the elapsed time on stderr while the `with` block runs.

    On a terminal the line is redrawn every `interval` seconds; when stderr is a file or a
    pipe (CI logs) it is written once at the start and once at the end.
    """
    if not enabled:
        yield
        return
    stream = stream or sys.stderr
    if not (hasattr(stream, "isatty") and stream.isatty()):
        start = time.perf_counter()
        stream.write(f"{desc} ...\n")
        stream.flush()
        try:
            yield
        finally:
            stream.write(f"{desc}: {time.perf_counter() - start:.1f} s\n")
            stream.flush()
        return
    bar = tqdm(desc=desc, total=None, file=stream, leave=False,
               bar_format="{desc}: {elapsed} elapsed", dynamic_ncols=True)
    stop = threading.Event()

    def tick():
        while not stop.wait(interval):
            bar.refresh()

    thread = threading.Thread(target=tick, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        bar.close()
