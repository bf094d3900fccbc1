"""Masked (absorbing-state) discrete diffusion: schedules, the MDLM loss and its samplers.

* :mod:`~polyfold.core.discrete.schedules`: linear, cosine, log-linear ``alpha(t)``.
* :mod:`~polyfold.core.discrete.process`: :class:`MaskedProcess` (forward masking, SUBS) and
  :data:`LogitsModel`, the network ``model(x_t, t, cond) -> logits`` the samplers call.
* :mod:`~polyfold.core.discrete.loss`: :func:`masked_diffusion_loss` (NELBO in nats per token).
* :mod:`~polyfold.core.discrete.cdcd`: :func:`cdcd_loss` (CDCD's contrastive diffusion loss).
* samplers returning :class:`TokenSample` (tokens and NFE): :func:`sample_ancestral` (with the
  time-agnostic cache and a :class:`Proposal` hook), :func:`sample_first_hitting`,
  :func:`sample_confidence` and :func:`sample_blockwise`; all condition on fixed tokens and
  report every step to an optional ``callback(step, t, x, x0)``. Also by name through
  :func:`polyfold.core.samplers.get_sampler` (``kind="masked"``).
"""

from polyfold.core.discrete.ancestral import Proposal, sample_ancestral
from polyfold.core.discrete.blockwise import sample_blockwise
from polyfold.core.discrete.cdcd import CDCDLoss, cdcd_loss, inter_negatives, intra_negatives
from polyfold.core.discrete.confidence import sample_confidence
from polyfold.core.discrete.first_hitting import sample_first_hitting
from polyfold.core.discrete.loss import MaskedDiffusionLoss, masked_diffusion_loss, sample_times
from polyfold.core.discrete.process import LogitsModel, MaskedProcess
from polyfold.core.discrete.sampling import TokenSample
from polyfold.core.discrete.schedules import (
    CosineSchedule,
    LinearSchedule,
    LogLinearSchedule,
    MaskSchedule,
)

__all__ = [
    "CDCDLoss",
    "CosineSchedule",
    "LinearSchedule",
    "LogLinearSchedule",
    "LogitsModel",
    "MaskSchedule",
    "MaskedDiffusionLoss",
    "MaskedProcess",
    "Proposal",
    "TokenSample",
    "cdcd_loss",
    "inter_negatives",
    "intra_negatives",
    "masked_diffusion_loss",
    "sample_ancestral",
    "sample_blockwise",
    "sample_confidence",
    "sample_first_hitting",
    "sample_times",
]
