"""Building M-SDF training sets and training :class:`~polyfold.shape.flow.ShapeFlow` with core's
:class:`~polyfold.core.train.Trainer`; the model file is core's (``save_model``)."""

from __future__ import annotations

import shlex
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import TensorDataset

from polyfold.core.errors import InputError
from polyfold.core.export import save_model
from polyfold.core.train.checkpoint import load_weights
from polyfold.shape.convert import ConvertConfig, convert, target_of
from polyfold.shape.flow import FlowConfig, ShapeFlow
from polyfold.shape.msdf import MSDF, load_msdf
from polyfold.shape.procshapes import check_classes, dataset

__all__ = [
    "TRAIN_CONVERT",
    "fit_flow",
    "fit_tokens",
    "load_msdf_folder",
    "procshape_msdfs",
    "procshape_points",
]

#: conversion settings of training sets: a coarse reference mesh and 40 refinement steps (without
#: refinement, 64 grids of 5^3 lose the thin parts: legs, shelves, handles; the generative model
#: then learns blobs)
TRAIN_CONVERT = ConvertConfig(steps=40, surface_samples=5000)


def procshape_msdfs(
    classes: list[str],
    per_class: int,
    config: ConvertConfig = TRAIN_CONVERT,
    *,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> list[MSDF]:
    """M-SDFs of ``per_class`` procedural shapes of each class (surface from a 64^3 mesh)."""
    shapes = dataset(check_classes(classes), per_class, seed=seed)
    out = []
    for i, s in enumerate(shapes):
        target = target_of(s, samples=config.surface_samples, res=64, seed=config.seed)
        out.append(convert(target, replace(config, seed=config.seed + i)))
        if progress is not None:
            progress(i + 1, len(shapes))
    return out


def load_msdf_folder(folder: Path) -> list[MSDF]:
    """Every ``.msdf`` file under ``folder``; the class is the file's own (or its sub-folder)."""
    files = sorted(Path(folder).rglob("*.msdf"))
    if not files:
        raise InputError(f"--data {folder}: no .msdf files in it (make them with convert)")
    out = []
    for f in files:
        m = load_msdf(f)
        if not m.cls:
            rel = f.relative_to(folder).parts
            m.cls = rel[0] if len(rel) > 1 else ""
        if not m.cls:
            raise InputError(f"{f}: no class (keep class sub-folders or convert with --class)")
        out.append(m)
    return out


def fit_flow(
    shapes: list[MSDF],
    out: Path,
    cfg: FlowConfig,
    **options: Any,
) -> Path:
    """Train on M-SDFs ``shapes`` in ``out/run``; write ``out/model`` (see :func:`fit_tokens`)."""
    if {m.n for m in shapes} != {cfg.n} or {m.k for m in shapes} != {cfg.k}:
        raise InputError(f"data: every M-SDF must have n={cfg.n} and k={cfg.k}")
    from polyfold.shape.flow import to_tokens

    return fit_tokens(
        to_tokens(shapes, cfg.value_tau), [m.cls for m in shapes], out, cfg, **options
    )


def procshape_points(
    classes: list[str], per_class: int, points: int, *, seed: int = 0
) -> tuple[Tensor, list[str]]:
    """``(N, points, 3)`` surface samples of the same procedural shapes as
    :func:`procshape_msdfs` (the point-cloud baseline's data) and their classes."""
    shapes = dataset(check_classes(classes), per_class, seed=seed)
    clouds = [target_of(s, samples=points, res=64, seed=i).surface for i, s in enumerate(shapes)]
    return torch.from_numpy(np.stack(clouds)).float(), [s.cls for s in shapes]


def fit_tokens(
    raw: Tensor,
    classes: list[str],
    out: Path,
    cfg: FlowConfig,
    *,
    resume: bool = False,
    progress: Callable[[int, float, float], None] | None = None,
    data_card: str | None = "procshapes",
    data_source: dict[str, object] | None = None,
) -> Path:
    """Train on raw tokens ``(N, n, dim)`` of classes ``classes`` in ``out/run``; write
    ``out/model`` (returns the weights' path)."""
    from polyfold.core.train import Trainer

    if raw.ndim != 3 or raw.shape[1:] != (cfg.n, cfg.dim):
        raise InputError(f"data: expected tokens (N, {cfg.n}, {cfg.dim}), got {tuple(raw.shape)}")
    torch.manual_seed(cfg.seed)
    model = ShapeFlow(cfg)
    labels = model.labels(classes)
    model.fit_normalisation(raw)
    x = model.standardise(raw.float())
    trainer = Trainer(
        model,
        lambda m, batch, g: model.loss(batch[0], batch[1], g, net=m),
        TensorDataset(x, labels),
        out_dir=out / "run",
        model_config=cfg.to_dict(),
        data_card=data_card,
        max_steps=cfg.steps,
        batch_size=min(cfg.batch_size, len(x)),
        lr=cfg.lr,
        warmup_steps=min(100, cfg.steps // 10),
        ema_decay=0.999,
        checkpoint_every=max(1, cfg.steps // 5),
        keep_last=2,
        seed=cfg.seed,
        quiet=progress is None,
        device="cpu" if not torch.cuda.is_available() else None,
    )
    result = trainer.fit(resume=resume, progress=progress)
    load_weights(out / "run", model, ema=True)
    model.eval()
    card = {
        "data_card": data_card,
        "data_source": data_source or {},
        "command": shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "classes": cfg.classes,
        "train_shapes": len(x),
        "steps": cfg.steps,
        "metrics": {"train_loss": float(result.loss) if result.loss is not None else None},
    }
    return save_model(model.cpu(), out / "model", config=cfg.to_dict(), card=card)
