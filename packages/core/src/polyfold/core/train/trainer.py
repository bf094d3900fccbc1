"""The polyfold trainer: one loop for every package's models.

``Trainer(model, loss_fn, data, out_dir=..., max_steps=...)`` then ``.fit()``. The loss is any
callable ``loss_fn(model, batch, generator) -> scalar tensor``, so the core losses plug in as
``lambda m, b, g: dsm_loss(m, b, path=path, generator=g)``. See :class:`TrainConfig` for the
options; :mod:`polyfold.core.train.checkpoint` for the checkpoint format.

Determinism and exact resume
    * Map-style data is read in a seeded order that depends only on the step
      (:class:`~polyfold.core.train.data.IndexBatches`), so a resumed run reads exactly the
      samples the uninterrupted run would have read.
    * The ``generator`` handed to ``loss_fn`` is reseeded before every micro-batch from
      ``(seed, step, chunk)``, where ``chunk = rank * accumulate + micro`` numbers the slices of
      the global batch. Its draws therefore do not depend on what ran before, and a 2-process
      run draws the same noise for the same samples as a 1-process run with ``accumulate=2``.
    * The global torch/CUDA/Python/numpy RNG states of rank 0 are saved too and restored on a
      single-process resume (for dropout and other draws from the global RNG).
    * Model weights, EMA weights, optimizer and scheduler state are saved exactly.

Distributed
    Launched by ``torchrun``, the trainer joins the process group (NCCL on CUDA, gloo on CPU),
    wraps the model in ``DistributedDataParallel``, gives every rank its slice of the global
    batch (``batch_size`` is the global batch per optimizer step), skips gradient all-reduce on
    all but the last accumulation micro-batch (``no_sync``), and lets rank 0 alone write
    checkpoints, metric logs and the progress bar. Every rank reads the checkpoint on resume
    (multi-node runs need a shared ``out_dir``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import random
import shlex
import sys
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler
from torch.utils.data import DataLoader, Dataset, default_collate

from polyfold.core._version import __version__
from polyfold.core.errors import InputError, NonFiniteError
from polyfold.core.train.builders import (
    build_ema,
    build_optimizer,
    build_scheduler,
    data_source,
    forward_module,
    pick_device,
)
from polyfold.core.train.builders import model_config as model_config_of
from polyfold.core.train.checkpoint import (
    join_tree,
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
    split_tree,
)
from polyfold.core.train.config import TrainConfig, resolve_config
from polyfold.core.train.data import mix_seed
from polyfold.core.train.distributed import (
    DistInfo,
    barrier,
    setup_distributed,
)
from polyfold.core.train.ema import EMA
from polyfold.core.train.monitor import MetricsLogger, ProgressBar, tensorboard_available

__all__ = ["FitResult", "LossFn", "TrainConfig", "Trainer"]

LossFn = Callable[[nn.Module, Any, torch.Generator], Tensor]

CHECKPOINT_FORMAT = "polyfold-checkpoint"
CHECKPOINT_FORMAT_VERSION = 1


@dataclass
class FitResult:
    """What :meth:`Trainer.fit` ends with."""

    step: int
    loss: float | None
    checkpoint: Path | None
    metrics: dict[str, float] = field(default_factory=dict)


def _to_device(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, Mapping):
        return {k: _to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):  # namedtuple
        return type(batch)(*(_to_device(v, device) for v in batch))
    if isinstance(batch, list | tuple):
        return type(batch)(_to_device(v, device) for v in batch)
    return batch


class Trainer:
    """Trains ``model`` by minimising ``loss_fn(model, batch, generator)`` over ``data``.

    Args:
        model: the network (moved to the training device).
        loss_fn: ``(model, batch, generator) -> scalar tensor``; ``model`` is the (possibly
            DDP-wrapped or compiled) module to call, ``batch`` this micro-batch on the device,
            ``generator`` a ``torch.Generator`` on the device for every random draw.
        data: a map-style dataset (``__getitem__`` + ``__len__``; needs ``batch_size``, read in
            a seeded, resumable order) or any iterable of ready batches (a ``DataLoader``; each
            item is one micro-batch of this rank; resume re-iterates the current epoch and skips
            the batches already used, exact when the iterable's order is deterministic; its
            ``sampler.set_epoch`` is called when present).
        config: a :class:`TrainConfig`; keyword ``options`` override or replace its fields.
        out_dir: the run folder (checkpoints, ``metrics.csv``).
        optimizer: an optimizer over ``model``'s parameters, or a callable building one from
            the parameters (default: AdamW with ``lr`` and ``weight_decay``).
        scheduler: an LR scheduler on that optimizer, or a callable building one from it
            (default: from ``lr_schedule``). Stepped once per optimizer step.
        collate_fn: joins samples of a map-style dataset (default: ``default_collate``).
        model_config: the hyperparameters that rebuild the model (default: ``model.config``
            when it is a mapping or dataclass), saved with each checkpoint.
        data_card: the id of the dataset's card in ``data_cards/``.
    """

    def __init__(
        self,
        model: nn.Module,
        loss_fn: LossFn,
        data: Dataset[Any] | Iterable[Any],
        config: TrainConfig | None = None,
        *,
        out_dir: str | Path,
        optimizer: Optimizer | Callable[[Iterable[nn.Parameter]], Optimizer] | None = None,
        scheduler: LRScheduler | Callable[[Optimizer], LRScheduler] | None = None,
        collate_fn: Callable[[list[Any]], Any] | None = None,
        model_config: Mapping[str, Any] | None = None,
        data_card: str | None = None,
        **options: Any,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise InputError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
        if not callable(loss_fn):
            raise InputError("loss_fn: expected a callable (model, batch, generator) -> loss")
        config = resolve_config(config, options)
        if not isinstance(out_dir, str | Path) or str(out_dir) == "":
            raise InputError(f"out_dir: expected a folder path, got {out_dir!r}")
        if data_card is not None and not isinstance(data_card, str):
            raise InputError(f"data_card: expected a data card id (str), got {data_card!r}")
        self.config = config
        self.out_dir = Path(out_dir)
        self.loss_fn = loss_fn
        self.data_card = data_card
        self.model_config = model_config_of(model, model_config)

        self.device = pick_device(config)
        self.dist: DistInfo
        self.dist, self._owns_group = setup_distributed(self.device)
        self.model = model.to(self.device)

        source = data_source(data, config, self.dist)
        self._dataset: Any = source.dataset
        self._iterable: Iterable[Any] | None = source.iterable
        if source.index_batches is not None:
            self._index_batches = source.index_batches
        self._collate = collate_fn if collate_fn is not None else default_collate

        self.optimizer: Optimizer = build_optimizer(self.model, optimizer, config)
        self.scheduler: LRScheduler = build_scheduler(self.optimizer, scheduler, config)
        self.ema: EMA | None = build_ema(self.model, config)
        self.forward_model, self._ddp = forward_module(
            self.model, self.dist, self.device, config.compile
        )
        self.generator = torch.Generator(device=self.device)

        self.step = 0
        self.last_lr = float(self.optimizer.param_groups[0]["lr"])
        self.last_ema_decay: float | None = None
        self._epoch = 0  # iterable data: epoch and items used in it
        self._consumed = 0
        self.command = shlex.join([Path(sys.executable).name, *sys.argv])

    # --- checkpoints ---------------------------------------------------------------------------

    def _hyperparameters(self) -> dict[str, Any]:
        hp = dataclasses.asdict(self.config)
        hp["optimizer"] = type(self.optimizer).__name__
        hp["scheduler"] = type(self.scheduler).__name__
        hp["world_size"] = self.dist.world_size
        return hp

    def _data_position(self) -> dict[str, int]:
        if self._dataset is not None:
            return self._index_batches.position(self.step)
        return {"epoch": self._epoch, "items_consumed": self._consumed}

    def _rng_state(self, tensors: dict[str, Tensor]) -> Any:
        state: dict[str, Any] = {
            "torch_cpu": torch.get_rng_state(),
            "python": random.getstate(),
        }
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state["torch_cuda"] = torch.cuda.get_rng_state_all()
        kind, keys, pos, has_gauss, cached = cast(tuple[Any, ...], np.random.get_state())
        state["numpy"] = {
            "kind": kind,
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        }
        return split_tree(state, "rng", tensors)

    def _restore_rng(self, tree: Any, tensors: Mapping[str, Tensor]) -> None:
        state = join_tree(tree, tensors)
        torch.set_rng_state(state["torch_cpu"])
        random.setstate(_as_tuple(state["python"]))
        np_state = state["numpy"]
        np.random.set_state(
            (
                np_state["kind"],
                np_state["keys"].numpy().astype(np.uint32),
                np_state["pos"],
                np_state["has_gauss"],
                np_state["cached_gaussian"],
            )
        )
        if "torch_cuda" in state and torch.cuda.is_available():
            cuda_states = list(state["torch_cuda"])
            if len(cuda_states) == torch.cuda.device_count():
                torch.cuda.set_rng_state_all(cuda_states)

    def save_checkpoint(self) -> Path | None:
        """Write a checkpoint of the current step (rank 0 only; other ranks return ``None``)."""
        path: Path | None = None
        if self.dist.is_main:
            state_tensors: dict[str, Tensor] = {}
            cls = type(self.model)
            config = {
                "format": CHECKPOINT_FORMAT,
                "format_version": CHECKPOINT_FORMAT_VERSION,
                "polyfold_version": __version__,
                "torch_version": torch.__version__,
                "model_class": f"{cls.__module__}.{cls.__qualname__}",
                "model_config": self.model_config,
                "data_card": self.data_card,
                "command": self.command,
                "hyperparameters": self._hyperparameters(),
                "data_position": self._data_position(),
                "optimizer": split_tree(self.optimizer.state_dict(), "optimizer", state_tensors),
                "scheduler": split_tree(self.scheduler.state_dict(), "scheduler", state_tensors),
                "ema": self.ema.state_dict() if self.ema is not None else None,
                "rng": self._rng_state(state_tensors),
            }
            files: dict[str, Mapping[str, Tensor]] = {"model": self.model.state_dict()}
            if self.ema is not None:
                files["ema"] = self.ema.shadow
            files["state"] = state_tensors
            path = save_checkpoint(
                self.out_dir, self.step, files, config, keep_last=self.config.keep_last
            )
        barrier()
        return path

    def load_checkpoint(self, path: str | Path) -> None:
        """Restore model, EMA, optimizer, scheduler, step, data position and RNG states."""
        ckpt = load_checkpoint(path)
        cfg = ckpt.config
        if cfg.get("format") != CHECKPOINT_FORMAT:
            raise InputError(f"checkpoint: {ckpt.path} is not a polyfold trainer checkpoint")
        saved_hp = cfg.get("hyperparameters", {})
        for name in ("batch_size", "seed", "shuffle"):
            if name in saved_hp and saved_hp[name] != getattr(self.config, name):
                raise InputError(
                    f"{name}: the checkpoint {ckpt.path} was trained with {name}="
                    f"{saved_hp[name]!r}; resuming with {getattr(self.config, name)!r} would not "
                    "continue the same run"
                )
        # the global batch is cut into world_size * accumulate slices; the world size may change
        # on resume (e.g. 2 GPUs -> 1 GPU with accumulate doubled) as long as that count holds
        if "accumulate" in saved_hp:
            saved_slices = int(saved_hp["accumulate"]) * int(saved_hp.get("world_size", 1))
            slices = self.config.accumulate * self.dist.world_size
            if saved_slices != slices:
                raise InputError(
                    f"accumulate: the checkpoint {ckpt.path} cut each global batch into "
                    f"{saved_slices} micro-batches (accumulate x world size); this run cuts it "
                    f"into {slices}; set accumulate so that the product matches"
                )
        if "model" not in ckpt.tensors:
            raise InputError(f"checkpoint: {ckpt.path} has no model.safetensors")
        try:
            self.model.load_state_dict(ckpt.tensors["model"])
        except RuntimeError as err:
            raise InputError(f"checkpoint: model weights do not fit this model: {err}") from None
        state = ckpt.tensors.get("state", {})
        self.optimizer.load_state_dict(join_tree(cfg["optimizer"], state))
        self.scheduler.load_state_dict(join_tree(cfg["scheduler"], state))
        if self.ema is not None:
            if cfg.get("ema") is None or "ema" not in ckpt.tensors:
                raise InputError(f"checkpoint: {ckpt.path} has no EMA weights but ema_decay is set")
            self.ema.load_state_dict(cfg["ema"], ckpt.tensors["ema"])
        self.step = ckpt.step
        pos = cfg.get("data_position", {})
        self._epoch = int(pos.get("epoch", 0))
        self._consumed = int(pos.get("items_consumed", 0))
        if self.dist.world_size == 1 and "rng" in cfg:
            self._restore_rng(cfg["rng"], state)

    # --- the loop ------------------------------------------------------------------------------

    def _micro_batches(self) -> Generator[Any, None, None]:
        if self._dataset is not None:
            sampler = dataclasses.replace(self._index_batches, start_step=self.step)
            loader = DataLoader(
                self._dataset,
                batch_sampler=sampler,
                collate_fn=self._collate,
                num_workers=self.config.num_workers,
                pin_memory=self.device.type == "cuda",
                # its own generator: creating the iterator must not draw from the global RNG
                # (that would shift dropout after a resume); it also seeds the workers
                generator=torch.Generator().manual_seed(
                    mix_seed(self.config.seed, self.step, self.dist.rank)
                ),
            )
            yield from loader
            return
        assert self._iterable is not None
        skip = self._consumed
        while True:
            for obj in (self._iterable, getattr(self._iterable, "sampler", None)):
                set_epoch = getattr(obj, "set_epoch", None)
                if callable(set_epoch):
                    set_epoch(self._epoch)
            empty = True
            for item in self._iterable:
                empty = False
                if skip > 0:
                    skip -= 1
                    continue
                self._consumed += 1
                yield item
            if empty:
                raise InputError("data: the iterable yielded no batches")
            skip = 0
            self._epoch += 1
            self._consumed = 0

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.device.type == "cuda" and self.config.mixed_precision:
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def train_step(self, micro_batches: Iterator[Any]) -> tuple[Tensor, Tensor | None]:
        """One optimizer step over ``accumulate`` micro-batches, then the LR schedule and EMA.

        Returns this rank's mean micro-batch loss and the gradient norm before clipping
        (``None`` without clipping).
        """
        cfg = self.config
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        total = torch.zeros((), device=self.device)
        for k in range(cfg.accumulate):
            batch = _to_device(next(micro_batches), self.device)
            chunk = self.dist.rank * cfg.accumulate + k
            self.generator.manual_seed(mix_seed(cfg.seed, self.step, chunk))
            last = k == cfg.accumulate - 1
            sync = (
                self._ddp.no_sync()
                if self._ddp is not None and not last
                else contextlib.nullcontext()
            )
            with sync:
                with self._autocast():
                    loss = self.loss_fn(self.forward_model, batch, self.generator)
                if not isinstance(loss, Tensor) or loss.numel() != 1:
                    raise InputError(
                        "loss_fn: expected a scalar tensor, got "
                        + (f"shape {tuple(loss.shape)}" if isinstance(loss, Tensor) else repr(loss))
                    )
                (loss.float().reshape(()) / cfg.accumulate).backward()
            total += loss.detach().float().reshape(())
        grad_norm: Tensor | None = None
        if cfg.grad_clip is not None:
            grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
        self.last_lr = float(self.optimizer.param_groups[0]["lr"])
        self.optimizer.step()
        self.scheduler.step()
        if self.ema is not None:
            self.last_ema_decay = self.ema.update(self.model)
        self.step += 1
        return total / cfg.accumulate, grad_norm

    def fit(
        self,
        resume: bool | str | Path = False,
        *,
        progress: Callable[[int, float, float], None] | None = None,
    ) -> FitResult:
        """Train up to ``max_steps``.

        ``resume``: ``False`` starts fresh (refusing a run folder that already holds
        checkpoints, so nothing is overwritten), ``True`` continues from the newest checkpoint in
        ``out_dir`` when there is one, a path continues from that checkpoint. ``progress(step,
        loss, steps_per_s)``, when given, is called after every optimizer step on the main rank
        instead of the built-in progress bar (e.g. a CLI's
        :meth:`polyfold.core.progress.Progress.trainer_update`). A NaN or infinite loss (or
        gradient norm) stops training at the next log or checkpoint step with a
        :class:`~polyfold.core.errors.NonFiniteError` naming the step and the last (finite)
        checkpoint; nothing from the broken steps is saved or logged.
        """
        cfg = self.config
        if resume is True:
            found = latest_checkpoint(self.out_dir)
            if found is not None:
                self.load_checkpoint(found)
        elif resume is False:
            if self.step == 0 and latest_checkpoint(self.out_dir) is not None:
                raise InputError(
                    f"out_dir: {str(self.out_dir)!r} already holds checkpoints; resume that run "
                    "(--resume on the command line, resume=True in Python) or choose another "
                    "folder"
                )
        elif isinstance(resume, str | Path):
            self.load_checkpoint(resume)
        else:
            raise InputError(f"resume: expected True, False or a checkpoint path, got {resume!r}")

        main = self.dist.is_main
        use_tb = cfg.tensorboard if cfg.tensorboard is not None else tensorboard_available()
        logger = (
            MetricsLogger(self.out_dir, tensorboard=use_tb, resume_step=self.step) if main else None
        )
        last_path: Path | None = None
        last_loss: float | None = None
        metrics: dict[str, float] = {}
        loss_sum = torch.zeros((), device=self.device)
        n_sum = 0
        t_last, step_last = time.perf_counter(), self.step
        micro = self._micro_batches()
        # the first step whose loss or gradient norm was not finite (-1: none), kept on the device
        # and read only before logging or checkpointing, so no step waits on a host sync
        first_bad = torch.full((), -1, dtype=torch.long, device=self.device)
        try:
            show = main and not cfg.quiet and progress is None
            with ProgressBar(cfg.max_steps, start=self.step, enabled=show) as bar:
                rate = 0.0
                while self.step < cfg.max_steps:
                    loss, grad_norm = self.train_step(micro)
                    finite = torch.isfinite(loss)
                    if grad_norm is not None:
                        finite = finite & torch.isfinite(grad_norm)
                    first_bad = torch.where(~finite & (first_bad < 0), self.step, first_bad)
                    loss_sum += loss
                    n_sum += 1
                    done = self.step == cfg.max_steps
                    every = cfg.checkpoint_every
                    save = done or (every is not None and self.step % every == 0)
                    if save or self.step % cfg.log_every == 0:
                        self._stop_if_not_finite(first_bad)
                    if self.step % cfg.log_every == 0 or done:
                        mean = loss_sum / n_sum
                        if self.dist.enabled:
                            dist.all_reduce(mean)
                            mean = mean / self.dist.world_size
                        last_loss = float(mean)
                        now = time.perf_counter()
                        rate = (self.step - step_last) / max(now - t_last, 1e-9)
                        t_last, step_last = now, self.step
                        metrics = {
                            "loss": last_loss,
                            "lr": self.last_lr,
                            "steps_per_s": rate,
                        }
                        if grad_norm is not None:
                            metrics["grad_norm"] = float(grad_norm)
                        if self.last_ema_decay is not None:
                            metrics["ema_decay"] = self.last_ema_decay
                        if logger is not None:
                            logger.log(self.step, metrics)
                        loss_sum.zero_()
                        n_sum = 0
                    shown = last_loss if last_loss is not None else math.nan
                    bar.update(self.step, shown, rate)
                    if progress is not None and main:
                        progress(self.step, shown, rate)
                    if save:
                        last_path = self.save_checkpoint()
        finally:
            micro.close()  # shuts down DataLoader workers
            if logger is not None:
                logger.close()
        if last_path is None and main:
            found = latest_checkpoint(self.out_dir)
            last_path = found
        return FitResult(self.step, last_loss, last_path, metrics)

    def _stop_if_not_finite(self, first_bad: Tensor) -> None:
        """Raise :class:`NonFiniteError` when some step since the last check had a NaN or
        infinite loss (or gradient norm), naming it and the last checkpoint, which is left as
        it was: nothing from the broken steps is saved."""
        if self.dist.enabled:
            dist.all_reduce(first_bad, op=dist.ReduceOp.MAX)
        step = int(first_bad)
        if step < 0:
            return
        last = latest_checkpoint(self.out_dir)
        kept = (
            f"the last finite checkpoint is {str(last)!r}"
            if last is not None
            else "no checkpoint was written before it"
        )
        raise NonFiniteError(
            f"training: the loss or its gradient is not finite (NaN or inf) at step {step}; "
            f"training stopped at step {self.step} without saving; {kept}. Lower the learning "
            "rate, set grad_clip, or check the data and the loss, then resume from that "
            "checkpoint"
        )

    def close(self) -> None:
        """Leave the process group if this trainer joined it."""
        if self._owns_group and dist.is_initialized():
            barrier()
            dist.destroy_process_group()
            self._owns_group = False


def _as_tuple(v: Any) -> Any:
    if isinstance(v, list):
        return tuple(_as_tuple(x) for x in v)
    return v
