"""The harmonic oscillator bank of additive synthesis (DDSP's hot spot), fused.

``harmonic_oscillator(f0, amplitudes, sample_rate)`` returns, for every sample ``t``,

    y[t] = sum_k amplitudes[t, k] * sin(2 pi (k + 1) phi[t]) * [(k + 1) f0[t] < sample_rate / 2]

with ``phi[t] = sum_{s <= t} f0[s] / sample_rate`` (cycles, the running phase of the fundamental):
phase accumulation, harmonic amplitudes, Nyquist masking and the sum over harmonics. The reference
materialises ``(B, T, K)`` phases, sines and masks; the kernel reads ``f0`` and the amplitudes
once and writes the audio once. Its phase is accumulated in the kernel: an in-block scan
(``tl.cumsum``) on top of per-block offsets (a float64 cumsum of the block sums, ``T / BLOCK``
numbers per row), kept as a fraction of a cycle. Gradients flow to the amplitudes and to ``f0``
through a second kernel (sines and cosines recomputed, nothing saved but the inputs).
"""

from __future__ import annotations

import contextlib
import functools
import math
from typing import Any

import torch

from polyfold.core.errors import InputError
from polyfold.core.ops._dispatch import use_triton

with contextlib.suppress(ImportError):  # optional: the kernel bodies need it, references do not
    import triton.language as tl

__all__ = ["harmonic_oscillator", "harmonic_oscillator_reference", "harmonic_oscillator_triton"]

_BLOCK = 256  # samples per program


def _check(f0: torch.Tensor, amplitudes: torch.Tensor, sample_rate: float) -> None:
    if not isinstance(f0, torch.Tensor) or f0.dim() != 2 or not f0.is_floating_point():
        got: object = tuple(f0.shape) if isinstance(f0, torch.Tensor) else type(f0).__name__
        raise InputError(f"harmonic_oscillator: f0 must be a float tensor (B, T), got {got}")
    if (
        not isinstance(amplitudes, torch.Tensor)
        or amplitudes.dim() != 3
        or amplitudes.shape[:2] != f0.shape
        or amplitudes.device != f0.device
    ):
        got = tuple(amplitudes.shape) if isinstance(amplitudes, torch.Tensor) else type(amplitudes)
        raise InputError(
            f"harmonic_oscillator: amplitudes must be a tensor (B, T, K) with f0's (B, T) = "
            f"{tuple(f0.shape)} on {f0.device}, got {got}"
        )
    if (
        not isinstance(sample_rate, int | float)
        or not math.isfinite(sample_rate)
        or sample_rate <= 0
    ):
        raise InputError(f"harmonic_oscillator: sample_rate must be > 0, got {sample_rate!r}")


def _reference(f0: torch.Tensor, amplitudes: torch.Tensor, sample_rate: float) -> torch.Tensor:
    k = torch.arange(1, amplitudes.shape[-1] + 1, device=f0.device, dtype=f0.dtype)
    cycles = torch.cumsum(f0.double() / sample_rate, dim=-1)
    # The fractional part keeps float32 phases exact; its gradient is that of the cumsum.
    phi = (cycles - cycles.detach().floor()).to(f0.dtype)
    mask = (f0.detach()[..., None] * k < sample_rate / 2).to(amplitudes.dtype)
    waves = torch.sin(2 * math.pi * phi[..., None] * k)
    return (amplitudes * mask * waves).sum(-1)


def _block_offsets(f0: torch.Tensor, sample_rate: float, block: int) -> torch.Tensor:
    """Phase (cycles, fraction in [0, 1)) at the start of each block: (B, n_blocks) float32."""
    b, t = f0.shape
    n = -(-t // block)
    padded = torch.nn.functional.pad(f0.double(), (0, n * block - t))
    sums = padded.view(b, n, block).sum(-1) / sample_rate
    start = torch.cumsum(sums, -1) - sums
    return (start - start.floor()).float().contiguous()


def _forward_kernel(  # type: ignore[no-untyped-def]
    f0_ptr, amp_ptr, off_ptr, out_ptr, T, K, n_blocks, inv_sr, nyquist,
    BLOCK: tl.constexpr,
):  # fmt: skip
    row = tl.program_id(0).to(tl.int64)
    blk = tl.program_id(1)
    t = blk * BLOCK + tl.arange(0, BLOCK)
    valid = t < T
    f0 = tl.load(f0_ptr + row * T + t, mask=valid, other=0.0).to(tl.float32)
    cyc = tl.cumsum(f0 * inv_sr, axis=0) + tl.load(off_ptr + row * n_blocks + blk)
    phi = cyc - tl.floor(cyc)
    acc = tl.zeros([BLOCK], dtype=tl.float32)
    base = amp_ptr + (row * T + t) * K
    for k in range(K):
        h = (k + 1) * 1.0
        a = tl.load(base + k, mask=valid, other=0.0).to(tl.float32)
        p = phi * h
        p = p - tl.floor(p)
        acc += tl.where(f0 * h < nyquist, a * tl.sin(6.283185307179586 * p), 0.0)
    tl.store(out_ptr + row * T + t, acc.to(out_ptr.dtype.element_ty), mask=valid)


def _backward_kernel(  # type: ignore[no-untyped-def]
    f0_ptr, amp_ptr, off_ptr, g_ptr, gamp_ptr, gphi_ptr, T, K, n_blocks, inv_sr, nyquist,
    BLOCK: tl.constexpr,
):  # fmt: skip
    row = tl.program_id(0).to(tl.int64)
    blk = tl.program_id(1)
    t = blk * BLOCK + tl.arange(0, BLOCK)
    valid = t < T
    f0 = tl.load(f0_ptr + row * T + t, mask=valid, other=0.0).to(tl.float32)
    g = tl.load(g_ptr + row * T + t, mask=valid, other=0.0).to(tl.float32)
    cyc = tl.cumsum(f0 * inv_sr, axis=0) + tl.load(off_ptr + row * n_blocks + blk)
    phi = cyc - tl.floor(cyc)
    dphi = tl.zeros([BLOCK], dtype=tl.float32)
    base = (row * T + t) * K
    for k in range(K):
        h = (k + 1) * 1.0
        a = tl.load(amp_ptr + base + k, mask=valid, other=0.0).to(tl.float32)
        p = phi * h
        p = 6.283185307179586 * (p - tl.floor(p))
        on = f0 * h < nyquist
        tl.store(gamp_ptr + base + k, tl.where(on, g * tl.sin(p), 0.0), mask=valid)
        dphi += tl.where(on, a * h * tl.cos(p), 0.0)
    tl.store(gphi_ptr + row * T + t, 6.283185307179586 * g * dphi, mask=valid)


@functools.cache
def _kernels() -> tuple[Any, Any]:
    """The jitted kernels, built on first use (TRITON_INTERPRET is read then, not at import)."""
    import triton

    return triton.jit(_forward_kernel), triton.jit(_backward_kernel)


class _Oscillator(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, f0: torch.Tensor, amplitudes: torch.Tensor, sample_rate: float) -> Any:
        f0c, ampc = f0.contiguous(), amplitudes.contiguous()
        b, t = f0c.shape
        offsets = _block_offsets(f0c, sample_rate, _BLOCK)
        out = torch.empty_like(f0c)
        fwd, _ = _kernels()
        fwd[(b, offsets.shape[1])](
            f0c, ampc, offsets, out, t, ampc.shape[-1], offsets.shape[1],
            1.0 / sample_rate, sample_rate / 2, BLOCK=_BLOCK,
        )  # fmt: skip
        ctx.save_for_backward(f0c, ampc, offsets)
        ctx.sample_rate = sample_rate
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> Any:
        f0c, ampc, offsets = ctx.saved_tensors
        sr = ctx.sample_rate
        b, t = f0c.shape
        gamp = torch.empty(ampc.shape, device=ampc.device, dtype=torch.float32)
        gphi = torch.empty((b, t), device=f0c.device, dtype=torch.float32)
        _, bwd = _kernels()
        bwd[(b, offsets.shape[1])](
            f0c, ampc, offsets, grad.contiguous(), gamp, gphi, t, ampc.shape[-1],
            offsets.shape[1], 1.0 / sr, sr / 2, BLOCK=_BLOCK,
        )  # fmt: skip
        # phi[t] = sum_{s <= t} f0[s] / sr, so d f0[s] = sum_{t >= s} d phi[t] / sr.
        gf0 = torch.flip(torch.cumsum(torch.flip(gphi.double(), (-1,)), -1), (-1,)) / sr
        return gf0.to(f0c.dtype), gamp.to(ampc.dtype), None


def harmonic_oscillator_reference(
    f0: torch.Tensor, amplitudes: torch.Tensor, sample_rate: float
) -> torch.Tensor:
    """Plain-PyTorch :func:`harmonic_oscillator` (float64 phase accumulation)."""
    _check(f0, amplitudes, sample_rate)
    return _reference(f0, amplitudes, sample_rate)


def harmonic_oscillator_triton(
    f0: torch.Tensor, amplitudes: torch.Tensor, sample_rate: float
) -> torch.Tensor:
    """The fused Triton kernel of :func:`harmonic_oscillator` (differentiable)."""
    _check(f0, amplitudes, sample_rate)
    return _Oscillator.apply(f0, amplitudes, float(sample_rate))  # type: ignore[no-any-return]


def harmonic_oscillator(
    f0: torch.Tensor, amplitudes: torch.Tensor, sample_rate: float
) -> torch.Tensor:
    """Sum of harmonic sines: ``f0`` (B, T) in Hz per sample, ``amplitudes`` (B, T, K) of
    harmonics 1..K, harmonics at or above Nyquist silenced; returns (B, T) audio.

    The phase starts at 0 before the first sample. Differentiable in ``f0`` and the
    amplitudes. The kernel on CUDA, else the reference.
    """
    _check(f0, amplitudes, sample_rate)
    if use_triton(f0, amplitudes):
        return _Oscillator.apply(f0, amplitudes, float(sample_rate))  # type: ignore[no-any-return]
    return _reference(f0, amplitudes, sample_rate)
