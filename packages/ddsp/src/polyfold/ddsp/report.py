"""Report pieces for audio: embedded players and spectrogram images (self-contained HTML)."""

from __future__ import annotations

import base64
import html
import io
import struct
import zlib

import numpy as np

from polyfold.core.report import Report
from polyfold.ddsp.fluid import SAMPLE_RATE

__all__ = ["add_audio", "spectrogram_png", "wav_bytes"]


def wav_bytes(audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> bytes:
    """16-bit PCM wav bytes of mono audio."""
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, np.clip(audio, -1, 1), sample_rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def _png(rgb: np.ndarray) -> bytes:
    """A minimal PNG encoder for an (H, W, 3) uint8 image."""
    h, w, _ = rgb.shape
    raw = b"".join(b"\x00" + rgb[i].tobytes() for i in range(h))

    def chunk(tag: bytes, data: bytes) -> bytes:
        body = tag + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )


def spectrogram_png(
    audio: np.ndarray, n_fft: int = 512, hop: int = 128, range_db: float = 80.0
) -> bytes:
    """A log-magnitude spectrogram (low frequencies at the bottom) as PNG bytes."""
    x = np.asarray(audio, dtype=np.float64)
    frames = np.lib.stride_tricks.sliding_window_view(np.pad(x, n_fft // 2), n_fft)[::hop]
    mag = np.abs(np.fft.rfft(frames * np.hanning(n_fft), axis=-1)).T[::-1]
    db = 20 * np.log10(np.maximum(mag, 1e-8))
    v = np.clip((db - db.max() + range_db) / range_db, 0, 1)
    rgb = np.stack([v**0.6, v**1.5, 0.35 * (1 - v) + v**4], -1)  # dark blue -> orange -> white
    return _png((rgb * 255).astype(np.uint8))


def add_audio(report: Report, title: str, audio: np.ndarray) -> None:
    """A labelled player and the spectrogram of ``audio``."""
    wav = base64.b64encode(wav_bytes(audio)).decode()
    png = base64.b64encode(spectrogram_png(audio)).decode()
    report.raw(
        f"<figure><figcaption>{html.escape(title)}</figcaption>"
        f'<audio controls src="data:audio/wav;base64,{wav}"></audio><br>'
        f'<img src="data:image/png;base64,{png}" alt="spectrogram of {html.escape(title)}">'
        "</figure>"
    )
