"""Blended local grids on a volume: the reference against closed forms and a dense evaluation,
and the fused kernel (on CPU under TRITON_INTERPRET=1) against the reference."""

import importlib.util

import pytest
import torch

from polyfold.core.errors import InputError
from polyfold.core.ops import (
    grid_blend_volume,
    grid_blend_volume_reference,
    grid_blend_volume_triton,
    local_grid_blend,
)

needs_triton = pytest.mark.skipif(
    importlib.util.find_spec("triton") is None, reason="Triton is not installed"
)
BOUND = 0.5


def _voxels(res, dtype=torch.float64):
    g = torch.linspace(-BOUND, BOUND, res, dtype=dtype)
    return torch.stack(torch.meshgrid(g, g, g, indexing="ij"), -1).reshape(-1, 3)


def _cubes(n=6, k=5, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    centres = (torch.rand(n, 3, generator=g, dtype=dtype) - 0.5) * 0.6
    scales = 0.08 + 0.15 * torch.rand(n, generator=g, dtype=dtype)
    values = torch.randn(n, k, k, k, generator=g, dtype=dtype)
    return centres, scales, values


def test_a_linear_field_is_reproduced_wherever_a_cube_covers():
    # Trilinear interpolation is exact for a linear function, and the blend is a weighted mean,
    # so cubes sampling f(x) = a.x + b give back f at every covered voxel.
    centres, scales, _ = _cubes(n=5, k=4)
    a, b = torch.tensor([0.3, -1.2, 0.7], dtype=torch.float64), 0.25
    t = torch.linspace(-1, 1, 4, dtype=torch.float64)
    nodes = torch.stack(torch.meshgrid(t, t, t, indexing="ij"), -1)  # (k, k, k, 3)
    values = (centres[:, None, None, None] + scales[:, None, None, None, None] * nodes) @ a + b
    num, den = grid_blend_volume_reference(centres, scales, values, 21, BOUND)
    x = _voxels(21)
    cov = den > 0
    assert 0 < cov.sum() < len(x)
    torch.testing.assert_close(num[cov] / den[cov], x[cov] @ a + b)
    assert (num[~cov] == 0).all()


def test_reference_equals_the_dense_every_pair_sum():
    centres, scales, values = _cubes()
    res = 17
    num, den = grid_blend_volume_reference(centres, scales, values, res, BOUND)
    x = _voxels(res)
    q, n = len(x), len(centres)
    w, v = local_grid_blend(
        centres, scales, values, x.repeat_interleave(n, 0), torch.arange(n).repeat(q)
    )
    torch.testing.assert_close(den, w.reshape(q, n).sum(-1))
    torch.testing.assert_close(num, (w * v).reshape(q, n).sum(-1))


def test_reference_is_differentiable_in_the_values():
    centres, scales, values = _cubes(n=3)
    values.requires_grad_(True)
    num, _ = grid_blend_volume(centres, scales, values, 9, BOUND)
    num.sum().backward()
    assert values.grad is not None
    assert values.grad.abs().sum() > 0


@needs_triton
@pytest.mark.parametrize("k", [2, 5, 7])
def test_kernel_equals_reference(k):
    centres, scales, values = _cubes(n=9, k=k, seed=k, dtype=torch.float32)
    ref = grid_blend_volume_reference(centres, scales, values, 19, BOUND)
    ker = grid_blend_volume_triton(centres, scales, values, 19, BOUND)
    for a, b in zip(ker, ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


@needs_triton
def test_kernel_handles_no_cubes_and_cubes_outside_the_volume():
    centres = torch.tensor([[2.0, 2.0, 2.0], [0.0, 0.0, 0.0]])
    scales = torch.tensor([0.1, 0.2])
    values = torch.ones(2, 3, 3, 3)
    num, den = grid_blend_volume_triton(centres[:0], scales[:0], values[:0], 8, BOUND)
    assert num.shape == (512,)
    assert not num.any()
    assert not den.any()
    ref = grid_blend_volume_reference(centres, scales, values, 8, BOUND)
    ker = grid_blend_volume_triton(centres, scales, values, 8, BOUND)
    for a, b in zip(ker, ref, strict=True):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((torch.zeros(2, 2), torch.ones(2), torch.zeros(2, 3, 3, 3), 8, 0.5), "centres"),
        ((torch.zeros(2, 3), torch.ones(3), torch.zeros(2, 3, 3, 3), 8, 0.5), "scales"),
        ((torch.zeros(2, 3), torch.ones(2), torch.zeros(2, 3, 3, 4), 8, 0.5), "values"),
        ((torch.zeros(2, 3), torch.ones(2), torch.zeros(2, 3, 3, 3), 1, 0.5), "res"),
        ((torch.zeros(2, 3), torch.ones(2), torch.zeros(2, 3, 3, 3), 8, float("nan")), "bound"),
    ],
)
def test_bad_input_is_named(args, match):
    with pytest.raises(InputError, match=match):
        grid_blend_volume(*args)
