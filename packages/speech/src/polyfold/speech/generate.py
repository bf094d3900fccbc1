"""Loading acoustic models (shipped or from a file) and speaking lines to WAV files."""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources
from pathlib import Path

from polyfold.core.audio import write_audio
from polyfold.core.errors import InputError
from polyfold.core.export import load_model
from polyfold.speech.model import AcousticModel
from polyfold.speech.synthesis import synthesize
from polyfold.speech.vocoder import load_vocoder

__all__ = ["SHIPPED", "SHIPPED_TEACHER", "load_acoustic", "shipped_path", "speak_lines"]

SHIPPED = ("prodiff", "comospeech")
SHIPPED_TEACHER = "teacher"  # the EDM teacher both students were distilled from


def shipped_path(name: str) -> Path:
    """The model file of a shipped model (``prodiff``, ``comospeech`` or ``teacher``)."""
    if name not in (*SHIPPED, SHIPPED_TEACHER):
        raise InputError(
            f"model: expected one of {', '.join(SHIPPED)} or a model file, got {name!r}"
        )
    return Path(str(resources.files("polyfold.speech") / "weights" / f"{name}.safetensors"))


def load_acoustic(name_or_path: str) -> AcousticModel:
    """A shipped model by name, or the acoustic model in a model file (``X`` or
    ``X.safetensors`` with its ``X.json``)."""
    shipped = name_or_path in (*SHIPPED, SHIPPED_TEACHER)
    path = shipped_path(name_or_path) if shipped else Path(name_or_path)
    model = load_model(path).model
    if not isinstance(model, AcousticModel):
        raise InputError(
            f"model: {path} holds a {type(model).__name__}, not a speech acoustic model"
        )
    return model


def speak_lines(
    model: AcousticModel,
    lines: Sequence[str],
    targets: Sequence[Path],
    *,
    vocoder: str = "hifigan",
    steps: int | None = None,
    seed: int = 0,
    length_scale: float = 1.0,
) -> list[tuple[Path, float]]:
    """Synthesise each line and write it to its target WAV; ``(path, seconds)`` per line."""
    voc = load_vocoder(vocoder)
    out = []
    sr = 22050
    for k, (line, target) in enumerate(zip(lines, targets, strict=True)):
        try:
            result = synthesize(model, line, steps=steps, seed=seed + k, length_scale=length_scale)
        except InputError as err:
            raise InputError(f"line {k + 1}: {err}") if len(lines) > 1 else err from None
        wave = voc(result.mel[None])[0]
        write_audio(target, wave, sr)
        out.append((Path(target), wave.shape[-1] / sr))
    return out
