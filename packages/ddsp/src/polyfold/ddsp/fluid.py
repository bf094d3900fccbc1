"""fluid-solo: solo instrument phrases rendered from seeded random melodies, with exact f0.

Each clip is a legato melody (notes of 0.25 to 1 s in the instrument's range) with delayed
vibrato (MIDI pitch bend, 4.5 to 6.5 Hz, 0.1 to 0.35 semitone deep) and an expression swell
(CC 11) per note, played by ``tinysoundfont`` with the General MIDI soundfont TimGM6mb that ships
in ``pretty_midi``. Controls change once per hop (4 ms at 16 kHz), so the f0 of every frame is
known exactly: the held note plus the bend, in Hz. The same seed renders the same clip.
"""

from __future__ import annotations

import functools
import math
import os
from dataclasses import dataclass

import numpy as np

from polyfold.core.errors import InputError

__all__ = [
    "FLUID_SOLO",
    "HOP",
    "INSTRUMENTS",
    "SAMPLE_RATE",
    "Instrument",
    "render_clip",
    "soundfont_path",
]

SAMPLE_RATE = 16000
HOP = 64  # 250 frames per second
FLUID_SOLO = "fluid-solo"
_BEND_RANGE = 2.0  # semitones either way
_GAIN_DB = 12.0  # TimGM6mb solo presets peak near 0.1 at 0 dB


@dataclass(frozen=True)
class Instrument:
    """A General MIDI program and its melodic range (MIDI notes, inclusive)."""

    program: int
    low: int
    high: int


INSTRUMENTS: dict[str, Instrument] = {
    "violin": Instrument(40, 57, 88),
    "cello": Instrument(42, 38, 69),
    "trumpet": Instrument(56, 55, 82),
    "flute": Instrument(73, 62, 93),
}


def soundfont_path() -> str:
    """The TimGM6mb.sf2 inside the installed ``pretty_midi``."""
    import pretty_midi

    path = os.path.join(os.path.dirname(pretty_midi.__file__), "TimGM6mb.sf2")
    if not os.path.exists(path):
        raise InputError(f"soundfont: {path} not found (reinstall pretty_midi, which ships it)")
    return path


@functools.cache
def _soundfont_bytes() -> bytes:
    with open(soundfont_path(), "rb") as fh:
        return fh.read()


def _melody(
    rng: np.random.Generator, inst: Instrument, n_frames: int
) -> list[tuple[int, int, int]]:
    """(start frame, end frame, note) of a stepwise random melody filling ``n_frames``."""
    notes: list[tuple[int, int, int]] = []
    note = int(rng.integers(inst.low + 4, inst.high - 4))
    start = int(rng.integers(0, 25))  # up to 0.1 s of silence first
    while start < n_frames:
        length = int(rng.integers(62, 250))
        notes.append((start, min(n_frames, start + length), note))
        step = int(rng.choice([-5, -4, -3, -2, -1, 1, 2, 3, 4, 5, 7, -7]))
        note = int(np.clip(note + step, inst.low, inst.high))
        start += length + int(rng.integers(0, 2)) * int(rng.integers(5, 30))  # some short gaps
    return notes


def render_clip(
    instrument: str, seed: int, seconds: float = 4.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Render one phrase: (audio (T,) float32 at 16 kHz, f0 (F,) Hz, voiced (F,) bool).

    ``F = T / 64``; frame ``i`` holds the control values of samples ``64 i .. 64 i + 63``.
    During rests and release tails the f0 of the last note is kept (and ``voiced`` is False).
    """
    import tinysoundfont

    if instrument not in INSTRUMENTS:
        raise InputError(f"instrument: expected one of {sorted(INSTRUMENTS)}, got {instrument!r}")
    inst = INSTRUMENTS[instrument]
    n_frames = round(seconds * SAMPLE_RATE / HOP)
    rng = np.random.default_rng([seed, inst.program])
    synth = tinysoundfont.Synth(gain=_GAIN_DB, samplerate=SAMPLE_RATE)
    sfid = synth.sfload(_soundfont_bytes())
    synth.program_select(0, sfid, 0, inst.program)
    synth.pitchbend_range(0, _BEND_RANGE)
    notes = _melody(rng, inst, n_frames)
    pitch = np.zeros(n_frames)
    voiced = np.zeros(n_frames, dtype=bool)
    bends = np.zeros(n_frames)
    expression = np.full(n_frames, 100.0)
    velocity = {}
    for start, end, note in notes:
        n = end - start
        t = np.arange(n) / (SAMPLE_RATE / HOP)
        rate, depth = rng.uniform(4.5, 6.5), rng.uniform(0.1, 0.35)
        onset = np.clip((t - 0.15) / 0.2, 0, 1)  # vibrato fades in after 150 ms
        bends[start:end] = depth * onset * np.sin(2 * math.pi * rate * t + rng.uniform(0, 6.3))
        swell = rng.uniform(-25, 25)
        expression[start:end] = np.clip(
            90 + swell * np.sin(math.pi * t / t[-1].clip(1e-3)), 40, 127
        )
        pitch[start:end] = note
        voiced[start:end] = True
        velocity[start] = int(rng.integers(60, 110))
    last = notes[0][2]
    for i in range(n_frames):  # hold the last note's pitch through rests
        if voiced[i]:
            last = pitch[i]
        pitch[i] = last
    starts = {s: (e, n) for s, e, n in notes}
    ends: dict[int, list[int]] = {}
    for _s, e, n in notes:
        ends.setdefault(e, []).append(n)
    out = np.empty((n_frames, HOP), dtype=np.float32)
    for i in range(n_frames):
        for n in ends.get(i, []):
            synth.noteoff(0, n)
        synth.pitchbend(0, round(8192 + bends[i] / _BEND_RANGE * 8191))
        synth.control_change(0, 11, int(expression[i]))
        if i in starts:
            synth.noteon(0, starts[i][1], velocity[i])
        out[i] = np.frombuffer(synth.generate(HOP), dtype=np.float32).reshape(HOP, 2).mean(1)
    exact_bend = (np.round(8192 + bends / _BEND_RANGE * 8191) - 8192) / 8191 * _BEND_RANGE
    f0 = 440.0 * 2 ** ((pitch + exact_bend - 69) / 12)
    return out.reshape(-1), f0, voiced
