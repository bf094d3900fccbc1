"""The fused harmonic oscillator against its reference (kernel on CPU under TRITON_INTERPRET=1)."""

import importlib.util
import math

import pytest
import torch

from polyfold.core.errors import InputError
from polyfold.core.ops.oscillator import (
    harmonic_oscillator,
    harmonic_oscillator_reference,
    harmonic_oscillator_triton,
)

needs_triton = pytest.mark.skipif(
    importlib.util.find_spec("triton") is None, reason="Triton is not installed"
)
SR = 16000.0


def _controls(b=2, t=700, k=12, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    f0 = 100 + 2500 * torch.rand(b, t, generator=g, dtype=torch.float64)  # crosses Nyquist / k
    amps = torch.rand(b, t, k, generator=g, dtype=torch.float64)
    return f0.to(dtype), amps.to(dtype)


def test_reference_is_the_closed_form_sum_of_sines():
    f0 = torch.full((1, 400), 1000.0, dtype=torch.float64)
    amps = torch.tensor([1.0, 0.5, 0.25, 2.0, 3.0, 4.0, 5.0, 6.0, 9.0], dtype=torch.float64)
    out = harmonic_oscillator_reference(f0, amps.expand(1, 400, 9), SR)
    n = torch.arange(1, 401, dtype=torch.float64)  # the phase includes the first sample's f0
    expected = sum(
        a * torch.sin(2 * math.pi * (k + 1) * 1000 * n / SR)
        for k, a in enumerate(amps[:7].tolist())  # harmonics 8 and 9 sit at/above 8 kHz
    )
    torch.testing.assert_close(out[0], expected)


@needs_triton
def test_kernel_equals_reference():
    f0, amps = _controls()
    ref = harmonic_oscillator_reference(f0.double(), amps.double(), SR)
    ker = harmonic_oscillator_triton(f0, amps, SR)
    # float32 in-block phase scan: within a few 1e-3 of the float64 reference (sum of 12 sines)
    torch.testing.assert_close(ker.double(), ref, rtol=0, atol=5e-3)


@needs_triton
def test_kernel_gradients_equal_reference():
    f0, amps = _controls(t=300, k=6, seed=1)
    grad = torch.randn(2, 300, generator=torch.Generator().manual_seed(2))
    f64, a64 = f0.double().requires_grad_(), amps.double().requires_grad_()
    ref = torch.autograd.grad(
        harmonic_oscillator_reference(f64, a64, SR), (f64, a64), grad.double()
    )
    f32, a32 = f0.clone().requires_grad_(), amps.clone().requires_grad_()
    ker = torch.autograd.grad(harmonic_oscillator_triton(f32, a32, SR), (f32, a32), grad)
    for r, k in zip(ref, ker, strict=True):
        torch.testing.assert_close(k.double(), r, rtol=0, atol=2e-3 * r.abs().max().item())


def test_dispatch_runs_the_reference_on_cpu():
    f0, amps = _controls(t=50, k=4)
    torch.testing.assert_close(
        harmonic_oscillator(f0, amps, SR), harmonic_oscillator_reference(f0, amps, SR)
    )


def test_bad_input_is_named():
    f0, amps = _controls(t=10, k=3)
    with pytest.raises(InputError, match="amplitudes must be a tensor"):
        harmonic_oscillator(f0, amps[:, :5], SR)
    with pytest.raises(InputError, match="f0 must be"):
        harmonic_oscillator(f0[0], amps, SR)
    with pytest.raises(InputError, match="sample_rate"):
        harmonic_oscillator(f0, amps, -1.0)
