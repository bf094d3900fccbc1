"""The MDLM continuous-time loss: a weighted cross-entropy on the masked positions.

For ``t ~ U(0, 1)`` and ``x_t ~ q(x_t | x_0)`` the negative ELBO of a sequence is estimated by
``w(t) * sum_{l masked} -log p_theta(x_0^l | x_t)`` with ``w(t) = -alpha'(t) / (1 - alpha(t))``
and the SUBS reverse model (mask logit ``-inf``; unmasked positions carry no loss). Summed over a
batch and divided by the number of valid tokens, it is an unbiased estimate of the NELBO in nats
per token (up to the cut ``t >= t_min``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from polyfold.core.discrete.process import (
    LogitsModel,
    MaskedProcess,
    check_mask,
    check_times,
    check_tokens,
)
from polyfold.core.errors import InputError

__all__ = ["MaskedDiffusionLoss", "masked_diffusion_loss", "sample_times"]


@dataclass(frozen=True)
class MaskedDiffusionLoss:
    """The loss and what it was computed from.

    Attributes:
        loss: scalar NELBO estimate in nats per valid token (differentiable).
        token_loss: ``(B, L)`` weighted cross-entropy per position (0 where not masked).
        num_tokens: number of valid tokens the loss is averaged over.
        t: ``(B,)`` the times used. x_t: ``(B, L)`` the masked input the model saw.
    """

    loss: torch.Tensor
    token_loss: torch.Tensor
    num_tokens: int
    t: torch.Tensor
    x_t: torch.Tensor

    @property
    def bits_per_token(self) -> torch.Tensor:
        """The loss in bits per token."""
        return self.loss / math.log(2.0)


def sample_times(
    batch: int,
    *,
    generator: torch.Generator,
    device: torch.device | str | None = None,
    t_min: float = 1e-3,
    antithetic: bool = True,
) -> torch.Tensor:
    """``(batch,)`` float32 times in ``[t_min, 1)``; with ``antithetic`` (MDLM's low-discrepancy
    sampler) one uniform offset plus an even grid, ``t_i = (u + i / batch) mod 1``.
    """
    if not 0.0 <= t_min < 1.0:
        raise InputError(f"t_min: expected a value in [0, 1), got {t_min}")
    if antithetic:
        u = torch.rand(1, generator=generator, dtype=torch.float64, device=device)
        grid = torch.arange(batch, dtype=torch.float64, device=device) / batch
        u = (u + grid) % 1.0
    else:
        u = torch.rand(batch, generator=generator, dtype=torch.float64, device=device)
    return (t_min + (1.0 - t_min) * u).float()


def masked_diffusion_loss(
    model: LogitsModel,
    process: MaskedProcess,
    x0: torch.Tensor,
    *,
    generator: torch.Generator,
    valid: torch.Tensor | None = None,
    cond: Any = None,
    t: torch.Tensor | None = None,
    t_min: float = 1e-3,
) -> MaskedDiffusionLoss:
    """MDLM loss of ``model`` on data ``x0 (B, L)``.

    Args:
        valid: optional ``(B, L)`` bool, True = real token; padded positions are never masked
            and contribute nothing (they are not counted in the per-token average).
        cond: passed to the model unchanged.
        t: optional ``(B,)`` times in ``(0, 1]``; drawn by :func:`sample_times` in
            ``[t_min, 1)`` otherwise (MDLM's cut: the weight ``~1/t`` diverges at 0).
    """
    check_tokens("x0", x0)
    keep = None if valid is None else ~check_mask("valid", valid, x0)
    real = torch.ones_like(x0, dtype=torch.bool) if keep is None else ~keep
    if bool((x0[real] == process.mask_id).any()):
        raise InputError(f"x0: the data contains the mask token id {process.mask_id}")
    if t is None:
        if not 0.0 < t_min < 1.0:  # the weight diverges at t = 0
            raise InputError(f"t_min: expected a value in (0, 1), got {t_min}")
        t = sample_times(x0.shape[0], generator=generator, device=x0.device, t_min=t_min)
    t = check_times("t", t, x0.shape[0], x0.device)
    x_t = process.noise(x0, t, generator=generator, keep=keep)
    logits = model(x_t, t, cond)
    process.check_logits(logits, x_t)
    masked = (x_t == process.mask_id) & real  # a pad may hold the mask id: not masked
    # SUBS: the mask token is never predicted; unmasked positions carry over and cost nothing.
    scores = logits[masked].float()
    scores = scores.masked_fill(process.mask_onehot(scores.shape[-1], scores.device), -math.inf)
    nll = F.cross_entropy(scores, x0[masked], reduction="none")
    weight = process.schedule.weight(t.double()).to(nll.dtype)
    per_position = weight[:, None].expand(x0.shape)[masked] * nll
    token_loss = torch.zeros(x0.shape, dtype=nll.dtype, device=x0.device)
    token_loss = token_loss.masked_scatter(masked, per_position)
    num_tokens = int(real.sum())
    loss = token_loss.sum() / max(num_tokens, 1)
    return MaskedDiffusionLoss(
        loss=loss, token_loss=token_loss, num_tokens=num_tokens, t=t, x_t=x_t
    )
