"""Confidence-based remasking (LLaDA's low-confidence remasking, Nie et al.).

At every step the model predicts all masked tokens at once; the ``k`` predictions with the highest
probability are kept and the rest are remasked. ``k`` follows the process's schedule: after the
step ending at time ``s`` about ``n * (1 - alpha(s)) / (1 - alpha(1))`` of the ``n`` tokens to
generate are still masked (uniform counts for the linear schedule, as in LLaDA), and the last step
(``s = 0``) reveals everything. Not an exact sampler of the diffusion: a fast heuristic.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from polyfold.core.denoiser import NFECounter
from polyfold.core.discrete.process import LogitsModel, MaskedProcess
from polyfold.core.discrete.sampling import (
    TokenSample,
    check_precision,
    counted_logits,
    start_state,
)
from polyfold.core.errors import InputError, check_int
from polyfold.core.ops.categorical import sample_categorical

if TYPE_CHECKING:  # polyfold.core.samplers imports this module (its registry)
    from polyfold.core.state import StepCallback

__all__ = ["sample_confidence"]


def sample_confidence(
    model: LogitsModel,
    process: MaskedProcess,
    x: torch.Tensor,
    *,
    steps: int,
    generator: torch.Generator,
    fixed: torch.Tensor | None = None,
    cond: Any = None,
    callback: StepCallback | None = None,
    temperature: float = 1.0,
    precision: torch.dtype = torch.float64,
) -> TokenSample:
    """Low-confidence remasking in ``steps`` steps (fewer model calls if a step reveals nothing).

    Candidates are drawn at ``temperature`` (``0``: the argmax, LLaDA's default); a candidate's
    confidence is its probability under the model's untempered prediction. ``callback`` is
    called at every step (``steps`` calls, the ``i``-th with ``t = 1 - (i + 1) / steps``) with
    ``x0`` the step's candidates in every masked position (``None`` in a step that revealed
    nothing and called no model).
    """
    check_int("steps", steps)
    check_precision(precision)
    if not isinstance(temperature, int | float) or temperature < 0:
        raise InputError(f"temperature: expected a number >= 0, got {temperature!r}")
    x_t, fixed = start_state(process, x, fixed, generator)
    counter = NFECounter()
    call = counted_logits(model, process, cond, counter)
    batch, length = x_t.shape
    times = torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64, device=x_t.device)
    mask_prob = process.schedule.mask_prob(times)
    masked = (x_t == process.mask_id) & ~fixed
    total = masked.sum(dim=1).double()
    ranks_base = torch.arange(length, device=x_t.device).expand(batch, length)
    for i in range(steps):
        left_after = torch.round(total * (mask_prob[i + 1] / mask_prob[0])).long()
        reveal_count = masked.sum(dim=1) - left_after
        if not bool((reveal_count > 0).any()):
            if callback is not None:
                callback(i, float(times[i + 1]), x_t, None)
            continue
        logits = call(x_t, times[i].expand(batch))
        scores = logits[masked].double()
        scores[:, process.mask_id] = float("-inf")
        if temperature == 0:
            candidates = scores.argmax(dim=-1)
        else:
            candidates = sample_categorical(
                scores / temperature, generator=generator, precision=precision
            )
        probs = scores.softmax(dim=-1).gather(-1, candidates[:, None]).squeeze(-1)
        confidence = torch.full(x_t.shape, -1.0, dtype=torch.float64, device=x_t.device)
        confidence[masked] = probs
        order = confidence.argsort(dim=1, descending=True, stable=True)
        ranks = torch.empty_like(order).scatter_(1, order, ranks_base)
        reveal = masked & (ranks < reveal_count[:, None])
        proposal = x_t.masked_scatter(masked, candidates)
        x_t = torch.where(reveal, proposal, x_t)
        masked &= ~reveal
        if callback is not None:
            callback(i, float(times[i + 1]), x_t, proposal)
    call.check("confidence")
    return TokenSample(tokens=x_t, nfe=counter.count)
