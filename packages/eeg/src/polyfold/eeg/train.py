"""Training both ArtifactGen models on one preprocessing, and writing their model files.

- The diffusion model trains on core's :class:`~polyfold.core.train.Trainer` (AdamW, EMA,
  gradient clipping, atomic checkpoints, exact resume).
- The WGAN-GP needs two optimisers stepped at different rates (``n_critic`` critic steps per
  generator step), which the Trainer's one-optimiser loop cannot express, so it has a small loop
  here built on core's checkpoint helpers (:func:`~polyfold.core.train.checkpoint.save_checkpoint`
  / :func:`~polyfold.core.train.checkpoint.load_checkpoint`, optimiser state through
  ``split_tree``/``join_tree``) and core's losses; its random draws come from a generator reseeded
  from ``(seed, step)`` each step, so a resumed run is the uninterrupted run exactly.

:func:`fit_model` fits :class:`~polyfold.eeg.preprocess.Preprocessing` on the training windows,
trains either model in a run folder and writes ``<out>/model.safetensors`` + ``model.json`` (core's
model files) whose card holds the preprocessing state, the classes, channels and rate, the
training and held-out subjects, and the command.
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import TensorDataset

from polyfold.core.errors import InputError
from polyfold.core.export import save_model
from polyfold.core.losses import wgan_generator_loss, wgan_gp_critic_loss
from polyfold.core.train.checkpoint import (
    join_tree,
    latest_checkpoint,
    load_checkpoint,
    load_weights,
    save_checkpoint,
    split_tree,
)
from polyfold.core.train.data import mix_seed
from polyfold.eeg.data import Windows
from polyfold.eeg.diffusion import DiffusionConfig, EEGDiffusion
from polyfold.eeg.preprocess import Preprocessing
from polyfold.eeg.wgan import Critic, WGANConfig, WGANGenerator

__all__ = ["MODEL_KINDS", "fit_model", "model_config", "train_diffusion", "train_wgan"]

MODEL_KINDS = ("wgan", "ddpm")
#: called after each step with (step, loss)
ProgressFn = Callable[[int, float], None]


def _adam(params: Any, lr: float) -> torch.optim.Adam:
    return torch.optim.Adam(params, lr=lr, betas=(0.0, 0.9))  # WGAN-GP's Adam


def train_wgan(
    x: Tensor,
    y: Tensor,
    cfg: WGANConfig,
    run_dir: Path,
    *,
    resume: bool = False,
    checkpoint_every: int | None = None,
    progress: ProgressFn | None = None,
) -> tuple[WGANGenerator, float]:
    """Train the WGAN-GP on normalised windows ``x`` (N, C, T) with labels ``y``; returns the
    generator and the last Wasserstein estimate ``E[D(real)] - E[D(fake)]``."""
    torch.manual_seed(cfg.seed)
    gen, critic = WGANGenerator(cfg), Critic(cfg)
    opt_g, opt_d = _adam(gen.parameters(), cfg.lr), _adam(critic.parameters(), cfg.lr)
    start, w_est = 0, float("nan")
    if resume and latest_checkpoint(run_dir) is not None:
        ck = load_checkpoint(run_dir)
        gen.load_state_dict(ck.tensors["generator"])
        critic.load_state_dict(ck.tensors["critic"])
        opt_g.load_state_dict(join_tree(ck.config["optimizer_g"], ck.tensors["state"]))
        opt_d.load_state_dict(join_tree(ck.config["optimizer_d"], ck.tensors["state"]))
        start, w_est = ck.step, float(ck.config.get("wasserstein", float("nan")))
    elif latest_checkpoint(run_dir) is not None:
        raise InputError(f"out_dir: {run_dir} already holds checkpoints; resume that run")
    every = checkpoint_every or max(1, cfg.steps // 10)
    n, b = len(x), min(cfg.batch_size, len(x))

    def save(step: int) -> None:
        tensors: dict[str, Tensor] = {}
        config = {
            "kind": "wgan",
            "model_config": cfg.to_dict(),
            "optimizer_g": split_tree(opt_g.state_dict(), "opt_g", tensors),
            "optimizer_d": split_tree(opt_d.state_dict(), "opt_d", tensors),
            "wasserstein": w_est,
            "command": shlex.join([Path(sys.executable).name, *sys.argv]),
        }
        files = {"generator": gen.state_dict(), "critic": critic.state_dict(), "state": tensors}
        save_checkpoint(run_dir, step, files, config, keep_last=2)

    gen.train()
    critic.train()
    for step in range(start, cfg.steps):
        g = torch.Generator().manual_seed(mix_seed(cfg.seed, step))
        for _ in range(cfg.n_critic):
            idx = torch.randint(n, (b,), generator=g)
            with torch.no_grad():
                fake = gen(torch.randn(b, cfg.z_dim, generator=g), y[idx], g)
            loss_d, parts = wgan_gp_critic_loss(
                critic, x[idx], fake, y[idx], gp_weight=cfg.gp_weight, generator=g
            )
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            opt_d.step()
        yy = y[torch.randint(n, (b,), generator=g)]
        fake = gen(torch.randn(b, cfg.z_dim, generator=g), yy, g)
        loss_g = wgan_generator_loss(critic(fake, yy))
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        w_est = parts["wasserstein"]
        if progress is not None:
            progress(step + 1, w_est)
        if (step + 1) % every == 0 or step + 1 == cfg.steps:
            save(step + 1)
    gen.eval()
    return gen, w_est


def train_diffusion(
    x: Tensor,
    y: Tensor,
    cfg: DiffusionConfig,
    run_dir: Path,
    *,
    resume: bool = False,
    checkpoint_every: int | None = None,
    progress: ProgressFn | None = None,
    data_card: str | None = None,
) -> tuple[EEGDiffusion, float]:
    """Train the diffusion model with core's Trainer; returns the EMA model and the last loss."""
    from polyfold.core.train import Trainer

    torch.manual_seed(cfg.seed)
    model = EEGDiffusion(cfg)
    trainer = Trainer(
        model,
        lambda m, batch, g: model.loss(batch[0], batch[1], g, net=m),
        TensorDataset(x, y),
        out_dir=run_dir,
        model_config=cfg.to_dict(),
        data_card=data_card,
        max_steps=cfg.steps,
        batch_size=min(cfg.batch_size, len(x)),
        lr=cfg.lr,
        ema_decay=0.999,
        checkpoint_every=checkpoint_every or max(1, cfg.steps // 10),
        keep_last=2,
        seed=cfg.seed,
        quiet=progress is None,
        device="cpu" if not torch.cuda.is_available() else None,
    )
    report = None if progress is None else (lambda step, loss, _rate: progress(step, loss))
    result = trainer.fit(resume=resume, progress=report)
    load_weights(run_dir, model, ema=True)
    model.eval()
    return model.cpu(), float(result.loss if result.loss is not None else float("nan"))


def model_config(kind: str, train: Windows, *, steps: int, seed: int, preset: str) -> Any:
    """The config of a new ``kind`` model for windows shaped like ``train``."""
    shape = {"channels": len(train.channels), "n_times": train.n_times}
    shape["n_classes"] = len(train.classes)
    if kind == "wgan":
        return WGANConfig(**shape, steps=steps, seed=seed)
    if kind == "ddpm":
        return DiffusionConfig.from_preset(preset, **shape, steps=steps, seed=seed)
    raise InputError(f"--model: expected one of {', '.join(MODEL_KINDS)}, got {kind!r}")


def fit_model(
    kind: str,
    train: Windows,
    out: Path,
    *,
    config: Any,
    resume: bool = False,
    checkpoint_every: int | None = None,
    progress: ProgressFn | None = None,
    test_subjects: list[int] | None = None,
    data_card: str | None = None,
    data_source: dict[str, Any] | None = None,
    command: str | None = None,
) -> Path:
    """Train ``kind`` on ``train`` in ``out/run`` and write ``out/model`` (returns its path)."""
    prep = Preprocessing().fit(train)
    x = prep.to_model(train)
    y = torch.from_numpy(train.y)
    run = out / "run"
    common: dict[str, Any] = {
        "resume": resume,
        "checkpoint_every": checkpoint_every,
        "progress": progress,
    }
    if kind == "wgan":
        model: Any
        model, last = train_wgan(x, y, config, run, **common)
        metric = {"wasserstein_estimate": last}
    else:
        model, last = train_diffusion(x, y, config, run, data_card=data_card, **common)
        metric = {"train_loss": last}
    card = {
        "kind": kind,
        "data_card": data_card,
        "data_source": data_source or {},
        "command": command or shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "preprocessing": prep.state_dict(),
        "classes": list(train.classes),
        "channels": list(train.channels),
        "sfreq": train.sfreq,
        "n_times": train.n_times,
        "train_subjects": sorted(int(s) for s in np.unique(train.subject)),
        "test_subjects": sorted(test_subjects or []),
        "train_windows": len(train),
        "steps": config.steps,
        "metrics": metric,
    }
    path = out / "model"
    save_model(model, path, config=config.to_dict(), card=card)
    return path
