"""Training the autoencoder on core's Trainer: random frame-aligned crops, the multi-scale
spectral loss between the resynthesis and the clip."""

from __future__ import annotations

import math
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from polyfold.core.errors import InputError, check_int
from polyfold.core.export import save_model
from polyfold.core.progress import checkpoint_step, saved_model_config
from polyfold.core.train import Trainer, load_weights
from polyfold.ddsp.data import Clips
from polyfold.ddsp.fluid import SAMPLE_RATE
from polyfold.ddsp.loudness import RANGE_DB
from polyfold.ddsp.loudness_loss import loudness_l1
from polyfold.ddsp.model import DDSPAutoencoder, DDSPConfig
from polyfold.ddsp.spectral import multiscale_spectral_loss

__all__ = ["LOUDNESS_WEIGHT", "crop_loss", "fit_autoencoder", "loudness_stats"]

#: the loudness L1 (dB) beside the spectral loss in training (:func:`crop_loss`)
LOUDNESS_WEIGHT = 0.3


def loudness_stats(clips: Clips) -> tuple[float, float]:
    """Mean and standard deviation (dB) of the clips' loudness over the frames above the floor
    (silence, at -120 dB, left out): the decoder's input standardisation."""
    ld = np.asarray(clips.loudness, dtype=np.float64)
    sounding = ld[ld > -RANGE_DB + 1e-3]
    if sounding.size < 2:
        raise InputError("clips: expected frames above the loudness floor (the clips are silent)")
    return float(sounding.mean()), float(max(sounding.std(), 1.0))


def crop_loss(
    crop_frames: int, loudness_weight: float = 0.0, sample_rate: int = SAMPLE_RATE
) -> Callable[[Any, dict[str, torch.Tensor], torch.Generator], torch.Tensor]:
    """``loss_fn(model, batch, generator)``: MSS of the model's resynthesis of one random crop
    of ``crop_frames`` frames (the same offset for the batch, drawn from ``generator``), plus
    ``loudness_weight`` times the loudness L1 in dB (:func:`~polyfold.ddsp.loudness_loss.
    loudness_l1`)."""

    def loss_fn(model: Any, batch: dict[str, torch.Tensor], g: torch.Generator) -> torch.Tensor:
        f0, ld, audio = batch["f0"], batch["loudness"], batch["audio"]
        n = f0.shape[1]
        hop = audio.shape[1] // n
        c = min(crop_frames, n)
        start = int(torch.randint(0, n - c + 1, (1,), generator=g, device=g.device).item())
        out = model(f0[:, start : start + c], ld[:, start : start + c], generator=g)
        target = audio[:, start * hop : (start + c) * hop]
        loss = multiscale_spectral_loss(out, target)
        if loudness_weight:
            loss = loss + loudness_weight * loudness_l1(out, target, sample_rate)
        return loss

    return loss_fn


def fit_autoencoder(
    clips: Clips,
    out: Path,
    *,
    config: DDSPConfig | None = None,
    steps: int = 1000,
    batch_size: int = 8,
    lr: float = 3e-3,
    crop_seconds: float = 1.0,
    loudness_weight: float = LOUDNESS_WEIGHT,
    seed: int = 0,
    resume: bool = False,
    checkpoint_every: int | None = None,
    progress: Callable[[int, float, float], None] | None = None,
    command: str | None = None,
) -> Path:
    """Train on ``clips`` in ``out/run``; write ``out/model`` (EMA weights) and return it.

    Without ``config``: the run's own on ``resume``, else :class:`DDSPConfig` defaults with the
    clips' :func:`loudness_stats`."""
    check_int("steps", steps, 1)
    check_int("batch_size", batch_size, 1)
    if not (math.isfinite(loudness_weight) and loudness_weight >= 0):
        raise InputError(f"loudness_weight: expected a number >= 0, got {loudness_weight}")
    if not 0 < crop_seconds <= 60:
        raise InputError(f"crop_seconds: expected a number in (0, 60], got {crop_seconds}")
    if config is None and resume and checkpoint_step(out / "run") is not None:
        config = DDSPConfig.from_dict(saved_model_config(out / "run"))
    if config is None:
        mean, std = loudness_stats(clips)
        config = DDSPConfig(loudness_mean=round(mean, 3), loudness_std=round(std, 3))
    cfg = config
    torch.manual_seed(seed)
    model = DDSPAutoencoder(cfg)
    crop = max(1, round(crop_seconds * cfg.sample_rate / cfg.hop))
    data_card = str(clips.card.get("id", "clips"))
    loss_fn = crop_loss(crop, loudness_weight, cfg.sample_rate)
    trainer = Trainer(
        model, loss_fn, clips, out_dir=out / "run", model_config=cfg.__dict__,
        data_card=data_card, max_steps=steps, batch_size=min(batch_size, len(clips)), lr=lr,
        warmup_steps=min(100, steps // 10), min_lr_ratio=0.1, ema_decay=0.99, grad_clip=2.0,
        checkpoint_every=checkpoint_every or max(1, steps // 5), keep_last=2, seed=seed,
        quiet=progress is None, mixed_precision=False,
        device="cpu" if not torch.cuda.is_available() else None,
    )  # fmt: skip
    result = trainer.fit(resume=resume, progress=progress)
    load_weights(out / "run", model, ema=True)
    model = model.cpu().eval()
    card = {
        "data_card": data_card,
        "data": clips.card,
        "command": command or shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "steps": steps,
        "batch_size": batch_size,
        "crop_seconds": crop_seconds,
        "loudness_weight": loudness_weight,
        "metrics": {"train_loss": float(result.loss) if result.loss is not None else None},
    }
    path = out / "model"
    save_model(model, path, config=cfg.__dict__, card=card)
    return path
