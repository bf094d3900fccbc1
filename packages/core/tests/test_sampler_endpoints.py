"""Samplers never hand NaN to a user: every Gaussian sampler, on every path, on grids that end
at the data point, with every prediction type, returns a finite sample; and a state that turns
non-finite is reported (sampler, step, path) instead of returned."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from torch import Tensor

from polyfold.core.denoiser import Denoised, as_denoiser
from polyfold.core.errors import InputError, NonFiniteError
from polyfold.core.paths import (
    EDM,
    VE,
    GaussianPath,
    LinearInterpolant,
    TrigInterpolant,
    VPCosine,
    VPLinear,
)
from polyfold.core.samplers import (
    available_samplers,
    get_sampler,
    karras_grid,
    log_snr_grid,
    uniform_t_grid,
)
from polyfold.core.testing import GaussianMixture

GMM = GaussianMixture([[-1.0, 0.0], [1.0, 0.5]], stds=0.3)
SAMPLERS = available_samplers("gaussian")
# paths whose data point lies beyond t_min (grids append it); interpolants (t_min is the data point)
APPENDED = {"edm": EDM(), "ve": VE(), "vp_linear": VPLinear(), "vp_cosine": VPCosine()}
ENDING = {"linear": LinearInterpolant(), "trig": TrigInterpolant()}
PREDICTIONS = ["eps", "x0", "v", "velocity", "score"]
# an interpolant starts at alpha = 0, where eps and score predictions carry no x0: not usable there
INTERPOLANT_PREDICTIONS = ["x0", "v", "velocity"]


def _grids(path: GaussianPath) -> dict[str, Tensor]:
    append = not isinstance(path, LinearInterpolant | TrigInterpolant)
    out = {"uniform": uniform_t_grid(path, 5, append_zero=append)}
    if not isinstance(path, LinearInterpolant | TrigInterpolant):
        out["karras"] = karras_grid(path, 5, append_zero=True)
        out["log_snr"] = log_snr_grid(path, 5, append_zero=True)
    return out


def _cases() -> list[Any]:
    cases = []
    for pname, path in {**APPENDED, **ENDING}.items():
        for gname in _grids(path):
            for name in SAMPLERS:
                cases.append(pytest.param(name, pname, gname, id=f"{name}-{pname}-{gname}"))
    return cases


@pytest.mark.parametrize(("name", "pname", "gname"), _cases())
def test_every_sampler_is_finite_at_the_data_point(name: str, pname: str, gname: str) -> None:
    path = {**APPENDED, **ENDING}[pname]
    grid = _grids(path)[gname]
    sampler = get_sampler(name, "gaussian")
    x = path.prior_sample((32, 2), generator=torch.Generator().manual_seed(0)).double()
    for pred in INTERPOLANT_PREDICTIONS if pname in ENDING else PREDICTIONS:
        den = as_denoiser(GMM.model(path, pred), path, prediction=pred)  # type: ignore[arg-type]
        try:
            res = sampler(den, path, x, grid, generator=torch.Generator().manual_seed(1))
        except InputError:
            continue  # a refused combination (e.g. a method that needs another path) is fine
        assert torch.isfinite(res.x).all(), (name, pname, gname, pred)


@pytest.mark.parametrize("name", ["heun", "rk4"])
@pytest.mark.parametrize("grid_fn", [karras_grid, uniform_t_grid])
def test_heun_rk4_on_edm_with_a_data_model_end_at_the_denoised_sample(name: str, grid_fn: Any):
    # the reported case: x0 model, EDM, grid to sigma = 0: the full last step would need the
    # noise prediction at sigma = 0 (0 x inf), so it falls back to x = x0 (its call counted)
    path = EDM()
    grid = grid_fn(path, 8, append_zero=True)
    den = as_denoiser(GMM.model(path, "x0"), path, prediction="x0")  # type: ignore[arg-type]
    x = path.prior_sample((2048, 2), generator=torch.Generator().manual_seed(0)).double()
    x0s: list[Tensor] = []
    res = get_sampler(name, "gaussian")(
        den, path, x, grid, callback=lambda i, t, s, x0: x0s.append(x0)
    )
    assert torch.equal(res.x, x0s[-1])
    stages = {"heun": 2, "rk4": 4}[name]
    assert res.nfe == stages * 8
    # and the sample is the mixture's: the mean matches to Monte Carlo error
    assert torch.allclose(res.x.mean(0), GMM.moments()[0].reshape(-1), atol=0.15)


def _poisoned(after_calls: int):
    """An eps denoiser that returns NaN from its ``after_calls``-th call on."""
    path = VPCosine()
    model = GMM.model(path, "eps")
    calls = {"n": 0}

    def den(x: Tensor, t: Tensor) -> Denoised:
        calls["n"] += 1
        eps = model(x, t)
        if calls["n"] > after_calls:
            eps = torch.full_like(eps, math.nan)
        return Denoised((x - path.sigma(t)[:, None] * eps) / path.alpha(t)[:, None], eps)

    return den, path


@pytest.mark.parametrize("name", SAMPLERS)
def test_a_non_finite_state_is_reported_not_returned(name: str) -> None:
    den, path = _poisoned(after_calls=2)
    grid = uniform_t_grid(path, 6, t_start=0.99, t_end=1e-3)
    x = torch.randn(8, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    with pytest.raises(NonFiniteError, match=rf"{name} on VPCosine\(.*\): the state holds NaN"):
        get_sampler(name, "gaussian")(den, path, x, grid, generator=torch.Generator())


def test_the_error_names_the_first_bad_step() -> None:
    den, path = _poisoned(after_calls=3)  # ddim: one call per step, steps 1-3 fine
    grid = uniform_t_grid(path, 6, t_start=0.99, t_end=1e-3)
    x = torch.randn(8, 2, dtype=torch.float64)
    with pytest.raises(NonFiniteError, match=r"from step 4 of 6 \(t = "):
        get_sampler("ddim", "gaussian")(den, path, x, grid)


def test_a_non_finite_start_is_named_as_such() -> None:
    path = VPCosine()
    den = as_denoiser(GMM.model(path, "eps"), path, prediction="eps")  # type: ignore[arg-type]
    x = torch.randn(4, 2, dtype=torch.float64)
    x[1, 0] = math.inf
    with pytest.raises(NonFiniteError, match="starting state x holds NaN"):
        get_sampler("euler", "gaussian")(den, path, x, uniform_t_grid(path, 3, t_end=1e-3))


def test_dict_states_are_checked_on_every_key() -> None:
    path = VPCosine()
    model = GMM.model(path, "eps")

    def den(x: dict[str, Tensor], t: Tensor) -> Denoised:
        eps = {"a": model(x["a"], t), "b": torch.full_like(x["b"], math.nan)}
        a, s = path.alpha(t)[:, None], path.sigma(t)[:, None]
        return Denoised({k: (x[k] - s * eps[k]) / a for k in x}, eps)

    x = {"a": torch.randn(4, 2, dtype=torch.float64), "b": torch.randn(4, 2, dtype=torch.float64)}
    with pytest.raises(NonFiniteError, match="from step 1 of 3"):
        get_sampler("ddim", "gaussian")(den, path, x, uniform_t_grid(path, 3, t_end=1e-3))


@pytest.mark.parametrize("name", ["euler_maruyama", "predictor_corrector", "reverse_diffusion"])
def test_sde_samplers_refuse_a_grid_through_a_singular_sde(name: str) -> None:
    # an interpolant starts at alpha = 0, where its SDE drift d_alpha/alpha is infinite
    path = LinearInterpolant()
    den = as_denoiser(GMM.model(path, "x0"), path, prediction="x0")  # type: ignore[arg-type]
    x = torch.randn(4, 2, dtype=torch.float64)
    with pytest.raises(InputError, match=rf"{name}: the forward SDE of LinearInterpolant\(\) is"):
        get_sampler(name, "gaussian")(den, path, x, uniform_t_grid(path, 3))


def test_a_velocity_flow_keeps_its_full_last_step() -> None:
    # an interpolant's velocity model gives the slope at the data point: rk4 takes a full step
    path = LinearInterpolant()
    den = as_denoiser(GMM.model(path, "velocity"), path, prediction="velocity")  # type: ignore[arg-type]
    x = torch.randn(64, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    x0s: list[Tensor] = []
    res = get_sampler("rk4", "gaussian")(
        den, path, x, uniform_t_grid(path, 6), callback=lambda i, t, s, x0: x0s.append(x0)
    )
    assert res.nfe == 4 * 6
    assert not torch.equal(res.x, x0s[-1])
