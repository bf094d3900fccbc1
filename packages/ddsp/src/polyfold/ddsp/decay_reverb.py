"""A room reverb with two parameters: exponentially decaying noise (the reference library's
``ExpDecayReverb``), added to the dry signal.

A free impulse response (:class:`polyfold.ddsp.processors.Reverb`) of a few thousand taps can
also act as a filter and a gain: trained on dry recordings it learns a loud 4-64 ms response that
carries most of the output's level and smears each note into the next, so the decoder no longer
controls loudness frame by frame and dropping the reverb no longer leaves the performance. This
one can only add a decaying room tail: a gain and a decay time are learned, the noise is fixed.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from polyfold.core.errors import InputError
from polyfold.ddsp.processors import fft_convolve

__all__ = ["DecayReverb"]


class DecayReverb(nn.Module):
    """``forward(audio)`` = audio + audio * ir, ``ir[t] = g exp(-t / tau) n[t]`` with ``n``
    seeded uniform noise in [-1, 1), ``ir[0] = 0``; ``g`` and ``tau`` (seconds) are learned on a
    log scale, starting at ``gain`` and ``decay_s``."""

    def __init__(
        self,
        length: int,
        sample_rate: int,
        *,
        gain: float = 1e-2,
        decay_s: float = 0.1,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if not isinstance(length, int) or length < 2:
            raise InputError(f"length: expected an integer >= 2, got {length!r}")
        if not (gain > 0 and decay_s > 0):
            raise InputError(f"gain, decay_s: expected numbers > 0, got {gain!r}, {decay_s!r}")
        g = torch.Generator().manual_seed(seed)
        noise = torch.rand(length, generator=g) * 2 - 1
        noise[0] = 0.0
        self.noise: torch.Tensor
        self.t: torch.Tensor
        self.register_buffer("noise", noise, persistent=False)
        self.register_buffer("t", torch.arange(length) / float(sample_rate), persistent=False)
        self.log_gain = nn.Parameter(torch.tensor(math.log(gain)))
        self.log_decay = nn.Parameter(torch.tensor(math.log(decay_s)))

    def impulse_response(self) -> torch.Tensor:
        """The wet impulse response (length,), first tap zero."""
        envelope = torch.exp(self.log_gain - self.t / torch.exp(self.log_decay))
        return envelope * self.noise

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        return audio + fft_convolve(audio, self.impulse_response())
