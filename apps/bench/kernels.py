"""polyfold.core.ops: each fused Triton kernel against its PyTorch reference (needs CUDA).

For every kernel, size and dtype: the median time of the Triton kernel and of the reference on
the same inputs, the bandwidth each reaches over the fewest bytes the operation must move (every
operand read once, every output written once), and the peak memory a call allocates beyond its
inputs. adaLN and the gated residual are timed forward and forward+backward; the grid blend
(Mosaic-SDF volume evaluation) forward. The summary gives
the reference-over-kernel time ratio (speedup) per kernel: geometric mean and minimum.

    python apps/bench/kernels.py [--quick] [--out FILE]
"""

from __future__ import annotations

import importlib.util
import math
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
from _common import parse_args, print_table, time_call, write_json  # type: ignore[import-not-found]

from polyfold.core.ops.adaln import (
    adaln_modulate_reference,
    adaln_modulate_triton,
    gated_residual_reference,
    gated_residual_triton,
)
from polyfold.core.ops.grid_blend import grid_blend_volume_reference, grid_blend_volume_triton
from polyfold.core.ops.multistep import multistep_update_reference, multistep_update_triton
from polyfold.core.ops.sgld import sgld_step_reference, sgld_step_triton

Fn = Callable[[], object]
Op = Callable[..., torch.Tensor]


@dataclass(frozen=True)
class Case:
    """One measurement: the kernel and its reference on the same inputs."""

    kernel: str
    shape: tuple[int, ...]
    dtype: torch.dtype
    mode: str
    min_bytes: int
    triton: Fn
    reference: Fn


def _bytes(dtype: torch.dtype, *numels: int) -> int:
    return sum(numels) * torch.finfo(dtype).bits // 8


def _randn(
    shape: Sequence[int], dtype: torch.dtype, device: torch.device, seed: int
) -> torch.Tensor:
    g = torch.Generator(device=device).manual_seed(seed)
    return torch.randn(tuple(shape), generator=g, device=device, dtype=dtype)


def multistep_cases(
    numels: Sequence[int], dtype: torch.dtype, device: torch.device
) -> Iterator[Case]:
    """x <- 0.5 x + sum of three terms (a third-order multistep update), in place."""
    coeffs = [0.2, -0.1, 0.05]
    for n in numels:
        x = _randn((n,), dtype, device, 0)
        ds = [_randn((n,), dtype, device, i + 1) for i in range(3)]
        yield Case(
            "multistep", (n,), dtype, "update", _bytes(dtype, 5 * n),
            partial(multistep_update_triton, x, 0.5, coeffs, ds),
            partial(multistep_update_reference, x, 0.5, coeffs, ds),
        )  # fmt: skip


def sgld_cases(numels: Sequence[int], dtype: torch.dtype, device: torch.device) -> Iterator[Case]:
    """x <- clamp(x - 1e-3 grad + 1e-2 z, -10, 10), in place, noise from a CUDA generator."""
    for n in numels:
        x, grad = _randn((n,), dtype, device, 0), _randn((n,), dtype, device, 1)
        args = (x, grad, 1e-3, 1e-2, torch.Generator(device=device).manual_seed(2), (-10.0, 10.0))
        yield Case(
            "sgld", (n,), dtype, "update", _bytes(dtype, 3 * n),
            partial(sgld_step_triton, *args), partial(sgld_step_reference, *args),
        )  # fmt: skip


def grid_blend_cases(sizes: Sequence[tuple[int, int, int]], device: torch.device) -> Iterator[Case]:
    """Mosaic-SDF volumes: n cubes of k^3 values (half-width 0.06, near a sphere) onto res^3."""
    for n, k, res in sizes:
        g = torch.Generator(device=device).manual_seed(0)
        d = torch.randn(n, 3, generator=g, device=device)
        centres = 0.4 * d / d.norm(dim=1, keepdim=True)
        scales = torch.full((n,), 0.06, device=device)
        values = _randn((n, k, k, k), torch.float32, device, 1)
        args = (centres, scales, values, res, 0.55)
        yield Case(
            "grid_blend", (n, k, res), torch.float32, "fwd",
            _bytes(torch.float32, n * (k**3 + 4), 2 * res**3),
            partial(grid_blend_volume_triton, *args), partial(grid_blend_volume_reference, *args),
        )  # fmt: skip


def _forward_backward(fn: Op, inputs: list[torch.Tensor]) -> Fn:
    leaves = [t.detach().requires_grad_(True) for t in inputs]
    grad_out = torch.randn_like(fn(*leaves))

    def run() -> object:
        out = fn(*leaves)
        return torch.autograd.grad(out, leaves, grad_out)

    return run


def _no_grad(fn: Op, inputs: list[torch.Tensor]) -> Fn:
    def run() -> object:
        with torch.no_grad():
            return fn(*inputs)

    return run


def modulation_cases(
    shapes: Sequence[tuple[int, int, int]], dtype: torch.dtype, device: torch.device
) -> Iterator[Case]:
    """adaLN modulation and gated residual on (B, L, D), forward and forward+backward."""
    for b, length, d in shapes:
        big, small = b * length * d, b * d
        x = _randn((b, length, d), dtype, device, 0)
        f = _randn((b, length, d), dtype, device, 1)
        shift, scale, gate = (_randn((b, d), dtype, device, i) for i in (2, 3, 4))
        ops: list[tuple[str, Op, Op, list[torch.Tensor], int, int]] = [
            # (name, kernel, reference, inputs, fwd bytes, fwd+bwd bytes)
            ("adaln", adaln_modulate_triton, adaln_modulate_reference, [x, shift, scale],
             _bytes(dtype, 2 * big, 2 * small), _bytes(dtype, 5 * big, 4 * small)),
            ("gated_residual", gated_residual_triton, gated_residual_reference, [x, gate, f],
             _bytes(dtype, 3 * big, small), _bytes(dtype, 6 * big, 2 * small)),
        ]  # fmt: skip
        for name, kernel, reference, inputs, fwd_bytes, both_bytes in ops:
            yield Case(
                name, (b, length, d), dtype, "fwd", fwd_bytes,
                _no_grad(kernel, inputs), _no_grad(reference, inputs),
            )  # fmt: skip
            yield Case(
                name, (b, length, d), dtype, "fwd+bwd", both_bytes,
                _forward_backward(kernel, inputs), _forward_backward(reference, inputs),
            )  # fmt: skip


def peak_memory(fn: Fn) -> int:
    """Bytes allocated by one call of ``fn`` beyond what was allocated before it."""
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    result = fn()
    torch.cuda.synchronize()
    del result
    return torch.cuda.max_memory_allocated() - before


def measure(
    cases: Iterator[Case], repeats: int, memory: Callable[[Fn], int] = peak_memory
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for case in cases:
        times = {}
        for impl, fn in (("triton", case.triton), ("reference", case.reference)):
            seconds = time_call(fn, repeats=repeats, warmup=3)  # warm-up compiles the kernel
            times[impl] = seconds
            rows.append(
                {
                    "kernel": case.kernel,
                    "mode": case.mode,
                    "shape": "x".join(map(str, case.shape)),
                    "dtype": str(case.dtype).removeprefix("torch."),
                    "impl": impl,
                    "ms": seconds * 1e3,
                    "GB/s": case.min_bytes / seconds / 1e9,
                    "peak_MiB": memory(fn) / 2**20,
                    "speedup": "",
                }
            )
        rows[-2]["speedup"] = times["reference"] / times["triton"]
    return rows


def summarise(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Per kernel and mode: geometric mean and minimum speedup of the kernel over the reference."""
    groups: dict[str, list[float]] = {}
    for row in rows:
        if row["impl"] == "triton":
            groups.setdefault(f"{row['kernel']} {row['mode']}", []).append(row["speedup"])
    return {
        name: {
            "speedup_geomean": math.exp(sum(map(math.log, s)) / len(s)),
            "speedup_min": min(s),
        }
        for name, s in groups.items()
    }


def cases_for(quick: bool, device: torch.device) -> Iterator[Case]:
    numels = [2**20, 2**22] if quick else [2**20, 2**24, 2**26]
    shapes = (
        [(4, 256, 768), (4, 256, 200)]
        if quick
        else [(8, 1024, 1152), (16, 4096, 768), (8, 1024, 200), (4, 4096, 4096)]
    )
    dtypes = [torch.bfloat16] if quick else [torch.bfloat16, torch.float32]
    for dtype in dtypes:
        yield from multistep_cases(numels, dtype, device)
        yield from sgld_cases(numels, dtype, device)
        yield from modulation_cases(shapes, dtype, device)
    blends = [(256, 7, 128)] if quick else [(256, 7, 128), (1024, 7, 256), (4096, 7, 256)]
    yield from grid_blend_cases(blends, device)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(__doc__.splitlines()[0], argv)
    missing = (
        "CUDA" if not torch.cuda.is_available()
        else "Triton" if importlib.util.find_spec("triton") is None
        else None
    )  # fmt: skip
    if missing is not None:
        print(
            f"kernels: this benchmark needs {missing}, which this machine lacks; nothing measured"
        )
        write_json(args.out, [], {"skipped": f"needs {missing}"}, benchmark="kernels")
        return 0
    rows = measure(cases_for(args.quick, torch.device("cuda")), repeats=10 if args.quick else 30)
    print_table(rows)
    summary = summarise(rows)
    print()
    print_table([{"kernel": name, **figures} for name, figures in summary.items()])
    write_json(args.out, rows, summary, benchmark="kernels", quick=args.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
