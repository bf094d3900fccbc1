"""DC-Solver: ratios of one are plain UniPC; fitted ratios move UniPC towards the reference."""

from __future__ import annotations

import pytest
import torch

from polyfold.core import samplers as S
from polyfold.core.denoiser import as_denoiser
from polyfold.core.errors import InputError
from polyfold.core.paths import VPLinear
from polyfold.core.samplers.compensation import RatioRegression, _reference, fit_ratios
from polyfold.core.testing import GaussianMixture

F64 = torch.float64
PATH = VPLinear()
MIX = GaussianMixture(
    [[-2.0, 0.0, 1.0], [2.0, 0.5, -1.0], [0.0, -2.0, 0.0]],
    stds=[0.3, 0.5, 0.4],
    weights=[0.3, 0.4, 0.3],
)
DEN = as_denoiser(MIX.model(PATH, "eps"), PATH, prediction="eps")


def _noise(n: int, seed: int) -> torch.Tensor:
    return torch.randn(n, 3, generator=torch.Generator().manual_seed(seed), dtype=F64)


def _rms(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).pow(2).mean().sqrt())


def test_ratios_of_one_reproduce_unipc_exactly() -> None:
    x = _noise(64, 0)
    grid = S.uniform_t_grid(PATH, 6, t_end=1e-3)
    for kw in ({}, {"order": 3}, {"variant": "bh1", "prediction": "eps"}):
        plain = S.unipc(DEN, PATH, x, grid, **kw)
        ones = S.unipc(DEN, PATH, x, grid, ratios=[1.0] * 6, **kw)
        assert torch.equal(plain.x, ones.x)
        assert plain.nfe == ones.nfe


def test_fitted_ratios_reduce_the_error_on_held_out_noise() -> None:
    grid = S.uniform_t_grid(PATH, 6, append_zero=True)
    ratios = fit_ratios(DEN, PATH, _noise(10, 1), grid)
    assert len(ratios) == 6
    assert ratios[0] == 1.0
    assert any(r != 1.0 for r in ratios)
    x = _noise(256, 2)
    ref = _reference(DEN, PATH, x, S.check_grid(grid, PATH), 32)[-1]
    plain = S.unipc(DEN, PATH, x, grid).x
    dc = S.unipc(DEN, PATH, x, grid, ratios=ratios).x
    assert _rms(dc, ref) < 0.8 * _rms(plain, ref)


def test_regression_interpolates_an_unseen_nfe() -> None:
    def curve(n: int, cfg: float) -> list[float]:
        return [1.0 + (0.3 / n + 0.05 * cfg) * (i / (n - 1)) ** 2 for i in range(n)]

    table = {(n, c): curve(n, c) for n in (4, 6, 8, 10) for c in (0.0, 1.0)}
    reg = RatioRegression.fit(table, degree=2)
    assert reg.features == ("1", "1/n", "1/n^2", "cfg")
    for n, c in ((5, 0.0), (7, 1.0), (9, 0.5)):
        assert reg.predict(n, c) == pytest.approx(curve(n, c), abs=1e-9)


def test_bad_input() -> None:
    x = _noise(4, 0)
    grid = S.uniform_t_grid(PATH, 4, t_end=1e-3)
    with pytest.raises(InputError, match="ratios: expected 4 numbers"):
        S.unipc(DEN, PATH, x, grid, ratios=[1.0] * 3)
    with pytest.raises(InputError, match="finite"):
        S.unipc(DEN, PATH, x, grid, ratios=[1.0, float("nan"), 1.0, 1.0])
    with pytest.raises(InputError, match="ratios: fit_ratios"):
        fit_ratios(DEN, PATH, x, grid, ratios=[1.0] * 4)
    with pytest.raises(InputError, match="table"):
        RatioRegression.fit({(4, 0.0): [1.0, 1.0]})


@pytest.mark.parametrize("sampler", ["dpm_solver_pp", "dpm_solver"])
def test_plug_in_for_predictor_only_samplers(sampler: str) -> None:
    """Ratios of one reproduce multistep DPM-Solver(++) exactly; fitted ones lower its error."""
    fn = S.get_sampler(sampler)
    grid = S.uniform_t_grid(PATH, 6, append_zero=True)
    kw = {"method": "multistep", "order": 2}
    x = _noise(256, 2)
    plain = fn(DEN, PATH, x, grid, **kw).x
    assert torch.equal(fn(DEN, PATH, x, grid, ratios=[1.0] * 6, **kw).x, plain)
    ratios = fit_ratios(DEN, PATH, _noise(10, 1), grid, sampler=sampler, order=2)
    assert any(r != 1.0 for r in ratios)
    ref = _reference(DEN, PATH, x, S.check_grid(grid, PATH), 32)[-1]
    dc = fn(DEN, PATH, x, grid, ratios=ratios, **kw).x
    assert _rms(dc, ref) < _rms(plain, ref)
    with pytest.raises(InputError, match="multistep"):
        S.dpm_solver_pp(DEN, PATH, x, grid, method="singlestep", ratios=ratios)
    with pytest.raises(InputError, match="compensable"):
        fit_ratios(DEN, PATH, x, grid, sampler="ddim")
