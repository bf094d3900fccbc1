"""MDLM ancestral sampling over a uniform time grid, with the time-agnostic cache.

From ``t`` to ``s < t`` each masked token is revealed with probability
``(alpha(s) - alpha(t)) / (1 - alpha(t))`` and, if revealed, drawn from the SUBS prediction
``p_theta(x_0 | x_t)``; unmasked tokens stay. This is MDLM's reverse step, factored into a
float64 Bernoulli and a categorical draw over the revealed positions only (the same distribution
as one draw over ``V + 1`` outcomes, without its float32 pitfall and its cost).

Caching: when a step reveals nothing, the next step reuses the previous logits instead of calling
the model. That is exact only for a time-agnostic model (one whose prediction depends on ``x_t``
alone, which the optimal SUBS model is; Zheng et al.); with a time-conditioned model it is the
usual approximation, and ``cache=False`` gives the exact process.
"""

from __future__ import annotations

from typing import Any

import torch

from polyfold.core.discrete.process import Denoiser, MaskedProcess
from polyfold.core.discrete.sampling import (
    CountedModel,
    SampleResult,
    check_precision,
    start_state,
)
from polyfold.core.errors import check_int
from polyfold.core.ops.categorical import sample_categorical

__all__ = ["sample_ancestral"]


def sample_ancestral(
    model: Denoiser,
    process: MaskedProcess,
    x: torch.Tensor,
    *,
    steps: int,
    generator: torch.Generator,
    fixed: torch.Tensor | None = None,
    cond: Any = None,
    cache: bool = True,
    precision: torch.dtype = torch.float64,
) -> SampleResult:
    """Ancestral sampling from ``t = 1`` to ``t = 0`` in ``steps`` uniform steps.

    The last step reaches ``alpha(0) = 1`` and reveals every remaining mask. The loop stops
    early once nothing is masked. See the module docstring for ``cache``.
    """
    check_int("steps", steps)
    check_precision(precision)
    x_t, fixed = start_state(process, x, fixed, generator)
    call = CountedModel(model, process, cond)
    batch = x_t.shape[0]
    times = torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64, device=x_t.device)
    mask_prob = process.schedule.mask_prob(times)
    logits: torch.Tensor | None = None
    for i in range(steps):
        masked = (x_t == process.mask_id) & ~fixed
        if not bool(masked.any()):
            break
        if logits is None or not cache:
            logits = call(x_t, times[i].expand(batch))
        reveal_prob = (mask_prob[i] - mask_prob[i + 1]) / mask_prob[i]
        u = torch.rand(x_t.shape, generator=generator, dtype=torch.float64, device=x_t.device)
        reveal = masked & (u < reveal_prob)
        if bool(reveal.any()):
            x_t = x_t.masked_scatter(
                reveal,
                sample_categorical(
                    logits[reveal],
                    generator=generator,
                    disallowed=process.mask_onehot(logits.shape[-1], logits.device),
                    precision=precision,
                ),
            )
            logits = None
    return SampleResult(tokens=x_t, nfe=call.calls)
