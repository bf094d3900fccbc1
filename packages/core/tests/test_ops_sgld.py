"""The fused SGLD step against its reference (kernel on CPU under TRITON_INTERPRET=1).

Kernel (in-kernel Philox) and reference (torch.randn) draw different noise: the deterministic part
is compared exactly (noise_scale=0) and the noise statistically.
"""

import importlib.util
import math

import pytest
import torch

from polyfold.core.errors import InputError
from polyfold.core.ops.sgld import sgld_step, sgld_step_reference, sgld_step_triton

needs_triton = pytest.mark.skipif(
    importlib.util.find_spec("triton") is None, reason="Triton is not installed"
)

# bf16 within a rounding step (the interpreter truncates fp32 -> bf16, the reference rounds).
TOL = {
    torch.float32: {"rtol": 1e-6, "atol": 1e-6},
    torch.bfloat16: {"rtol": 1.6e-2, "atol": 1.6e-2},
    torch.float64: {"rtol": 1e-6, "atol": 1e-7},  # step sizes reach the kernel as float32
}
N_NOISE = 40_000


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _operands(shape, dtype, seed=0):
    g = _gen(seed)
    return torch.randn(shape, generator=g).to(dtype), torch.randn(shape, generator=g).to(dtype)


def _assert_standard_normal(z: torch.Tensor) -> None:
    """Moments of N(0, 1) within about 4 standard errors for N_NOISE draws."""
    z = z.double().flatten()
    se = 1 / math.sqrt(z.numel())
    assert abs(z.mean().item()) < 4 * se
    assert abs(z.var().item() - 1) < 4 * math.sqrt(2) * se
    assert abs(z.pow(3).mean().item()) < 4 * math.sqrt(15) * se  # skewness 0
    assert abs(z.pow(4).mean().item() - 3) < 4 * math.sqrt(96) * se  # kurtosis 3
    assert abs((z.abs() < 1).double().mean().item() - 0.6827) < 0.01
    for lag in (1, 2, 3, 4, 1024):  # neighbours, within a Philox quad, across programs
        assert abs((z[lag:] * z[:-lag]).mean().item()) < 4 * se, lag


def test_reference_is_the_sgld_update():
    x, grad = _operands((4, 5), torch.float64)
    g1, g2 = _gen(3), _gen(3)
    out = sgld_step_reference(x.clone(), grad, 0.1, 0.5, g1)
    z = torch.randn(x.shape, generator=g2, dtype=torch.float64)
    torch.testing.assert_close(out, x - 0.1 * grad + 0.5 * z)
    torch.testing.assert_close(sgld_step(x.clone(), grad, 0.1, 0.5, _gen(3)), out)  # CPU: ref


def test_reference_noise_is_standard_normal():
    zeros = torch.zeros(N_NOISE)
    _assert_standard_normal(sgld_step_reference(zeros, zeros.clone(), 0.0, 1.0, _gen(1)))


@needs_triton
@pytest.mark.parametrize("shape", [(5,), (2, 3, 33), (3, 700)])  # 2100 > one 1024 block
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64])
@pytest.mark.parametrize("clamp", [None, (-0.5, 1.0)])
def test_kernel_deterministic_part_matches_reference(shape, dtype, clamp):
    x, grad = _operands(shape, dtype)
    expected = sgld_step_reference(x.clone(), grad, 0.3, 0.0, _gen(), clamp)
    out = sgld_step_triton(x, grad, 0.3, 0.0, _gen(), clamp)
    assert out is x
    torch.testing.assert_close(x, expected, **TOL[dtype])


@needs_triton
def test_kernel_noise_is_standard_normal_and_scaled():
    zeros = torch.zeros(N_NOISE)
    z = sgld_step_triton(zeros, zeros.clone(), 0.0, 2.5, _gen(1)) / 2.5
    _assert_standard_normal(z)


@needs_triton
def test_kernel_noise_follows_the_generator():
    zeros = torch.zeros(3000)
    g = _gen(7)
    first = sgld_step_triton(zeros.clone(), zeros, 0.0, 1.0, g)
    second = sgld_step_triton(zeros.clone(), zeros, 0.0, 1.0, g)
    again = sgld_step_triton(zeros.clone(), zeros, 0.0, 1.0, _gen(7))
    assert torch.equal(first, again)  # same seed, same noise
    assert (first - second).abs().min() > 0  # a fresh seed per step


@needs_triton
def test_kernel_clamps_and_updates_non_contiguous_x():
    x = torch.zeros(50, 40).t()  # non-contiguous
    out = sgld_step_triton(x, torch.zeros_like(x), 0.0, 3.0, _gen(2), clamp=(-1.0, 0.5))
    assert out is x
    assert x.min() == -1.0  # noise this large hits both walls
    assert x.max() == 0.5
    assert 0.1 < (x.abs() < 0.5).double().mean() < 0.9


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"step_size": -0.1}, "step_size must be"),
        ({"noise_scale": float("nan")}, "noise_scale must be"),
        ({"clamp": (1.0, -1.0)}, "clamp must be"),
        ({"clamp": (1.0,)}, "clamp must be"),
        ({"grad": torch.zeros(3)}, "grad must be a tensor of x's shape"),
        ({"generator": 0}, "generator must be a torch.Generator"),
        ({"x": torch.zeros(4, dtype=torch.int64)}, "x must be a floating-point"),
    ],
)
def test_bad_arguments_raise_input_error(kwargs, match):
    args = {
        "x": torch.zeros(4),
        "grad": torch.zeros(4),
        "step_size": 0.1,
        "noise_scale": 0.1,
        "generator": _gen(),
    }
    if "x" in kwargs:
        args["grad"] = torch.zeros(4, dtype=torch.int64)
    args.update(kwargs)
    with pytest.raises(InputError, match=match):
        sgld_step(**args)
