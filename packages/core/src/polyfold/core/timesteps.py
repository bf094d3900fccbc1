"""Noise-level (time) samplers for training, and the sinusoidal embedding networks take of times.

A sampler is called as ``sampler(n, path=path, generator=g, device=d)`` and returns ``n`` times
``(n,)`` in float64, within ``[t_min, t_max]`` (by default the path's):

- :class:`Uniform`: ``t ~ U[t_min, t_max]``;
- :class:`Antithetic`: VDM's low-discrepancy draw ``u_i = (u_0 + i/n) mod 1``, one uniform
  ``u_0`` per batch, mapped to ``[t_min, t_max]`` (each ``u_i`` is marginally uniform, and the
  batch covers [0, 1) evenly: lower-variance loss estimates);
- :class:`LogitNormal`: SD3's ``u = sigmoid(mean + std z)``, mapped to ``[t_min, t_max]``;
- :class:`EDMLogNormal`: EDM's ``log(sigma/alpha) ~ N(p_mean, p_std^2)``, mapped through the
  path's exact inverse, ``t = path.t_from_log_snr(-2 log(sigma/alpha))``, then clipped to
  ``[t_min, t_max]`` (on the EDM path that clips sigma to [0.002, 80], which EDM's draw leaves
  with probability ~2e-5).

:func:`sinusoidal_embedding` is the transformer/DDPM embedding of times or step indices that
networks condition on.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TypeAlias

import torch
from torch import Tensor

from polyfold.core.dtypes import F64
from polyfold.core.errors import InputError
from polyfold.core.paths import GaussianPath

__all__ = [
    "Antithetic",
    "EDMLogNormal",
    "LogitNormal",
    "TimeSampler",
    "Uniform",
    "get_time_sampler",
    "sinusoidal_embedding",
]

Generator: TypeAlias = torch.Generator | None


@dataclass(frozen=True)
class TimeSampler(ABC):
    """Base of the time samplers; ``t_min``/``t_max`` of ``None`` take the path's."""

    t_min: float | None = None
    t_max: float | None = None

    def _range(self, path: GaussianPath) -> tuple[float, float]:
        lo = path.t_min if self.t_min is None else self.t_min
        hi = path.t_max if self.t_max is None else self.t_max
        if not lo < hi:
            raise InputError(f"t_min, t_max: expected t_min < t_max, got {lo} and {hi}")
        return lo, hi

    @abstractmethod
    def _draw(
        self, n: int, lo: float, hi: float, path: GaussianPath, gen: Generator, dev: torch.device
    ) -> Tensor: ...

    def __call__(
        self,
        n: int,
        *,
        path: GaussianPath,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
    ) -> Tensor:
        """``n`` times, ``(n,)`` float64."""
        lo, hi = self._range(path)
        dev = torch.device("cpu") if device is None else torch.device(device)
        return self._draw(n, lo, hi, path, generator, dev)


@dataclass(frozen=True)
class Uniform(TimeSampler):
    """``t ~ U[t_min, t_max]``."""

    def _draw(
        self, n: int, lo: float, hi: float, path: GaussianPath, gen: Generator, dev: torch.device
    ) -> Tensor:
        return lo + (hi - lo) * torch.rand(n, generator=gen, device=dev, dtype=F64)


@dataclass(frozen=True)
class Antithetic(TimeSampler):
    """VDM's stratified draw ``(u_0 + i/n) mod 1``."""

    def _draw(
        self, n: int, lo: float, hi: float, path: GaussianPath, gen: Generator, dev: torch.device
    ) -> Tensor:
        u0 = torch.rand(1, generator=gen, device=dev, dtype=F64)
        u = torch.remainder(u0 + torch.arange(n, device=dev, dtype=F64) / n, 1.0)
        return lo + (hi - lo) * u


@dataclass(frozen=True)
class LogitNormal(TimeSampler):
    """SD3's logit-normal: ``sigmoid(mean + std z)``."""

    mean: float = 0.0
    std: float = 1.0

    def _draw(
        self, n: int, lo: float, hi: float, path: GaussianPath, gen: Generator, dev: torch.device
    ) -> Tensor:
        z = torch.randn(n, generator=gen, device=dev, dtype=F64)
        return lo + (hi - lo) * torch.sigmoid(self.mean + self.std * z)


@dataclass(frozen=True)
class EDMLogNormal(TimeSampler):
    """EDM's log-normal noise levels ``log(sigma/alpha) ~ N(p_mean, p_std^2)``."""

    p_mean: float = -1.2
    p_std: float = 1.2

    def _draw(
        self, n: int, lo: float, hi: float, path: GaussianPath, gen: Generator, dev: torch.device
    ) -> Tensor:
        z = torch.randn(n, generator=gen, device=dev, dtype=F64)
        return path.t_from_log_snr(-2.0 * (self.p_mean + self.p_std * z)).clamp(lo, hi)


_NAMED: dict[str, type[TimeSampler]] = {
    "uniform": Uniform,
    "antithetic": Antithetic,
    "logit_normal": LogitNormal,
    "edm": EDMLogNormal,
}


def get_time_sampler(spec: str | TimeSampler) -> TimeSampler:
    """A sampler from its name (``uniform``, ``antithetic``, ``logit_normal``, ``edm``)."""
    if isinstance(spec, TimeSampler):
        return spec
    if spec not in _NAMED:
        raise InputError(f"time_sampler: expected one of {', '.join(_NAMED)}, got {spec!r}")
    return _NAMED[spec]()


def sinusoidal_embedding(
    t: Tensor, dim: int, *, scale: float = 1.0, max_period: float = 10_000.0
) -> Tensor:
    """``(B, dim)`` float32 features ``[cos(scale t f_k), sin(scale t f_k)]`` of ``t (B,)`` with
    frequencies ``f_k = max_period^(-k / (dim / 2))``; ``scale = 1000`` maps times in [0, 1] onto
    the step-index range of DDPM's embedding. ``dim`` must be even."""
    if dim < 2 or dim % 2:
        raise InputError(f"sinusoidal_embedding: dim must be an even number >= 2, got {dim}")
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device) / half)
    args = scale * t.to(torch.float32)[:, None] * freqs[None, :]
    return torch.cat([args.cos(), args.sin()], dim=-1)
