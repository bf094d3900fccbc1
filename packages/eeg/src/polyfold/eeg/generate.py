"""Generating labelled artifact windows with a trained model file, and writing them.

:func:`load_synthesizer` reads a model file (core's :func:`~polyfold.core.export.load_model`: the
weights, the config, and the card with the preprocessing state) or one of the shipped models by
name (:data:`SHIPPED`); :func:`synthesize` samples ``n`` windows per asked class and maps them back
to microvolts as a :class:`~polyfold.eeg.data.Windows`; :func:`write_edf` writes windows as one
EDF+ file (the windows one after another, each marked by an annotation naming its class).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch

from polyfold.core.errors import InputError, check_int
from polyfold.eeg.data import Windows, class_index
from polyfold.eeg.preprocess import Preprocessing

__all__ = ["SHIPPED", "Synthesizer", "load_synthesizer", "synthesize", "write_edf"]

#: the models shipped in ``polyfold/eeg/weights`` (name -> file stem)
SHIPPED = {"wgan": "wgan", "ddpm": "ddpm"}


def shipped_path(name: str) -> Path:
    """The stem of a shipped model file."""
    return Path(str(resources.files("polyfold.eeg").joinpath("weights", SHIPPED[name])))


@dataclass(frozen=True)
class Synthesizer:
    """A loaded model with what it needs to produce microvolt windows (``path``: its file
    stem)."""

    model: Any
    kind: str
    preprocessing: Preprocessing
    classes: tuple[str, ...]
    channels: tuple[str, ...]
    sfreq: float
    card: dict[str, Any]
    path: Path


def load_synthesizer(model: str | Path | None = None) -> Synthesizer:
    """A model file (``X``, ``X.json`` or ``X.safetensors``) or a shipped name (``wgan``,
    ``ddpm``; default ``ddpm``)."""
    import polyfold.eeg.diffusion
    import polyfold.eeg.wgan  # noqa: F401  (register the model classes)
    from polyfold.core.export import load_model, model_files

    spec = "ddpm" if model is None else model
    path = shipped_path(str(spec)) if str(spec) in SHIPPED else Path(spec)
    weights, card_path = model_files(path)
    if not card_path.is_file():
        raise InputError(
            f"--model {spec}: no model file {card_path} (expected what `train` writes, "
            f"or one of {', '.join(SHIPPED)})"
        )
    loaded = load_model(path)
    card = loaded.card
    try:
        prep = Preprocessing.from_state_dict(card["preprocessing"])
        kind = str(card["kind"])
        classes = tuple(str(c) for c in card["classes"])
        channels = tuple(str(c) for c in card["channels"])
        sfreq = float(card["sfreq"])
    except (KeyError, TypeError, ValueError) as err:
        raise InputError(f"{card_path}: not a polyfold-eeg model card (missing {err})") from None
    stem = weights.with_suffix("")
    return Synthesizer(loaded.model, kind, prep, classes, channels, sfreq, card, stem)


def synthesize(
    synth: Synthesizer,
    classes: Sequence[str],
    n: int,
    *,
    seed: int = 0,
    batch: int = 64,
    callback: Callable[[int], None] | None = None,
    **sample_options: Any,
) -> Windows:
    """``n`` windows of each class in ``classes`` (microvolts; subject -1). ``callback(k)`` is
    called after each batch of ``k`` windows; ``sample_options`` go to the diffusion sampler
    (``sampler``, ``steps``, ``guidance``)."""
    check_int("n", n, 1)
    index = [class_index(c, synth.classes) for c in classes]
    if not index:
        raise InputError("class: expected at least one class")
    if synth.kind != "ddpm" and sample_options:
        raise InputError(
            f"{', '.join(sorted(sample_options))}: only the diffusion model takes sampler options"
        )
    g = torch.Generator().manual_seed(seed)
    y_all = torch.tensor(np.repeat(index, n), dtype=torch.long)
    parts = []
    for start in range(0, len(y_all), batch):
        y = y_all[start : start + batch]
        parts.append(synth.model.sample(y, generator=g, **sample_options))
        if callback is not None:
            callback(len(y))
    x = synth.preprocessing.from_model(torch.cat(parts))
    card = {
        "id": f"synthetic:{synth.kind}",
        "synthetic": True,
        "model": str(synth.path),
        "kind": synth.kind,
        "seed": seed,
        **{k: v for k, v in sample_options.items() if v is not None},
    }
    return Windows(
        x,
        y_all.numpy(),
        np.full(len(y_all), -1),
        synth.sfreq,
        synth.channels,
        synth.classes,
        card,
    )


def write_edf(path: Path, w: Windows) -> Path:
    """Windows one after another in one EDF+ file (volts, as MNE writes), each annotated with
    its class at its onset."""
    import mne

    info = mne.create_info(list(w.channels), w.sfreq, ch_types="eeg")
    data = np.concatenate(list(w.x), axis=1).astype(np.float64) * 1e-6
    raw = mne.io.RawArray(data, info, verbose="error")
    length = w.n_times / w.sfreq
    raw.set_annotations(
        mne.Annotations(
            onset=np.arange(len(w)) * length,
            duration=np.full(len(w), length),
            description=[w.classes[k] for k in w.y],
        )
    )
    tmp = path.with_name(f".tmp-{path.name}")
    try:
        mne.export.export_raw(tmp, raw, fmt="edf", overwrite=True, verbose="error")
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
