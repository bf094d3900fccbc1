"""Resynthesis and transfer metrics: multi-scale spectral loss, loudness L1, and the f0 of the
output re-tracked with pYIN against the f0 it was asked to play.

The f0 figures count the frames where the reference is loud (within 40 dB of the clip's
loudest frame) and pYIN finds the output voiced; an outlier is a frame off by more than a
semitone (octave errors, wrong notes).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from polyfold.ddsp.data import Clips, loudness_of
from polyfold.ddsp.fluid import HOP, SAMPLE_RATE
from polyfold.ddsp.pitch import track_f0
from polyfold.ddsp.spectral import multiscale_spectral_loss
from polyfold.ddsp.synthesis import render

__all__ = ["audio_metrics", "evaluate_model", "pitch_errors", "transfer_metrics"]


def _loud(loudness: np.ndarray) -> np.ndarray:
    return loudness > loudness.max(-1, keepdims=True) - 40.0


def pitch_errors(audio: np.ndarray, f0: np.ndarray, loudness: np.ndarray) -> np.ndarray:
    """Semitone errors of the re-tracked f0 of ``audio`` (N, T) against ``f0`` (N, F), over the
    loud frames where the output is voiced (a flat array)."""
    errs = []
    for a, f, ld in zip(audio, f0, loudness, strict=True):
        got, voiced = track_f0(
            a, SAMPLE_RATE, HOP, fmin=float(f.min()) / 2, fmax=float(f.max()) * 2
        )
        keep = voiced & _loud(ld)
        errs.append(12 * np.log2(got[keep] / f[keep]))
    return np.concatenate(errs) if errs else np.zeros(0)


def audio_metrics(output: np.ndarray, clips: Clips) -> dict[str, float]:
    """MSS, loudness L1 (dB, loud frames) and re-tracked f0 errors of ``output`` against clips."""
    mss = float(
        multiscale_spectral_loss(torch.as_tensor(output, dtype=torch.float64),
                                 torch.as_tensor(clips.audio, dtype=torch.float64))
    )  # fmt: skip
    ld_out = loudness_of(output)
    loud = _loud(clips.loudness)
    err = np.abs(pitch_errors(output, clips.f0, clips.loudness))
    return {
        "mss": mss,
        "loudness_l1_db": float(np.abs(ld_out - clips.loudness)[loud].mean()),
        "f0_l1_semitones": float(err.mean()) if err.size else float("nan"),
        "f0_outlier_ratio": float((err > 1.0).mean()) if err.size else float("nan"),
        "voiced_frames": float(err.size),
    }


def evaluate_model(model: Any, clips: Clips, *, seed: int = 0) -> dict[str, float]:
    """Resynthesise held-out clips from their own f0 and loudness and score the result."""
    return audio_metrics(render(model, clips.f0, clips.loudness, seed=seed), clips)


def transfer_metrics(
    model: Any, source: Clips, *, octave: int = 0, seed: int = 0
) -> dict[str, float]:
    """Raw pitch accuracy (within 50 cents) of ``source``'s controls played by ``model``."""
    f0 = source.f0 * 2.0**octave
    out = render(model, f0, source.loudness, seed=seed)
    err = np.abs(pitch_errors(out, f0, source.loudness))
    return {
        "raw_pitch_accuracy_50c": float((err < 0.5).mean()) if err.size else 0.0,
        "f0_l1_semitones": float(err.mean()) if err.size else float("nan"),
    }
