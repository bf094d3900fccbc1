"""Replacement inpainting: the known entries predicted as observed."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from polyfold.core.denoiser import Denoised, Denoiser
from polyfold.core.errors import InputError
from polyfold.core.guidance._common import (
    Wrapper,
    alpha_sigma,
    check_denoiser,
    check_paths,
    denoise,
)
from polyfold.core.paths import Paths
from polyfold.core.state import Mask, State, expand_mask, tree_map

__all__ = ["Inpaint", "inpaint"]


class Inpaint(Wrapper):
    """Replacement inpainting as a denoiser; built by :func:`inpaint`."""

    def __init__(
        self,
        denoiser: Denoiser,
        observation: State,
        known: Mask,
        *,
        paths: Paths,
        generator: torch.Generator | None = None,
    ) -> None:
        check_denoiser(denoiser, "denoiser")
        check_paths(paths)
        if known is None:
            raise InputError("known: expected a bool mask (True = observed entry), got None")
        self.denoiser, self.paths, self.generator = denoiser, paths, generator

        def check(y: Tensor, m: Tensor | None) -> Tensor:
            if not isinstance(y, Tensor) or not y.is_floating_point():
                raise InputError("observation: expected a floating tensor (or a dict of them)")
            if m is None:
                return torch.zeros(y.shape, dtype=torch.bool, device=y.device)
            if not isinstance(m, Tensor) or m.dtype != torch.bool:
                raise InputError("known: expected a bool tensor (True = observed), per key")
            return expand_mask(m, y).expand_as(y)

        self.known: State = tree_map(check, observation, known)
        self.observation = observation

    def _known_for(self, x: State) -> None:
        def one(xi: Tensor, mi: Tensor) -> None:
            if mi.shape != xi.shape:
                raise InputError(
                    f"observation: shape {tuple(mi.shape)} differs from the state's "
                    f"{tuple(xi.shape)}"
                )

        tree_map(one, x, self.known)

    def project(self, x: State) -> State:
        """``x`` with the known entries set to the observation."""
        out: State = tree_map(
            lambda xi, yi, mi: torch.where(mi, yi.to(xi.dtype), xi), x, self.observation, self.known
        )
        return out

    def _eval(self, x: State, t: Tensor, levels: Any) -> Denoised:
        self._known_for(x)
        coefs = alpha_sigma(self.paths, x, t, levels)
        x_in = x
        if self.generator is not None:

            def renoise(xi: Tensor, yi: Tensor, mi: Tensor, c: tuple[Tensor, Tensor]) -> Tensor:
                z = torch.randn(
                    xi.shape, generator=self.generator, device=xi.device, dtype=xi.dtype
                )
                return torch.where(mi, c[0] * yi.to(xi.dtype) + c[1] * z, xi)

            x_in = tree_map(renoise, x, self.observation, self.known, coefs)
        d = denoise(self.denoiser, x_in, t, levels)

        def fix(
            x0: Tensor, eps: Tensor, xi: Tensor, yi: Tensor, mi: Tensor, c: tuple[Tensor, Tensor]
        ) -> tuple[Tensor, Tensor]:
            a, s = c
            y = yi.to(x0.dtype)
            eps_k = (xi - a * y) / torch.where(s > 0, s, 1.0)
            return torch.where(mi, y, x0), torch.where(mi & (s > 0), eps_k, eps)

        out = tree_map(fix, d.x0, d.eps, x, self.observation, self.known, coefs)
        if isinstance(out, dict):
            return Denoised({k: v[0] for k, v in out.items()}, {k: v[1] for k, v in out.items()})
        return Denoised(out[0], out[1])


def inpaint(
    denoiser: Denoiser,
    observation: State,
    known: Mask,
    *,
    paths: Paths,
    generator: torch.Generator | None = None,
) -> Inpaint:
    """Inpainting by replacement: a denoiser that predicts ``x0 = observation`` on known entries.

    Args:
        denoiser: the unconditional denoiser.
        observation: the observed values, shaped like the state (unknown entries ignored).
        known: bool, True where observed; shaped like the state or a prefix of it (``(B, L)``
            for ``(B, L, C)``); a dict per key for dict states.
        paths: the path (a dict per key).
        generator: if given, the network sees the known entries re-noised with fresh noise
            ``alpha_t y + sigma_t z`` at every call; otherwise it sees the sampler's state, whose
            known entries exponential-integrator samplers keep at ``alpha_t y + sigma_t eps_0``.

    The sampler's known entries end at the observation when the grid ends at the data point
    (the final denoising step returns ``x0``); :meth:`Inpaint.project` sets them exactly.
    """
    return Inpaint(denoiser, observation, known, paths=paths, generator=generator)
