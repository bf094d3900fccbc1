"""Spectral and second-order summaries of EEG windows: Welch PSDs, band powers, covariances,
autocorrelations and the feature vector the evaluation's classifiers use.

All take ``x`` (N, C, T) microvolts and the sampling frequency; Welch uses 1 s Hann segments
with half overlap (1 Hz resolution), one-sided density in uV^2/Hz, so that the power of a band
is ``sum(psd[f in band]) * df`` (a sine of amplitude A inside the band gives A^2 / 2).
"""

from __future__ import annotations

import numpy as np
from scipy import signal

from polyfold.core.errors import InputError

__all__ = [
    "BANDS",
    "FEATURE_BANDS",
    "autocorrelation",
    "band_powers",
    "features",
    "mean_covariance",
    "psd",
]

#: The paper's evaluation bands, Hz: [low, high).
BANDS: dict[str, tuple[float, float]] = {
    "delta": (0.5, 4.0),
    "theta": (4.0, 8.0),
    "alpha": (8.0, 13.0),
    "beta": (13.0, 30.0),
    "gamma": (30.0, 45.0),
}
#: Bands of the classifier features: the paper's plus the EMG range where muscle lives.
FEATURE_BANDS: dict[str, tuple[float, float]] = BANDS | {"emg": (45.0, 100.0)}


def _check(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 3 or x.shape[0] < 1:
        raise InputError(f"windows: expected an (N, C, T) array with N >= 1, got {x.shape}")
    return x


def psd(x: np.ndarray, sfreq: float) -> tuple[np.ndarray, np.ndarray]:
    """``(freqs, psd)`` with psd (N, C, F) by Welch's method (1 s Hann segments, 50 % overlap)."""
    x = _check(x)
    nperseg = min(x.shape[-1], round(sfreq))
    freqs, p = signal.welch(x, fs=sfreq, nperseg=nperseg, axis=-1)
    return freqs, p


def band_powers(
    x: np.ndarray, sfreq: float, bands: dict[str, tuple[float, float]] = BANDS
) -> np.ndarray:
    """(N, C, B) absolute power (uV^2) in each band ``[low, high)`` (Welch, see module doc)."""
    freqs, p = psd(x, sfreq)
    df = freqs[1] - freqs[0]
    out = [p[..., (freqs >= lo) & (freqs < hi)].sum(-1) * df for lo, hi in bands.values()]
    return np.stack(out, axis=-1)


def mean_covariance(x: np.ndarray) -> np.ndarray:
    """(C, C) channel covariance (uV^2) averaged over windows, each window de-meaned."""
    x = _check(x)
    x = x - x.mean(-1, keepdims=True)
    return np.asarray(np.einsum("nct,ndt->cd", x, x) / (x.shape[0] * x.shape[-1]))


def autocorrelation(x: np.ndarray, max_lag: int) -> np.ndarray:
    """(C, max_lag + 1) normalised autocorrelation per channel (lag 0 = 1), averaged over
    windows (each de-meaned; the biased estimator, FFT-based)."""
    x = _check(x)
    n_times = x.shape[-1]
    if not 0 < max_lag < n_times:
        raise InputError(f"max_lag: expected an integer in [1, {n_times - 1}], got {max_lag!r}")
    x = x - x.mean(-1, keepdims=True)
    spec = np.fft.rfft(x, n=2 * n_times, axis=-1)
    acov = np.fft.irfft(np.abs(spec) ** 2, axis=-1)[..., : max_lag + 1]
    acf = acov / np.maximum(acov[..., :1], 1e-12)
    return np.asarray(acf.mean(0))


def features(x: np.ndarray, sfreq: float) -> np.ndarray:
    """(N, F) per-window features: log10 band power of each channel in :data:`FEATURE_BANDS`,
    log10 channel variance, and the upper triangle of the channel correlation matrix (what
    the class-recovery, C2ST and TSTR classifiers see)."""
    x = _check(x)
    logbp = np.log10(band_powers(x, sfreq, FEATURE_BANDS) + 1e-6).reshape(len(x), -1)
    xc = x - x.mean(-1, keepdims=True)
    cov = np.einsum("nct,ndt->ncd", xc, xc) / x.shape[-1]
    var = np.clip(np.diagonal(cov, axis1=1, axis2=2), 1e-12, None)
    corr = cov / np.sqrt(var[:, :, None] * var[:, None, :])
    iu = np.triu_indices(x.shape[1], 1)
    return np.concatenate([logbp, np.log10(var), corr[:, iu[0], iu[1]]], axis=1)
