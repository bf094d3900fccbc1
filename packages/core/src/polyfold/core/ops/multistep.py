"""Fused multistep sampler update: ``x <- a * x + sum_i b_i * d_i`` in place, up to four terms.

Multistep solvers (DPM-Solver++, UniPC, DEIS, PNDM) end every step with a linear combination of
the state and a few stored model outputs; done term by term it reads and writes ``x`` once per
term. The kernel reads every operand once and writes ``x`` once, accumulating in float32 (float64
for float64 tensors). Coefficients are Python floats or 0-d tensors; tensors on ``x``'s device are
read by the kernel itself, so the update never waits on the GPU.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Sequence
from typing import Any

import torch

from polyfold.core.errors import InputError
from polyfold.core.ops._dispatch import use_triton

with contextlib.suppress(ImportError):  # optional: the kernel bodies need it, references do not
    import triton.language as tl

__all__ = [
    "MAX_TERMS",
    "Scalar",
    "multistep_update",
    "multistep_update_reference",
    "multistep_update_triton",
]

MAX_TERMS = 4
_BLOCK = 1024

Scalar = float | torch.Tensor
"""A coefficient: a Python number or a 0-d tensor."""

_FLOAT_DTYPES = (torch.float32, torch.bfloat16, torch.float16, torch.float64)


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def _check(
    x: torch.Tensor, a: Scalar, coeffs: Sequence[Scalar], terms: Sequence[torch.Tensor]
) -> None:
    if not isinstance(x, torch.Tensor) or x.dtype not in _FLOAT_DTYPES:
        got: object = x.dtype if isinstance(x, torch.Tensor) else type(x).__name__
        raise InputError(f"multistep_update: x must be a floating-point tensor, got {got}")
    if len(coeffs) != len(terms):
        raise InputError(
            f"multistep_update: coeffs and terms must have the same length, "
            f"got {len(coeffs)} coefficients and {len(terms)} terms"
        )
    if len(terms) > MAX_TERMS:
        raise InputError(f"multistep_update: at most {MAX_TERMS} terms, got {len(terms)}")
    for name, c in [("a", a), *((f"coeffs[{i}]", c) for i, c in enumerate(coeffs))]:
        if isinstance(c, torch.Tensor):
            if c.dim() != 0:
                raise InputError(
                    f"multistep_update: {name} must be a number or a 0-d tensor, "
                    f"got a tensor of shape {tuple(c.shape)}"
                )
        elif not isinstance(c, int | float):
            raise InputError(f"multistep_update: {name} must be a number, got {type(c).__name__}")
    for i, d in enumerate(terms):
        if not isinstance(d, torch.Tensor) or d.shape != x.shape:
            got = tuple(d.shape) if isinstance(d, torch.Tensor) else type(d).__name__
            raise InputError(
                f"multistep_update: terms[{i}] must be a tensor of x's shape {tuple(x.shape)}, "
                f"got {got}"
            )
        if d.dtype not in _FLOAT_DTYPES or d.device != x.device:
            raise InputError(
                f"multistep_update: terms[{i}] must be a floating-point tensor on {x.device}, "
                f"got {d.dtype} on {d.device}"
            )


def _reference(
    x: torch.Tensor, a: Scalar, coeffs: Sequence[Scalar], terms: Sequence[torch.Tensor]
) -> torch.Tensor:
    cdt = _compute_dtype(x.dtype)

    def coef(c: Scalar) -> Scalar:
        return c.to(device=x.device, dtype=cdt) if isinstance(c, torch.Tensor) else float(c)

    acc = x.to(cdt) * coef(a)
    for b, d in zip(coeffs, terms, strict=True):
        acc = acc + coef(b) * d.to(cdt)
    return x.copy_(acc)


def _multistep_kernel(  # type: ignore[no-untyped-def]
    x_ptr, d0_ptr, d1_ptr, d2_ptr, d3_ptr, coef_ptr, n,
    NUM_TERMS: tl.constexpr, BLOCK: tl.constexpr,
):  # fmt: skip
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    cdt = coef_ptr.dtype.element_ty
    acc = tl.load(coef_ptr) * tl.load(x_ptr + offs, mask=mask).to(cdt)
    if NUM_TERMS > 0:
        acc += tl.load(coef_ptr + 1) * tl.load(d0_ptr + offs, mask=mask).to(cdt)
    if NUM_TERMS > 1:
        acc += tl.load(coef_ptr + 2) * tl.load(d1_ptr + offs, mask=mask).to(cdt)
    if NUM_TERMS > 2:
        acc += tl.load(coef_ptr + 3) * tl.load(d2_ptr + offs, mask=mask).to(cdt)
    if NUM_TERMS > 3:
        acc += tl.load(coef_ptr + 4) * tl.load(d3_ptr + offs, mask=mask).to(cdt)
    tl.store(x_ptr + offs, acc.to(x_ptr.dtype.element_ty), mask=mask)


@functools.cache
def _kernel() -> Any:
    """The jitted kernel, built on first use (so TRITON_INTERPRET is read then, not at import)."""
    import triton

    return triton.jit(_multistep_kernel)


def _coefficients(
    scalars: Sequence[Scalar], dtype: torch.dtype, device: torch.device
) -> torch.Tensor:
    """The coefficients as one tensor on ``device``, built without waiting on the device."""
    if not any(isinstance(c, torch.Tensor) and c.device == device for c in scalars):
        # Host numbers only: one small asynchronous host-to-device copy.
        values = [float(c) for c in scalars]
        return torch.tensor(values, dtype=dtype).to(device, non_blocking=True)
    return torch.stack(
        [
            c.to(device=device, dtype=dtype)
            if isinstance(c, torch.Tensor) and c.device == device
            else torch.full((), float(c), dtype=dtype, device=device)
            for c in scalars
        ]
    )


def _triton(
    x: torch.Tensor, a: Scalar, coeffs: Sequence[Scalar], terms: Sequence[torch.Tensor]
) -> torch.Tensor:
    if x.numel() == 0:
        return x
    out = x if x.is_contiguous() else x.contiguous()
    ds = [d.contiguous() for d in terms]
    ds += [out] * (MAX_TERMS - len(ds))  # placeholders, never read
    coef = _coefficients([a, *coeffs], _compute_dtype(x.dtype), x.device)
    n = out.numel()
    grid = (-(-n // _BLOCK),)
    _kernel()[grid](out, *ds, coef, n, NUM_TERMS=len(terms), BLOCK=_BLOCK)
    return x if out is x else x.copy_(out)


def multistep_update_reference(
    x: torch.Tensor, a: Scalar, coeffs: Sequence[Scalar], terms: Sequence[torch.Tensor]
) -> torch.Tensor:
    """Plain-PyTorch :func:`multistep_update`."""
    _check(x, a, coeffs, terms)
    return _reference(x, a, coeffs, terms)


def multistep_update_triton(
    x: torch.Tensor, a: Scalar, coeffs: Sequence[Scalar], terms: Sequence[torch.Tensor]
) -> torch.Tensor:
    """The Triton kernel of :func:`multistep_update`, on any device Triton runs on."""
    _check(x, a, coeffs, terms)
    return _triton(x, a, coeffs, terms)


def multistep_update(
    x: torch.Tensor, a: Scalar, coeffs: Sequence[Scalar], terms: Sequence[torch.Tensor]
) -> torch.Tensor:
    """``x <- a * x + sum_i coeffs[i] * terms[i]`` in place (at most four terms); returns ``x``.

    ``terms`` have ``x``'s shape and device; coefficients are numbers or 0-d tensors. Runs the
    Triton kernel on CUDA tensors when Triton is available, the PyTorch reference otherwise.
    """
    _check(x, a, coeffs, terms)
    if use_triton(x, *terms):
        return _triton(x, a, coeffs, terms)
    return _reference(x, a, coeffs, terms)
