"""Input checks shared by the processors: shapes and finite values, as InputError."""

from __future__ import annotations

import torch

from polyfold.core.errors import InputError


def check_tensor(name: str, x: object, ndim: int | tuple[int, ...]) -> torch.Tensor:
    """``x`` as a floating tensor with ``ndim`` dimensions and only finite values."""
    dims = (ndim,) if isinstance(ndim, int) else ndim
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        got = x.dtype if isinstance(x, torch.Tensor) else type(x).__name__
        raise InputError(f"{name}: expected a floating-point tensor, got {got}")
    if x.dim() not in dims:
        raise InputError(
            f"{name}: expected {' or '.join(map(str, dims))} dimensions, got shape {tuple(x.shape)}"
        )
    if x.numel() == 0:
        raise InputError(f"{name}: expected a non-empty tensor, got shape {tuple(x.shape)}")
    if not bool(torch.isfinite(x.detach()).all()):
        raise InputError(f"{name}: contains NaN or infinite values")
    return x


def check_rate(name: str, value: object) -> float:
    """A positive finite sample or frame rate."""
    if (
        not isinstance(value, int | float)
        or not value > 0
        or value != value
        or value == float("inf")
    ):
        raise InputError(f"{name}: expected a positive number, got {value!r}")
    return float(value)
