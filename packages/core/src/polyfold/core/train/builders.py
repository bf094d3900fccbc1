"""The pieces a :class:`~polyfold.core.train.trainer.Trainer` is built from, one function each:
device, data source, optimizer, LR schedule, EMA and the module the loss calls."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, cast

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR, LRScheduler
from torch.utils.data import DataLoader, Dataset

from polyfold.core.errors import InputError
from polyfold.core.train.config import TrainConfig
from polyfold.core.train.data import IndexBatches
from polyfold.core.train.distributed import DistInfo, detect_distributed
from polyfold.core.train.ema import EMA
from polyfold.core.train.schedule import warmup_cosine_schedule

__all__ = [
    "DataSource",
    "build_ema",
    "build_optimizer",
    "build_scheduler",
    "data_source",
    "forward_module",
    "model_config",
    "pick_device",
]

OptimizerArg = Optimizer | Callable[[Iterable[nn.Parameter]], Optimizer] | None
SchedulerArg = LRScheduler | Callable[[Optimizer], LRScheduler] | None


def pick_device(config: TrainConfig) -> torch.device:
    """``config.device``, else this process's GPU (the torchrun local rank's), else the CPU."""
    if config.device is not None:
        return torch.device(config.device)
    if torch.cuda.is_available():
        return torch.device("cuda", detect_distributed().local_rank)
    return torch.device("cpu")


def model_config(model: nn.Module, given: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The JSON hyperparameters saved with checkpoints: ``given``, else ``model.config`` when it
    is a mapping or a dataclass instance, else ``None``."""
    cfg: Any = given
    if cfg is None:
        cfg = getattr(model, "config", None)
        if dataclasses.is_dataclass(cfg) and not isinstance(cfg, type):
            cfg = dataclasses.asdict(cfg)
        if not isinstance(cfg, Mapping):
            return None
    elif not isinstance(cfg, Mapping):
        raise InputError(f"model_config: expected a mapping, got {type(cfg).__name__}")
    out = dict(cfg)
    try:
        json.dumps(out)
    except (TypeError, ValueError) as err:
        raise InputError(f"model_config: expected JSON-serialisable values ({err})") from None
    return out


@dataclass
class DataSource:
    """Where batches come from: a map-style ``dataset`` read in ``index_batches`` order, or an
    ``iterable`` of ready micro-batches (exactly one of the two is set)."""

    dataset: Any = None
    index_batches: IndexBatches | None = None
    iterable: Iterable[Any] | None = None


def data_source(
    data: Dataset[Any] | Iterable[Any], config: TrainConfig, dist: DistInfo
) -> DataSource:
    """Sort ``data`` into a map-style dataset (``__getitem__`` and ``__len__``, not a
    ``DataLoader``; needs ``config.batch_size``) or an iterable of batches."""
    is_map = (
        hasattr(data, "__getitem__")
        and hasattr(data, "__len__")
        and not isinstance(data, DataLoader)
    )
    if is_map:
        if config.batch_size is None:
            raise InputError(
                "batch_size: expected the global batch size when data is a map-style dataset"
            )
        order = IndexBatches(
            len(cast(Any, data)),
            config.batch_size,
            dist.rank,
            dist.world_size,
            config.accumulate,
            config.seed,
            config.shuffle,
        )
        return DataSource(dataset=data, index_batches=order)
    if isinstance(data, Iterable):
        return DataSource(iterable=data)
    raise InputError(
        f"data: expected a map-style dataset or an iterable of batches, got {type(data).__name__}"
    )


def build_optimizer(model: nn.Module, optimizer: OptimizerArg, config: TrainConfig) -> Optimizer:
    """The given optimizer, the one a callable builds from ``model``'s parameters, or AdamW with
    ``config.lr`` and ``config.weight_decay``; it must optimise ``model``'s own parameters."""
    if optimizer is None:
        opt: Optimizer = torch.optim.AdamW(
            model.parameters(), lr=config.lr, weight_decay=config.weight_decay
        )
    elif isinstance(optimizer, Optimizer):
        opt = optimizer
    elif callable(optimizer):
        opt = optimizer(model.parameters())
        if not isinstance(opt, Optimizer):
            raise InputError("optimizer: expected the callable to return a torch Optimizer")
    else:
        raise InputError(
            f"optimizer: expected a torch Optimizer or a callable, got {type(optimizer).__name__}"
        )
    own = {id(p) for p in model.parameters()}
    if any(id(p) not in own for g in opt.param_groups for p in g["params"]):
        raise InputError("optimizer: expected an optimizer over the model's own parameters")
    return opt


def build_scheduler(
    optimizer: Optimizer, scheduler: SchedulerArg, config: TrainConfig
) -> LRScheduler:
    """The given LR scheduler, the one a callable builds on ``optimizer``, or the one
    ``config.lr_schedule`` names (warmup + cosine decay, or constant)."""
    if scheduler is None:
        if config.lr_schedule == "warmup_cosine":
            return warmup_cosine_schedule(
                optimizer,
                warmup_steps=config.warmup_steps,
                total_steps=config.max_steps,
                min_ratio=config.min_lr_ratio,
            )
        return LambdaLR(optimizer, lambda _: 1.0)
    if isinstance(scheduler, LRScheduler):
        return scheduler
    if callable(scheduler):
        return scheduler(optimizer)
    raise InputError(
        f"scheduler: expected an LR scheduler or a callable, got {type(scheduler).__name__}"
    )


def build_ema(model: nn.Module, config: TrainConfig) -> EMA | None:
    """An :class:`~polyfold.core.train.ema.EMA` of ``model``, or ``None`` without ``ema_decay``."""
    if config.ema_decay is None:
        return None
    return EMA(model, max_decay=config.ema_decay, warmup=config.ema_warmup)


def forward_module(
    model: nn.Module, dist: DistInfo, device: torch.device, compile: bool
) -> tuple[nn.Module, DistributedDataParallel | None]:
    """The module ``loss_fn`` calls (``model``, DDP-wrapped when distributed, then compiled if
    asked) and the DDP wrapper (``None`` when not distributed)."""
    fwd: nn.Module = model
    ddp = None
    if dist.enabled:
        ddp = DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
        fwd = ddp
    if compile:
        fwd = cast(nn.Module, torch.compile(fwd))
    return fwd, ddp
