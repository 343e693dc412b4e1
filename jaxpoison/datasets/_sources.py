"""Finding the files that data packages ship, without importing those packages.

Every loader goes through `package_file` or `require_module`, so that a
missing source raises `MissingSourceError` naming what to install (and so that
tests can monkeypatch the locator to simulate a missing source).
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from pathlib import Path

__all__ = ["MissingSourceError", "package_dir", "package_file", "require_module",
           "shared_data_file"]


class MissingSourceError(ImportError):
    """A dataset's source (a package or a data file) is not installed.

    The message names the dataset, what is missing and the command that installs it.
    """


def package_dir(package: str, install: str, dataset: str) -> Path:
    """The folder of an installed package, found without importing it."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise MissingSourceError(
            f"{dataset} needs the package {package!r}, which is not installed; "
            f"install it with: {install}")
    return Path(next(iter(spec.submodule_search_locations)))


def package_file(package: str, relative: str, install: str, dataset: str) -> Path:
    """A data file shipped inside an installed package (`relative` to its folder)."""
    path = package_dir(package, install, dataset) / relative
    if not path.is_file():
        raise MissingSourceError(
            f"{dataset} needs the file {relative!r} of the package {package!r}, which was "
            f"not found at {path}; reinstall it with: {install}")
    return path


def require_module(module: str, install: str, dataset: str):
    """Import and return `module`, or raise `MissingSourceError` naming `install`."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        spec = None
    if spec is None:
        raise MissingSourceError(
            f"{dataset} needs the package {module!r}, which is not installed; "
            f"install it with: {install}")
    return importlib.import_module(module)


def system_dir(path: str | os.PathLike, install: str, dataset: str) -> Path:
    """A folder installed by a system package, or `MissingSourceError`."""
    folder = Path(path)
    if not folder.is_dir():
        raise MissingSourceError(
            f"{dataset} needs the folder {folder}, which does not exist; install it with: "
            f"{install}")
    return folder


def shared_data_file(name: str) -> Path | None:
    """A file of the project's shared data folder, or `None` when absent.

    Looked up in `$JAXPOISON_SHARED_DATA` first, then in `../shared/data` relative to
    the repository root (the folder holding the `jaxpoison` package).
    """
    candidates = []
    env = os.environ.get("JAXPOISON_SHARED_DATA")
    if env:
        candidates.append(Path(env) / name)
    repo_root = Path(__file__).resolve().parents[2]
    candidates.append(repo_root.parent / "shared" / "data" / name)
    for path in candidates:
        if path.is_file():
            return path
    return None
