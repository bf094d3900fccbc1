"""The masked (absorbing-state) forward process and the SUBS parameterisation of MDLM.

Forward: each token of ``x_0`` is independently replaced by the mask token with probability
``1 - alpha(t)``; a masked token stays masked. A network is ``model(x_t, t, cond) -> logits``
with ``x_t`` a ``LongTensor (B, L)``, ``t`` a ``(B,)`` float tensor and logits ``(B, L, V)``
over a vocabulary that contains the mask token. SUBS (Sahoo et al., MDLM) turns those logits
into the reverse model: the mask token is never predicted (its logit is ``-inf``) and an unmasked
token is carried over unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from polyfold.core.discrete.schedules import MaskSchedule
from polyfold.core.errors import InputError

__all__ = ["LogitsModel", "MaskedProcess"]

LogitsModel = Callable[[torch.Tensor, torch.Tensor, Any], torch.Tensor]
"""``model(x_t: LongTensor (B, L), t: Tensor (B,), cond) -> logits (B, L, V)``."""


@dataclass(frozen=True)
class MaskedProcess:
    """The absorbing-state process: a schedule and the id of the mask token."""

    schedule: MaskSchedule
    mask_id: int

    def __post_init__(self) -> None:
        if not isinstance(self.schedule, MaskSchedule):
            raise InputError(
                f"schedule: expected a MaskSchedule, got {type(self.schedule).__name__}"
            )
        if isinstance(self.mask_id, bool) or not isinstance(self.mask_id, int) or self.mask_id < 0:
            raise InputError(f"mask_id: expected a non-negative int, got {self.mask_id!r}")

    def noise(
        self,
        x0: torch.Tensor,
        t: torch.Tensor,
        *,
        generator: torch.Generator,
        keep: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Draw ``x_t ~ q(x_t | x_0)``; positions where ``keep (B, L)`` is True are never masked."""
        check_tokens("x0", x0)
        t = check_times("t", t, x0.shape[0], x0.device)
        mask_prob = self.schedule.mask_prob(t.double())[:, None]
        u = torch.rand(x0.shape, generator=generator, dtype=torch.float64, device=x0.device)
        masked = u < mask_prob
        if keep is not None:
            masked &= ~check_mask("keep", keep, x0)
        return x0.masked_fill(masked, self.mask_id)

    def subs_logits(self, logits: torch.Tensor, x_t: torch.Tensor) -> torch.Tensor:
        """SUBS: the mask logit set to ``-inf``; unmasked positions become one-hot on their token
        (``0`` there, ``-inf`` elsewhere), so the reverse model carries them over.
        """
        self.check_logits(logits, x_t)
        out = logits.masked_fill(self.mask_onehot(logits.shape[-1], logits.device), float("-inf"))
        unmasked = x_t != self.mask_id
        carried = torch.full_like(out[unmasked], float("-inf"))
        carried.scatter_(-1, x_t[unmasked][:, None], 0.0)
        out[unmasked] = carried
        return out

    def mask_onehot(self, vocab: int, device: torch.device) -> torch.Tensor:
        """``(V,)`` bool, True at the mask token: the categories a sampler must never draw."""
        onehot = torch.zeros(vocab, dtype=torch.bool, device=device)
        onehot[self.mask_id] = True
        return onehot

    def check_logits(self, logits: torch.Tensor, x_t: torch.Tensor) -> None:
        """Raise :class:`InputError` unless logits are float ``(B, L, V)``, ``V > mask_id``."""
        if (
            not isinstance(logits, torch.Tensor)
            or not logits.is_floating_point()
            or logits.shape[:-1] != x_t.shape
            or logits.dim() != 3
            or logits.shape[-1] <= self.mask_id
        ):
            shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits)
            raise InputError(
                f"model: expected float logits of shape (B, L, V) = ({x_t.shape[0]}, "
                f"{x_t.shape[1]}, V) with V > mask_id = {self.mask_id}, got {shape}"
            )


def check_tokens(name: str, x: torch.Tensor) -> None:
    """Raise :class:`InputError` unless ``x`` is an integer tensor of shape ``(B, L)``."""
    if (
        not isinstance(x, torch.Tensor)
        or x.dim() != 2
        or x.dtype.is_floating_point
        or x.dtype.is_complex
        or x.dtype == torch.bool
    ):
        got = f"{x.dtype} {tuple(x.shape)}" if isinstance(x, torch.Tensor) else type(x).__name__
        raise InputError(f"{name}: expected an integer tensor of token ids (B, L), got {got}")


def check_mask(name: str, mask: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Return ``mask`` after checking that it is a bool tensor shaped like ``x``."""
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool or mask.shape != x.shape:
        got = f"{mask.dtype} {tuple(mask.shape)}" if isinstance(mask, torch.Tensor) else mask
        raise InputError(f"{name}: expected a bool tensor of shape {tuple(x.shape)}, got {got}")
    return mask.to(x.device)


def check_times(name: str, t: torch.Tensor, batch: int, device: torch.device) -> torch.Tensor:
    """Return ``t`` after checking that it is a float ``(B,)`` tensor with values in (0, 1]."""
    if not isinstance(t, torch.Tensor) or not t.is_floating_point() or t.shape != (batch,):
        got = f"{t.dtype} {tuple(t.shape)}" if isinstance(t, torch.Tensor) else type(t).__name__
        raise InputError(f"{name}: expected a float tensor of shape ({batch},), got {got}")
    if bool(((t <= 0) | (t > 1)).any()):
        raise InputError(f"{name}: times must lie in (0, 1], got values in [{t.min()}, {t.max()}]")
    return t.to(device)
