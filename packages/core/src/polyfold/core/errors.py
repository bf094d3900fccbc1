"""Errors that polyfold raises on purpose, and how command-line programs report them.

Bad user input (a file, a field, an argument) raises :class:`InputError` whose message names
what was wrong and what was expected. Every polyfold CLI runs its commands inside
:func:`exit_on_input_error`: an InputError, or an ``OSError`` (a missing or unwritable path, a
full disk), is printed on stderr as ``error: ...`` without a traceback and the process exits
with status :data:`EXIT_INPUT_ERROR` (2, the status of a usage error); Ctrl-C prints
``interrupted`` and exits :data:`EXIT_INTERRUPTED` (130). Anything else is a bug and keeps its
traceback. Code that reads a user's file wraps the read in :func:`reading` so that undecodable
or unparsable content becomes an InputError naming the file.
"""

from __future__ import annotations

import csv
import json
import math
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

__all__ = [
    "EXIT_INPUT_ERROR",
    "EXIT_INTERRUPTED",
    "InputError",
    "NonFiniteError",
    "PolyfoldError",
    "check_int",
    "check_number",
    "exit_on_input_error",
    "is_finite_number",
    "is_int",
    "os_error_message",
    "reading",
]

EXIT_INPUT_ERROR = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what shells report for Ctrl-C


class PolyfoldError(Exception):
    """Base class of the errors polyfold raises on purpose."""


class InputError(PolyfoldError, ValueError):
    """Bad user input: the message names the file, field or argument and what was expected."""


class NonFiniteError(PolyfoldError, ArithmeticError):
    """A computation produced NaN or infinity where a finite result was due: the message names
    where (the sampler, step and path; the training step and the last finite checkpoint) and
    what usually causes it. CLIs report it like an :class:`InputError`: its cause is a setting
    (a grid, a learning rate, a model file), not a bug."""


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


def check_number(name: str, value: object, minimum: float = 0.0, *, strict: bool = False) -> float:
    """``value`` as a float if it is a finite number ``>= minimum`` (``> minimum`` when
    ``strict``); otherwise an :class:`InputError` naming ``name``."""
    if not is_finite_number(value) or (
        float(value) <= minimum if strict else float(value) < minimum  # type: ignore[arg-type]
    ):
        bound = f"{'>' if strict else '>='} {minimum:g}"
        raise InputError(f"{name}: expected a finite number {bound}, got {value!r}")
    return float(value)  # type: ignore[arg-type]


def os_error_message(err: OSError) -> str:
    """``<path>: <reason>`` for an OSError (both paths for a rename), else its text."""
    reason = err.strerror or str(err) or type(err).__name__
    if err.filename is None:
        return reason
    paths = [os.fsdecode(err.filename)]
    if err.filename2 is not None:
        paths.append(os.fsdecode(err.filename2))
    return f"{' -> '.join(paths)}: {reason}"


@contextmanager
def reading(path: str | Path, what: str = "") -> Iterator[None]:
    """Turn the ways a user's file can be unreadable into an :class:`InputError` naming it.

    Inside the block, a ``UnicodeDecodeError`` (a binary file), a ``csv.Error`` or
    ``json.JSONDecodeError``, a parser's ``ValueError`` (pandas' ``ParserError`` and
    ``EmptyDataError`` are ValueErrors), an ``EOFError`` (an empty or truncated file, e.g. from
    ``np.load``) or an ``OSError`` becomes ``<what> <path>: ...``.
    InputErrors raised inside pass through unchanged.
    """
    label = f"{what} {path}".strip()
    try:
        yield
    except InputError:
        raise
    except UnicodeDecodeError as err:
        raise InputError(
            f"{label}: not a UTF-8 text file (undecodable byte at position {err.start})"
        ) from None
    except json.JSONDecodeError as err:
        raise InputError(f"{label}: not valid JSON ({err})") from None
    except (csv.Error, ValueError) as err:
        raise InputError(f"{label}: cannot parse it ({err})") from None
    except EOFError:
        raise InputError(f"{label}: empty or truncated") from None
    except OSError as err:
        raise InputError(f"{label}: cannot read it ({err.strerror or err})") from None


@contextmanager
def exit_on_input_error(stream: TextIO | None = None) -> Iterator[None]:
    """Report what a user can cause without a traceback: an :class:`InputError`,
    :class:`NonFiniteError` or ``OSError`` prints ``error: <message>`` and exits 2,
    ``KeyboardInterrupt`` prints ``interrupted`` and exits 130. Other exceptions (bugs) pass
    through with their traceback."""
    out = stream if stream is not None else sys.stderr
    try:
        yield
    except (InputError, NonFiniteError) as err:
        print(f"error: {err}", file=out)
        raise SystemExit(EXIT_INPUT_ERROR) from None
    except KeyboardInterrupt:
        print("interrupted", file=out)
        raise SystemExit(EXIT_INTERRUPTED) from None
    except OSError as err:
        print(f"error: {os_error_message(err)}", file=out)
        raise SystemExit(EXIT_INPUT_ERROR) from None
