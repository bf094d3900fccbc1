"""Conditional discrete contrastive diffusion (CDCD, Zhu et al.): the masked-diffusion loss plus
an InfoNCE term that raises the likelihood of the data under its own condition against negatives.

The score of a token sequence ``y`` under a condition is the negative of its MDLM loss,
``s(y) = -(w(t) / L) sum_{l masked} -log p(y_l | x_t, cond)`` (the per-token NELBO estimate of
:func:`~polyfold.core.discrete.loss.masked_diffusion_loss`). With the positive ``x0`` and ``J``
negatives ``y_j`` per row, the contrastive term is
``-log( exp(s(x0) / tau) / (exp(s(x0) / tau) + sum_j exp(s(y_j) / tau)) )``, averaged over rows;
minimising it maximises a lower bound on the mutual information of condition and output.

Two ways of diffusing the negatives (the paper's two mechanisms):

* ``"step"`` (step-wise parallel diffusion): every negative runs its own forward process at the
  row's time ``t`` and is scored from the model's prediction on its own ``x_t^j``
  (``1 + J`` model inputs per row, one batched call).
* ``"sample"`` (sample-wise auxiliary diffusion): one principal process on ``x0``; each negative
  is scored at the principal's masked positions from the principal prediction (one call).

Negatives: :func:`intra_negatives` (the row's own sequence with a fraction of its tokens
replaced) and :func:`inter_negatives` (other rows of the batch, i.e. data paired with another
condition); concatenate them along dim 1 to use both.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from polyfold.core.discrete.loss import masked_diffusion_loss
from polyfold.core.discrete.process import LogitsModel, MaskedProcess, check_tokens
from polyfold.core.errors import InputError, check_int

__all__ = ["CDCDLoss", "cdcd_loss", "inter_negatives", "intra_negatives", "sequence_scores"]

MODES = ("step", "sample")


@dataclass(frozen=True)
class CDCDLoss:
    """``loss = diffusion + weight * contrastive`` and its parts.

    Attributes:
        loss: the scalar to minimise. diffusion: the MDLM NELBO per token. contrastive: the
        InfoNCE term. scores: ``(B, 1 + J)`` sequence scores, column 0 the positive.
    """

    loss: torch.Tensor
    diffusion: torch.Tensor
    contrastive: torch.Tensor
    scores: torch.Tensor


def sequence_scores(
    process: MaskedProcess,
    logits: torch.Tensor,
    x_t: torch.Tensor,
    y: torch.Tensor,
    t: torch.Tensor,
) -> torch.Tensor:
    """``(B,)`` scores ``-(w(t) / L) sum_{masked l} -log p(y_l)`` of targets ``y (B, L)`` under
    ``logits (B, L, V)`` at the masked positions of ``x_t`` (SUBS: the mask never predicted)."""
    scores = logits.float().masked_fill(
        process.mask_onehot(logits.shape[-1], logits.device), -math.inf
    )
    logp = F.log_softmax(scores, dim=-1).gather(-1, y[..., None]).squeeze(-1)
    masked = x_t == process.mask_id
    nll = torch.where(masked, -logp, torch.zeros_like(logp)).sum(dim=1)
    weight = process.schedule.weight(t.double()).to(nll.dtype)
    return -weight * nll / y.shape[1]


def intra_negatives(
    x0: torch.Tensor,
    count: int,
    *,
    vocab_size: int,
    mask_id: int,
    fraction: float = 0.5,
    generator: torch.Generator,
) -> torch.Tensor:
    """``(B, count, L)``: each row's own sequence with ``ceil(fraction * L)`` random positions
    set to a random different non-mask token."""
    check_tokens("x0", x0)
    check_int("count", count, 1)
    if not 0.0 < fraction <= 1.0:
        raise InputError(f"fraction: expected a value in (0, 1], got {fraction}")
    if vocab_size < 3 or not 0 <= mask_id < vocab_size:
        raise InputError(
            f"vocab_size: expected >= 3 with mask_id {mask_id} inside it, got {vocab_size}"
        )
    b, length = x0.shape
    k = max(1, math.ceil(fraction * length))
    rep = x0[:, None].expand(b, count, length).clone()
    order = torch.rand(b, count, length, generator=generator, device=x0.device).argsort(dim=-1)
    pick = order[..., :k]
    old = rep.gather(-1, pick)
    # a uniform token among the vocab minus {mask, old}: shift past the two excluded ids
    lo, hi = (
        torch.minimum(old, torch.full_like(old, mask_id)),
        torch.maximum(old, torch.full_like(old, mask_id)),
    )
    draws = vocab_size - 2 + (old == mask_id).long()
    new = (torch.rand(old.shape, generator=generator, device=x0.device) * draws).long()
    new = new + (new >= lo).long()
    new = new + ((new >= hi) & (lo != hi)).long()
    return rep.scatter(-1, pick, new)


def inter_negatives(x0: torch.Tensor, count: int) -> torch.Tensor:
    """``(B, count, L)``: for row ``i`` the sequences of rows ``i - 1, ..., i - count`` (mod B),
    paired with row ``i``'s condition they are negatives."""
    check_tokens("x0", x0)
    check_int("count", count, 1)
    if count >= x0.shape[0]:
        raise InputError(
            f"count: expected fewer inter-negatives than rows ({x0.shape[0]}), got {count}"
        )
    return torch.stack([x0.roll(j, dims=0) for j in range(1, count + 1)], dim=1)


def cdcd_loss(
    model: LogitsModel,
    process: MaskedProcess,
    x0: torch.Tensor,
    negatives: torch.Tensor,
    *,
    generator: torch.Generator,
    cond: Any = None,
    mode: str = "step",
    weight: float = 1.0,
    temperature: float = 1.0,
    t: torch.Tensor | None = None,
    t_min: float = 1e-3,
) -> CDCDLoss:
    """The MDLM loss of ``model`` on ``x0 (B, L)`` plus ``weight`` times the contrastive term
    against ``negatives (B, J, L)`` under ``cond`` (``"step"`` or ``"sample"`` diffusion of the
    negatives, see the module text). ``cond`` must be batched along dim 0 (tensors or tuples of
    tensors) for ``"step"``, which repeats it for the negatives."""
    if mode not in MODES:
        raise InputError(f"mode: expected one of {', '.join(MODES)}, got {mode!r}")
    if not isinstance(temperature, int | float) or temperature <= 0:
        raise InputError(f"temperature: expected a number > 0, got {temperature!r}")
    check_tokens("x0", x0)
    b, length = x0.shape
    if not isinstance(negatives, torch.Tensor) or negatives.dim() != 3 or negatives.shape[0] != b \
            or negatives.shape[2] != length or negatives.dtype != x0.dtype:  # fmt: skip
        got = tuple(negatives.shape) if isinstance(negatives, torch.Tensor) else negatives
        raise InputError(f"negatives: expected {x0.dtype} of shape ({b}, J, {length}), got {got}")
    if bool((negatives == process.mask_id).any()):
        raise InputError(f"negatives: contain the mask token id {process.mask_id}")
    calls: list[torch.Tensor] = []

    def recording(x_t: torch.Tensor, tt: torch.Tensor, c: Any) -> torch.Tensor:
        out = model(x_t, tt, c)
        calls.append(out)
        return out

    base = masked_diffusion_loss(
        recording, process, x0, generator=generator, cond=cond, t=t, t_min=t_min
    )
    logits, x_t = calls[0], base.x_t
    pos = sequence_scores(process, logits, x_t, x0, base.t)
    j = negatives.shape[1]
    flat = negatives.reshape(b * j, length)
    tj = base.t.repeat_interleave(j)
    if mode == "step":
        xj = process.noise(flat, tj, generator=generator)
        lj = model(xj, tj, _repeat(cond, j))
        process.check_logits(lj, xj)
        neg = sequence_scores(process, lj, xj, flat, tj)
    else:
        xj = x_t.repeat_interleave(j, dim=0)
        neg = sequence_scores(process, logits.repeat_interleave(j, dim=0), xj, flat, tj)
    scores = torch.cat([pos[:, None], neg.reshape(b, j)], dim=1)
    contrastive = -F.log_softmax(scores / temperature, dim=1)[:, 0].mean()
    return CDCDLoss(
        loss=base.loss + weight * contrastive,
        diffusion=base.loss,
        contrastive=contrastive,
        scores=scores,
    )


def _repeat(cond: Any, j: int) -> Any:
    """``cond`` with each row repeated ``j`` times (tensors, tuples/lists of them, or None)."""
    if cond is None:
        return None
    if isinstance(cond, torch.Tensor):
        return cond.repeat_interleave(j, dim=0)
    if isinstance(cond, tuple | list):
        return type(cond)(_repeat(c, j) for c in cond)
    raise InputError(
        f"cond: mode 'step' repeats the condition per negative; expected a tensor, a tuple of "
        f"tensors or None, got {type(cond).__name__}"
    )
