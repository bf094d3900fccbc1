"""The gluonts Estimator/Predictor contract and evaluation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from gluonts.model.forecast import SampleForecast
from gluonts.model.predictor import Predictor
from gluonts.model.seasonal_naive import SeasonalNaivePredictor

from polyfold.core.errors import InputError
from polyfold.timeseries.data import SeriesData, to_list_dataset, to_pandas_dataset
from polyfold.timeseries.tsdiff import TSDiff
from polyfold.timeseries.tsdiff.gluonts_api import (
    RefinedPredictor,
    TSDiffEstimator,
    TSDiffPredictor,
    crps,
    evaluate,
)


def test_predictor_yields_sample_forecasts(tiny_model: TSDiff, airline: SeriesData) -> None:
    pred = TSDiffPredictor(tiny_model, num_samples=5)
    assert isinstance(pred, Predictor)
    assert pred.prediction_length == 12
    for ds in (to_list_dataset(airline), to_pandas_dataset(airline)):
        forecasts = list(pred.predict(ds, num_samples=4))
        assert len(forecasts) == 1
        fc = forecasts[0]
        assert isinstance(fc, SampleForecast)
        assert fc.samples.shape == (4, 12)
        assert fc.start_date == pd.Period("1961-01", freq="M")  # right after the target
        assert fc.item_id == "airline"
        assert fc.quantile(0.1).shape == (12,)
        assert np.all(fc.quantile(0.1) <= fc.quantile(0.9))


def test_predictor_serialize_round_trip(
    tiny_model: TSDiff, airline: SeriesData, tmp_path: Path
) -> None:
    pred = TSDiffPredictor(tiny_model, num_samples=3, guidance="mse", scale=1.0, seed=5)
    pred.serialize(tmp_path)
    back = TSDiffPredictor.deserialize(tmp_path)
    assert back.guidance == "mse"
    assert back.num_samples == 3
    a = next(iter(pred.predict(to_list_dataset(airline)))).samples
    b = next(iter(back.predict(to_list_dataset(airline)))).samples
    np.testing.assert_array_equal(a, b)


def test_evaluator_crps(tiny_model: TSDiff, airline: SeriesData) -> None:
    _, test = airline.split(1)
    metrics = evaluate(TSDiffPredictor(tiny_model, num_samples=8), test, "M", num_samples=8)
    assert metrics["CRPS"] == metrics["mean_wQuantileLoss"]
    assert 0 < metrics["CRPS"] < 0.5
    snaive = SeasonalNaivePredictor(prediction_length=12, season_length=12)
    # the seasonal naive CRPS of a point forecast is its normalised absolute error
    truth, last = airline.values[0][-12:], airline.values[0][-24:-12]
    expected = np.abs(truth - last).sum() / np.abs(truth).sum()
    assert crps(snaive, test, "M") == pytest.approx(expected, rel=1e-5)


def test_refined_predictor(tiny_model: TSDiff, airline: SeriesData) -> None:
    snaive = SeasonalNaivePredictor(prediction_length=12, season_length=12)
    ref = RefinedPredictor(snaive, tiny_model, method="ml", num_samples=3, steps=3)
    _, test = airline.split(1)
    from gluonts.dataset.common import ListDataset

    fc = next(
        iter(ref.predict(ListDataset([{**test[0], "target": test[0]["target"][:-12]}], freq="M")))
    )
    assert fc.samples.shape == (3, 12)
    assert np.isfinite(fc.samples).all()
    with pytest.raises(InputError, match="prediction length"):
        RefinedPredictor(SeasonalNaivePredictor(prediction_length=6, season_length=12), tiny_model)


def test_estimator_trains_a_predictor(airline: SeriesData, tmp_path: Path) -> None:
    est = TSDiffEstimator(
        "M",
        12,
        24,
        out_dir=tmp_path / "run",
        num_samples=2,
        steps=5,
        hidden=8,
        n_blocks=1,
        state_size=4,
        diffusion_steps=10,
    )
    pred = est.train(to_list_dataset(airline))
    assert isinstance(pred, TSDiffPredictor)
    assert pred.model.trained_steps == 5
    fc = next(iter(pred.predict(to_list_dataset(airline))))
    assert fc.samples.shape == (2, 12)
    with pytest.raises(InputError, match="freq"):
        TSDiffEstimator("every-month", 12)
    bad = [{"start": pd.Period("2000-01", freq="M"), "target": np.array([1.0, np.nan] * 40)}]
    with pytest.raises(InputError, match="NaN"):
        est.train(bad)
