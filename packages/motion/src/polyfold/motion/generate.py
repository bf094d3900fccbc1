"""Text to motion with a trained EMDM, DDPM or MMM model (default: the shipped EMDM).

    from polyfold.motion.generate import generate_motion, write_motions
    feats = generate_motion(["a person cartwheels then walks"], seconds=2.4)
    write_motions("runs/gen", ["a person cartwheels then walks"], feats)

The shipped model was trained on 2.4 s windows (48 frames at 20 fps); longer requests run (its
frame positions are sinusoidal) but leave what it has seen.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from polyfold.core.errors import InputError
from polyfold.motion.emdm import MotionModel, load_motion_model
from polyfold.motion.mmm import MMM, load_mmm

__all__ = [
    "FPS",
    "MAX_SECONDS",
    "generate_free_length",
    "generate_motion",
    "resolve_model",
    "write_features",
    "write_motions",
]

FPS = 20
MAX_SECONDS = 20.0


def resolve_model(model: str | Path | MotionModel | MMM | None = None) -> MotionModel | MMM:
    """A loaded model: ``None``/``"emdm"``/``"ddpm"``/``"mmdm"``/``"mogo"``/``"t2m-gpt"``/
    ``"mmm"``/``"mmm_plain"``/``"bipo"`` for a shipped one, else a model file."""
    from polyfold.motion.bipo_generate import BiPOModel, is_bipo_file, load_bipo
    from polyfold.motion.mogo_generate import (
        TOKEN_KINDS,
        TokenMotionModel,
        is_token_model_file,
        load_token_model,
    )

    if isinstance(model, MotionModel | MMM | TokenMotionModel | BiPOModel):
        return model
    from polyfold.core.export import read_card
    from polyfold.motion.shipped import SHIPPED, shipped_path

    if str(model) in TOKEN_KINDS:
        return load_token_model(shipped_path(str(model)))  # type: ignore[return-value]
    if model is not None and is_token_model_file(model):
        return load_token_model(model)  # type: ignore[return-value]
    if str(model) == "bipo":
        return load_bipo(shipped_path("bipo"))  # type: ignore[return-value]
    if model is not None and is_bipo_file(model):
        return load_bipo(model)  # type: ignore[return-value]
    from polyfold.motion.mmdm import is_mmdm_file, load_mmdm

    if str(model) == "mmdm":
        return load_mmdm(shipped_path("mmdm"))
    if model is not None and is_mmdm_file(model):
        return load_mmdm(model)
    if model is None or str(model) in ("emdm", "ddpm", "mmm", "mmm_plain"):
        name = "emdm" if model is None else str(model)
        if name not in SHIPPED:
            raise InputError(f"--model {name}: no shipped {name} model; pass a model file")
        path = shipped_path(name)
        return load_mmm(path) if name.startswith("mmm") else load_motion_model(path)
    if read_card(model).get("card", {}).get("kind") == "mmm":
        return load_mmm(model)
    return load_motion_model(model)


def frames_for(seconds: float) -> int:
    """Frames at 20 fps for ``seconds`` in ``(0, MAX_SECONDS]``."""
    if not isinstance(seconds, int | float) or not np.isfinite(seconds) or seconds <= 0:
        raise InputError(f"--seconds: expected a positive number, got {seconds!r}")
    if seconds > MAX_SECONDS:
        raise InputError(f"--seconds: expected at most {MAX_SECONDS:g}, got {seconds!r}")
    return max(2, round(seconds * FPS))


def generate_motion(
    captions: Sequence[str],
    seconds: float = 2.4,
    *,
    model: str | Path | MotionModel | MMM | None = None,
    steps: int | None = None,
    seed: int = 0,
) -> np.ndarray:
    """Raw feature windows ``(N, frames, D)``, one per caption."""
    from polyfold.motion.text_encoder import encode_captions, load_text_encoder

    if isinstance(captions, str):
        captions = [captions]
    length = frames_for(seconds)
    m = resolve_model(model)
    if isinstance(m, MMM):
        return m.generate(list(captions), length, steps=steps, seed=seed)
    text = encode_captions(load_text_encoder(), list(captions))
    return m.sample(text, length, steps=steps, seed=seed)


def generate_free_length(
    captions: Sequence[str], *, model: str | Path | object = "bipo", seed: int = 0
) -> list[np.ndarray]:
    """Raw feature rows ``(frames_i, D)`` per caption, each as long as the model chose: BiPO
    ends a sequence with its end token, so no length is given."""
    from polyfold.motion.bipo_generate import BiPOModel
    from polyfold.motion.text_encoder import encode_captions, load_text_encoder

    m = resolve_model(model)  # type: ignore[arg-type]
    if not isinstance(m, BiPOModel):
        name = model if isinstance(model, str | Path) else getattr(m, "kind", type(m).__name__)
        raise InputError(
            f"--auto-length: only a BiPO model chooses its own length, got --model {name}"
        )
    if isinstance(captions, str):
        captions = [captions]
    feats, frames = m.generate_free(encode_captions(load_text_encoder(), list(captions)), seed=seed)
    return [f[: int(n)] for f, n in zip(feats, frames, strict=True)]


def _stem(i: int, caption: str) -> str:
    words = "".join(c if c.isalnum() else "_" for c in caption.lower()).split("_")
    return f"{i:02d}_" + "_".join(w for w in words if w)[:40]


def write_motions(
    out: str | Path, captions: Sequence[str], features: np.ndarray | Sequence[np.ndarray]
) -> list[Path]:
    """``<i>_<caption>.npy`` (joints) / ``.bvh`` per window (``(N, L, D)`` or one ``(L_i, D)``
    array each) and ``preview.svg`` / ``.gif`` in the existing folder ``out``; returns the
    written paths."""
    from polyfold.motion.export import motion_files
    from polyfold.motion.features import motion_from_features
    from polyfold.motion.render import write_gif, write_svg

    folder = Path(out)
    if len(captions) != len(features):
        raise InputError(
            f"captions: expected {len(features)} (one per window), got {len(captions)}"
        )
    written: list[Path] = []
    joints = []
    for i, (cap, f) in enumerate(zip(captions, features, strict=True)):
        motion = motion_from_features(f)
        joints.append(motion.joints())
        written += motion_files(folder, _stem(i, cap), motion)
    written.append(write_svg(folder / "preview.svg", joints, list(captions)))
    written.append(write_gif(folder / "preview.gif", joints, list(captions)))
    return written


def write_features(
    out: str | Path, captions: Sequence[str], features: np.ndarray | Sequence[np.ndarray]
) -> list[Path]:
    """``<i>_<caption>.features.npy`` (raw feature rows ``(L, D)``, float32) per window in the
    existing folder ``out``, next to :func:`write_motions`' files: the input ``edit`` takes."""
    import io

    from polyfold.core.outputs import write_bytes

    if len(captions) != len(features):
        raise InputError(
            f"captions: expected {len(features)} (one per window), got {len(captions)}"
        )
    written = []
    for i, (cap, f) in enumerate(zip(captions, features, strict=True)):
        buf = io.BytesIO()
        np.save(buf, np.asarray(f, dtype=np.float32))
        written.append(write_bytes(Path(out) / f"{_stem(i, cap)}.features.npy", buf.getvalue()))
    return written
