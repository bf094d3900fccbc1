"""``pyworld`` without its ``__init__``: released pyworld wheels import ``pkg_resources`` (gone
from setuptools 81) only to read their own version, so where that import fails the compiled
WORLD extension is loaded straight from the installed package folder."""

from __future__ import annotations

import functools
import importlib.machinery
import importlib.util
from pathlib import Path
from types import ModuleType

from polyfold.core.extras import require_extra

__all__ = ["pyworld"]


@functools.cache
def pyworld() -> ModuleType:
    """The WORLD vocoder bindings (the ``eval`` extra)."""
    try:
        import pyworld as module

        return module
    except ImportError as err:
        spec = importlib.util.find_spec("pyworld")
        if spec is None or not spec.submodule_search_locations or "pkg_resources" not in str(err):
            return require_extra("pyworld", "speech", "eval", needed_for="WORLD analysis")
    folder = Path(next(iter(spec.submodule_search_locations)))
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        path = folder / f"pyworld{suffix}"
        if path.is_file():
            ext_spec = importlib.util.spec_from_file_location("pyworld.pyworld", path)
            assert ext_spec is not None
            assert ext_spec.loader is not None
            module = importlib.util.module_from_spec(ext_spec)
            ext_spec.loader.exec_module(module)
            return module
    return require_extra("pyworld", "speech", "eval", needed_for="WORLD analysis")
