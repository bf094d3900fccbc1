"""TSDiff's ``sampler`` hook and ``guided_denoiser``: the default is DDPM on the full grid, any
core sampler can replace it, and quantile levels are per sample."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from polyfold.core.errors import InputError
from polyfold.core.samplers import ddpm, uniform_t_grid, unipc
from polyfold.timeseries.data import SeriesData
from polyfold.timeseries.tsdiff import TSDiff


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_a_ddpm_hook_on_the_full_grid_reproduces_the_default(
    tiny_model: TSDiff, airline: SeriesData
) -> None:
    hist = airline.values[0][:-12]
    steps = tiny_model.config.diffusion_steps

    def hook(den, path, x, g, callback):  # type: ignore[no-untyped-def]
        return ddpm(den, path, x, uniform_t_grid(path, steps, append_zero=True), generator=g).x

    default = tiny_model.predict(hist, 4, generator=_gen(2))
    hooked = tiny_model.predict(hist, 4, generator=_gen(2), sampler=hook)
    np.testing.assert_array_equal(default, hooked)


def test_an_ode_hook_gets_the_guided_denoiser_and_the_prior_noise(
    tiny_model: TSDiff, airline: SeriesData
) -> None:
    hist = airline.values[0][:-12]
    seen = []

    def hook(den, path, x, g, callback):  # type: ignore[no-untyped-def]
        seen.append(x.clone())
        res = unipc(den, path, x, uniform_t_grid(path, 5, append_zero=True))
        seen.append(res.nfe)
        return res.x

    out = tiny_model.predict(hist, 3, generator=_gen(1), sampler=hook)
    assert out.shape == (3, 12)
    assert np.isfinite(out).all()
    cfg = tiny_model.config
    prior = tiny_model.path.prior_sample((3, cfg.length, cfg.channels), generator=_gen(1))
    torch.testing.assert_close(seen[0], prior)
    assert seen[1] == 5
    # the same ODE twice from the same noise: deterministic
    again = tiny_model.predict(hist, 3, generator=_gen(1), sampler=hook)
    np.testing.assert_array_equal(out, again)


def test_guided_denoiser_levels(tiny_model: TSDiff, airline: SeriesData) -> None:
    y, obs, _ = tiny_model.observation_window(airline.values[0][:-12])
    y4, obs4 = y.expand(4, -1, -1), obs.expand(4, -1, -1)
    x = torch.randn(4, *y.shape, generator=_gen(5))
    t = torch.full((4,), 0.5)
    default = tiny_model.guided_denoiser(y4, obs4)
    explicit = tiny_model.guided_denoiser(
        y4, obs4, levels=torch.tensor([0.125, 0.375, 0.625, 0.875])
    )
    torch.testing.assert_close(default(x, t).x0, explicit(x, t).x0)
    other = tiny_model.guided_denoiser(y4, obs4, levels=torch.full((4,), 0.9))
    assert not torch.allclose(default(x, t).x0, other(x, t).x0)
    with pytest.raises(InputError, match="levels"):
        tiny_model.guided_denoiser(y4, obs4, levels=torch.full((3,), 0.5))
