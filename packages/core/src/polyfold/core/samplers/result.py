"""What every sampler returns."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from polyfold.core.state import State, StepCallback

__all__ = ["SampleResult", "StepCallback"]


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
