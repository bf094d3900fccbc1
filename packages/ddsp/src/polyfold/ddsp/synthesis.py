"""Running a trained model: resynthesis, timbre transfer and dereverberation of recordings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from polyfold.core.errors import InputError
from polyfold.ddsp.data import f0_for, loudness_of, read_mono
from polyfold.ddsp.fluid import HOP, SAMPLE_RATE

__all__ = ["render", "render_file", "transfer_controls", "write_wav"]


def _check_octave(octave: int) -> None:
    if not isinstance(octave, int) or abs(octave) > 4:
        raise InputError(f"--octave: expected an integer in [-4, 4], got {octave!r}")


def transfer_controls(
    f0: np.ndarray, loudness: np.ndarray, *, octave: int = 0, loudness_db: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """The source's controls shifted: f0 by ``octave`` octaves, loudness by ``loudness_db``."""
    _check_octave(octave)
    return f0 * 2.0**octave, loudness + loudness_db


@torch.no_grad()
def render(
    model: torch.nn.Module,
    f0: np.ndarray,
    loudness: np.ndarray,
    *,
    reverb: bool = True,
    seed: int = 0,
) -> np.ndarray:
    """Audio (N, F * hop) from controls (N, F) or (F,); same seed, same audio."""
    f = torch.as_tensor(np.atleast_2d(f0), dtype=torch.float32)
    ld = torch.as_tensor(np.atleast_2d(loudness), dtype=torch.float32)
    g = torch.Generator().manual_seed(seed)
    out: np.ndarray = model(f, ld, generator=g, reverb=reverb).numpy()
    return out if np.ndim(f0) == 2 else out[0]


def write_wav(path: str | Path, audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> Path:
    """A mono wav, written atomically (:func:`polyfold.core.audio.write_audio`)."""
    from polyfold.core.audio import write_audio

    return write_audio(path, audio, sample_rate)


def render_file(
    source: Path,
    out: Path,
    *,
    model: str | Path = "violin",
    f0_file: Path | None = None,
    octave: int = 0,
    loudness_db: float = 0.0,
    reverb: bool = True,
    seed: int = 0,
) -> Path:
    """Resynthesise (or, through another instrument's model, transfer) a recording to ``out``."""
    from polyfold.ddsp.shipped import load_autoencoder

    _check_octave(octave)  # options and the model before the work
    loaded = load_autoencoder(model)
    audio = read_mono(source)
    audio = audio[: len(audio) // HOP * HOP]
    if len(audio) < HOP:
        raise InputError(f"audio {source}: expected at least {HOP} samples at 16 kHz")
    f0, ld = transfer_controls(
        f0_for(source, audio, f0_file), loudness_of(audio), octave=octave, loudness_db=loudness_db
    )
    return write_wav(out, render(loaded.model, f0, ld, reverb=reverb, seed=seed))
