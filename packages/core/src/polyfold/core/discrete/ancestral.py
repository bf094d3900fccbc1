"""MDLM ancestral sampling over a uniform time grid, with the time-agnostic cache and a proposal
hook.

From ``t`` to ``s < t`` each masked token is revealed with probability
``(alpha(s) - alpha(t)) / (1 - alpha(t))`` and, if revealed, drawn from the SUBS prediction
``p_theta(x_0 | x_t)``; unmasked tokens stay. This is MDLM's reverse step, factored into a
float64 Bernoulli and a categorical draw over the revealed positions only (the same distribution
as one draw over ``V + 1`` outcomes, without its float32 pitfall and its cost).

Caching: when a step reveals nothing, the next step reuses the previous logits instead of calling
the model. That is exact only for a time-agnostic model (one whose prediction depends on ``x_t``
alone, which the optimal SUBS model is; Zheng et al.); with a time-conditioned model it is the
usual approximation, and ``cache=False`` gives the exact process.

Proposal: a :class:`Proposal` replaces, in the steps it is active for, the independent
per-position draws by a whole clean sequence ``x0`` of its own (EDLM's importance resampling over
``k`` candidates, :mod:`polyfold.text.edlm`, is one); the step then reveals ``x0``'s tokens at
the positions the Bernoulli draws pick.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

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
from polyfold.core.errors import InputError, check_int
from polyfold.core.ops.categorical import sample_categorical

if TYPE_CHECKING:  # polyfold.core.samplers imports this module (its registry)
    from polyfold.core.state import StepCallback

__all__ = ["Proposal", "sample_ancestral"]


class Proposal(Protocol):
    """A whole-sequence draw of ``x0`` for some ancestral steps (see the module docstring)."""

    def active(self, t: float) -> bool:
        """Whether the step starting at time ``t`` uses the proposal."""
        ...

    def __call__(
        self, logits: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor, generator: torch.Generator
    ) -> torch.Tensor:
        """A clean sequence ``x0 (B, L)`` given the model's ``logits (B, L, V)`` at ``x_t``
        and times ``t (B,)`` (float64); random draws from ``generator``. Only its tokens at
        the masked positions are used."""
        ...


def sample_ancestral(
    model: LogitsModel,
    process: MaskedProcess,
    x: torch.Tensor,
    *,
    steps: int,
    generator: torch.Generator,
    fixed: torch.Tensor | None = None,
    cond: Any = None,
    callback: StepCallback | None = None,
    cache: bool = True,
    precision: torch.dtype = torch.float64,
    proposal: Proposal | None = None,
) -> TokenSample:
    """Ancestral sampling from ``t = 1`` to ``t = 0`` in ``steps`` uniform steps.

    The last step reaches ``alpha(0) = 1`` and reveals every remaining mask; once nothing is
    masked the loop stops early (without a callback) or reports the remaining steps unchanged.
    ``callback`` is called at every grid step, also those that reveal nothing or reuse cached
    logits: ``steps`` calls, the ``i``-th with ``t = 1 - (i + 1) / steps`` and ``x0`` the
    proposal's draw, or the model's most likely tokens at the still masked positions (``None``
    once nothing was masked). A step where ``proposal`` is active always calls the model, draws
    ``x0`` from the proposal before the Bernoulli reveals, and its logits are never reused. See
    the module docstring for ``cache`` and ``proposal``.
    """
    check_int("steps", steps)
    check_precision(precision)
    x_t, fixed = start_state(process, x, fixed, generator)
    counter = NFECounter()
    call = counted_logits(model, process, cond, counter)
    batch, device = x_t.shape[0], x_t.device
    times = torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64, device=device)
    mask_prob = process.schedule.mask_prob(times)
    logits: torch.Tensor | None = None
    for i in range(steps):
        masked = (x_t == process.mask_id) & ~fixed
        if not bool(masked.any()):
            if callback is None:
                break
            callback(i, float(times[i + 1]), x_t, None)
            continue
        t = times[i].expand(batch)
        use_proposal = proposal is not None and proposal.active(float(times[i]))
        if logits is None or not cache or use_proposal:
            logits = call(x_t, t)
        used = logits
        reveal_prob = (mask_prob[i] - mask_prob[i + 1]) / mask_prob[i]
        x0: torch.Tensor | None = None
        if use_proposal:
            assert proposal is not None
            x0 = torch.where(masked, _check_proposal(proposal(logits, x_t, t, generator), x_t), x_t)
            u = torch.rand(x_t.shape, generator=generator, dtype=torch.float64, device=device)
            x_t = torch.where(masked & (u < reveal_prob), x0, x_t)
            logits = None
        else:
            u = torch.rand(x_t.shape, generator=generator, dtype=torch.float64, device=device)
            reveal = masked & (u < reveal_prob)
            if bool(reveal.any()):
                x_t = x_t.masked_scatter(
                    reveal,
                    sample_categorical(
                        logits[reveal],
                        generator=generator,
                        disallowed=process.mask_onehot(logits.shape[-1], device),
                        precision=precision,
                    ),
                )
                logits = None
        if callback is not None:
            estimate = x0 if x0 is not None else greedy_estimate(process, used, x_t, fixed)
            callback(i, float(times[i + 1]), x_t, estimate)
    call.check("ancestral")
    return TokenSample(tokens=x_t, nfe=counter.count)


def _check_proposal(x0: Any, x_t: torch.Tensor) -> torch.Tensor:
    if (
        not isinstance(x0, torch.Tensor)
        or x0.shape != x_t.shape
        or x0.dtype.is_floating_point
        or x0.dtype == torch.bool
    ):
        got = f"{x0.dtype} {tuple(x0.shape)}" if isinstance(x0, torch.Tensor) else type(x0)
        raise InputError(
            f"proposal: expected integer tokens of shape {tuple(x_t.shape)}, got {got}"
        )
    return x0.to(x_t.dtype)
