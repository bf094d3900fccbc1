"""TSDiff as a gluonts ``Estimator`` / ``Predictor``, and gluonts evaluation helpers.

``TSDiffEstimator(freq=..., prediction_length=...).train(dataset)`` returns a
:class:`TSDiffPredictor` whose ``predict(dataset)`` yields one ``SampleForecast`` per entry
(forecasting right after each entry's target; NaNs in the target are missing values handled by
self-guidance). :class:`RefinedPredictor` wraps any gluonts predictor and refines its samples
with a trained TSDiff. :func:`evaluate` runs gluonts' ``Evaluator``; its ``mean_wQuantileLoss``
is the CRPS the TSDiff paper reports.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
from gluonts.model.estimator import Estimator
from gluonts.model.forecast import SampleForecast
from gluonts.model.predictor import Predictor

from polyfold.core.errors import InputError
from polyfold.timeseries.data import check_freq, entries_from
from polyfold.timeseries.tsdiff.model import Guidance, TSDiff, TSDiffConfig, WindowSampler

__all__ = ["RefinedPredictor", "TSDiffEstimator", "TSDiffPredictor", "crps", "evaluate"]


def _forecast_start(entry: dict[str, Any], freq: str) -> pd.Period:
    start = entry["start"]
    start = start if isinstance(start, pd.Period) else pd.Period(start, freq=freq)
    return start + len(entry["target"])


class TSDiffPredictor(Predictor):
    """A trained :class:`TSDiff` as a gluonts predictor (self-guided forecasts)."""

    def __init__(
        self,
        model: TSDiff,
        *,
        num_samples: int = 100,
        guidance: Guidance | None = None,
        scale: float | None = None,
        seed: int = 0,
        sampler: WindowSampler | None = None,
    ) -> None:
        super().__init__(prediction_length=model.config.prediction_length)
        self.sampler = sampler  # how TSDiff integrates (default DDPM; not serialized)
        self.model = model
        self.freq = model.config.freq
        self.num_samples = num_samples
        self.guidance = guidance
        self.scale = scale
        self.seed = seed

    def predict(
        self, dataset: Any, num_samples: int | None = None, **kwargs: Any
    ) -> Iterator[SampleForecast]:
        n = num_samples or self.num_samples
        g = torch.Generator().manual_seed(self.seed)
        for entry in entries_from(dataset, allow_nan=True):
            samples = self.model.predict(
                entry["target"],
                n,
                guidance=self.guidance,
                scale=self.scale,
                generator=g,
                sampler=self.sampler,
            )
            yield SampleForecast(
                samples, start_date=_forecast_start(entry, self.freq), item_id=entry.get("item_id")
            )

    def serialize(self, path: Path) -> None:
        path = Path(path)
        self.model.save(path)
        opts = {
            "num_samples": self.num_samples,
            "guidance": self.guidance,
            "scale": self.scale,
            "seed": self.seed,
        }
        (path / "predictor.json").write_text(json.dumps(opts), encoding="utf-8")

    @classmethod
    def deserialize(cls, path: Path, **kwargs: Any) -> TSDiffPredictor:
        path = Path(path)
        opts_p = path / "predictor.json"
        opts = json.loads(opts_p.read_text(encoding="utf-8")) if opts_p.is_file() else {}
        return cls(TSDiff.load(path), **opts)


class TSDiffEstimator(Estimator):
    """Trains TSDiff on a gluonts dataset; ``train`` returns a :class:`TSDiffPredictor`.

    ``context_length`` defaults to three horizons; other keywords go to :class:`TSDiffConfig`.
    ``out_dir`` keeps the training run's checkpoints (default: a temporary folder).
    """

    def __init__(
        self,
        freq: str,
        prediction_length: int,
        context_length: int | None = None,
        *,
        out_dir: str | Path | None = None,
        num_samples: int = 100,
        quiet: bool = True,
        **config: Any,
    ) -> None:
        super().__init__()
        self.freq = check_freq(freq)
        self.config = TSDiffConfig(
            context_length=context_length or 3 * prediction_length,
            prediction_length=prediction_length,
            freq=freq,
            **config,
        )
        self.out_dir = None if out_dir is None else Path(out_dir)
        self.num_samples = num_samples
        self.quiet = quiet

    def train(
        self, training_data: Any, validation_data: Any = None, **kwargs: Any
    ) -> TSDiffPredictor:
        series = [e["target"] for e in entries_from(training_data, allow_nan=False)]
        if self.out_dir is None:  # checkpoints in a temporary folder
            with tempfile.TemporaryDirectory() as tmp:
                model = TSDiff(self.config).fit(series, out_dir=tmp, quiet=self.quiet)
        else:
            model = TSDiff(self.config).fit(series, out_dir=self.out_dir, quiet=self.quiet)
        return TSDiffPredictor(model, num_samples=self.num_samples)


class RefinedPredictor(Predictor):
    """Any gluonts predictor's forecasts refined by a trained TSDiff (see ``TSDiff.refine``)."""

    def __init__(
        self,
        base: Predictor,
        model: TSDiff,
        *,
        method: Literal["energy", "ml"] = "energy",
        num_samples: int = 100,
        **refine: Any,
    ) -> None:
        super().__init__(prediction_length=base.prediction_length)
        if base.prediction_length != model.config.prediction_length:
            raise InputError(
                f"base: prediction length {base.prediction_length} differs from the TSDiff "
                f"model's {model.config.prediction_length}"
            )
        self.base, self.model, self.method = base, model, method
        self.num_samples, self.refine_kwargs = num_samples, refine

    def predict(
        self, dataset: Any, num_samples: int | None = None, **kwargs: Any
    ) -> Iterator[SampleForecast]:
        n = num_samples or self.num_samples
        entries = entries_from(dataset, allow_nan=False)
        g = torch.Generator().manual_seed(0)
        for entry, fc in zip(entries, self.base.predict(entries), strict=True):
            base = _samples_of(fc, n)
            out = self.model.refine(
                entry["target"], base, method=self.method, generator=g, **self.refine_kwargs
            )
            yield SampleForecast(out, start_date=fc.start_date, item_id=fc.item_id)


def _samples_of(fc: Any, n: int) -> np.ndarray:
    """``(n, H)`` samples of a gluonts forecast (repeated for a point forecast)."""
    if isinstance(fc, SampleForecast):
        s = fc.samples
        return s[np.arange(n) % len(s)]
    levels = (np.arange(n) + 0.5) / n
    return np.stack([fc.quantile(q) for q in levels])


def evaluate(
    predictor: Predictor,
    test_entries: list[dict[str, Any]],
    freq: str,
    *,
    num_samples: int = 100,
    seasonality: int | None = None,
) -> dict[str, float]:
    """gluonts ``Evaluator`` aggregate metrics on rolling test entries (each ending with its
    horizon); ``CRPS`` is added as ``mean_wQuantileLoss``. ``seasonality``: the season of
    MASE's seasonal-naive scale (default: gluonts' choice for ``freq``)."""
    from gluonts.dataset.common import ListDataset
    from gluonts.evaluation import Evaluator, make_evaluation_predictions

    ds = ListDataset(test_entries, freq=check_freq(freq))
    forecast_it, ts_it = make_evaluation_predictions(ds, predictor, num_samples=num_samples)
    forecasts, tss = list(forecast_it), list(ts_it)
    agg, _ = Evaluator(num_workers=0, seasonality=seasonality)(tss, forecasts, num_series=len(ds))
    out = {k: float(v) for k, v in agg.items() if isinstance(v, int | float)}
    out["CRPS"] = out["mean_wQuantileLoss"]
    return out


def crps(predictor: Predictor, test_entries: list[dict[str, Any]], freq: str, **kw: Any) -> float:
    """The CRPS (gluonts' ``mean_wQuantileLoss``) of ``predictor`` on the test entries."""
    return evaluate(predictor, test_entries, freq, **kw)["CRPS"]
