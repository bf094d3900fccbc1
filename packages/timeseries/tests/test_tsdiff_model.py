"""TSDiff: training, self-guidance, missing values, refinement, synthesis, persistence."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from polyfold.core.errors import InputError
from polyfold.timeseries.data import SeriesData
from polyfold.timeseries.tsdiff import TSDiff, TSDiffConfig, linear_predictive_score, real_windows
from polyfold.timeseries.tsdiff.features import lagged_window


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_config_validation() -> None:
    with pytest.raises(InputError, match="context_length"):
        TSDiffConfig(context_length=0, prediction_length=3)
    with pytest.raises(InputError, match="guidance"):
        TSDiffConfig(context_length=4, prediction_length=3, guidance="l1")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="lags"):
        TSDiffConfig(context_length=4, prediction_length=3, lags=[0])
    with pytest.raises(InputError, match="freq"):
        TSDiffConfig(context_length=4, prediction_length=3, freq="fortnightly")


def test_training_lowers_the_loss(tiny_model: TSDiff) -> None:
    assert tiny_model.trained_steps == 150
    x = torch.randn(8, 36, 2)
    untrained = TSDiff(tiny_model.config)
    g1, g2 = _gen(1), _gen(1)
    data = lagged_window(torch.linspace(1, 2, 48), [12], 36)[None].expand(8, -1, -1) / 1.5
    assert tiny_model.loss(tiny_model.net, data, g1) < untrained.loss(untrained.net, data, g2)
    del x


def test_observation_window_masks(tiny_model: TSDiff, airline: SeriesData) -> None:
    y = airline.values[0][:60].copy()
    y[-5] = np.nan  # a missing value in the context
    obs, mask, (loc, scale) = tiny_model.observation_window(y)
    assert float(loc) == 0.0  # mean scaling
    assert obs.shape == mask.shape == (36, 2)
    ctx = 24
    assert mask[:ctx, 0].sum() == ctx - 1
    assert not mask[ctx - 5, 0]
    assert not mask[ctx:, 0].any()  # the horizon is unknown
    # the lag-12 channel at horizon step k is the target 12 steps earlier (context step 12 + k)
    assert mask[ctx:, 1].sum() == 12 - 1
    assert not mask[ctx + 7, 1]
    valid = y[-ctx:][~np.isnan(y[-ctx:])]
    assert float(scale) == pytest.approx(np.abs(valid).mean(), rel=1e-5)
    torch.testing.assert_close(obs[:ctx, 0][mask[:ctx, 0]] * scale, torch.as_tensor(valid))


def test_predict_shapes_units_and_seed(tiny_model: TSDiff, airline: SeriesData) -> None:
    hist = airline.values[0][:-12]
    a = tiny_model.predict(hist, 6, generator=_gen(3))
    b = tiny_model.predict(hist, 6, generator=_gen(3))
    assert a.shape == (6, 12)
    assert np.isfinite(a).all()
    np.testing.assert_array_equal(a, b)
    # forecasts are in the data's units (the series is in the hundreds)
    assert 100 < np.median(a) < 1000
    with pytest.raises(InputError, match="n_samples"):
        tiny_model.predict(hist, 0)
    with pytest.raises(InputError, match="no observed value"):
        tiny_model.predict(np.full(40, np.nan, np.float32), 2)


@pytest.mark.parametrize("scenario", ["random", "blackout_start", "blackout_end"])
def test_missing_value_scenarios(tiny_model: TSDiff, airline: SeriesData, scenario: str) -> None:
    hist = airline.values[0][:-12].copy()
    ctx = hist[-24:].copy()
    if scenario == "random":
        ctx[np.random.default_rng(0).permutation(24)[:8]] = np.nan
    elif scenario == "blackout_start":
        ctx[:8] = np.nan
    else:
        ctx[-8:] = np.nan
    hist[-24:] = ctx
    out = tiny_model.predict(hist, 4, generator=_gen())
    assert out.shape == (4, 12)
    assert np.isfinite(out).all()
    imputed = tiny_model.impute(hist, 4, generator=_gen())
    assert imputed.shape == (4, 24)
    assert np.isfinite(imputed).all()


def test_self_guidance_with_a_perfect_observation_reproduces_it(
    tiny_model: TSDiff, airline: SeriesData
) -> None:
    """Every entry observed: the stronger the guidance, the closer the samples come to the
    observation (MSE energy), and the quantile energy at a strong scale lands on it."""
    y = torch.as_tensor(airline.values[0][-48:])
    w = lagged_window(y, [12], 36)
    w = (w / w[:24, 0].abs().mean())[None].expand(8, -1, -1)
    everything = torch.ones_like(w, dtype=torch.bool)

    def err(guidance: str, scale: float) -> float:
        out = tiny_model.sample_windows(
            8,
            observation=w,
            observed=everything,
            guidance=guidance,  # type: ignore[arg-type]
            scale=scale,
            generator=_gen(),
        )
        return float((out - w).abs().mean())

    free = err("mse", 0.0)
    mse = [err("mse", s) for s in (1.0, 4.0, 8.0)]
    assert free > mse[0] > mse[1] > mse[2]
    strong = err("quantile", 16.0)
    assert strong < 0.6 * free
    assert strong < 0.1  # scaled units: the context's mean absolute value is 1


def test_standard_scaling_round_trip(tiny_model: TSDiff, airline: SeriesData) -> None:
    model = TSDiff(dataclasses.replace(tiny_model.config, scaling="standard"))
    y = airline.values[0][:60]
    obs, _mask, (loc, scale) = model.observation_window(y)
    ctx = y[-24:]
    assert float(loc) == pytest.approx(ctx.mean(), rel=1e-5)
    assert float(scale) == pytest.approx(ctx.std(), rel=1e-4)
    torch.testing.assert_close(
        obs[:24, 0] * scale + loc, torch.as_tensor(ctx), rtol=1e-5, atol=1e-3
    )
    with pytest.raises(InputError, match="scaling"):
        dataclasses.replace(tiny_model.config, scaling="robust")


def test_diverging_guidance_is_a_clear_error(tiny_model: TSDiff, airline: SeriesData) -> None:
    with pytest.raises(InputError, match="diverged"):
        tiny_model.predict(airline.values[0][:-12], 2, guidance="mse", scale=1e6)


def test_quantile_guidance_orders_samples(tiny_model: TSDiff, airline: SeriesData) -> None:
    """TSDiff-Q gives sample i the quantile level (i + 0.5)/n: low levels forecast lower."""
    out = tiny_model.predict(
        airline.values[0][:-12], 16, guidance="quantile", scale=4.0, generator=_gen()
    )
    assert out[:4].mean() < out[-4:].mean()


def test_refine_variants(tiny_model: TSDiff, airline: SeriesData) -> None:
    hist = airline.values[0][:-12]
    base = np.tile(hist[-12:], (4, 1))
    ml = tiny_model.refine(hist, base, method="ml", steps=5, step_size=1e-3, generator=_gen())
    ebm = tiny_model.refine(hist, base, method="energy", steps=5, step_size=1e-3, generator=_gen())
    assert ml.shape == ebm.shape == (4, 12)
    # ML refinement is deterministic given the diffusion-loss noise: identical base rows move
    # by the same kind of step; Langevin adds noise, so its rows differ from each other
    assert np.abs(ml - base).max() > 0
    assert np.std(ebm, axis=0).mean() > 0
    # a huge regulariser pins the samples to the base forecast
    pinned = tiny_model.refine(hist, base, method="ml", steps=5, step_size=1e-4, reg=1e3)
    np.testing.assert_allclose(pinned, base, rtol=2e-3)
    with pytest.raises(InputError, match="base_samples"):
        tiny_model.refine(hist, base[:, :5])
    with pytest.raises(InputError, match="method"):
        tiny_model.refine(hist, base, method="sgd")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="history"):
        tiny_model.refine(hist[:10], base)


def test_synthesize_and_linear_predictive_score(tiny_model: TSDiff, airline: SeriesData) -> None:
    syn = tiny_model.synthesize(20, scale=300.0, generator=_gen())
    assert syn.shape == (20, 36)
    assert np.isfinite(syn).all()
    real = real_windows(airline.values[0], 36)
    lps_real = linear_predictive_score(real[:80], real[80:], 24)
    lps_syn = linear_predictive_score(syn, real[80:], 24)
    assert 0 < lps_real < 0.2
    assert np.isfinite(lps_syn)
    # a linear law is recovered exactly
    t = np.arange(200, dtype=np.float64)
    lin = real_windows(1.0 + 0.01 * t, 10)
    assert linear_predictive_score(lin, lin, 6, alpha=1e-9) < 1e-4
    with pytest.raises(InputError, match="context_length"):
        linear_predictive_score(real, real, 36)


def test_save_load_round_trip(tiny_model: TSDiff, model_dir: Path, airline: SeriesData) -> None:
    loaded = TSDiff.load(model_dir)
    assert loaded.config == tiny_model.config
    hist = airline.values[0][:-12]
    np.testing.assert_array_equal(
        loaded.predict(hist, 3, generator=_gen()), tiny_model.predict(hist, 3, generator=_gen())
    )
    with pytest.raises(InputError, match=r"tsdiff\.json"):
        TSDiff.load(model_dir.parent)
