"""What every guidance wrapper shares: argument checks, path coefficients, the score shift."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from polyfold.core.denoiser import Denoised, Denoiser
from polyfold.core.dtypes import F64
from polyfold.core.errors import InputError
from polyfold.core.paths import GaussianPath, Paths
from polyfold.core.state import State, expand_to, tree_map

GradFn = Callable[[State, Tensor], State]
EnergyFn = Callable[[State, Tensor], Tensor]


def leaves(x: State) -> list[Tensor]:
    """The tensors of a state, in key order."""
    return list(x.values()) if isinstance(x, Mapping) else [x]


def rebuild(x: State, parts: Sequence[Tensor]) -> State:
    """A state shaped like ``x`` from its tensors (the inverse of :func:`leaves`)."""
    return dict(zip(x, parts, strict=True)) if isinstance(x, Mapping) else parts[0]


def check_paths(paths: object, name: str = "paths") -> None:
    """:class:`InputError` unless ``paths`` is a Gaussian path or a dict of them."""
    items = paths.values() if isinstance(paths, Mapping) else [paths]
    for p in items:
        if not isinstance(p, GaussianPath):
            raise InputError(f"{name}: expected a GaussianPath (or a dict of them), got {p!r}")


def check_denoiser(d: object, name: str) -> None:
    """:class:`InputError` unless ``d`` is callable."""
    if not callable(d):
        raise InputError(f"{name}: expected a Denoiser (x, t) -> Denoised, got {d!r}")


def check_scale(value: object, name: str, lo: float = -math.inf, hi: float = math.inf) -> float:
    """``value`` as a float if it is a finite number in ``[lo, hi]``."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InputError(f"{name}: expected a finite number, got {value!r}")
    if not lo <= value <= hi:
        raise InputError(f"{name}: expected a number in [{lo}, {hi}], got {value!r}")
    return float(value)


def denoise(d: Denoiser, x: State, t: Tensor, levels: Any) -> Denoised:
    """``d(x, t)``, through ``d.at_levels`` when the caller gave the levels and ``d`` has it."""
    at_levels = getattr(d, "at_levels", None)
    if levels is None or at_levels is None:
        return d(x, t)
    out: Denoised = at_levels(x, t, levels)
    return out


def alpha_sigma(paths: Paths, x: State, t: Tensor, levels: Any = None) -> Any:
    """Per key ``(alpha, sigma)`` at ``t`` viewed for the key's tensor: from the caller's
    ``levels`` (numbers) when given, else the path evaluated in float64."""

    def one(xi: Tensor, p: GaussianPath, lv: Any) -> tuple[Tensor, Tensor]:
        if lv is not None:
            return (
                torch.full((), lv[0], dtype=xi.dtype, device=xi.device),
                torch.full((), lv[1], dtype=xi.dtype, device=xi.device),
            )
        tt = torch.as_tensor(t).to(device=xi.device, dtype=F64)
        a = expand_to(p.alpha(tt).to(xi.dtype), xi)
        return a, expand_to(p.sigma(tt).to(xi.dtype), xi)

    return tree_map(one, x, paths, levels)


class Wrapper:
    """A denoiser wrapper: ``__call__`` and the optional ``at_levels`` share :meth:`_eval`."""

    def _eval(self, x: State, t: Tensor, levels: Any) -> Denoised:
        raise NotImplementedError

    def __call__(self, x: State, t: Tensor) -> Denoised:
        return self._eval(x, t, None)

    def at_levels(self, x: State, t: Tensor, levels: Any) -> Denoised:
        """:meth:`__call__` with the paths' coefficients at ``t`` given by the sampler."""
        return self._eval(x, t, levels)


def shift_score(
    d: Denoised,
    x: State,
    t: Tensor,
    paths: Paths,
    grad: State,
    w: float,
    sigma_power: int,
    levels: Any = None,
) -> Denoised:
    """``score += w sigma^(sigma_power - 1) grad``: ``eps -= w sigma^p grad``, ``x0`` to match.

    ``x0 = (x - sigma eps)/alpha`` moves by ``w sigma^(p+1) grad / alpha`` (left as is where
    ``alpha = 0``, where ``x`` does not determine it).
    """
    coefs = alpha_sigma(paths, x, t, levels)

    def one(x0: Tensor, eps: Tensor, g: Tensor, c: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        a, s = c
        step = w * s**sigma_power * g
        dx0 = torch.where(a > 0, s * step / torch.where(a > 0, a, 1.0), 0.0)
        return x0 + dx0, eps - step

    out = tree_map(one, d.x0, d.eps, grad, coefs)
    if isinstance(out, dict):
        return Denoised({k: v[0] for k, v in out.items()}, {k: v[1] for k, v in out.items()})
    return Denoised(out[0], out[1])
