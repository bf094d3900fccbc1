"""The shipped speech vocoder on a held-out mel (the quickstart's vocoder section).

``weights/slt_heldout_mel.npy`` is the log-mel (core's ``MelSettings()``: 80 mels, 22,050 Hz,
hop 256) of the first test line of the flite-slt corpus, spoken by flite's slt voice, a line the
shipped ``slt`` vocoder never trained on (written as in ``weights/MODEL_CARD.md``).
"""

from __future__ import annotations

import time
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from polyfold.core.errors import InputError

__all__ = ["HELDOUT_MEL", "heldout_mel", "vocode_heldout"]

HELDOUT_MEL = "slt_heldout_mel.npy"


def heldout_mel() -> np.ndarray:
    """The shipped held-out mel (80, frames), float32."""
    path = Path(str(resources.files("polyfold.ddsp").joinpath("weights", HELDOUT_MEL)))
    if not path.is_file():
        raise InputError(f"{path}: the held-out mel is missing from this install")
    mel: np.ndarray = np.load(path, allow_pickle=False).astype(np.float32)
    return mel


def vocode_heldout(model: str | Path = "slt") -> tuple[np.ndarray, dict[str, float]]:
    """(waveform, figures): the held-out mel through the vocoder ``model`` on one CPU thread;
    ``rtf_1thread`` (CPU seconds per second of audio) and ``mel_l1`` (mean absolute difference of
    the output's log-mel and the input's), with the audio's length and sample rate."""
    from polyfold.core.audio import log_mel
    from polyfold.ddsp.shipped import load_vocoder
    from polyfold.ddsp.vocoder import vocode

    vocoder = load_vocoder(model).model
    mel = heldout_mel()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        t0 = time.process_time()
        audio = vocode(vocoder, mel)
        seconds = time.process_time() - t0
    finally:
        torch.set_num_threads(threads)
    settings = vocoder.config.mel_settings()
    rebuilt = log_mel(torch.from_numpy(audio), settings).numpy()
    n = min(rebuilt.shape[-1], mel.shape[-1])
    figures = {
        "rtf_1thread": seconds / (len(audio) / settings.sample_rate),
        "mel_l1": float(np.abs(rebuilt[:, :n] - mel[:, :n]).mean()),
        "seconds_of_audio": len(audio) / settings.sample_rate,
        "sample_rate": settings.sample_rate,
    }
    return audio, figures
