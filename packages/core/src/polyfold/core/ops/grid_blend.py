"""Blended local grids (Mosaic-SDF's volume evaluation) scattered onto a voxel volume, fused.

A set of ``n`` axis-aligned cubes, cube ``i`` centred at ``c_i`` with half-width ``s_i`` and
carrying a ``k^3`` grid of values over its extent, defines at a point ``x``

    F(x) = sum_i w_i(x) v_i(x) / sum_i w_i(x),   w_i(x) = max(0, 1 - ||(x - c_i) / s_i||_inf),

with ``v_i`` the trilinear interpolant of grid ``i``. :func:`grid_blend_volume` returns the
numerator and the denominator on the ``res^3`` voxel centres of ``[-bound, bound]^3`` (x slowest),
visiting for each cube only the voxels it covers: a scatter over covered cells, never a dense
``n x res^3`` evaluation. The reference materialises every (cube, voxel) pair of a chunk of cubes;
the kernel computes each pair's weight and interpolant in registers and adds it straight into the
volume with atomic adds (so its sums match the reference to float32 rounding, in any order).
The kernel is forward-only: where a gradient is needed the reference runs.
"""

from __future__ import annotations

import contextlib
import functools
import math
from typing import Any

import torch

from polyfold.core.errors import InputError
from polyfold.core.ops._dispatch import use_triton

with contextlib.suppress(ImportError):  # optional: the kernel body needs it, the reference does not
    import triton.language as tl

__all__ = [
    "grid_blend_volume",
    "grid_blend_volume_reference",
    "grid_blend_volume_triton",
    "local_grid_blend",
]

_BLOCK = 128  # covered voxels per program
_PAIRS = 1 << 22  # (cube, voxel) pairs the reference materialises at once


def _check(
    centres: torch.Tensor, scales: torch.Tensor, values: torch.Tensor, res: int, bound: float
) -> None:
    ok = (
        isinstance(centres, torch.Tensor)
        and isinstance(scales, torch.Tensor)
        and isinstance(values, torch.Tensor)
        and centres.dim() == 2
        and centres.shape[1] == 3
        and scales.shape == centres.shape[:1]
        and values.dim() == 4
        and values.shape[0] == centres.shape[0]
        and values.shape[1] == values.shape[2] == values.shape[3] >= 2
        and centres.device == scales.device == values.device
    )
    if not ok:
        shapes = [tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
                  for t in (centres, scales, values)]  # fmt: skip
        raise InputError(
            "grid_blend: expected centres (n, 3), scales (n,) and values (n, k, k, k) with k >= 2 "
            f"on one device, got {shapes}"
        )
    if isinstance(res, bool) or not isinstance(res, int) or res < 2:
        raise InputError(f"grid_blend_volume: res must be an integer >= 2, got {res!r}")
    if not isinstance(bound, int | float) or not math.isfinite(bound) or bound <= 0:
        raise InputError(f"grid_blend_volume: bound must be a finite number > 0, got {bound!r}")


def local_grid_blend(
    centres: torch.Tensor,
    scales: torch.Tensor,
    values: torch.Tensor,
    points: torch.Tensor,
    grid: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Blend weight ``w_i(x)`` and trilinear interpolant ``v_i(x)`` of cubes ``grid (Q,)`` at
    ``points (Q, 3)``; differentiable in the points, centres, scales and values."""
    k = values.shape[-1]
    u = (points - centres[grid]) / scales[grid, None]
    w = torch.relu(1 - u.abs().amax(dim=-1))
    g = ((u.clamp(-1, 1) + 1) * 0.5) * (k - 1)
    i0 = g.detach().floor().clamp(0, k - 2).long()
    f = g - i0
    flat = values.reshape(values.shape[0], -1)
    v = torch.zeros_like(g[:, 0])
    for dx in (0, 1):
        wx = f[:, 0] if dx else 1 - f[:, 0]
        for dy in (0, 1):
            wy = f[:, 1] if dy else 1 - f[:, 1]
            for dz in (0, 1):
                wz = f[:, 2] if dz else 1 - f[:, 2]
                idx = ((i0[:, 0] + dx) * k + i0[:, 1] + dy) * k + i0[:, 2] + dz
                v = v + wx * wy * wz * flat[grid, idx]
    return w, v


def _covered(
    centres: torch.Tensor, scales: torch.Tensor, res: int, bound: float
) -> tuple[torch.Tensor, torch.Tensor, float]:
    """First and last voxel index (per axis) inside each closed cube, and the voxel spacing."""
    h = 2 * bound / (res - 1)
    c, s = centres.detach(), scales.detach()[:, None]
    lo = torch.ceil((c - s + bound) / h - 1e-9).long().clamp(0, res - 1)
    hi = torch.floor((c + s + bound) / h + 1e-9).long().clamp(0, res - 1)
    return lo, hi, h


def _reference(
    centres: torch.Tensor, scales: torch.Tensor, values: torch.Tensor, res: int, bound: float
) -> tuple[torch.Tensor, torch.Tensor]:
    dev, dt = centres.device, centres.dtype
    lo, hi, h = _covered(centres, scales, res, bound)
    num = torch.zeros(res**3, dtype=dt, device=dev)
    den = torch.zeros(res**3, dtype=dt, device=dev)
    n = len(centres)
    if n == 0:
        return num, den
    span = int((hi - lo).max().clamp_min(0)) + 1
    r = torch.arange(span, device=dev)
    off = torch.stack(torch.meshgrid(r, r, r, indexing="ij"), -1).reshape(-1, 3)  # (M, 3)
    step = max(1, _PAIRS // len(off))  # cubes per chunk: bounded memory for large cubes
    for start in range(0, n, step):
        rows = torch.arange(start, min(start + step, n), device=dev)
        idx = lo[rows, None, :] + off[None]  # (g, M, 3)
        ok = (idx <= hi[rows, None, :]).all(-1)
        grid = rows[:, None].expand_as(ok)[ok]
        idx = idx[ok]
        w, v = local_grid_blend(centres, scales, values, -bound + idx.to(dt) * h, grid)
        flat = (idx[:, 0] * res + idx[:, 1]) * res + idx[:, 2]
        num = num.index_add(0, flat, w * v)
        den = den.index_add(0, flat, w)
    return num, den


def _blend_kernel(  # type: ignore[no-untyped-def]
    c_ptr, s_ptr, v_ptr, lo_ptr, hi_ptr, num_ptr, den_ptr, res, span, K, bound, h,
    BLOCK: tl.constexpr,
):  # fmt: skip
    cube = tl.program_id(0).to(tl.int64)
    j = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    ix = tl.load(lo_ptr + cube * 3) + j // (span * span)
    iy = tl.load(lo_ptr + cube * 3 + 1) + (j // span) % span
    iz = tl.load(lo_ptr + cube * 3 + 2) + j % span
    valid = (
        (j < span * span * span)
        & (ix <= tl.load(hi_ptr + cube * 3))
        & (iy <= tl.load(hi_ptr + cube * 3 + 1))
        & (iz <= tl.load(hi_ptr + cube * 3 + 2))
    )
    s = tl.load(s_ptr + cube)
    ux = (-bound + ix.to(tl.float32) * h - tl.load(c_ptr + cube * 3)) / s
    uy = (-bound + iy.to(tl.float32) * h - tl.load(c_ptr + cube * 3 + 1)) / s
    uz = (-bound + iz.to(tl.float32) * h - tl.load(c_ptr + cube * 3 + 2)) / s
    w = tl.maximum(1.0 - tl.maximum(tl.maximum(tl.abs(ux), tl.abs(uy)), tl.abs(uz)), 0.0)
    half = (K - 1) * 0.5
    gx = (tl.minimum(tl.maximum(ux, -1.0), 1.0) + 1.0) * half
    gy = (tl.minimum(tl.maximum(uy, -1.0), 1.0) + 1.0) * half
    gz = (tl.minimum(tl.maximum(uz, -1.0), 1.0) + 1.0) * half
    x0 = tl.minimum(tl.maximum(tl.floor(gx), 0.0), K - 2.0)
    y0 = tl.minimum(tl.maximum(tl.floor(gy), 0.0), K - 2.0)
    z0 = tl.minimum(tl.maximum(tl.floor(gz), 0.0), K - 2.0)
    fx, fy, fz = gx - x0, gy - y0, gz - z0
    base = v_ptr + cube * K * K * K
    corner = (x0.to(tl.int32) * K + y0.to(tl.int32)) * K + z0.to(tl.int32)
    v = tl.zeros([BLOCK], dtype=tl.float32)
    for dx in tl.static_range(2):
        wx = fx if dx else 1.0 - fx
        for dy in tl.static_range(2):
            wy = fy if dy else 1.0 - fy
            for dz in tl.static_range(2):
                wz = fz if dz else 1.0 - fz
                val = tl.load(base + corner + (dx * K + dy) * K + dz, mask=valid, other=0.0)
                v += wx * wy * wz * val
    flat = (ix.to(tl.int64) * res + iy) * res + iz
    tl.atomic_add(num_ptr + flat, w * v, mask=valid)
    tl.atomic_add(den_ptr + flat, w, mask=valid)


@functools.cache
def _kernel() -> Any:
    """The jitted kernel, built on first use (TRITON_INTERPRET is read then, not at import)."""
    import triton

    return triton.jit(_blend_kernel)


def _triton(
    centres: torch.Tensor, scales: torch.Tensor, values: torch.Tensor, res: int, bound: float
) -> tuple[torch.Tensor, torch.Tensor]:
    dev, dt = centres.device, centres.dtype
    lo, hi, h = _covered(centres, scales, res, bound)
    num = torch.zeros(res**3, dtype=torch.float32, device=dev)
    den = torch.zeros(res**3, dtype=torch.float32, device=dev)
    if len(centres):
        span = int((hi - lo).max().clamp_min(0)) + 1
        _kernel()[(len(centres), -(-(span**3) // _BLOCK))](
            centres.detach().float().contiguous(), scales.detach().float().contiguous(),
            values.detach().float().contiguous(), lo.int().contiguous(), hi.int().contiguous(),
            num, den, res, span, values.shape[-1], float(bound), float(h), BLOCK=_BLOCK,
        )  # fmt: skip
    return num.to(dt), den.to(dt)


def grid_blend_volume_reference(
    centres: torch.Tensor, scales: torch.Tensor, values: torch.Tensor, res: int, bound: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Plain-PyTorch :func:`grid_blend_volume` (differentiable)."""
    _check(centres, scales, values, res, bound)
    return _reference(centres, scales, values, res, bound)


def grid_blend_volume_triton(
    centres: torch.Tensor, scales: torch.Tensor, values: torch.Tensor, res: int, bound: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """The fused Triton kernel of :func:`grid_blend_volume` (forward only, float32 sums)."""
    _check(centres, scales, values, res, bound)
    return _triton(centres, scales, values, res, bound)


def grid_blend_volume(
    centres: torch.Tensor, scales: torch.Tensor, values: torch.Tensor, res: int, bound: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(sum_i w_i v_i, sum_i w_i)`` on the ``res^3`` voxel centres of ``[-bound, bound]^3``
    (flattened, x slowest) for cubes ``centres (n, 3)``, half-widths ``scales (n,)`` and value
    grids ``values (n, k, k, k)``; voxels no cube covers get ``(0, 0)``.

    The kernel on CUDA when no gradient is needed, else the reference.
    """
    _check(centres, scales, values, res, bound)
    grad = torch.is_grad_enabled() and any(t.requires_grad for t in (centres, scales, values))
    if not grad and use_triton(centres, scales, values):
        return _triton(centres, scales, values, res, bound)
    return _reference(centres, scales, values, res, bound)
