"""One fused Langevin (SGLD) step: ``x <- clamp(x - step * grad + noise * z, lo, hi)``.

``z ~ N(0, 1)`` elementwise. The kernel draws ``z`` in registers with Philox (``tl.randn4x``), so
the step reads ``x`` and ``grad`` once and writes ``x`` once; its Philox seed is drawn from the
caller's ``torch.Generator`` on ``x``'s device, so the step never waits on the GPU, and the same
generator state gives the same step. The reference draws ``z`` with ``torch.randn`` from the same
generator: the two are each deterministic but do not produce the same noise.
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

__all__ = ["sgld_step", "sgld_step_reference", "sgld_step_triton"]

_BLOCK = 1024  # elements per program; a multiple of 4 (one Philox call gives four normals)
_FLOAT_DTYPES = (torch.float32, torch.bfloat16, torch.float16, torch.float64)


def _check(
    x: torch.Tensor,
    grad: torch.Tensor,
    step_size: float,
    noise_scale: float,
    generator: torch.Generator,
    clamp: tuple[float, float] | None,
) -> None:
    if not isinstance(x, torch.Tensor) or x.dtype not in _FLOAT_DTYPES:
        got: object = x.dtype if isinstance(x, torch.Tensor) else type(x)
        raise InputError(f"sgld_step: x must be a floating-point tensor, got {got}")
    if not isinstance(grad, torch.Tensor) or grad.shape != x.shape or grad.device != x.device:
        got = (
            f"shape {tuple(grad.shape)} on {grad.device}"
            if isinstance(grad, torch.Tensor)
            else type(grad)
        )
        raise InputError(
            f"sgld_step: grad must be a tensor of x's shape {tuple(x.shape)} on {x.device}, "
            f"got {got}"
        )
    for name, value in (("step_size", step_size), ("noise_scale", noise_scale)):
        if not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
            raise InputError(f"sgld_step: {name} must be a finite number >= 0, got {value!r}")
    if not isinstance(generator, torch.Generator) or generator.device != x.device:
        got = generator.device if isinstance(generator, torch.Generator) else type(generator)
        raise InputError(f"sgld_step: generator must be a torch.Generator on {x.device}, got {got}")
    _check_clamp("sgld_step", clamp)


def _check_clamp(op: str, clamp: tuple[float, float] | None) -> None:
    if clamp is None:
        return
    if (
        not isinstance(clamp, tuple | list)
        or len(clamp) != 2
        or not all(isinstance(v, int | float) for v in clamp)
        or not clamp[0] < clamp[1]
    ):
        raise InputError(f"{op}: clamp must be None or a pair (lo, hi) with lo < hi, got {clamp!r}")


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def _reference(
    x: torch.Tensor,
    grad: torch.Tensor,
    step_size: float,
    noise_scale: float,
    generator: torch.Generator,
    clamp: tuple[float, float] | None,
) -> torch.Tensor:
    cdt = _compute_dtype(x.dtype)
    z = torch.randn(x.shape, generator=generator, device=x.device, dtype=cdt)
    new = x.to(cdt) - step_size * grad.to(cdt) + noise_scale * z
    if clamp is not None:
        new = new.clamp_(clamp[0], clamp[1])
    return x.copy_(new)


def _sgld_kernel(  # type: ignore[no-untyped-def]
    x_ptr, grad_ptr, seed_ptr, n, step_size, noise_scale, lo, hi,
    CLAMP: tl.constexpr, CDT: tl.constexpr, BLOCK: tl.constexpr,
):  # fmt: skip
    # Philox counter q gives four normals, used by elements 4q .. 4q + 3.
    quads = tl.program_id(0).to(tl.int64) * (BLOCK // 4) + tl.arange(0, BLOCK // 4)
    z0, z1, z2, z3 = tl.randn4x(tl.load(seed_ptr), quads)
    z = tl.reshape(tl.join(tl.join(z0, z1), tl.join(z2, z3)), [BLOCK])  # element 4q + k <- z_k
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    x = tl.load(x_ptr + offs, mask=mask).to(CDT)
    g = tl.load(grad_ptr + offs, mask=mask).to(CDT)
    new = x - step_size * g + noise_scale * z.to(CDT)
    if CLAMP:
        new = tl.minimum(tl.maximum(new, lo), hi)
    tl.store(x_ptr + offs, new.to(x_ptr.dtype.element_ty), mask=mask)


@functools.cache
def _kernel() -> Any:
    """The jitted kernel, built on first use (TRITON_INTERPRET is read then, not at import)."""
    import triton

    return triton.jit(_sgld_kernel)


def _triton(
    x: torch.Tensor,
    grad: torch.Tensor,
    step_size: float,
    noise_scale: float,
    generator: torch.Generator,
    clamp: tuple[float, float] | None,
) -> torch.Tensor:
    # The seed stays on the generator's device: the kernel loads it, no host round trip.
    seed = torch.randint(
        0, 2**62, (1,), generator=generator, device=generator.device, dtype=torch.int64
    )
    if x.numel() == 0:
        return x
    out = x if x.is_contiguous() else x.contiguous()
    lo, hi = clamp if clamp is not None else (0.0, 0.0)
    n = out.numel()
    kernel = _kernel()  # imports Triton, so `tl` is bound below
    cdt = tl.float64 if x.dtype == torch.float64 else tl.float32
    kernel[(-(-n // _BLOCK),)](
        out, grad.contiguous(), seed, n, float(step_size), float(noise_scale), float(lo), float(hi),
        CLAMP=clamp is not None, CDT=cdt, BLOCK=_BLOCK,
    )  # fmt: skip
    return x if out is x else x.copy_(out)


def sgld_step_reference(
    x: torch.Tensor,
    grad: torch.Tensor,
    step_size: float,
    noise_scale: float,
    generator: torch.Generator,
    clamp: tuple[float, float] | None = None,
) -> torch.Tensor:
    """Plain-PyTorch :func:`sgld_step` (noise from ``torch.randn``)."""
    _check(x, grad, step_size, noise_scale, generator, clamp)
    return _reference(x, grad, step_size, noise_scale, generator, clamp)


def sgld_step_triton(
    x: torch.Tensor,
    grad: torch.Tensor,
    step_size: float,
    noise_scale: float,
    generator: torch.Generator,
    clamp: tuple[float, float] | None = None,
) -> torch.Tensor:
    """The Triton kernel of :func:`sgld_step` (in-kernel Philox noise)."""
    _check(x, grad, step_size, noise_scale, generator, clamp)
    return _triton(x, grad, step_size, noise_scale, generator, clamp)


def sgld_step(
    x: torch.Tensor,
    grad: torch.Tensor,
    step_size: float,
    noise_scale: float,
    generator: torch.Generator,
    clamp: tuple[float, float] | None = None,
) -> torch.Tensor:
    """``x <- clamp(x - step_size * grad + noise_scale * z, lo, hi)`` in place; returns ``x``.

    ``grad`` has ``x``'s shape (the energy gradient, or minus the score); ``z ~ N(0, 1)`` is
    drawn from ``generator``, which lives on ``x``'s device; ``clamp=(lo, hi)`` is optional.
    Arithmetic in float32 (float64 for float64 ``x``). The kernel on CUDA, else the reference.
    """
    _check(x, grad, step_size, noise_scale, generator, clamp)
    if use_triton(x, grad):
        return _triton(x, grad, step_size, noise_scale, generator, clamp)
    return _reference(x, grad, step_size, noise_scale, generator, clamp)
