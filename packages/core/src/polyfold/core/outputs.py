"""What a command writes: nothing a user wrote is replaced, and a failure leaves no half file.

Every polyfold CLI checks its outputs before any work starts and writes them atomically::

    @app.command()
    def sample(out: Path, force: Force = False) -> None:
        folder = prepare_output_dir(out, force=force)       # refuses a non-empty folder
        ...                                                 # the long work
        write_text(folder / "samples.csv", text)            # temp file + os.replace

:func:`check_output_file` refuses an existing file and :func:`prepare_output_dir` a non-empty
folder unless ``--force`` (:data:`Force`, the one spelling of that option) is given; both create
the parent folders and probe-write into them, so an unwritable path fails in a second, not after
the work. :func:`write_text` / :func:`write_bytes` / :func:`write_report` go through a temporary
file in the same folder and ``os.replace``: a reader sees the old file or the new one.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from polyfold.core.errors import InputError

if TYPE_CHECKING:
    from polyfold.core.report import Report

__all__ = [
    "FORCE_HELP",
    "Force",
    "check_output_file",
    "force_option",
    "prepare_output_dir",
    "probe_writable",
    "write_bytes",
    "write_report",
    "write_text",
]

FORCE_HELP = "Replace existing outputs (an existing file, or files in a non-empty folder)."


def force_option(help: str = FORCE_HELP) -> Any:
    """The ``--force`` option, for a command that needs its own help text."""
    return typer.Option("--force", help=help)


#: ``force: Force = False`` in a typer command: the ``--force`` option of every polyfold CLI.
Force = Annotated[bool, force_option()]


def probe_writable(folder: Path, option: str = "--out") -> None:
    """Create ``folder`` (and its parents) and write and remove a probe file in it, or raise an
    InputError naming ``option`` and the reason."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".polyfold-probe-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise InputError(f"{option} {folder}: cannot write there ({err.strerror or err})") from None


def check_output_file(path: str | Path, *, force: bool = False, option: str = "--out") -> Path:
    """``path`` as a file this command may write: not a folder, not an existing file (unless
    ``force``), in a writable folder (created if missing)."""
    p = Path(path)
    if p.is_dir():
        raise InputError(f"{option} {p}: is a folder; expected a file name")
    if p.exists() and not force:
        raise InputError(
            f"{option} {p}: file exists; pass --force to replace it or choose another name"
        )
    probe_writable(p.parent, option)
    return p


def prepare_output_dir(path: str | Path, *, force: bool = False, option: str = "--out") -> Path:
    """``path`` as a folder this command may fill: created if missing; an existing non-empty
    folder is refused unless ``force`` (then files of the same names are replaced); it must be
    writable."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise InputError(f"{option} {p}: exists and is not a folder")
    if p.is_dir() and not force and any(p.iterdir()):
        raise InputError(
            f"{option} {p}: folder is not empty; choose a new or empty folder, or pass --force "
            "to write into it (files of the same names are replaced)"
        )
    probe_writable(p, option)
    return p


def write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temporary file in the same folder, then
    ``os.replace``); on any failure the old file, if any, is untouched."""
    from polyfold.core.train.checkpoint import atomic_write

    return atomic_write(Path(path), data)


def write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically, like :func:`write_bytes`."""
    return write_bytes(path, text.encode("utf-8"))


def write_report(report: Report, path: str | Path) -> Path:
    """Write a :class:`~polyfold.core.report.Report` as HTML atomically."""
    return write_text(path, report.render())
