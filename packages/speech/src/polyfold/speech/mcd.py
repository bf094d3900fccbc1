"""Mel-cepstral distortion with dynamic-time-warping alignment, and F0 error, between two
waveforms (the objective spectral and pitch measures of TTS papers).

Each clip is analysed once (:func:`world_features`: WORLD's DIO + StoneMask F0 and CheapTrick
envelope, ``pyworld``, the ``eval`` extra), then compared. Mel-cepstra: the log power
envelope is resampled on the all-pass-warped frequency axis (the all-pass constant that best fits
the mel scale at the sample rate: 0.41 at 16 kHz, as SPTK) and turned into a cepstrum of order
24 (the 0th coefficient, energy, left out). Both signals are analysed at 16 kHz and frames more
than 40 dB below the loudest are left out as silence. The MCD of aligned frames is
``10 / ln 10 * sqrt(2 * sum_d (c_d - c'_d)^2)`` in dB, averaged over the DTW path. (``pysptk``
is not used: it imports ``pkg_resources``, gone from current setuptools.)
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from polyfold.core.audio import load_pyworld, resample
from polyfold.core.errors import InputError

__all__ = [
    "F0Error",
    "WorldFeatures",
    "allpass_alpha",
    "dtw_path",
    "envelope_to_mcep",
    "f0_between",
    "f0_error",
    "mcd_between",
    "mcd_db",
    "world_features",
]

MCEP_ORDER = 24
FRAME_MS = 5.0
# 16 kHz: the band the 80-bin mel front end covers (0-8 kHz) and the rate of the flite and ARCTIC
# recordings; above 8 kHz a vocoder invents what the mel never held
ANALYSIS_RATE = 16000
SILENCE_DB = 40.0  # frames this far below the loudest are silence, left out of the MCD
_DB = 10.0 / math.log(10.0) * math.sqrt(2.0)


@functools.cache
def allpass_alpha(sample_rate: int) -> float:
    """The all-pass constant whose frequency warping best fits the mel scale up to Nyquist."""
    omega = np.linspace(0.0, np.pi, 512)
    mel = np.log1p(omega / np.pi * sample_rate / 2 / 1000.0)  # Fant's mel scale, as SPTK
    mel /= mel[-1]
    alphas = np.arange(0.0, 0.99, 0.001)
    warped = omega[None] + 2 * np.arctan(
        alphas[:, None] * np.sin(omega) / (1 - alphas[:, None] * np.cos(omega))
    )
    return float(alphas[np.argmin(((warped / np.pi - mel) ** 2).mean(1))])


def envelope_to_mcep(sp: np.ndarray, sample_rate: int, order: int = MCEP_ORDER) -> np.ndarray:
    """``(frames, order + 1)`` mel-cepstra of a power spectral envelope ``(frames, bins)``."""
    alpha = allpass_alpha(sample_rate)
    bins = sp.shape[1]
    warped = np.linspace(0.0, np.pi, bins)
    # the linear frequency that the all-pass maps onto each point of the uniform warped grid
    omega = warped - 2 * np.arctan(alpha * np.sin(warped) / (1 + alpha * np.cos(warped)))
    position = omega / np.pi * (bins - 1)
    log_sp = 0.5 * np.log(np.maximum(sp, 1e-20))  # log amplitude of a power envelope
    resampled = np.stack([np.interp(position, np.arange(bins), row) for row in log_sp])
    return np.fft.irfft(resampled, axis=1)[:, : order + 1]


@dataclass(frozen=True)
class WorldFeatures:
    """One clip's analysis every 5 ms at 16 kHz: F0 (Hz, 0 unvoiced), mel-cepstra
    ``(frames, 25)`` and frame energy (dB)."""

    f0: np.ndarray
    mcep: np.ndarray
    energy_db: np.ndarray


def world_features(wave: np.ndarray, sample_rate: int) -> WorldFeatures:
    """Analyse a clip (resampled to 16 kHz) with WORLD."""
    pw = load_pyworld("speech", "eval")
    x = resample(np.asarray(wave, dtype=np.float32), sample_rate, ANALYSIS_RATE).astype(np.float64)
    if x.ndim != 1 or x.size < ANALYSIS_RATE // 20:
        raise InputError(f"audio: expected a 1-D signal of at least 50 ms, got shape {x.shape}")
    f0, times = pw.dio(x, ANALYSIS_RATE, frame_period=FRAME_MS)
    f0 = pw.stonemask(x, f0, times, ANALYSIS_RATE)
    sp = pw.cheaptrick(x, f0, times, ANALYSIS_RATE)
    energy = 10 * np.log10(np.maximum(sp.sum(1), 1e-30))
    return WorldFeatures(f0, envelope_to_mcep(sp, ANALYSIS_RATE), energy)


def dtw_path(cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs ``(i, j)`` of the cheapest monotonic path through ``cost`` ``(n, m)`` from
    ``(0, 0)`` to ``(n - 1, m - 1)`` with steps (1, 0), (0, 1), (1, 1)."""
    n, m = cost.shape
    acc = np.full((n + 1, m + 1), np.inf)
    acc[0, 0] = 0.0
    for i in range(1, n + 1):
        diag_up = np.minimum(acc[i - 1, :-1], acc[i - 1, 1:]) + cost[i - 1]
        row = acc[i]
        for j in range(1, m + 1):  # the horizontal step depends on the cell to the left
            row[j] = min(diag_up[j - 1], row[j - 1] + cost[i - 1, j - 1])
    i, j, path = n, m, []
    while i > 0 and j > 0:
        path.append((i - 1, j - 1))
        step = int(np.argmin((acc[i - 1, j - 1], acc[i - 1, j], acc[i, j - 1])))
        i, j = (i - 1, j - 1) if step == 0 else (i - 1, j) if step == 1 else (i, j - 1)
    ii, jj = np.array(path[::-1]).T
    return ii, jj


def _cost(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    cost: np.ndarray = np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1))
    return cost


def mcd_between(reference: WorldFeatures, synthesized: WorldFeatures) -> float:
    """MCD (dB) of two analysed clips: silent frames dropped, DTW on the rest, c0 left out."""
    a = reference.mcep[reference.energy_db >= reference.energy_db.max() - SILENCE_DB, 1:]
    b = synthesized.mcep[synthesized.energy_db >= synthesized.energy_db.max() - SILENCE_DB, 1:]
    cost = _cost(a, b)
    ii, jj = dtw_path(cost)
    return float(_DB * cost[ii, jj].mean())


def mcd_db(reference: np.ndarray, synthesized: np.ndarray, sample_rate: int) -> float:
    """Mel-cepstral distortion (dB) between two waveforms at ``sample_rate``."""
    return mcd_between(
        world_features(reference, sample_rate), world_features(synthesized, sample_rate)
    )


@dataclass(frozen=True)
class F0Error:
    """F0 RMSE (Hz) over frames voiced in both, and the share of frames whose voicing differs."""

    rmse_hz: float
    voicing_error: float


def f0_between(reference: WorldFeatures, synthesized: WorldFeatures) -> F0Error:
    """F0 RMSE and voicing error of two analysed clips, DTW-aligned on mel-cepstra (all frames)."""
    ii, jj = dtw_path(_cost(reference.mcep[:, 1:], synthesized.mcep[:, 1:]))
    fa, fb = reference.f0[ii], synthesized.f0[jj]
    va, vb = fa > 0, fb > 0
    both = va & vb
    rmse = float(np.sqrt(np.mean((fa[both] - fb[both]) ** 2))) if both.any() else float("nan")
    return F0Error(rmse_hz=rmse, voicing_error=float(np.mean(va != vb)))


def f0_error(reference: np.ndarray, synthesized: np.ndarray, sample_rate: int) -> F0Error:
    """F0 RMSE and voicing error between two waveforms at ``sample_rate``."""
    return f0_between(
        world_features(reference, sample_rate), world_features(synthesized, sample_rate)
    )
