from pathlib import Path

import numpy as np
import pytest

from polyfold.core.audio import write_audio

SR = 22050


def tone(seconds: float, freq: float = 220.0, sr: int = SR) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (0.3 * np.sin(2 * np.pi * freq * t) * (1 + 0.2 * np.sin(2 * np.pi * 3 * t))).astype(
        np.float32
    )


@pytest.fixture
def ljspeech(tmp_path: Path) -> Path:
    """A tiny LJSpeech-format folder: three utterances of synthetic audio."""
    root = tmp_path / "lj"
    (root / "wavs").mkdir(parents=True)
    rows = [
        "LJ001-0001|Printing, in the only sense.|Printing, in the only sense.",
        "LJ001-0002|In being comparatively modern.|In being comparatively modern.",
        "LJ001-0003|For although the Chinese took.|For although the Chinese took.",
    ]
    for k, row in enumerate(rows):
        write_audio(
            root / "wavs" / f"{row.split('|')[0]}.wav", tone(0.6 + 0.1 * k, 200 + 40 * k), SR
        )
    (root / "metadata.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return root
