"""The one dispatch rule of polyfold.core.ops: a Triton kernel or its PyTorch reference.

A kernel runs when Triton is importable and every tensor argument is on a CUDA device, or when
``TRITON_INTERPRET=1`` (Triton's CPU interpreter, used by the tests). ``POLYFOLD_DISABLE_TRITON=1``
forces the references everywhere.
"""

from __future__ import annotations

import os
from functools import cache

import torch

from polyfold.core.system import triton_available

__all__ = ["use_triton"]


@cache
def _triton_importable() -> bool:
    return triton_available()


def use_triton(*tensors: torch.Tensor) -> bool:
    """Whether the Triton kernel (rather than the reference) should run on these tensors."""
    if os.environ.get("POLYFOLD_DISABLE_TRITON") == "1" or not _triton_importable():
        return False
    if os.environ.get("TRITON_INTERPRET") == "1":
        return True
    return all(t.is_cuda for t in tensors)
