"""The trainer's hyperparameters, :class:`TrainConfig`, and how keyword options build one."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

import torch

from polyfold.core.errors import InputError, is_finite_number, is_int
from polyfold.core.train.ema import EMAWarmup

__all__ = ["TrainConfig", "resolve_config"]


@dataclass
class TrainConfig:
    """Trainer hyperparameters (all saved in each checkpoint's ``config.json``).

    - ``max_steps``: optimizer steps to train to (a resumed run continues up to it).
    - ``batch_size``: global samples per optimizer step, over all ranks and micro-batches
      (map-style datasets; for an iterable, each item is one micro-batch of one rank).
    - ``lr``, ``weight_decay``: for the default optimizer, AdamW.
    - ``lr_schedule``: ``"warmup_cosine"`` (linear warmup over ``warmup_steps``, cosine decay
      to ``min_lr_ratio * lr`` at ``max_steps``) or ``"constant"``.
    - ``ema_decay``: the EMA's maximum decay, ``None`` for no EMA; ``ema_warmup``: ``"ratio"``
      (``min(decay, (1+n)/(10+n))``), ``"power"`` (k-diffusion's ``1-(1+n)^(-2/3)``) or
      ``"none"``.
    - ``grad_clip``: maximum global gradient norm, ``None`` to not clip.
    - ``accumulate``: micro-batches per optimizer step (gradient accumulation).
    - ``mixed_precision``: bf16 autocast when training on CUDA (CPU always runs float32).
    - ``compile``: run the forward through ``torch.compile``.
    - ``checkpoint_every``: save every N steps (and always at the end); ``keep_last``: how many
      checkpoints to keep (``None``: all).
    - ``log_every``: metric rows every N steps (and at the end).
    - ``seed``: seeds the data order and the loss generator.
    - ``device``: ``"cpu"``, ``"cuda"``, ... (default: ``cuda:LOCAL_RANK`` when available).
    - ``quiet``: no progress bar; ``tensorboard``: also write TensorBoard events (default:
      when the ``tensorboard`` package is installed).
    """

    max_steps: int
    batch_size: int | None = None
    lr: float = 1e-4
    weight_decay: float = 0.0
    lr_schedule: Literal["warmup_cosine", "constant"] = "warmup_cosine"
    warmup_steps: int = 0
    min_lr_ratio: float = 0.0
    ema_decay: float | None = 0.999
    ema_warmup: EMAWarmup = "ratio"
    grad_clip: float | None = 1.0
    accumulate: int = 1
    mixed_precision: bool = True
    compile: bool = False
    shuffle: bool = True
    seed: int = 0
    checkpoint_every: int | None = None
    keep_last: int | None = 3
    log_every: int = 10
    num_workers: int = 0
    device: str | None = None
    quiet: bool = False
    tensorboard: bool | None = None

    def __post_init__(self) -> None:
        def positive_int(name: str, allow_none: bool = False) -> None:
            v = getattr(self, name)
            if v is None and allow_none:
                return
            if not is_int(v) or v < 1:
                extra = " or None" if allow_none else ""
                raise InputError(f"{name}: expected an integer >= 1{extra}, got {v!r}")

        positive_int("max_steps")
        positive_int("batch_size", allow_none=True)
        positive_int("accumulate")
        positive_int("checkpoint_every", allow_none=True)
        positive_int("keep_last", allow_none=True)
        positive_int("log_every")
        if not is_finite_number(self.lr) or self.lr <= 0:
            raise InputError(f"lr: expected a positive number, got {self.lr!r}")
        if not is_finite_number(self.weight_decay) or self.weight_decay < 0:
            raise InputError(f"weight_decay: expected a number >= 0, got {self.weight_decay!r}")
        if self.lr_schedule not in ("warmup_cosine", "constant"):
            raise InputError(
                f"lr_schedule: expected 'warmup_cosine' or 'constant', got {self.lr_schedule!r}"
            )
        if not is_int(self.warmup_steps) or not 0 <= self.warmup_steps <= self.max_steps:
            raise InputError(
                f"warmup_steps: expected an integer in [0, max_steps={self.max_steps}], "
                f"got {self.warmup_steps!r}"
            )
        if not is_finite_number(self.min_lr_ratio) or not 0 <= self.min_lr_ratio <= 1:
            raise InputError(
                f"min_lr_ratio: expected a number in [0, 1], got {self.min_lr_ratio!r}"
            )
        if self.ema_decay is not None and (
            not is_finite_number(self.ema_decay) or not 0 <= self.ema_decay < 1
        ):
            raise InputError(
                f"ema_decay: expected a number in [0, 1) or None, got {self.ema_decay!r}"
            )
        if self.ema_warmup not in ("ratio", "power", "none"):
            raise InputError(
                f"ema_warmup: expected 'ratio', 'power' or 'none', got {self.ema_warmup!r}"
            )
        if self.grad_clip is not None and (
            not is_finite_number(self.grad_clip) or self.grad_clip <= 0
        ):
            raise InputError(
                f"grad_clip: expected a positive number or None, got {self.grad_clip!r}"
            )
        if not is_int(self.seed):
            raise InputError(f"seed: expected an integer, got {self.seed!r}")
        if not is_int(self.num_workers) or self.num_workers < 0:
            raise InputError(f"num_workers: expected an integer >= 0, got {self.num_workers!r}")
        for name in ("mixed_precision", "compile", "shuffle", "quiet"):
            if not isinstance(getattr(self, name), bool):
                raise InputError(f"{name}: expected True or False, got {getattr(self, name)!r}")
        if self.tensorboard is not None and not isinstance(self.tensorboard, bool):
            raise InputError(f"tensorboard: expected True, False or None, got {self.tensorboard!r}")
        if self.device is not None:
            try:
                torch.device(self.device)
            except (RuntimeError, TypeError):
                raise InputError(
                    "device: expected a torch device such as 'cpu' or 'cuda:0', "
                    f"got {self.device!r}"
                ) from None


def resolve_config(config: TrainConfig | None, options: dict[str, Any]) -> TrainConfig:
    """The :class:`TrainConfig` of a ``Trainer(config, **options)`` call: ``options`` build one
    (``max_steps`` required) or override the given one's fields."""
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise InputError(
            f"{unknown[0]}: not a trainer option; expected one of {', '.join(sorted(known))}"
        )
    if config is None:
        if "max_steps" not in options:
            raise InputError("max_steps: expected the number of optimizer steps to train")
        return TrainConfig(**options)
    if not isinstance(config, TrainConfig):
        raise InputError(f"config: expected a TrainConfig, got {type(config).__name__}")
    return dataclasses.replace(config, **options) if options else config
