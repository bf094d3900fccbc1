"""What the masked-diffusion samplers share: the result, the starting state, counted model calls.

Every sampler takes ``(model, process, x)`` where ``x (B, L)`` holds the given tokens, an optional
``fixed (B, L)`` bool mask of positions that are never masked and never changed (prefix, suffix,
infilling, padding; a fixed position keeps whatever it holds), a required ``torch.Generator`` and
``cond`` passed to the model. Positions not fixed start masked and end unmasked.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from polyfold.core.discrete.process import Denoiser, MaskedProcess, check_mask, check_tokens
from polyfold.core.errors import InputError

__all__ = ["SampleResult"]


@dataclass(frozen=True)
class SampleResult:
    """Generated tokens ``(B, L)`` and the number of model calls (NFE) it took."""

    tokens: torch.Tensor
    nfe: int


class CountedModel:
    """Calls ``model(x_t, t, cond)``, checks the logits' shape and counts the calls."""

    def __init__(self, model: Denoiser, process: MaskedProcess, cond: Any) -> None:
        self.model, self.process, self.cond = model, process, cond
        self.calls = 0

    def __call__(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        logits = self.model(x_t, t.float(), self.cond)
        self.calls += 1
        self.process.check_logits(logits, x_t)
        return logits


def start_state(
    process: MaskedProcess,
    x: torch.Tensor,
    fixed: torch.Tensor | None,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x_start, fixed)``: ``x`` with every non-fixed position set to the mask token."""
    check_tokens("x", x)
    if not isinstance(generator, torch.Generator):
        raise InputError(f"generator: expected a torch.Generator, got {type(generator).__name__}")
    if generator.device.type != x.device.type:
        raise InputError(
            f"generator: expected one on {x.device.type} like x, got one on {generator.device.type}"
        )
    if fixed is None:
        fixed = torch.zeros_like(x, dtype=torch.bool)
    fixed = check_mask("fixed", fixed, x)
    return x.masked_fill(~fixed, process.mask_id).long(), fixed


def check_precision(precision: torch.dtype) -> None:
    """Raise :class:`InputError` unless ``precision`` is float32 or float64."""
    if precision not in (torch.float32, torch.float64):
        raise InputError(f"precision: expected torch.float64 or torch.float32, got {precision}")
