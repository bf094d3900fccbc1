"""Categorical sampling by Gumbel-max, in float64 by default.

``sample_categorical(logits)`` draws one category per row of ``logits (..., V)`` as
``argmax(logits + g)`` with ``g`` standard Gumbel noise. The noise is built in ``precision``
(float64 unless asked otherwise): Zheng et al. ("Masked diffusion models are secretly time-agnostic
masked models and exploit inaccurate categorical sampling") show that float32 uniforms truncate
the Gumbel noise at ``-log(-log(1 - 2**-24)) ≈ 16.6``, so categories whose probability is below
about ``1e-7`` of the mode's are under-drawn: the effective temperature drops.

Two implementations with the same signature and the same distribution (not the same draws):

* :func:`sample_categorical_reference`: plain PyTorch, materialises the noisy ``(..., V)`` tensor.
* :func:`sample_categorical_triton`: a Triton kernel that streams over the vocabulary in blocks
  keeping a running argmax, so no ``(..., V)`` float64 tensor exists. Its float64 uniforms are
  built from two 32-bit Philox integers (52 random bits); the Philox key is a seed drawn from the
  caller's ``torch.Generator``. Triton is imported only when the kernel is first used.

:func:`sample_categorical` picks between them with :func:`polyfold.core.ops._dispatch.use_triton`.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import torch

from polyfold.core.errors import InputError
from polyfold.core.ops._dispatch import use_triton

__all__ = ["sample_categorical", "sample_categorical_reference", "sample_categorical_triton"]

_PRECISIONS = (torch.float32, torch.float64)
_LOGIT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def sample_categorical(
    logits: torch.Tensor,
    *,
    generator: torch.Generator | None = None,
    disallowed: torch.Tensor | None = None,
    precision: torch.dtype = torch.float64,
) -> torch.Tensor:
    """Draw ``argmax(logits + Gumbel)`` over the last axis: a ``LongTensor`` of shape ``(...)``.

    Args:
        logits: ``(..., V)`` unnormalised log-probabilities (float16, bfloat16, float32, float64).
        generator: the source of every random draw (the default generator when ``None``).
        disallowed: optional bool mask broadcastable to ``logits``; True marks categories that are
            never drawn. Every row must keep at least one allowed category.
        precision: ``torch.float64`` (default, exact to ~1e-16) or ``torch.float32`` (the
            truncated noise of the paper, for comparison).
    """
    if use_triton(logits):
        return sample_categorical_triton(
            logits, generator=generator, disallowed=disallowed, precision=precision
        )
    return sample_categorical_reference(
        logits, generator=generator, disallowed=disallowed, precision=precision
    )


def sample_categorical_reference(
    logits: torch.Tensor,
    *,
    generator: torch.Generator | None = None,
    disallowed: torch.Tensor | None = None,
    precision: torch.dtype = torch.float64,
) -> torch.Tensor:
    """Plain-PyTorch Gumbel-max in ``precision`` (see :func:`sample_categorical`)."""
    _check_arguments(logits, generator, disallowed, precision)
    scores = logits.to(precision)
    if disallowed is not None:
        scores = scores.masked_fill(disallowed, float("-inf"))
    u = torch.rand(scores.shape, generator=generator, dtype=precision, device=logits.device)
    return (scores + _gumbel_from_uniform(u)).argmax(dim=-1)


def sample_categorical_triton(
    logits: torch.Tensor,
    *,
    generator: torch.Generator | None = None,
    disallowed: torch.Tensor | None = None,
    precision: torch.dtype = torch.float64,
) -> torch.Tensor:
    """The Triton kernel of :func:`sample_categorical` (CUDA; CPU with ``TRITON_INTERPRET=1``)."""
    _check_arguments(logits, generator, disallowed, precision)
    vocab = logits.shape[-1]
    rows = logits.reshape(-1, vocab)
    if rows.stride(-1) != 1:
        rows = rows.contiguous()
    num_rows = rows.shape[0]
    out = torch.empty(num_rows, dtype=torch.long, device=logits.device)
    if num_rows == 0:
        return out.reshape(logits.shape[:-1])
    if disallowed is None:
        banned = torch.zeros(1, 1, dtype=torch.uint8, device=logits.device)
        banned_stride = 0
    else:
        banned = torch.broadcast_to(disallowed, logits.shape).reshape(-1, vocab)
        if banned.stride(-1) != 1:
            banned = banned.contiguous()
        banned = banned.view(torch.uint8)
        banned_stride = banned.stride(0)
    seed = torch.randint(
        0, 2**62, (1,), generator=generator, dtype=torch.int64, device=logits.device
    )
    block_v = min(_next_power_of_two(vocab), 1024)
    # Rows per program: a modest tile on GPU; on CPU (the Triton interpreter) large tiles amortise
    # its per-program overhead.
    block_r = max(1, (2048 if logits.is_cuda else 16384) // block_v)
    kernel = _kernel()
    grid = ((num_rows + block_r - 1) // block_r,)
    kernel[grid](
        rows,
        banned,
        out,
        seed,
        num_rows,
        vocab,
        rows.stride(0),
        banned_stride,
        HAS_DISALLOWED=disallowed is not None,
        FLOAT64=precision == torch.float64,
        BLOCK_R=block_r,
        BLOCK_V=block_v,
    )
    return out.reshape(logits.shape[:-1])


def _check_arguments(
    logits: torch.Tensor,
    generator: torch.Generator | None,
    disallowed: torch.Tensor | None,
    precision: torch.dtype,
) -> None:
    if not isinstance(logits, torch.Tensor) or logits.dtype not in _LOGIT_DTYPES:
        got = logits.dtype if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise InputError(f"logits: expected a floating-point tensor of shape (..., V), got {got}")
    if logits.dim() == 0 or logits.shape[-1] == 0:
        raise InputError(f"logits: expected shape (..., V) with V >= 1, got {tuple(logits.shape)}")
    if precision not in _PRECISIONS:
        raise InputError(f"precision: expected torch.float64 or torch.float32, got {precision}")
    if generator is not None and generator.device.type != logits.device.type:
        raise InputError(
            f"generator: expected a generator on {logits.device.type} like logits, "
            f"got one on {generator.device.type}"
        )
    if disallowed is None:
        return
    if not isinstance(disallowed, torch.Tensor) or disallowed.dtype != torch.bool:
        raise InputError("disallowed: expected a bool tensor broadcastable to logits")
    try:
        shape = torch.broadcast_shapes(disallowed.shape, logits.shape)
    except RuntimeError:
        shape = None
    if shape != logits.shape:
        raise InputError(
            f"disallowed: shape {tuple(disallowed.shape)} does not broadcast to logits' shape "
            f"{tuple(logits.shape)}"
        )
    if bool(disallowed.all(dim=-1).any()):
        raise InputError("disallowed: every category is disallowed in some row; keep at least one")


def _gumbel_from_uniform(u: torch.Tensor) -> torch.Tensor:
    """Standard Gumbel noise ``-log(-log(u))`` in ``u``'s dtype, for ``u`` in [0, 1).

    ``u = 0`` is raised to the smallest normal number, so the noise is always finite: at most
    ``-log(-log(1 - 2**-24)) ≈ 16.64`` in float32 and ``≈ 36.7`` in float64 (torch.rand's
    largest values), at least ``≈ -4.5`` and ``≈ -6.6``.
    """
    return -torch.log(-torch.log(u.clamp_min(torch.finfo(u.dtype).tiny)))


def _next_power_of_two(n: int) -> int:
    return 1 << (n - 1).bit_length()


# The kernel body: plain Python until ``_kernel`` hands it to ``triton.jit`` on first use, so that
# importing this module neither needs Triton nor fixes the interpreter setting early. ``tl`` is
# bound to ``triton.language`` at that moment.
tl: Any = None


def _gumbel_argmax_body(  # type: ignore[no-untyped-def]  # Triton would evaluate annotations
    logits_ptr,
    banned_ptr,
    out_ptr,
    seed_ptr,
    num_rows,
    vocab,
    logits_row_stride,
    banned_row_stride,
    HAS_DISALLOWED: tl.constexpr,
    FLOAT64: tl.constexpr,
    BLOCK_R: tl.constexpr,
    BLOCK_V: tl.constexpr,
) -> None:
    dtype = tl.float64 if FLOAT64 else tl.float32
    seed = tl.load(seed_ptr)
    rows = tl.program_id(0).to(tl.int64) * BLOCK_R + tl.arange(0, BLOCK_R).to(tl.int64)
    row_ok = rows < num_rows
    cols = tl.arange(0, BLOCK_V).to(tl.int64)
    best = tl.full((BLOCK_R,), float("-inf"), dtype)
    best_idx = tl.zeros((BLOCK_R,), tl.int64)
    for start in range(0, vocab, BLOCK_V):
        idx = start + cols
        ok = row_ok[:, None] & (idx < vocab)[None, :]
        x = tl.load(
            logits_ptr + rows[:, None] * logits_row_stride + idx[None, :],
            mask=ok,
            other=float("-inf"),
        ).to(dtype)
        if HAS_DISALLOWED:
            ban = tl.load(
                banned_ptr + rows[:, None] * banned_row_stride + idx[None, :], mask=ok, other=1
            )
            x = tl.where(ban != 0, float("-inf"), x)
        # One Philox counter per (row, category): distinct across the whole tensor.
        counter = rows[:, None] * vocab + idx[None, :]
        if FLOAT64:
            r0, r1, _r2, _r3 = tl.randint4x(seed, counter)
            bits = (r0 >> 6).to(tl.int64) * 67108864 + (r1 >> 6).to(tl.int64)  # 52 bits
            u = (bits.to(tl.float64) + 0.5) * 2.220446049250313e-16  # (k + 1/2) / 2**52 in (0,1)
        else:
            # float32 in [0, 1): the truncated noise of the paper, on purpose; 0 raised as above.
            u = tl.maximum(tl.rand(seed, counter), 1.1754943508222875e-38)
        score = tl.where(ok, x - tl.log(-tl.log(u)), float("-inf"))
        block_best, block_idx = tl.max(score, axis=1, return_indices=True)
        better = block_best > best
        best_idx = tl.where(better, start + block_idx.to(tl.int64), best_idx)
        best = tl.where(better, block_best, best)
    tl.store(out_ptr + rows, best_idx, mask=row_ok)


@cache
def _kernel() -> Any:
    """``triton.jit`` of the kernel body, built on first use (interpreted if TRITON_INTERPRET=1)."""
    global tl
    try:
        import triton
        import triton.language
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "sample_categorical_triton needs Triton (pip install 'polyfold-core[triton]'); "
            "sample_categorical falls back to the PyTorch reference without it"
        ) from err
    tl = triton.language
    return triton.jit(_gumbel_argmax_body)
