"""DiT-style adaptive LayerNorm, fused: modulation after LayerNorm, and the gated residual.

``adaln_modulate(x, shift, scale) = (1 + scale) * LayerNorm(x) + shift`` over the last dimension
(LayerNorm without affine parameters), with ``x`` of shape (B, L, D) and ``shift``/``scale`` of
shape (B, D) broadcast over L. ``gated_residual(residual, gate, f) = residual + gate * f`` with
``gate`` (B, D) broadcast the same way. Both are differentiable: on CUDA the forward and the
backward are Triton kernels; statistics and reductions are accumulated in float32 (float64 for
float64 inputs), and the output has the promoted dtype of the inputs.
"""

from __future__ import annotations

import contextlib
import functools
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from polyfold.core.errors import InputError
from polyfold.core.ops._dispatch import use_triton

with contextlib.suppress(ImportError):  # optional: the kernel bodies need it, references do not
    import triton.language as tl

__all__ = [
    "MAX_TRITON_DIM",
    "adaln_modulate",
    "adaln_modulate_reference",
    "adaln_modulate_triton",
    "gated_residual",
    "gated_residual_reference",
    "gated_residual_triton",
]

MAX_TRITON_DIM = 16384
"""Largest feature dimension D the kernels take (a row lives in registers); larger D: reference."""

_FLOAT_DTYPES = (torch.float32, torch.bfloat16, torch.float16, torch.float64)
_TARGET_PROGRAMS = 1024  # backward grid size to aim for: (B, chunks of L)


def _check(op: str, x_name: str, x: torch.Tensor, **per_batch: torch.Tensor) -> None:
    """``x`` is (B, L, D) floating point; every tensor in ``per_batch`` is (B, D) on its device."""
    if not isinstance(x, torch.Tensor) or x.dim() != 3 or x.dtype not in _FLOAT_DTYPES:
        got = f"{x.dtype} of shape {tuple(x.shape)}" if isinstance(x, torch.Tensor) else type(x)
        raise InputError(f"{op}: {x_name} must be a floating-point (B, L, D) tensor, got {got}")
    b, _, d = x.shape
    for name, t in per_batch.items():
        if not isinstance(t, torch.Tensor) or t.shape != (b, d) or t.dtype not in _FLOAT_DTYPES:
            got = f"{t.dtype} of shape {tuple(t.shape)}" if isinstance(t, torch.Tensor) else type(t)
            raise InputError(f"{op}: {name} must be a floating-point ({b}, {d}) tensor, got {got}")
        if t.device != x.device:
            raise InputError(
                f"{op}: {name} must be on {x_name}'s device {x.device}, got {t.device}"
            )


def _check_f(x: torch.Tensor, f: torch.Tensor) -> None:
    if not isinstance(f, torch.Tensor) or f.shape != x.shape or f.dtype not in _FLOAT_DTYPES:
        got = f"{f.dtype} of shape {tuple(f.shape)}" if isinstance(f, torch.Tensor) else type(f)
        raise InputError(
            f"gated_residual: f must be a floating-point tensor of residual's shape "
            f"{tuple(x.shape)}, got {got}"
        )
    if f.device != x.device:
        raise InputError(
            f"gated_residual: f must be on residual's device {x.device}, got {f.device}"
        )


def _check_eps(eps: float) -> None:
    if not isinstance(eps, int | float) or not eps > 0:
        raise InputError(f"adaln_modulate: eps must be a positive number, got {eps!r}")


def _compute_dtype(*tensors: torch.Tensor) -> torch.dtype:
    return torch.float64 if any(t.dtype == torch.float64 for t in tensors) else torch.float32


def _out_dtype(*tensors: torch.Tensor) -> torch.dtype:
    return functools.reduce(torch.promote_types, (t.dtype for t in tensors))


# --------------------------------------------------------------------------------------------
# References (differentiable through autograd)
# --------------------------------------------------------------------------------------------


def _adaln_reference(
    x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor, eps: float
) -> torch.Tensor:
    cdt = _compute_dtype(x, shift, scale)
    y = F.layer_norm(x.to(cdt), (x.shape[-1],), eps=eps)
    y = y * (1 + scale.to(cdt)[:, None]) + shift.to(cdt)[:, None]
    return y.to(_out_dtype(x, shift, scale))


def _gated_reference(residual: torch.Tensor, gate: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    cdt = _compute_dtype(residual, gate, f)
    out = residual.to(cdt) + gate.to(cdt)[:, None] * f.to(cdt)
    return out.to(_out_dtype(residual, gate, f))


def adaln_modulate_reference(
    x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor, eps: float = 1e-6
) -> torch.Tensor:
    """Plain-PyTorch :func:`adaln_modulate`."""
    _check("adaln_modulate", "x", x, shift=shift, scale=scale)
    _check_eps(eps)
    return _adaln_reference(x, shift, scale, eps)


def gated_residual_reference(
    residual: torch.Tensor, gate: torch.Tensor, f: torch.Tensor
) -> torch.Tensor:
    """Plain-PyTorch :func:`gated_residual`."""
    _check("gated_residual", "residual", residual, gate=gate)
    _check_f(residual, f)
    return _gated_reference(residual, gate, f)


# --------------------------------------------------------------------------------------------
# Triton kernels
# --------------------------------------------------------------------------------------------


# Kernels work on (BLOCK_R, BLOCK_D) tiles of the (B * L, D) rows; row r belongs to batch r // L.
# They are plain functions here, jitted on first use (see _kernels).


def _adaln_fwd(  # type: ignore[no-untyped-def]
    x_ptr, shift_ptr, scale_ptr, y_ptr, mean_ptr, rstd_ptr, n_rows, L, D, eps,
    BLOCK_R: tl.constexpr, BLOCK_D: tl.constexpr,
):  # fmt: skip
    cdt = mean_ptr.dtype.element_ty
    rows = tl.program_id(0).to(tl.int64) * BLOCK_R + tl.arange(0, BLOCK_R)
    cols = tl.arange(0, BLOCK_D)
    row_mask = rows < n_rows
    mask = row_mask[:, None] & (cols < D)[None, :]
    offs = rows[:, None] * D + cols[None, :]
    per_batch = (rows // L)[:, None] * D + cols[None, :]
    x = tl.load(x_ptr + offs, mask=mask, other=0.0).to(cdt)
    mean = tl.sum(x, axis=1) / D
    xc = tl.where(mask, x - mean[:, None], 0.0)
    rstd = 1.0 / tl.sqrt(tl.sum(xc * xc, axis=1) / D + eps)
    shift = tl.load(shift_ptr + per_batch, mask=mask, other=0.0).to(cdt)
    scale = tl.load(scale_ptr + per_batch, mask=mask, other=0.0).to(cdt)
    y = xc * rstd[:, None] * (1.0 + scale) + shift
    tl.store(y_ptr + offs, y.to(y_ptr.dtype.element_ty), mask=mask)
    tl.store(mean_ptr + rows, mean, mask=row_mask)
    tl.store(rstd_ptr + rows, rstd, mask=row_mask)


def _adaln_bwd(  # type: ignore[no-untyped-def]
    x_ptr, scale_ptr, mean_ptr, rstd_ptr, dy_ptr, dx_ptr, dshift_ptr, dscale_ptr, L, D, CHUNK,
    BLOCK_R: tl.constexpr, BLOCK_D: tl.constexpr,
):  # fmt: skip
    # Program (b, c) takes rows [c * CHUNK, (c + 1) * CHUNK) of batch b: it writes their dx, and
    # its partial sums of dshift and dscale over those rows to row (b, c) of the partial buffers.
    b = tl.program_id(0).to(tl.int64)
    c = tl.program_id(1)
    cdt = mean_ptr.dtype.element_ty
    cols = tl.arange(0, BLOCK_D)
    col_mask = cols < D
    gain = 1.0 + tl.load(scale_ptr + b * D + cols, mask=col_mask, other=0.0).to(cdt)
    acc_shift = tl.zeros([BLOCK_R, BLOCK_D], dtype=cdt)
    acc_scale = tl.zeros([BLOCK_R, BLOCK_D], dtype=cdt)
    for start in range(0, CHUNK, BLOCK_R):
        ls = c * CHUNK + start + tl.arange(0, BLOCK_R)
        row_mask = ls < L
        mask = row_mask[:, None] & col_mask[None, :]
        rows = b * L + ls
        offs = rows[:, None] * D + cols[None, :]
        x = tl.load(x_ptr + offs, mask=mask, other=0.0).to(cdt)
        dy = tl.load(dy_ptr + offs, mask=mask, other=0.0).to(cdt)
        mean = tl.load(mean_ptr + rows, mask=row_mask, other=0.0)
        rstd = tl.load(rstd_ptr + rows, mask=row_mask, other=0.0)
        xhat = tl.where(mask, (x - mean[:, None]) * rstd[:, None], 0.0)
        acc_shift += dy
        acc_scale += dy * xhat
        g = dy * gain[None, :]
        mean_g = tl.sum(g, axis=1) / D
        mean_gx = tl.sum(g * xhat, axis=1) / D
        dx = (g - mean_g[:, None] - xhat * mean_gx[:, None]) * rstd[:, None]
        tl.store(dx_ptr + offs, dx.to(dx_ptr.dtype.element_ty), mask=mask)
    part = (b * tl.num_programs(1) + c) * D + cols
    tl.store(dshift_ptr + part, tl.sum(acc_shift, axis=0), mask=col_mask)
    tl.store(dscale_ptr + part, tl.sum(acc_scale, axis=0), mask=col_mask)


def _gated_fwd(  # type: ignore[no-untyped-def]
    res_ptr, gate_ptr, f_ptr, out_ptr, n_rows, L, D,
    CDT: tl.constexpr, BLOCK_R: tl.constexpr, BLOCK_D: tl.constexpr,
):  # fmt: skip
    rows = tl.program_id(0).to(tl.int64) * BLOCK_R + tl.arange(0, BLOCK_R)
    cols = tl.arange(0, BLOCK_D)
    mask = (rows < n_rows)[:, None] & (cols < D)[None, :]
    offs = rows[:, None] * D + cols[None, :]
    res = tl.load(res_ptr + offs, mask=mask).to(CDT)
    f = tl.load(f_ptr + offs, mask=mask).to(CDT)
    gate = tl.load(gate_ptr + (rows // L)[:, None] * D + cols[None, :], mask=mask).to(CDT)
    tl.store(out_ptr + offs, (res + gate * f).to(out_ptr.dtype.element_ty), mask=mask)


def _gated_bwd(  # type: ignore[no-untyped-def]
    gate_ptr, f_ptr, dout_ptr, df_ptr, dgate_ptr, L, D, CHUNK,
    BLOCK_R: tl.constexpr, BLOCK_D: tl.constexpr,
):  # fmt: skip
    # Same layout as _adaln_bwd: df for a chunk of rows, and partial sums of dgate per chunk.
    b = tl.program_id(0).to(tl.int64)
    c = tl.program_id(1)
    cdt = dgate_ptr.dtype.element_ty
    cols = tl.arange(0, BLOCK_D)
    col_mask = cols < D
    gate = tl.load(gate_ptr + b * D + cols, mask=col_mask, other=0.0).to(cdt)
    acc = tl.zeros([BLOCK_R, BLOCK_D], dtype=cdt)
    for start in range(0, CHUNK, BLOCK_R):
        ls = c * CHUNK + start + tl.arange(0, BLOCK_R)
        mask = (ls < L)[:, None] & col_mask[None, :]
        offs = (b * L + ls)[:, None] * D + cols[None, :]
        dout = tl.load(dout_ptr + offs, mask=mask, other=0.0).to(cdt)
        f = tl.load(f_ptr + offs, mask=mask, other=0.0).to(cdt)
        acc += dout * f
        tl.store(df_ptr + offs, (dout * gate[None, :]).to(df_ptr.dtype.element_ty), mask=mask)
    part = (b * tl.num_programs(1) + c) * D + cols
    tl.store(dgate_ptr + part, tl.sum(acc, axis=0), mask=col_mask)


@functools.cache
def _kernels() -> Any:
    """The four jitted kernels, built on first use (TRITON_INTERPRET is read then)."""
    import triton

    return tuple(triton.jit(k) for k in (_adaln_fwd, _adaln_bwd, _gated_fwd, _gated_bwd))


def _tl_dtype(dtype: torch.dtype) -> Any:
    return tl.float64 if dtype == torch.float64 else tl.float32


def _blocks(d: int) -> tuple[int, int, int]:
    """(BLOCK_R rows, BLOCK_D >= d columns, num_warps) of one tile."""
    block_d = max(16, 1 << (d - 1).bit_length())
    block_r = max(1, min(16, 2048 // block_d))
    num_warps = min(16, max(4, block_r * block_d // 1024))
    return block_r, block_d, num_warps


def _chunking(b: int, length: int, block_r: int) -> tuple[int, int]:
    """(rows per chunk, chunks per batch) of a backward pass over (B, L): about enough programs."""
    per_batch = max(1, _TARGET_PROGRAMS // b)
    chunk = -(-length // per_batch)
    chunk = -(-chunk // block_r) * block_r
    return chunk, -(-length // chunk)


def _check_dim(op: str, d: int) -> None:
    if d > MAX_TRITON_DIM:
        raise InputError(f"{op}: the Triton kernel takes D <= {MAX_TRITON_DIM}, got D={d}")


class _AdaLNFunction(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any, x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor, eps: float
    ) -> torch.Tensor:
        x, shift, scale = x.contiguous(), shift.contiguous(), scale.contiguous()
        b, length, d = x.shape
        cdt = _compute_dtype(x, shift, scale)
        y = torch.empty(x.shape, dtype=_out_dtype(x, shift, scale), device=x.device)
        mean = torch.empty(b * length, dtype=cdt, device=x.device)
        rstd = torch.empty_like(mean)
        block_r, block_d, warps = _blocks(d)
        if x.numel():
            grid = (-(-(b * length) // block_r),)
            _kernels()[0][grid](
                x, shift, scale, y, mean, rstd, b * length, length, d, float(eps),
                BLOCK_R=block_r, BLOCK_D=block_d, num_warps=warps,
            )  # fmt: skip
        ctx.save_for_backward(x, scale, mean, rstd)
        ctx.dtypes = (x.dtype, shift.dtype)
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, dy: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, scale, mean, rstd = ctx.saved_tensors
        x_dtype, shift_dtype = ctx.dtypes
        b, length, d = x.shape
        block_r, block_d, warps = _blocks(d)
        chunk, n_chunks = _chunking(b, length, block_r)
        dx = torch.empty(x.shape, dtype=x_dtype, device=x.device)
        dshift = torch.zeros(b, n_chunks, d, dtype=mean.dtype, device=x.device)
        dscale = torch.zeros_like(dshift)
        if x.numel():
            _kernels()[1][(b, n_chunks)](
                x, scale, mean, rstd, dy.contiguous(), dx, dshift, dscale, length, d, chunk,
                BLOCK_R=block_r, BLOCK_D=block_d, num_warps=warps,
            )  # fmt: skip
        return dx, dshift.sum(1).to(shift_dtype), dscale.sum(1).to(scale.dtype), None


class _GatedResidualFunction(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any, residual: torch.Tensor, gate: torch.Tensor, f: torch.Tensor
    ) -> torch.Tensor:
        residual, gate, f = residual.contiguous(), gate.contiguous(), f.contiguous()
        b, length, d = residual.shape
        out = torch.empty(residual.shape, dtype=_out_dtype(residual, gate, f), device=f.device)
        block_r, block_d, warps = _blocks(d)
        if out.numel():
            grid = (-(-(b * length) // block_r),)
            _kernels()[2][grid](
                residual, gate, f, out, b * length, length, d,
                CDT=_tl_dtype(_compute_dtype(residual, gate, f)),
                BLOCK_R=block_r, BLOCK_D=block_d, num_warps=warps,
            )  # fmt: skip
        ctx.save_for_backward(gate, f)
        ctx.res_dtype = residual.dtype
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, dout: torch.Tensor) -> tuple[torch.Tensor, ...]:
        gate, f = ctx.saved_tensors
        b, length, d = f.shape
        block_r, block_d, warps = _blocks(d)
        chunk, n_chunks = _chunking(b, length, block_r)
        dout = dout.contiguous()
        df = torch.empty_like(f)
        cdt = _compute_dtype(gate, f, dout)
        dgate = torch.zeros(b, n_chunks, d, dtype=cdt, device=f.device)
        if f.numel():
            _kernels()[3][(b, n_chunks)](
                gate, f, dout, df, dgate, length, d, chunk,
                BLOCK_R=block_r, BLOCK_D=block_d, num_warps=warps,
            )  # fmt: skip
        return dout.to(ctx.res_dtype), dgate.sum(1).to(gate.dtype), df


def adaln_modulate_triton(
    x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor, eps: float = 1e-6
) -> torch.Tensor:
    """The Triton kernels (forward and backward) of :func:`adaln_modulate`."""
    _check("adaln_modulate", "x", x, shift=shift, scale=scale)
    _check_eps(eps)
    _check_dim("adaln_modulate", x.shape[-1])
    return cast(torch.Tensor, _AdaLNFunction.apply(x, shift, scale, float(eps)))


def gated_residual_triton(
    residual: torch.Tensor, gate: torch.Tensor, f: torch.Tensor
) -> torch.Tensor:
    """The Triton kernels (forward and backward) of :func:`gated_residual`."""
    _check("gated_residual", "residual", residual, gate=gate)
    _check_f(residual, f)
    _check_dim("gated_residual", residual.shape[-1])
    return cast(torch.Tensor, _GatedResidualFunction.apply(residual, gate, f))


# --------------------------------------------------------------------------------------------
# Dispatch
# --------------------------------------------------------------------------------------------


def adaln_modulate(
    x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor, eps: float = 1e-6
) -> torch.Tensor:
    """``(1 + scale) * LayerNorm(x) + shift``; x (B, L, D), shift and scale (B, D).

    LayerNorm over the last dimension without affine parameters (``eps`` as in DiT's 1e-6).
    Differentiable in ``x``, ``shift`` and ``scale``. Triton kernels on CUDA, else the reference.
    """
    _check("adaln_modulate", "x", x, shift=shift, scale=scale)
    _check_eps(eps)
    if x.shape[-1] <= MAX_TRITON_DIM and use_triton(x, shift, scale):
        return cast(torch.Tensor, _AdaLNFunction.apply(x, shift, scale, float(eps)))
    return _adaln_reference(x, shift, scale, eps)


def gated_residual(residual: torch.Tensor, gate: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """``residual + gate * f``; residual and f (B, L, D), gate (B, D) broadcast over L.

    Differentiable in all three. Triton kernels on CUDA, else the reference.
    """
    _check("gated_residual", "residual", residual, gate=gate)
    _check_f(residual, f)
    if residual.shape[-1] <= MAX_TRITON_DIM and use_triton(residual, gate, f):
        return cast(torch.Tensor, _GatedResidualFunction.apply(residual, gate, f))
    return _gated_reference(residual, gate, f)
