"""The small CPU-trained models that ship with the package (cards give the exact commands)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from polyfold.core.errors import InputError

__all__ = ["SHIPPED", "shipped_path"]

SHIPPED = ("tokenizer", "evaluator", "emdm", "ddpm", "mmdm", "mogo", "t2m-gpt", "mmm", "mmm_plain",
           "bipo", "bipo_tokenizer")  # fmt: skip


def shipped_path(name: str) -> Path:
    """Path (without suffix) of a shipped model file pair under ``polyfold/motion/weights``."""
    if name not in SHIPPED:
        raise InputError(f"model {name!r}: expected one of {', '.join(SHIPPED)}")
    path = Path(str(resources.files("polyfold.motion").joinpath("weights", name)))
    if not path.with_suffix(".safetensors").is_file():
        raise InputError(f"model {name!r}: {path}.safetensors is missing from the installation")
    return path
