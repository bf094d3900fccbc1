"""Per-example path arithmetic shared by the distillation losses (tensor states only).

Distillation draws a different time for every example of a batch, so the steps here take
``(B,)`` times, unlike the samplers (one time per step for the whole batch). The steps
themselves are the samplers' (:mod:`polyfold.core.samplers.steps`: DDIM with per-example times).
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import Tensor

from polyfold.core.dtypes import F64
from polyfold.core.errors import InputError, check_number
from polyfold.core.paths import GaussianPath

Reduction = Literal["mean", "none"]


def check_tensor(x: object, name: str) -> Tensor:
    """``x`` if it is a batch-first floating tensor, else :class:`InputError`."""
    if not isinstance(x, Tensor) or x.ndim < 1 or not x.is_floating_point():
        raise InputError(f"{name}: expected a batch-first floating tensor, got {type(x).__name__}")
    return x


def check_path(path: object) -> GaussianPath:
    """``path`` if it is a Gaussian path, else :class:`InputError`."""
    if not isinstance(path, GaussianPath) or not path.gaussian:
        raise InputError(f"path: expected a GaussianPath, got {path!r}")
    return path


def times(t: Tensor | float, x: Tensor) -> Tensor:
    """``t`` as ``(B,)`` float64 on ``x``'s device."""
    tt = torch.as_tensor(t, dtype=F64, device=x.device)
    b = x.shape[0]
    if tt.ndim > 1 or tt.numel() not in (1, b):
        raise InputError(f"t: expected a number or shape ({b},), got {tuple(tt.shape)}")
    return tt.reshape(-1).expand(b)


def t_of_sigma(path: GaussianPath, s: Tensor) -> Tensor:
    """The path time where the EDM noise level ``sigma/alpha`` equals ``s`` (float64)."""
    return path.t_from_log_snr(-2.0 * torch.log(s.to(F64)))


def uniform_times(
    batch: int,
    lo: float,
    hi: float,
    generator: torch.Generator | None,
    device: torch.device,
) -> Tensor:
    """``(B,)`` float64 times uniform on ``[lo, hi]``."""
    u = torch.rand(batch, generator=generator, dtype=F64, device=device)
    return lo + (hi - lo) * u


def check_reduction(reduction: str) -> None:
    """:class:`InputError` unless ``reduction`` is ``mean`` or ``none``."""
    if reduction not in ("mean", "none"):
        raise InputError(f"reduction: expected 'mean' or 'none', got {reduction!r}")


def reduce(per_example: Tensor, reduction: str) -> Tensor:
    """Mean over the batch, or the ``(B,)`` values."""
    return per_example.mean() if reduction == "mean" else per_example


def flat_sq(diff: Tensor) -> Tensor:
    """Squared L2 norm per example, ``(B,)``."""
    return diff.reshape(diff.shape[0], -1).pow(2).sum(1)


def split_pair(batch: object, expected: str) -> tuple[Any, Any]:
    """A trainer batch ``[a, b]`` as ``(a, b)``; :class:`InputError` naming ``expected``."""
    if not isinstance(batch, list | tuple) or len(batch) != 2:
        raise InputError(f"data: expected batches of {expected}")
    return batch[0], batch[1]


def check_finite_positive(value: object, name: str) -> float:
    """``value`` as a float if finite and > 0."""
    return check_number(name, value, strict=True)
