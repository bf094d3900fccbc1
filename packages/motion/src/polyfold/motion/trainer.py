"""Core's :class:`~polyfold.core.train.Trainer` with the settings every polyfold-motion model
shares: checkpoints under ``out_dir/run`` every 250 steps, linear warm-up over a tenth of the run
(at most ``warmup`` steps), no EMA, the ``deepmimic`` data card."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch import nn

from polyfold.core.train import Trainer

__all__ = ["motion_trainer"]


def motion_trainer(
    model: nn.Module,
    loss_fn: Callable[..., Any],
    dataset: Any,
    out_dir: str | Path,
    *,
    steps: int,
    batch_size: int,
    lr: float,
    seed: int,
    quiet: bool,
    warmup: int = 200,
    **options: Any,
) -> Trainer:
    """A Trainer for ``steps`` steps writing to ``out_dir/run``; ``options`` go to Trainer."""
    return Trainer(
        model, loss_fn, dataset, out_dir=Path(out_dir) / "run", max_steps=steps,
        batch_size=batch_size, lr=lr, warmup_steps=min(warmup, steps // 10), ema_decay=None,
        seed=seed, quiet=quiet, data_card="deepmimic", checkpoint_every=250, **options,
    )  # fmt: skip
