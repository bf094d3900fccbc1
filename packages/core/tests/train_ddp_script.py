"""Helper for test_train_ddp.py: one small training run, launched by torchrun or imported.

    python -m torch.distributed.run --standalone --nproc_per_node=2 train_ddp_script.py OUT

trains with a global batch of 8 split over the ranks; :func:`run` with ``accumulate=2`` is the
single-process reference with the same global batch and the same per-slice noise.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import TensorDataset

from polyfold.core.train import Trainer


def dataset() -> TensorDataset:
    g = torch.Generator().manual_seed(11)
    x = torch.randn(48, 4, generator=g)
    return TensorDataset(x, torch.sin(x @ torch.randn(4, 3, generator=g)))


def model() -> nn.Module:
    torch.manual_seed(7)  # no batch-dependent layers: DDP and one process see the same maths
    return nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 3))


def loss_fn(m: nn.Module, batch: Any, g: torch.Generator) -> torch.Tensor:
    x, y = batch
    noise = torch.randn(x.shape, generator=g, device=x.device)
    loss: torch.Tensor = ((m(x + 0.05 * noise) - y) ** 2).mean()
    return loss


def run(out: str | Path, accumulate: int = 1, resume: bool | str | Path = False) -> Trainer:
    trainer = Trainer(
        model(),
        loss_fn,
        dataset(),
        out_dir=out,
        max_steps=8,
        batch_size=8,
        accumulate=accumulate,
        optimizer=lambda ps: torch.optim.SGD(ps, lr=0.2, momentum=0.9),
        warmup_steps=2,
        ema_decay=0.9,
        grad_clip=1.0,
        checkpoint_every=4,
        log_every=2,
        quiet=True,
        device="cpu",
    )
    trainer.fit(resume=resume)
    return trainer


if __name__ == "__main__":
    torch.set_num_threads(1)
    t = run(sys.argv[1])
    print(f"rank {t.dist.rank} world {t.dist.world_size} step {t.step} pid {os.getpid()}")
    t.close()
