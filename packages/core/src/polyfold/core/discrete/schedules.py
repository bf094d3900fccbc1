"""Masking schedules of the absorbing-state process: ``alpha(t)``, the probability that a token
is still unmasked at time ``t`` (``t = 0`` data, ``alpha`` decreasing towards ``t = 1``).

Each schedule gives ``alpha``, the masking probability ``1 - alpha`` in a cancellation-free form,
``alpha'(t)``, the MDLM loss weight ``-alpha'(t) / (1 - alpha(t))`` and the inverse of the masking
probability (the first-hitting sampler draws times through it). Methods take tensors of times in
any floating dtype and compute in that dtype; samplers call them in float64.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch

from polyfold.core.errors import InputError

__all__ = ["CosineSchedule", "LinearSchedule", "LogLinearSchedule", "MaskSchedule"]


class MaskSchedule(ABC):
    """A decreasing ``alpha: [0, 1] -> [0, 1]`` with ``alpha(0) = 1``."""

    @abstractmethod
    def mask_prob(self, t: torch.Tensor) -> torch.Tensor:
        """``1 - alpha(t)``: the probability that a token is masked at time ``t``."""

    @abstractmethod
    def alpha_derivative(self, t: torch.Tensor) -> torch.Tensor:
        """``d alpha / dt`` (negative)."""

    @abstractmethod
    def time_of_mask_prob(self, m: torch.Tensor) -> torch.Tensor:
        """The time ``t`` with ``mask_prob(t) = m`` (the inverse of :meth:`mask_prob`)."""

    def alpha(self, t: torch.Tensor) -> torch.Tensor:
        """The probability that a token is still unmasked at time ``t``."""
        return 1.0 - self.mask_prob(t)

    def weight(self, t: torch.Tensor) -> torch.Tensor:
        """The MDLM weight ``-alpha'(t) / (1 - alpha(t))`` of the cross-entropy at time ``t``."""
        return -self.alpha_derivative(t) / self.mask_prob(t)


@dataclass(frozen=True)
class LinearSchedule(MaskSchedule):
    """``alpha(t) = 1 - t``; weight ``1 / t``."""

    def mask_prob(self, t: torch.Tensor) -> torch.Tensor:
        return t.clone()

    def alpha_derivative(self, t: torch.Tensor) -> torch.Tensor:
        return torch.full_like(t, -1.0)

    def time_of_mask_prob(self, m: torch.Tensor) -> torch.Tensor:
        return m.clone()


@dataclass(frozen=True)
class CosineSchedule(MaskSchedule):
    """``alpha(t) = cos(pi t / 2)``: few tokens masked early, many late."""

    def mask_prob(self, t: torch.Tensor) -> torch.Tensor:
        return 2.0 * torch.sin(t * (math.pi / 4)) ** 2  # 1 - cos(2x) = 2 sin(x)^2, exact near 0

    def alpha_derivative(self, t: torch.Tensor) -> torch.Tensor:
        return -(math.pi / 2) * torch.sin(t * (math.pi / 2))

    def time_of_mask_prob(self, m: torch.Tensor) -> torch.Tensor:
        return (4 / math.pi) * torch.asin(torch.sqrt(m / 2))


@dataclass(frozen=True)
class LogLinearSchedule(MaskSchedule):
    """MDLM's and SEDD's default: total noise ``sigma(t) = -log(1 - (1 - eps) t)``, i.e.
    ``alpha(t) = 1 - (1 - eps) t``. ``alpha(1) = eps`` (samplers still start all-masked at
    ``t = 1``, as MDLM does); the weight is ``1 / t`` as for :class:`LinearSchedule`.
    """

    eps: float = 1e-3

    def __post_init__(self) -> None:
        if not 0.0 <= self.eps < 1.0:
            raise InputError(f"LogLinearSchedule: eps must lie in [0, 1), got {self.eps}")

    def mask_prob(self, t: torch.Tensor) -> torch.Tensor:
        return (1.0 - self.eps) * t

    def alpha_derivative(self, t: torch.Tensor) -> torch.Tensor:
        return torch.full_like(t, -(1.0 - self.eps))

    def time_of_mask_prob(self, m: torch.Tensor) -> torch.Tensor:
        return m / (1.0 - self.eps)
