"""TabEBM's SGLD: the reference update written out by hand, and its argument checks."""

from __future__ import annotations

import pytest
import torch

from polyfold.core.errors import InputError
from polyfold.tabular.sgld import (
    TABEBM_SGLD_NOISE_STD,
    TABEBM_SGLD_STEP_SIZE,
    TABEBM_SGLD_STEPS,
    tabebm_sgld,
)

MU = torch.tensor([1.0, -1.0], dtype=torch.float64)
PRECISION = torch.linalg.inv(torch.tensor([[1.0, 0.8], [0.8, 1.0]], dtype=torch.float64))


def energy(x: torch.Tensor) -> torch.Tensor:
    d = x - MU
    return 0.5 * ((d @ PRECISION) * d).sum(1)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_tabebm_sgld_defaults_follow_the_reference_implementation():
    # x <- x - 0.1 * grad(mean_i E(x_i)) + 0.01 * z: per chain the step is 0.1 / B.
    assert (TABEBM_SGLD_STEP_SIZE, TABEBM_SGLD_NOISE_STD, TABEBM_SGLD_STEPS) == (0.1, 0.01, 200)
    x0 = 0.1 * torch.randn(8, 2, generator=gen(1), dtype=torch.float64)
    out = tabebm_sgld(x0, energy=energy, generator=gen(4), steps=3)
    x, g = x0.clone(), gen(4)
    for _ in range(3):
        xr = x.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(energy(xr).mean(), xr)
        x = x - 0.1 * grad + 0.01 * torch.randn(x.shape, generator=g, dtype=x.dtype)
    torch.testing.assert_close(out.samples, x)
    assert out.n_evals == 3


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"step_size": 0.0}, "tabebm_sgld: step_size must be"),
        ({"step_size": float("nan")}, "tabebm_sgld: step_size must be"),
        ({"x0": torch.zeros(0, 2)}, "x0 must hold"),
        ({"x0": torch.zeros(3, dtype=torch.int64)}, "x0 must be"),
        ({"steps": -1}, "steps must be"),
    ],
)
def test_bad_arguments_raise_input_error(kwargs, match):
    kwargs = {"x0": torch.zeros(4, 2), "energy": energy, "generator": gen(0), **kwargs}
    with pytest.raises(InputError, match=match):
        tabebm_sgld(kwargs.pop("x0"), **kwargs)


def test_on_step_reports_every_step_and_leaves_the_samples_unchanged():
    x0 = torch.zeros(16, 2, dtype=torch.float64)
    seen: list[int] = []
    plain = tabebm_sgld(x0, energy=energy, generator=gen(3), steps=7)
    watched = tabebm_sgld(x0, energy=energy, generator=gen(3), steps=7, on_step=seen.append)
    assert seen == list(range(1, 8))
    assert torch.equal(plain.samples, watched.samples)
    assert watched.n_evals == plain.n_evals == 7
