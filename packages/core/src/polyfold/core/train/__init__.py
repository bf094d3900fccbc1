"""Training: the :class:`Trainer` (EMA, bf16 autocast on CUDA, clipping, accumulation,
atomic pickle-free checkpoints with exact resume, torchrun DDP), its LR schedule and EMA.

Example::

    from polyfold.core.losses import dsm_loss
    from polyfold.core.paths import VPCosine
    from polyfold.core.train import Trainer, load_weights

    path = VPCosine()
    trainer = Trainer(
        model, lambda m, x0, g: dsm_loss(m, x0, path=path, generator=g), dataset,
        out_dir="runs/toy", max_steps=10_000, batch_size=256, lr=2e-4, warmup_steps=500,
        checkpoint_every=1000, data_card="iris",
    )
    trainer.fit(resume=True)          # continues runs/toy when it holds a checkpoint
    load_weights("runs/toy", model)   # the EMA weights, for sampling

The same script runs on several GPUs or nodes with ``torchrun --nproc_per_node=G script.py``.
"""

from polyfold.core.train.checkpoint import (
    Checkpoint,
    atomic_write,
    latest_checkpoint,
    load_checkpoint,
    load_weights,
    save_checkpoint,
)
from polyfold.core.train.data import IndexBatches
from polyfold.core.train.distributed import DistInfo, detect_distributed, setup_distributed
from polyfold.core.train.ema import EMA, ema_decay
from polyfold.core.train.monitor import MetricsLogger, ProgressBar
from polyfold.core.train.schedule import WarmupCosine, warmup_cosine, warmup_cosine_schedule
from polyfold.core.train.trainer import FitResult, LossFn, TrainConfig, Trainer

__all__ = [
    "EMA",
    "Checkpoint",
    "DistInfo",
    "FitResult",
    "IndexBatches",
    "LossFn",
    "MetricsLogger",
    "ProgressBar",
    "TrainConfig",
    "Trainer",
    "WarmupCosine",
    "atomic_write",
    "detect_distributed",
    "ema_decay",
    "latest_checkpoint",
    "load_checkpoint",
    "load_weights",
    "save_checkpoint",
    "setup_distributed",
    "warmup_cosine",
    "warmup_cosine_schedule",
]
