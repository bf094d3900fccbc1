"""RePaint (Lugmayr et al. 2022): replacement inpainting with resampling, as a sampler.

The inpainting itself is the :func:`~polyfold.core.guidance.inpaint` denoiser; this module walks
the grid with DDIM steps on it and diffuses the state back up between resampling passes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from polyfold.core.denoiser import Denoiser
from polyfold.core.dtypes import F64
from polyfold.core.errors import InputError
from polyfold.core.guidance.inpaint import inpaint
from polyfold.core.paths import GaussianPath, Paths
from polyfold.core.samplers.grids import check_grid
from polyfold.core.samplers.result import SampleResult
from polyfold.core.samplers.stochastic import ddim
from polyfold.core.state import Mask, State, expand_mask, tree_map

__all__ = ["repaint"]


def repaint(
    denoiser: Denoiser,
    paths: Paths,
    x: State,
    grid: Tensor | Sequence[float],
    observation: State,
    known: Mask,
    *,
    jump_length: int = 10,
    resamples: int = 10,
    eta: float = 1.0,
    generator: torch.Generator | None = None,
    mask: Mask = None,
) -> SampleResult:
    """RePaint (Lugmayr et al. 2022): replacement inpainting with resampling.

    The grid is walked in blocks of ``jump_length`` steps; each block is sampled ``resamples``
    times, the state being diffused back up to the block's start between passes,
    ``x_s = (alpha_s/alpha_t) x_t + sqrt(sigma_s^2 - (alpha_s sigma_t/alpha_t)^2) z``, which
    lets the unknown entries harmonise with the known ones. Steps are DDIM with ``eta``
    (1: DDPM's ancestral step, as RePaint) on the :func:`inpaint` denoiser; ``resamples=1`` is
    plain replacement sampling. Returns the :class:`~polyfold.core.samplers.result.SampleResult`
    with ``nfe`` the number of denoiser calls.
    """
    for name, v in (("jump_length", jump_length), ("resamples", resamples)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise InputError(f"{name}: expected an integer >= 1, got {v!r}")
    g = check_grid(grid, paths)
    wrapped = inpaint(denoiser, observation, known, paths=paths)
    ts = g.tolist()
    nfe, start = 0, 0
    while start < len(ts) - 1:
        end = min(start + jump_length, len(ts) - 1)
        x_start = x
        for rep in range(resamples):
            res = ddim(
                wrapped, paths, x_start, g[start : end + 1], eta=eta, generator=generator, mask=mask
            )
            nfe += res.nfe
            x = res.x
            if rep < resamples - 1:
                x_start = _diffuse(x, paths, ts[end], ts[start], generator, mask)
        start = end
    return SampleResult(x=x, nfe=nfe, grid=g)


def _diffuse(
    x: State,
    paths: Paths,
    t_from: float,
    t_to: float,
    generator: torch.Generator | None,
    mask: Mask,
) -> State:
    """A draw of ``q(x_{t_to} | x_{t_from})`` for ``t_to > t_from`` (padding kept)."""
    tt = torch.tensor([t_from, t_to], dtype=F64)

    def one(xi: Tensor, p: GaussianPath, mi: Tensor | None) -> Tensor:
        a, s = p.alpha(tt).tolist(), p.sigma(tt).tolist()
        ratio = a[1] / a[0]
        std = math.sqrt(max(s[1] ** 2 - (ratio * s[0]) ** 2, 0.0))
        z = torch.randn(xi.shape, generator=generator, device=xi.device, dtype=xi.dtype)
        out = ratio * xi + std * z
        return out if mi is None else torch.where(expand_mask(mi, xi), out, xi)

    return tree_map(one, x, paths, mask)  # type: ignore[no-any-return]
