"""The first-hitting sampler (FHS) of Zheng et al., "Masked diffusion models are secretly
time-agnostic masked models and exploit inaccurate categorical sampling".

With ``n`` tokens masked at time ``t``, each was (in the forward process) masked at an
independent time with ``P(tau <= s | tau <= t) = (1 - alpha(s)) / (1 - alpha(t))``; going back
in time, the next token is revealed at the largest of them, whose law is the ``n``-th power of
that ratio. Drawn by inversion: ``1 - alpha(s) = (1 - alpha(t)) * u**(1/n)``, ``u ~ U(0, 1)``.
At that time one masked position, uniform among them, is revealed by a draw from the model's
prediction. The result has exactly the law of MDLM's continuous-time reverse process, with one
model call per revealed token. Batched: every sequence has its own clock and reveals one token
per call, so a batch takes ``max_b n_b`` calls.

A step is one such call (one reveal event per unfinished sequence); ``callback(step, t, x, x0)``
gets the batch's time after it, the latest clock of the sequences still masked (``0`` once none
is, so the last step reports ``t = 0``), and ``x0`` the model's most likely tokens at the
positions still masked.
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
    greedy_estimate,
    start_state,
)
from polyfold.core.ops.categorical import sample_categorical

if TYPE_CHECKING:  # polyfold.core.samplers imports this module (its registry)
    from polyfold.core.state import StepCallback

__all__ = ["sample_first_hitting"]


def sample_first_hitting(
    model: LogitsModel,
    process: MaskedProcess,
    x: torch.Tensor,
    *,
    generator: torch.Generator,
    fixed: torch.Tensor | None = None,
    cond: Any = None,
    callback: StepCallback | None = None,
    precision: torch.dtype = torch.float64,
) -> TokenSample:
    """Reveal one token per sequence per model call at analytically drawn hitting times
    (``max_b n_b`` steps for ``n_b`` positions to generate in sequence ``b``)."""
    check_precision(precision)
    x_t, fixed = start_state(process, x, fixed, generator)
    counter = NFECounter()
    call = counted_logits(model, process, cond, counter)
    batch, device = x_t.shape[0], x_t.device
    rows = torch.arange(batch, device=device)
    masked = (x_t == process.mask_id) & ~fixed
    remaining = masked.sum(dim=1)
    mask_prob = process.schedule.mask_prob(torch.ones(batch, dtype=torch.float64, device=device))
    step = 0
    while bool((remaining > 0).any()):
        active = remaining > 0
        u = torch.rand(batch, generator=generator, dtype=torch.float64, device=device)
        hit = mask_prob * u ** (1.0 / remaining.clamp(min=1).double())
        mask_prob = torch.where(active, hit, mask_prob)
        t = process.schedule.time_of_mask_prob(mask_prob)
        logits = call(x_t, t)
        # One masked position per sequence, uniformly: the argmax of uniform scores.
        scores = torch.rand(x_t.shape, generator=generator, dtype=torch.float64, device=device)
        position = scores.masked_fill(~masked, -1.0).argmax(dim=1)
        tokens = sample_categorical(
            logits[rows, position],
            generator=generator,
            disallowed=process.mask_onehot(logits.shape[-1], device),
            precision=precision,
        )
        rows_a, position_a = rows[active], position[active]
        x_t[rows_a, position_a] = tokens[active]
        masked[rows_a, position_a] = False
        remaining = remaining - active.long()
        if callback is not None:
            now = float(torch.where(remaining > 0, t, torch.zeros_like(t)).max())
            estimate = greedy_estimate(process, logits, x_t, fixed)
            callback(step, now, x_t.clone(), estimate)  # x_t changes in place
        step += 1
    call.check("first_hitting")
    return TokenSample(tokens=x_t, nfe=counter.count)
