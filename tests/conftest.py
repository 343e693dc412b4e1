"""Shared pytest setup: float64 on, a PRNG-key fixture, and helpers for optional sources."""

from __future__ import annotations

import gc
import importlib.util
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import jax  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from hypothesis import settings  # noqa: E402

jax.config.update("jax_enable_x64", True)

# Property suites draw the same examples on every run (a red CI must be reproducible, and a
# green one must not depend on the draw); `JAXPOISON_HYPOTHESIS_RANDOM=1` explores new draws.
# Loaded here, before the test modules build their own `settings(...)`, which inherit it.
settings.register_profile("jaxpoison", derandomize=True)
settings.register_profile("jaxpoison-random", derandomize=False)
settings.load_profile("jaxpoison-random" if os.environ.get("JAXPOISON_HYPOTHESIS_RANDOM")
                      else "jaxpoison")


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_code():
    """Drop JAX's compiled executables after each test module.

    Every executable holds a few memory mappings; a long-lived xdist worker that keeps them
    all reached the kernel's `vm.max_map_count` (65,530; measured 62,184 maps in one worker)
    and segfaulted inside XLA compilation.
    """
    yield
    jax.clear_caches()
    gc.collect()


@pytest.fixture
def key():
    """A fresh PRNG key per test."""
    return jax.random.key(0)


@pytest.fixture
def rng():
    """A seeded NumPy generator per test."""
    return np.random.default_rng(0)


def require(module: str) -> None:
    """Skip the calling test, naming the package to install, when ``module`` is missing."""
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"optional dependency {module!r} is not installed")
