"""Resynthesis and transfer metrics: multi-scale spectral loss, loudness L1, and the f0 of the
output re-tracked with YIN against the f0 it was asked to play.

The f0 figures count the frames where the reference is loud (within 40 dB of the clip's
loudest frame), YIN finds the output voiced and, by default, the reference f0 is steady across
YIN's window (it moves by at most a semitone there): at a note change the window holds two
notes, and even a sawtooth at the exact f0 is tracked more than a semitone off on the frames
around it (``steady=False`` keeps them). An outlier is a frame off by more than a semitone.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from polyfold.ddsp.data import Clips, loudness_of
from polyfold.ddsp.fluid import HOP, SAMPLE_RATE
from polyfold.ddsp.pitch import track_f0, yin_frame_length
from polyfold.ddsp.spectral import multiscale_spectral_loss
from polyfold.ddsp.synthesis import render

__all__ = ["audio_metrics", "evaluate_model", "pitch_errors", "steady_frames", "transfer_metrics"]

STEADY_SEMITONES = 1.0


def _loud(loudness: np.ndarray) -> np.ndarray:
    loud: np.ndarray = loudness > loudness.max(-1, keepdims=True) - 40.0
    return loud


def steady_frames(f0: np.ndarray, half_window: int) -> np.ndarray:
    """Frames of ``f0`` (F,) Hz whose neighbourhood ``i - half_window .. i + half_window`` spans
    at most :data:`STEADY_SEMITONES` (max minus min, in semitones)."""
    st = 12 * np.log2(np.asarray(f0, dtype=np.float64))
    padded = np.pad(st, half_window, mode="edge")
    views = np.lib.stride_tricks.sliding_window_view(padded, 2 * half_window + 1)
    steady: np.ndarray = views.max(-1) - views.min(-1) <= STEADY_SEMITONES
    return steady


def pitch_errors(
    audio: np.ndarray, f0: np.ndarray, loudness: np.ndarray, *, steady: bool = True
) -> np.ndarray:
    """Semitone errors of the re-tracked f0 of ``audio`` (N, T) against ``f0`` (N, F), over the
    loud frames where the output is voiced (and, with ``steady``, the reference f0 is steady
    across the tracker's window); a flat array."""
    errs = []
    for a, f, ld in zip(audio, f0, loudness, strict=True):
        fmin, fmax = float(f.min()) / 2, float(f.max()) * 2
        got, voiced = track_f0(a, SAMPLE_RATE, HOP, fmin=fmin, fmax=fmax)
        keep = voiced & _loud(ld)
        if steady:
            keep &= steady_frames(f, yin_frame_length(SAMPLE_RATE, fmin) // 2 // HOP)
        errs.append(12 * np.log2(got[keep] / f[keep]))
    return np.concatenate(errs) if errs else np.zeros(0)


def _f0_figures(err: np.ndarray, suffix: str = "") -> dict[str, float]:
    err = np.abs(err)
    nan = float("nan")
    return {
        f"f0_l1_semitones{suffix}": float(err.mean()) if err.size else nan,
        f"f0_outlier_ratio{suffix}": float((err > 1.0).mean()) if err.size else nan,
    }


def audio_metrics(output: np.ndarray, clips: Clips) -> dict[str, float]:
    """MSS, loudness L1 (dB, loud frames) and re-tracked f0 errors of ``output`` against clips:
    on the steady frames, and (``*_all_frames``) on every loud voiced frame."""
    mss = float(
        multiscale_spectral_loss(torch.as_tensor(output, dtype=torch.float64),
                                 torch.as_tensor(clips.audio, dtype=torch.float64))
    )  # fmt: skip
    ld_out = loudness_of(output)
    loud = _loud(clips.loudness)
    err = pitch_errors(output, clips.f0, clips.loudness)
    return {
        "mss": mss,
        "loudness_l1_db": float(np.abs(ld_out - clips.loudness)[loud].mean()),
        **_f0_figures(err),
        **_f0_figures(pitch_errors(output, clips.f0, clips.loudness, steady=False), "_all_frames"),
        "voiced_frames": float(err.size),
    }


def evaluate_model(model: Any, clips: Clips, *, seed: int = 0) -> dict[str, float]:
    """Resynthesise held-out clips from their own f0 and loudness and score the result."""
    return audio_metrics(render(model, clips.f0, clips.loudness, seed=seed), clips)


def transfer_metrics(
    model: Any, source: Clips, *, octave: int = 0, seed: int = 0
) -> dict[str, float]:
    """Raw pitch accuracy (within 50 cents) of ``source``'s controls played by ``model``, on the
    steady frames and (``*_all_frames``) on every loud voiced frame."""
    f0 = source.f0 * 2.0**octave
    out = render(model, f0, source.loudness, seed=seed)
    result: dict[str, float] = {}
    for steady, suffix in ((True, ""), (False, "_all_frames")):
        err = np.abs(pitch_errors(out, f0, source.loudness, steady=steady))
        result[f"raw_pitch_accuracy_50c{suffix}"] = float((err < 0.5).mean()) if err.size else 0.0
        result[f"f0_l1_semitones{suffix}"] = float(err.mean()) if err.size else float("nan")
    return result
