"""Learning-rate schedule: linear warmup, then a half-cosine decay to a floor.

The multiplier at optimizer step ``s`` (0-based, the step about to be taken) is

- ``(s + 1) / warmup_steps`` while ``s < warmup_steps`` (so the first step already moves);
- ``min_ratio + (1 - min_ratio) * (1 + cos(pi * p)) / 2`` afterwards, with
  ``p = (s - warmup_steps) / max(1, total_steps - warmup_steps)`` clipped to [0, 1].
"""

from __future__ import annotations

import math
from typing import Any

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR

from polyfold.core.errors import InputError

__all__ = ["WarmupCosine", "warmup_cosine", "warmup_cosine_schedule"]


def _check(warmup_steps: int, total_steps: int, min_ratio: float) -> None:
    if not isinstance(total_steps, int) or isinstance(total_steps, bool) or total_steps < 1:
        raise InputError(f"total_steps: expected an integer >= 1, got {total_steps!r}")
    if (
        not isinstance(warmup_steps, int)
        or isinstance(warmup_steps, bool)
        or not 0 <= warmup_steps <= total_steps
    ):
        raise InputError(
            f"warmup_steps: expected an integer in [0, total_steps={total_steps}], "
            f"got {warmup_steps!r}"
        )
    if not isinstance(min_ratio, int | float) or not 0.0 <= float(min_ratio) <= 1.0:
        raise InputError(f"min_lr_ratio: expected a number in [0, 1], got {min_ratio!r}")


def warmup_cosine(
    step: int, *, warmup_steps: int, total_steps: int, min_ratio: float = 0.0
) -> float:
    """The learning-rate multiplier (in (0, 1]) for optimizer step ``step``."""
    _check(warmup_steps, total_steps, min_ratio)
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    p = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    p = min(1.0, max(0.0, p))
    return float(min_ratio) + (1.0 - float(min_ratio)) * 0.5 * (1.0 + math.cos(math.pi * p))


class WarmupCosine:
    """:func:`warmup_cosine` as a callable for ``LambdaLR``.

    A plain object (not a closure) so that ``LambdaLR.state_dict()`` records its settings as
    JSON-friendly numbers.
    """

    def __init__(self, warmup_steps: int, total_steps: int, min_ratio: float = 0.0) -> None:
        _check(warmup_steps, total_steps, min_ratio)
        self.warmup_steps = warmup_steps
        self.total_steps = total_steps
        self.min_ratio = float(min_ratio)

    def __call__(self, step: int) -> float:
        return warmup_cosine(
            step,
            warmup_steps=self.warmup_steps,
            total_steps=self.total_steps,
            min_ratio=self.min_ratio,
        )

    def __repr__(self) -> str:
        return (
            f"WarmupCosine(warmup_steps={self.warmup_steps}, total_steps={self.total_steps}, "
            f"min_ratio={self.min_ratio})"
        )


def warmup_cosine_schedule(
    optimizer: Optimizer, *, warmup_steps: int, total_steps: int, min_ratio: float = 0.0
) -> LambdaLR:
    """A ``LambdaLR`` applying :func:`warmup_cosine` to every parameter group's base lr."""
    fn: Any = WarmupCosine(warmup_steps, total_steps, min_ratio)
    return LambdaLR(optimizer, fn)
