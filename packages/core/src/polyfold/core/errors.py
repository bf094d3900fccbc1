"""Errors that polyfold raises on purpose, and how command-line programs report them.

Bad user input (a file, a field, an argument) raises :class:`InputError` whose message names
what was wrong and what was expected. Every polyfold CLI runs its commands inside
:func:`exit_on_input_error`: the message is printed on stderr without a traceback and the
process exits with status :data:`EXIT_INPUT_ERROR` (2, the status of a usage error).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

__all__ = [
    "EXIT_INPUT_ERROR",
    "InputError",
    "PolyfoldError",
    "check_int",
    "exit_on_input_error",
    "is_finite_number",
    "is_int",
]

EXIT_INPUT_ERROR = 2


class PolyfoldError(Exception):
    """Base class of the errors polyfold raises on purpose."""


class InputError(PolyfoldError, ValueError):
    """Bad user input: the message names the file, field or argument and what was expected."""


def is_int(v: object) -> bool:
    """True for an ``int`` that is not a ``bool`` (the check behind integer arguments)."""
    return isinstance(v, int) and not isinstance(v, bool)


def is_finite_number(v: object) -> bool:
    """True for a finite ``int`` or ``float`` that is not a ``bool``."""
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(float(v))


def check_int(name: str, value: object, minimum: int = 1) -> int:
    """``value`` if it is an integer ``>= minimum``; otherwise an :class:`InputError` naming
    ``name``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InputError(f"{name}: expected an integer >= {minimum}, got {value!r}")
    return value


@contextmanager
def exit_on_input_error(stream: TextIO | None = None) -> Iterator[None]:
    """Turn an :class:`InputError` raised inside the block into ``error: <message>``, exit 2."""
    try:
        yield
    except InputError as err:
        print(f"error: {err}", file=stream if stream is not None else sys.stderr)
        raise SystemExit(EXIT_INPUT_ERROR) from None
