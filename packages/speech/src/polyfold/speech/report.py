"""Pieces of the speech quickstart's self-contained HTML report: audio players and mel images
carried inline as data URIs, so the report is one file."""

from __future__ import annotations

import base64
import html
import io
import struct
import zlib

import numpy as np
import torch

from polyfold.core.report import Report

__all__ = ["add_utterance", "mel_png", "wav_bytes"]


def mel_png(mel: torch.Tensor | np.ndarray, floor: float = -11.5, ceil: float = 2.0) -> bytes:
    """A grayscale PNG of a log-mel ``(n_mels, frames)``, low frequencies at the bottom."""
    m = mel.detach().cpu().numpy() if isinstance(mel, torch.Tensor) else np.asarray(mel)
    img = np.clip((m[::-1] - floor) / (ceil - floor), 0.0, 1.0)
    pixels = (255 * img).astype(np.uint8).repeat(2, axis=0)  # 2 px per mel bin
    h, w = pixels.shape
    raw = b"".join(b"\x00" + row.tobytes() for row in pixels)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )


def wav_bytes(wave: torch.Tensor | np.ndarray, sample_rate: int) -> bytes:
    """16-bit PCM WAV bytes of a mono signal in [-1, 1]."""
    import soundfile as sf

    x = wave.detach().cpu().numpy() if isinstance(wave, torch.Tensor) else np.asarray(wave)
    buf = io.BytesIO()
    sf.write(buf, np.clip(x, -1, 1).astype(np.float32), sample_rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def add_utterance(
    report: Report, label: str, wave: torch.Tensor | np.ndarray, mel: torch.Tensor, sample_rate: int
) -> None:
    """A labelled audio player and mel image."""
    audio = base64.b64encode(wav_bytes(wave, sample_rate)).decode("ascii")
    image = base64.b64encode(mel_png(mel)).decode("ascii")
    report.raw(
        f"<figure><figcaption>{html.escape(label)}</figcaption>"
        f'<audio controls src="data:audio/wav;base64,{audio}"></audio><br>'
        f'<img src="data:image/png;base64,{image}" alt="mel of {html.escape(label)}"></figure>'
    )
