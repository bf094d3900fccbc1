"""Pieces of the speech quickstart's self-contained HTML report: audio players and mel images
carried inline as data URIs, so the report is one file."""

from __future__ import annotations

import numpy as np
import torch

from polyfold.core.audio import wav_bytes
from polyfold.core.report import Report, png_bytes

__all__ = ["add_utterance", "mel_png"]


def mel_png(mel: torch.Tensor | np.ndarray, floor: float = -11.5, ceil: float = 2.0) -> bytes:
    """A grayscale PNG of a log-mel ``(n_mels, frames)``, low frequencies at the bottom."""
    m = mel.detach().cpu().numpy() if isinstance(mel, torch.Tensor) else np.asarray(mel)
    img = np.clip((m[::-1] - floor) / (ceil - floor), 0.0, 1.0)
    pixels = (255 * img).astype(np.uint8).repeat(2, axis=0)  # 2 px per mel bin
    return png_bytes(pixels)


def add_utterance(
    report: Report, label: str, wave: torch.Tensor | np.ndarray, mel: torch.Tensor, sample_rate: int
) -> None:
    """A labelled audio player and mel image."""
    report.media(label, wav=wav_bytes(wave, sample_rate, what=label), png=mel_png(mel))
