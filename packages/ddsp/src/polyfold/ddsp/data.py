"""Clips with their controls: the fluid-solo set, a folder of a user's wavs, and the file format.

A :class:`Clips` holds mono audio (N, T) at 16 kHz with per-frame f0 (Hz) and A-weighted
loudness (dB), ``F = T / 64`` frames. Saved as ``.npz`` (arrays) beside a ``.json`` card.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from polyfold.core.errors import InputError, reading
from polyfold.ddsp.fluid import FLUID_SOLO, HOP, INSTRUMENTS, SAMPLE_RATE, render_clip
from polyfold.ddsp.loudness import a_weighted_loudness

__all__ = [
    "Clips",
    "f0_for",
    "fluid_solo",
    "load_f0_file",
    "load_wav_folder",
    "loudness_of",
    "read_mono",
]

TEST_SEED_OFFSET = 100_000


def loudness_of(audio: np.ndarray) -> np.ndarray:
    """A-weighted loudness (dB) per frame of 16 kHz audio (..., T)."""
    return a_weighted_loudness(
        torch.as_tensor(audio, dtype=torch.float64), SAMPLE_RATE, HOP
    ).numpy()


@dataclass
class Clips(torch.utils.data.Dataset[dict[str, torch.Tensor]]):
    """Audio clips (N, T) with f0 and loudness (N, F); a map-style dataset of dicts."""

    audio: np.ndarray
    f0: np.ndarray
    loudness: np.ndarray
    card: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n, t = self.audio.shape
        if t % HOP or self.f0.shape != (n, t // HOP) or self.loudness.shape != self.f0.shape:
            raise InputError(
                f"clips: expected audio (N, 64 F) with f0 and loudness (N, F), got "
                f"{self.audio.shape}, {self.f0.shape}, {self.loudness.shape}"
            )

    def __len__(self) -> int:
        return len(self.audio)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {
            "audio": torch.as_tensor(self.audio[i], dtype=torch.float32),
            "f0": torch.as_tensor(self.f0[i], dtype=torch.float32),
            "loudness": torch.as_tensor(self.loudness[i], dtype=torch.float32),
        }

    def save(self, path: str | Path) -> Path:
        """Write ``path`` (.npz) and its card (.json)."""
        from polyfold.core.outputs import write_bytes, write_text

        path = Path(path)
        import io

        buf = io.BytesIO()
        np.savez(buf, audio=self.audio, f0=self.f0, loudness=self.loudness)
        write_bytes(path, buf.getvalue())
        write_text(path.with_suffix(".json"), json.dumps(self.card, indent=2) + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path) -> Clips:
        """Read clips written by :meth:`save` (no pickles)."""
        path = Path(path)
        with reading(path, "--data"):
            with np.load(path, allow_pickle=False) as z:
                missing = {"audio", "f0", "loudness"} - set(z.files)
                if missing:
                    raise InputError(
                        f"--data {path}: not a clips file from `prepare` "
                        f"(missing arrays {sorted(missing)})"
                    )
                arrays = {k: z[k] for k in ("audio", "f0", "loudness")}
            card_path = path.with_suffix(".json")
            card = json.loads(card_path.read_text()) if card_path.exists() else {}
        return cls(**arrays, card=card)


def fluid_solo(
    instrument: str,
    split: str = "train",
    n_clips: int = 64,
    seconds: float = 4.0,
    progress: Callable[[int], None] | None = None,
) -> Clips:
    """Render ``n_clips`` fluid-solo clips of one instrument (train seeds 0.., test seeds
    100000..); ``progress(1)`` after each clip."""
    if split not in ("train", "test"):
        raise InputError(f"split: expected 'train' or 'test', got {split!r}")
    if instrument not in INSTRUMENTS:
        raise InputError(f"instrument: expected one of {sorted(INSTRUMENTS)}, got {instrument!r}")
    offset = 0 if split == "train" else TEST_SEED_OFFSET
    audio, f0 = [], []
    for i in range(n_clips):
        a, f, _ = render_clip(instrument, offset + i, seconds)
        audio.append(a)
        f0.append(f)
        if progress is not None:
            progress(1)
    a_arr = np.stack(audio).astype(np.float32)
    card = {"id": FLUID_SOLO, "instrument": instrument, "split": split, "clips": n_clips,
            "seconds": seconds, "seed_offset": offset}  # fmt: skip
    return Clips(
        a_arr, np.stack(f0).astype(np.float32), loudness_of(a_arr).astype(np.float32), card
    )


def read_mono(path: str | Path) -> np.ndarray:
    """A mono audio file as float32 at 16 kHz (:func:`polyfold.core.audio.read_audio`)."""
    from polyfold.core.audio import read_audio

    return read_audio(path, sample_rate=SAMPLE_RATE)[0]


def load_f0_file(path: Path, n_frames: int) -> np.ndarray:
    """An f0 file (.npy, Hz): ``n_frames`` finite positive values, one per 64 samples."""
    with reading(path, "f0 file"):
        f0 = np.load(path, allow_pickle=False)
    if f0.ndim != 1 or len(f0) != n_frames:
        raise InputError(
            f"f0 file {path}: expected {n_frames} values (one per 64 samples at 16 kHz), "
            f"got shape {f0.shape}"
        )
    if not np.all(np.isfinite(f0)) or np.any(f0 <= 0):
        raise InputError(f"f0 file {path}: expected finite frequencies > 0 Hz")
    return np.asarray(f0, dtype=np.float32)


def f0_for(path: Path, audio: np.ndarray, f0_file: Path | None = None) -> np.ndarray:
    """The f0 of ``audio`` read from ``path``: ``f0_file``, else ``<stem>.f0.npy`` beside it
    when present, else tracked with pYIN."""
    n = len(audio) // HOP
    f0_file = f0_file or path.with_name(path.stem + ".f0.npy")
    if f0_file.exists() or f0_file != path.with_name(path.stem + ".f0.npy"):
        return load_f0_file(f0_file, n)
    from polyfold.ddsp.pitch import track_f0

    return track_f0(audio, SAMPLE_RATE, HOP)[0].astype(np.float32)


def load_wav_folder(folder: str | Path, seconds: float = 4.0) -> Clips:
    """A user's recordings: every ``*.wav`` in ``folder`` (mono, any rate, resampled to 16 kHz)
    cut into ``seconds`` clips; f0 from ``<stem>.f0.npy`` when present, else pYIN."""
    folder = Path(folder)
    files = sorted(folder.glob("*.wav")) if folder.is_dir() else []
    if not files:
        raise InputError(f"--data {folder}: expected a folder holding .wav files")
    clip = round(seconds * SAMPLE_RATE / HOP) * HOP
    audio, f0 = [], []
    for path in files:
        x = read_mono(path)
        x = x[: len(x) // HOP * HOP]
        f = f0_for(path, x)
        for start in range(0, len(x) - clip + 1, clip):
            audio.append(x[start : start + clip])
            f0.append(f[start // HOP : (start + clip) // HOP])
    if not audio:
        raise InputError(f"--data {folder}: no recording is at least {seconds} s long")
    a_arr = np.stack(audio).astype(np.float32)
    card = {"id": f"folder:{folder.name}", "files": len(files), "seconds": seconds}
    return Clips(a_arr, np.stack(f0), loudness_of(a_arr).astype(np.float32), card)
