"""The fused multistep update against its reference (kernel on CPU under TRITON_INTERPRET=1)."""

import importlib.util

import pytest
import torch

from polyfold.core.errors import InputError
from polyfold.core.ops.multistep import (
    multistep_update,
    multistep_update_reference,
    multistep_update_triton,
)

needs_triton = pytest.mark.skipif(
    importlib.util.find_spec("triton") is None, reason="Triton is not installed"
)

COEFFS = [0.25, -1.5, 0.125, 2.0]
# bf16 results are compared within a rounding step: the interpreter truncates fp32 -> bf16 where
# the reference (and the GPU) rounds to nearest.
TOL = {
    torch.float32: {"rtol": 1e-6, "atol": 1e-6},
    torch.bfloat16: {"rtol": 1.6e-2, "atol": 1.6e-2},
    torch.float64: {"rtol": 1e-13, "atol": 1e-13},
}


def _operands(shape: tuple[int, ...], dtype: torch.dtype, n: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g).to(dtype)
    return x, [torch.randn(shape, generator=g).to(dtype) for _ in range(n)]


def test_reference_is_the_linear_combination():
    x, ds = _operands((4, 3), torch.float64, 3)
    expected = 0.9 * x + 0.25 * ds[0] - 1.5 * ds[1] + 0.125 * ds[2]
    out = multistep_update_reference(x, 0.9, COEFFS[:3], ds)
    assert out is x
    torch.testing.assert_close(x, expected, rtol=1e-14, atol=1e-14)


def test_dispatch_runs_the_reference_on_cpu():
    x, ds = _operands((5, 7), torch.float32, 2)
    expected = multistep_update_reference(x.clone(), 0.5, COEFFS[:2], ds)
    torch.testing.assert_close(multistep_update(x, 0.5, COEFFS[:2], ds), expected)


@needs_triton
@pytest.mark.parametrize("shape", [(7,), (3, 5, 33), (3, 700)])  # 3 * 700 > one 1024 block
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64])
@pytest.mark.parametrize("n_terms", [0, 1, 4])
def test_kernel_matches_reference(shape, dtype, n_terms):
    x, ds = _operands(shape, dtype, n_terms)
    expected = multistep_update_reference(x.clone(), 0.75, COEFFS[:n_terms], ds)
    out = multistep_update_triton(x, 0.75, COEFFS[:n_terms], ds)
    assert out is x
    torch.testing.assert_close(x, expected, **TOL[dtype])


@needs_triton
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_kernel_takes_tensor_coefficients(dtype):
    x, ds = _operands((2, 129), dtype, 3)
    a, coeffs = torch.tensor(0.5, dtype=torch.float64), [torch.tensor(-0.3), 1.25, torch.tensor(2)]
    expected = multistep_update_reference(x.clone(), a, coeffs, ds)
    multistep_update_triton(x, a, coeffs, ds)
    torch.testing.assert_close(x, expected, **TOL[dtype])


@needs_triton
def test_kernel_float64_keeps_coefficients_in_float64():
    # 1/3 rounded to float32 is off by 1e-8: the fp64 update must carry it in float64.
    x = torch.ones(10, dtype=torch.float64)
    multistep_update_triton(x, 1 / 3, [1 / 3], [torch.ones(10, dtype=torch.float64)])
    torch.testing.assert_close(x, torch.full((10,), 2 / 3, dtype=torch.float64), rtol=0, atol=1e-15)


@needs_triton
def test_kernel_updates_a_non_contiguous_x_in_place():
    x, ds = _operands((6, 40), torch.float32, 2)
    xt, dts = x.t(), [d.t() for d in ds]
    expected = multistep_update_reference(xt.clone(), -0.5, COEFFS[:2], dts)
    out = multistep_update_triton(xt, -0.5, COEFFS[:2], dts)
    assert out is xt
    torch.testing.assert_close(x.t(), expected)


@pytest.mark.parametrize(
    ("a", "coeffs", "terms", "match"),
    [
        (1.0, [1.0], [], "same length"),
        (1.0, [1.0] * 5, [torch.zeros(3)] * 5, "at most 4"),
        (1.0, [1.0], [torch.zeros(4)], r"terms\[0\]"),
        (torch.ones(2), [], [], "0-d tensor"),
        ("1", [], [], "must be a number"),
    ],
)
def test_bad_arguments_raise_input_error(a, coeffs, terms, match):
    with pytest.raises(InputError, match=match):
        multistep_update(torch.zeros(3), a, coeffs, terms)
