"""What the masked-diffusion samplers share: the result, the starting state, the counted model
call and the clean estimate they report per step.

Every sampler takes ``(model, process, x)`` where ``x (B, L)`` holds the given tokens, an optional
``fixed (B, L)`` bool mask of positions that are never masked and never changed (prefix, suffix,
infilling, padding; a fixed position keeps whatever it holds), a required ``torch.Generator``,
``cond`` passed to the model and an optional ``callback(step, t, x, x0)``
(:data:`~polyfold.core.samplers.result.StepCallback`), called once per step after step ``step``
moved the tokens ``x`` to time ``t``, with ``x0`` the clean estimate of that step (or ``None``).
Positions not fixed start masked and end unmasked.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from polyfold.core.denoiser import NFECounter
from polyfold.core.discrete.process import LogitsModel, MaskedProcess, check_mask, check_tokens
from polyfold.core.errors import InputError, NonFiniteError

__all__ = ["TokenSample"]

LogitsCall = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""``call(x_t (B, L), t (B,)) -> logits (B, L, V)``: a model with its ``cond`` bound."""


@dataclass(frozen=True)
class TokenSample:
    """Generated tokens ``(B, L)`` and the number of model calls (NFE) it took."""

    tokens: torch.Tensor
    nfe: int


class CountedLogits:
    """``model(x_t, t, cond)`` with ``t`` cast to float32, its logits' shape checked and every
    call counted in ``counter``. It also notes, on the device (no host sync), whether a call's
    logits held NaN or ``+inf`` (``-inf`` is a legitimate zero probability); :meth:`check`,
    called once at the end of a sampler, raises :class:`NonFiniteError` naming the sampler and
    the first such call instead of returning tokens drawn from them."""

    def __init__(
        self, model: LogitsModel, process: MaskedProcess, cond: Any, counter: NFECounter
    ) -> None:
        self.model, self.process, self.cond, self.counter = model, process, cond, counter
        self._bad: list[torch.Tensor] = []

    def __call__(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        logits = self.model(x_t, t.float(), self.cond)
        self.counter.add()
        self.process.check_logits(logits, x_t)
        seen = logits.detach()
        self._bad.append(torch.isnan(seen).any() | torch.isposinf(seen).any())
        return logits

    def check(self, sampler: str) -> None:
        """Raise :class:`NonFiniteError` if any call so far gave NaN or ``+inf`` logits."""
        if not self._bad:
            return
        bad = torch.stack([b.cpu() for b in self._bad])
        if bool(bad.any()):
            first = int(bad.nonzero()[0]) + 1
            raise NonFiniteError(
                f"{sampler}: the model's logits hold NaN or +inf from call {first} of "
                f"{len(self._bad)}; the tokens drawn from them would be arbitrary (check the "
                "model file and its inputs)"
            )


def counted_logits(
    model: LogitsModel, process: MaskedProcess, cond: Any, counter: NFECounter
) -> CountedLogits:
    """The model as a counted, checked :class:`CountedLogits` call ``call(x_t, t)``."""
    return CountedLogits(model, process, cond, counter)


def greedy_estimate(
    process: MaskedProcess, logits: torch.Tensor, x_t: torch.Tensor, fixed: torch.Tensor
) -> torch.Tensor:
    """``x_t`` with every masked, non-fixed position set to its most likely token under
    ``logits`` (never the mask): the clean estimate a step reports to its callback."""
    masked = (x_t == process.mask_id) & ~fixed
    best = logits.masked_fill(process.mask_onehot(logits.shape[-1], logits.device), float("-inf"))
    return torch.where(masked, best.argmax(dim=-1), x_t)


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
