"""Semi-autoregressive block decoding (as in LLaDA and block diffusion): the sequence is cut into
blocks of ``block_length`` positions generated left to right; while a block is generated, earlier
blocks are fixed and later blocks stay masked. Any sampler of this package runs inside a block.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import torch

from polyfold.core.discrete.process import LogitsModel, MaskedProcess
from polyfold.core.discrete.sampling import TokenSample, start_state
from polyfold.core.errors import check_int

if TYPE_CHECKING:  # polyfold.core.samplers imports this module (its registry)
    from polyfold.core.state import StepCallback

__all__ = ["sample_blockwise"]

BlockSampler = Callable[..., TokenSample]
"""A sampler with the common signature ``(model, process, x, *, generator, fixed, cond)``,
e.g. ``functools.partial(sample_ancestral, steps=32)``; it is also given ``callback`` when
:func:`sample_blockwise` has one."""


def sample_blockwise(
    model: LogitsModel,
    process: MaskedProcess,
    x: torch.Tensor,
    *,
    block_length: int,
    sampler: BlockSampler,
    generator: torch.Generator,
    fixed: torch.Tensor | None = None,
    cond: Any = None,
    callback: StepCallback | None = None,
) -> TokenSample:
    """Generate blocks left to right with ``sampler``; NFE is the sum over blocks.

    A step is a step of the inner sampler in any block: ``callback(step, t, x, x0)`` counts them
    across blocks and maps the inner time ``t_b`` of block ``b`` (of ``n``) to the overall time
    ``(n - 1 - b + t_b) / n``, which falls from 1 to 0 over the whole sequence; ``x`` and ``x0``
    are whole sequences (later blocks still masked).
    """
    check_int("block_length", block_length)
    x_t, fixed = start_state(process, x, fixed, generator)
    position = torch.arange(x_t.shape[1], device=x_t.device)
    n_blocks = -(-x_t.shape[1] // block_length)
    nfe, steps = 0, itertools.count()
    for block, begin in enumerate(range(0, x_t.shape[1], block_length)):
        outside = (position < begin) | (position >= begin + block_length)
        inner: dict[str, Any] = {}
        if callback is not None:
            inner["callback"] = _in_block(callback, steps, block, n_blocks)
        result = sampler(
            model, process, x_t, generator=generator, fixed=fixed | outside, cond=cond, **inner
        )
        x_t, nfe = result.tokens, nfe + result.nfe
    return TokenSample(tokens=x_t, nfe=nfe)


def _in_block(
    callback: StepCallback, steps: Iterator[int], block: int, n_blocks: int
) -> StepCallback:
    """The inner sampler's callback for ``block``: global step numbers and overall times."""

    def report(_: int, t: float, x: Any, x0: Any) -> None:
        callback(next(steps), (n_blocks - 1 - block + t) / n_blocks, x, x0)

    return report
