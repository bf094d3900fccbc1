"""adaLN modulation and the gated residual: kernels (forward and backward) against the references.

The kernels run on the CPU under TRITON_INTERPRET=1; gradients are compared with autograd
through the references.
"""

import importlib.util

import pytest
import torch

from polyfold.core.errors import InputError
from polyfold.core.ops import adaln
from polyfold.core.ops.adaln import (
    adaln_modulate,
    adaln_modulate_reference,
    adaln_modulate_triton,
    gated_residual,
    gated_residual_reference,
    gated_residual_triton,
)

needs_triton = pytest.mark.skipif(
    importlib.util.find_spec("triton") is None, reason="Triton is not installed"
)

# (B, L, D): non-powers of two, a single row, and L=40 spanning several backward chunks.
SHAPES = [(2, 3, 96), (3, 5, 200), (2, 1, 33), (2, 40, 96)]
# bf16 outputs are compared within about one rounding step (the interpreter truncates
# fp32 -> bf16 where the reference rounds to nearest); reductions over L add a little more.
TOL = {
    torch.float32: {"rtol": 1e-5, "atol": 1e-5},
    torch.bfloat16: {"rtol": 2e-2, "atol": 2e-2},
    torch.float64: {"rtol": 1e-12, "atol": 1e-12},
}


def _randn(g: torch.Generator, *shape: int, dtype: torch.dtype, scale: float = 1.0, shift=0.0):
    return (torch.randn(shape, generator=g, dtype=torch.float64) * scale + shift).to(dtype)


def _run(fn, inputs, grad_out):
    """fn's output and the gradients of <output, grad_out> w.r.t. each input."""
    leaves = [t.clone().requires_grad_(True) for t in inputs]
    out = fn(*leaves)
    out.backward(grad_out)
    return out.detach(), [t.grad for t in leaves]


def _assert_same(kernel, reference, inputs, dtype, seed):
    g = torch.Generator().manual_seed(seed)
    out_ref = reference(*inputs)
    grad_out = _randn(g, *out_ref.shape, dtype=out_ref.dtype)
    out, grads = _run(kernel, inputs, grad_out)
    out_ref, grads_ref = _run(reference, inputs, grad_out)
    assert out.dtype == out_ref.dtype
    torch.testing.assert_close(out, out_ref, **TOL[dtype])
    for got, want in zip(grads, grads_ref, strict=True):
        assert got.dtype == want.dtype
        torch.testing.assert_close(got, want, **TOL[dtype])


def _adaln_inputs(shape, dtype, seed=0):
    b, length, d = shape
    g = torch.Generator().manual_seed(seed)
    x = _randn(g, b, length, d, dtype=dtype, scale=2.0, shift=0.5)  # not already normalised
    return x, _randn(g, b, d, dtype=dtype), _randn(g, b, d, dtype=dtype, scale=0.5)


def _gated_inputs(shape, dtype, seed=0):
    b, length, d = shape
    g = torch.Generator().manual_seed(seed)
    return (
        _randn(g, b, length, d, dtype=dtype),
        _randn(g, b, d, dtype=dtype),
        _randn(g, b, length, d, dtype=dtype),
    )


def test_adaln_reference_is_dit_modulation():
    x, shift, scale = _adaln_inputs((2, 4, 10), torch.float64)
    ln = torch.nn.LayerNorm(10, elementwise_affine=False, eps=1e-6, dtype=torch.float64)
    expected = ln(x) * (1 + scale[:, None]) + shift[:, None]
    torch.testing.assert_close(adaln_modulate_reference(x, shift, scale), expected)
    torch.testing.assert_close(adaln_modulate(x, shift, scale), expected)  # CPU: the reference


def test_gated_reference_is_residual_plus_gate_times_f():
    res, gate, f = _gated_inputs((2, 4, 10), torch.float64)
    expected = res + gate[:, None] * f
    torch.testing.assert_close(gated_residual_reference(res, gate, f), expected)
    torch.testing.assert_close(gated_residual(res, gate, f), expected)


@needs_triton
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_adaln_kernels_match_reference(shape, dtype):
    _assert_same(
        adaln_modulate_triton, adaln_modulate_reference, _adaln_inputs(shape, dtype), dtype, 1
    )


@needs_triton
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_gated_kernels_match_reference(shape, dtype):
    _assert_same(
        gated_residual_triton, gated_residual_reference, _gated_inputs(shape, dtype), dtype, 2
    )


@needs_triton
@pytest.mark.parametrize("target_programs", [2, 4])
def test_backward_loops_over_long_chunks(monkeypatch, target_programs):
    # Few programs: each backward program loops over several row tiles (and, with 4, the last
    # chunk is partial), as on a GPU with long sequences.
    monkeypatch.setattr(adaln, "_TARGET_PROGRAMS", target_programs)
    shape, dtype = (2, 40, 96), torch.float32
    _assert_same(
        adaln_modulate_triton, adaln_modulate_reference, _adaln_inputs(shape, dtype), dtype, 6
    )
    _assert_same(
        gated_residual_triton, gated_residual_reference, _gated_inputs(shape, dtype), dtype, 7
    )


@needs_triton
def test_kernels_in_float64():
    _assert_same(
        adaln_modulate_triton,
        adaln_modulate_reference,
        _adaln_inputs((2, 7, 50), torch.float64),
        torch.float64,
        3,
    )
    _assert_same(
        gated_residual_triton,
        gated_residual_reference,
        _gated_inputs((2, 7, 50), torch.float64),
        torch.float64,
        4,
    )


@needs_triton
def test_adaln_kernel_mixed_dtypes_promote_and_keep_gradient_dtypes():
    # fp32 residual stream, bf16 modulation (as from a linear layer under autocast).
    x, shift, scale = _adaln_inputs((2, 6, 72), torch.float32)
    shift, scale = shift.bfloat16(), scale.bfloat16()
    _assert_same(
        adaln_modulate_triton, adaln_modulate_reference, (x, shift, scale), torch.float32, 5
    )


@needs_triton
def test_adaln_kernel_takes_non_contiguous_inputs_and_eps():
    x, shift, scale = _adaln_inputs((2, 5, 48), torch.float32)
    xt = x.transpose(0, 1).contiguous().transpose(0, 1)  # same values, other strides
    assert not xt.is_contiguous()
    got = adaln_modulate_triton(xt, shift, scale, eps=0.1)
    torch.testing.assert_close(got, adaln_modulate_reference(x, shift, scale, eps=0.1))


def _zeros(*shape: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.zeros(shape, dtype=dtype)


@pytest.mark.parametrize(
    ("x", "shift", "scale", "eps", "match"),
    [
        (_zeros(2, 8), _zeros(2, 8), _zeros(2, 8), 1e-6, r"x must be .*\(B, L, D\)"),
        (_zeros(2, 3, 8), _zeros(2, 7), _zeros(2, 8), 1e-6, r"shift must be .*\(2, 8\)"),
        (_zeros(2, 3, 8), _zeros(2, 8), _zeros(3, 8), 1e-6, "scale must be"),
        (_zeros(2, 3, 8, dtype=torch.int64), _zeros(2, 8), _zeros(2, 8), 1e-6, "x must"),
        (_zeros(2, 3, 8), _zeros(2, 8), _zeros(2, 8), 0.0, "eps must be a positive"),
    ],
)
def test_adaln_bad_arguments_raise_input_error(x, shift, scale, eps, match):
    for fn in (adaln_modulate, adaln_modulate_reference, adaln_modulate_triton):
        with pytest.raises(InputError, match=match):
            fn(x, shift, scale, eps=eps)


def test_gated_bad_arguments_raise_input_error():
    res, gate = torch.zeros(2, 3, 8), torch.zeros(2, 8)
    with pytest.raises(InputError, match="f must be"):
        gated_residual(res, gate, torch.zeros(2, 3, 9))
    with pytest.raises(InputError, match=r"gate must be .*\(2, 8\)"):
        gated_residual(res, torch.zeros(2, 3, 8), torch.zeros(2, 3, 8))
