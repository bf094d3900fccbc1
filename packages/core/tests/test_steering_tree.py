"""Diffusion tree sampling / search on an exact 1-D mixture."""

from __future__ import annotations

import math

import pytest
import torch

from polyfold.core.denoiser import as_denoiser
from polyfold.core.errors import InputError
from polyfold.core.paths import VPLinear
from polyfold.core.samplers import get_sampler, uniform_t_grid, zero_time
from polyfold.core.steering import DiffusionTree, dts, dts_star
from polyfold.core.testing import GaussianMixture

F64 = torch.float64
PATH = VPLinear()
GMM = GaussianMixture([[-2.0], [2.0]], stds=0.5, weights=[0.7, 0.3])
GRID = torch.cat([uniform_t_grid(PATH, 8), torch.tensor([zero_time(PATH)], dtype=F64)])


def den():
    return as_denoiser(GMM.model(PATH), PATH, prediction="eps")


def test_constant_reward_samples_the_base_chain() -> None:
    gen = torch.Generator().manual_seed(0)
    x, tree = dts(
        den(),
        PATH,
        torch.zeros(1, 1),
        GRID,
        lambda x: torch.zeros(x.shape[0]),
        budget=3000,
        n=1500,
        generator=gen,
    )
    assert tree.calls <= 3000
    assert len(tree.leaves) >= 3000 // 9
    base = get_sampler("ddpm")(
        den(), PATH, torch.randn(4000, 1, generator=gen), GRID, generator=gen
    ).x
    # tree draws are correlated (shared prefixes): loose but discriminating bounds
    assert float((x > 0).double().mean()) == pytest.approx(
        float((base > 0).double().mean()), abs=0.1
    )
    assert float(x.mean()) == pytest.approx(float(base.mean()), abs=0.3)
    assert float(x.std()) == pytest.approx(float(base.std()), rel=0.15)


@pytest.mark.parametrize(("sharpness", "lo", "hi"), [(0.0, 0.9, 1.0), (1.0, 0.5, 1.0)])
def test_tilted_reward_moves_mass_to_the_favoured_mode_anytime(
    sharpness: float, lo: float, hi: float
) -> None:
    gen = torch.Generator().manual_seed(1)
    tree = DiffusionTree(
        den(),
        PATH,
        torch.zeros(1, 1),
        GRID,
        lambda x: 1.0 * x[:, 0],
        generator=gen,
        sharpness=sharpness,
    )
    tree.grow(900)
    calls, leaves = tree.calls, len(tree.leaves)
    tree.grow(2700)  # anytime: the same tree keeps growing
    assert calls <= 900 < tree.calls <= 3600
    assert len(tree.leaves) > leaves
    # exact tilted mode weight: 0.3 e^2 / (0.3 e^2 + 0.7 e^-2) = 0.959 (base: 0.3); growing
    # by the values (sharpness 1) biases the tree's estimates low at finite budgets
    assert lo < float((tree.sample(2000) > 0).double().mean()) <= hi


def test_dts_star_finds_high_reward_leaves() -> None:
    gen = torch.Generator().manual_seed(2)
    best, r, tree = dts_star(
        den(),
        PATH,
        torch.zeros(1, 1),
        GRID,
        lambda x: -((x[:, 0] - 1.0) ** 2),
        budget=1500,
        n=3,
        generator=gen,
    )
    assert r.shape == (3,)
    assert bool((r[:-1] >= r[1:]).all())
    assert float(r[0]) > -0.01  # a leaf within 0.1 of x = 1, between the modes
    assert torch.allclose(-((best[:, 0] - 1.0) ** 2).double(), r)
    mean_leaf = sum(tree.rewards.values()) / len(tree.rewards)
    assert mean_leaf < float(r[0])


def test_bad_input() -> None:
    with pytest.raises(InputError, match="budget: expected an integer"):
        dts(den(), PATH, torch.zeros(1, 1), GRID, lambda x: x[:, 0], budget=0, n=1)
    with pytest.raises(InputError, match=r"reward: returned nan at the leaves"):
        dts(
            den(),
            PATH,
            torch.zeros(1, 1),
            GRID,
            lambda x: torch.full((x.shape[0],), math.nan),
            budget=50,
            n=1,
        )
    with pytest.raises(InputError, match="x: expected one example"):
        DiffusionTree(den(), PATH, torch.zeros(2, 1), GRID, lambda x: x[:, 0])
    with pytest.raises(InputError, match="no leaves yet"):
        DiffusionTree(den(), PATH, torch.zeros(1, 1), GRID, lambda x: x[:, 0]).sample(3)
