"""What every sampler returns."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import Tensor

from polyfold.core.state import State

__all__ = ["SampleResult", "StepCallback"]

#: ``callback(step, t, x, x0)``: every sampler calls it once per step, after step ``step``
#: (0-based) has moved the state to time ``t``; ``x`` is the new state and ``x0`` the model's
#: data estimate used in that step (``None`` where the sampler has none). Progress bars and
#: intermediate states come from it.
StepCallback = Callable[[int, float, State, State | None], None]


@dataclass(frozen=True)
class SampleResult:
    """A sampler's output.

    Attributes:
        x: the final state (a tensor or a dict of tensors, like the initial state).
        nfe: the number of denoiser calls the sampler made.
        grid: the time grid it followed (float64, validated and clipped).
        times: for the time-shift sampler, the ``(N, B)`` start time of every step (where the
            model was called), else ``None``.
    """

    x: State
    nfe: int
    grid: Tensor
    times: Tensor | None = None
