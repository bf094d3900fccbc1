"""The one dispatch rule of polyfold.core.ops: a Triton kernel or its PyTorch reference.

A kernel runs when Triton is importable and every tensor argument is on a CUDA device; otherwise
the plain-PyTorch reference of the same signature runs. ``POLYFOLD_DISABLE_TRITON=1`` forces the
references everywhere. Tests call the kernels directly on CPU under ``TRITON_INTERPRET=1``.
"""

from __future__ import annotations

import importlib.util
import os
from functools import cache

import torch

__all__ = ["use_triton"]


@cache
def _triton_importable() -> bool:
    return importlib.util.find_spec("triton") is not None


def use_triton(*tensors: torch.Tensor) -> bool:
    """Whether the Triton kernel (rather than the reference) should run on these tensors."""
    if os.environ.get("POLYFOLD_DISABLE_TRITON") == "1" or not _triton_importable():
        return False
    return all(t.is_cuda for t in tensors)
