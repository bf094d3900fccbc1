"""Semi-autoregressive block decoding (as in LLaDA and block diffusion): the sequence is cut into
blocks of ``block_length`` positions generated left to right; while a block is generated, earlier
blocks are fixed and later blocks stay masked. Any sampler of this package runs inside a block.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from polyfold.core.discrete.process import Denoiser, MaskedProcess
from polyfold.core.discrete.sampling import SampleResult, start_state
from polyfold.core.errors import check_int

__all__ = ["sample_blockwise"]

BlockSampler = Callable[..., SampleResult]
"""A sampler with the common signature ``(model, process, x, *, generator, fixed, cond)``,
e.g. ``functools.partial(sample_ancestral, steps=32)``."""


def sample_blockwise(
    model: Denoiser,
    process: MaskedProcess,
    x: torch.Tensor,
    *,
    block_length: int,
    sampler: BlockSampler,
    generator: torch.Generator,
    fixed: torch.Tensor | None = None,
    cond: Any = None,
) -> SampleResult:
    """Generate blocks left to right with ``sampler``; NFE is the sum over blocks."""
    check_int("block_length", block_length)
    x_t, fixed = start_state(process, x, fixed, generator)
    position = torch.arange(x_t.shape[1], device=x_t.device)
    nfe = 0
    for begin in range(0, x_t.shape[1], block_length):
        outside = (position < begin) | (position >= begin + block_length)
        result = sampler(model, process, x_t, generator=generator, fixed=fixed | outside, cond=cond)
        x_t, nfe = result.tokens, nfe + result.nfe
    return SampleResult(tokens=x_t, nfe=nfe)
