"""Noise search with verifiers: budget of one sample is the plain sampler, more budget helps."""

from __future__ import annotations

import math

import pytest
import torch

from polyfold.core.denoiser import as_denoiser
from polyfold.core.errors import InputError
from polyfold.core.paths import VPLinear
from polyfold.core.samplers import get_sampler, uniform_t_grid, zero_time
from polyfold.core.steering import path_search, random_search, zero_order_search
from polyfold.core.testing import GaussianMixture

F64 = torch.float64
PATH = VPLinear()
GMM = GaussianMixture([[-2.0, 0.0], [2.0, 0.0]], stds=0.5, weights=[0.7, 0.3])
GRID = torch.cat([uniform_t_grid(PATH, 12), torch.tensor([zero_time(PATH)], dtype=F64)])
K = len(GRID) - 1
METHODS = [random_search, zero_order_search, path_search]


def den():
    return as_denoiser(GMM.model(PATH), PATH, prediction="eps")


def verifier(x: torch.Tensor) -> torch.Tensor:
    return -((x - torch.tensor([1.0, 0.5])) ** 2).sum(1)


def start(n: int = 6) -> torch.Tensor:
    return torch.randn(n, 2, generator=torch.Generator().manual_seed(3))


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("sampler", ["ddim", "ddpm"])
def test_budget_of_one_sample_is_the_plain_sampler_bit_for_bit(method, sampler: str) -> None:
    plain = get_sampler(sampler)(
        den(), PATH, start(), GRID, generator=torch.Generator().manual_seed(5)
    ).x
    res = method(
        den(),
        PATH,
        start(),
        GRID,
        verifier,
        budget=K,
        sampler=sampler,
        generator=torch.Generator().manual_seed(5),
    )
    assert torch.equal(res.x, plain)
    assert res.calls == K
    assert res.candidates == 1


@pytest.mark.parametrize("method", METHODS)
def test_more_budget_finds_better_samples_within_the_budget(method) -> None:
    plain = get_sampler("ddim")(den(), PATH, start(), GRID).x
    res = method(
        den(),
        PATH,
        start(),
        GRID,
        verifier,
        budget=16 * K,
        generator=torch.Generator().manual_seed(0),
    )
    assert res.calls <= 16 * K
    assert res.candidates > 1
    assert torch.allclose(res.reward, verifier(res.x).double())
    assert float(res.reward.mean()) > float(verifier(plain).mean()) + 0.5
    if method is not path_search:  # the plain sample is a candidate: never worse
        assert bool((res.reward >= verifier(plain).double() - 1e-9).all())


def test_dict_states_and_masks() -> None:
    model = GMM.model(PATH)

    def net(x, t, c):
        return {"a": model(x["a"], t), "b": torch.zeros_like(x["b"])}

    d = as_denoiser(net, PATH, prediction="eps")
    x = {"a": start(4), "b": torch.randn(4, 3)}
    mask = {"a": None, "b": torch.tensor([True, True, False]).expand(4, 3)}
    res = random_search(
        d,
        PATH,
        x,
        GRID,
        lambda s: verifier(s["a"]),
        budget=4 * K,
        mask=mask,
        generator=torch.Generator().manual_seed(0),
    )
    assert torch.equal(res.x["b"][:, 2], x["b"][:, 2])  # padding untouched
    assert res.candidates == 4


def test_bad_input() -> None:
    with pytest.raises(InputError, match="budget: expected an integer number of network calls"):
        random_search(den(), PATH, start(), GRID, verifier, budget=0)
    with pytest.raises(InputError, match="budget: expected at least the 13 network calls"):
        random_search(den(), PATH, start(), GRID, verifier, budget=5)
    with pytest.raises(InputError, match=r"verifier: returned nan at the pivot"):
        zero_order_search(
            den(), PATH, start(), GRID, lambda x: torch.full((x.shape[0],), math.nan), budget=2 * K
        )
    with pytest.raises(InputError, match="verifier: expected a callable"):
        path_search(den(), PATH, start(), GRID, "qed", budget=K)
