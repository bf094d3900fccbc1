"""Optional dependencies: check them before work starts, with the exact install commands."""

from __future__ import annotations

import importlib
from types import ModuleType

from polyfold.core.errors import InputError

__all__ = ["install_hint", "require_extra"]


def install_hint(package: str, extra: str) -> str:
    """Both ways to install ``polyfold-<package>[<extra>]``: from a checkout and from an index."""
    return (
        f'pip install "./packages/{package}[{extra}]" (from a polyfold checkout) or '
        f'pip install "polyfold-{package}[{extra}]"'
    )


def require_extra(module: str, package: str, extra: str, *, needed_for: str = "") -> ModuleType:
    """Import ``module``, or raise an InputError saying it comes with the ``extra`` of
    ``polyfold-<package>`` and how to install it. Call it before any work starts."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        why = f"{needed_for} needs" if needed_for else "this needs"
        raise InputError(
            f"{why} the optional module {module!r} ({err}), part of polyfold-{package}'s "
            f"[{extra}] extra; install it with {install_hint(package, extra)}"
        ) from None
