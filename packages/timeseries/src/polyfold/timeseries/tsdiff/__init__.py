"""TSDiff (Kollovieh et al., "Predict, Refine, Synthesize: Self-Guiding Diffusion Models for
Probabilistic Time Series Forecasting"): S4 backbone, self-guided prediction, refinement and
synthesis, with a gluonts Estimator/Predictor."""

from polyfold.timeseries.tsdiff.backbone import TSDiffBackbone
from polyfold.timeseries.tsdiff.features import default_lags, lagged_window, mean_scale
from polyfold.timeseries.tsdiff.model import TSDiff, TSDiffConfig
from polyfold.timeseries.tsdiff.s4 import S4D, S4DKernel
from polyfold.timeseries.tsdiff.synth import (
    linear_predictive_score,
    real_windows,
    synthetic_dataset,
)

__all__ = [
    "S4D",
    "S4DKernel",
    "TSDiff",
    "TSDiffBackbone",
    "TSDiffConfig",
    "default_lags",
    "lagged_window",
    "linear_predictive_score",
    "mean_scale",
    "real_windows",
    "synthetic_dataset",
]
