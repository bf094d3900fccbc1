"""Deterministic, resumable batch order for the trainer.

A map-style dataset is read in global batches of ``batch_size`` samples per optimizer step.
Epoch ``e`` visits the samples in ``randperm(n)`` drawn from a generator seeded with
``(seed, e)`` (or in index order without shuffling); the incomplete last batch of an epoch is
dropped, so every step sees exactly ``batch_size`` samples and step ``s`` always reads the same
samples: batch ``s % steps_per_epoch`` of epoch ``s // steps_per_epoch``. Rank ``r`` of ``W``
takes the ``r``-th contiguous slice of each global batch, and splits it again into
``accumulate`` micro-batches. Resuming at step ``s`` therefore needs no state beyond ``s``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from polyfold.core.errors import InputError

__all__ = ["IndexBatches", "mix_seed"]


def mix_seed(*values: int) -> int:
    """A well-mixed 63-bit seed from several integers (numpy's SeedSequence hashing)."""
    state = np.random.SeedSequence([int(v) & 0xFFFFFFFFFFFFFFFF for v in values]).generate_state(
        1, dtype=np.uint64
    )
    return int(state[0]) & 0x7FFFFFFFFFFFFFFF


@dataclass
class IndexBatches:
    """An endless ``batch_sampler``: this rank's micro-batches of indices from ``start_step`` on."""

    num_samples: int
    batch_size: int
    rank: int = 0
    world_size: int = 1
    accumulate: int = 1
    seed: int = 0
    shuffle: bool = True
    start_step: int = 0

    def __post_init__(self) -> None:
        if self.batch_size % (self.world_size * self.accumulate) != 0:
            raise InputError(
                f"batch_size: expected a multiple of world_size * accumulate = "
                f"{self.world_size} * {self.accumulate}, got {self.batch_size}"
            )
        if self.num_samples < self.batch_size:
            raise InputError(
                f"batch_size: expected at most the dataset size {self.num_samples}, "
                f"got {self.batch_size}"
            )

    @property
    def steps_per_epoch(self) -> int:
        return self.num_samples // self.batch_size

    @property
    def micro_batch_size(self) -> int:
        return self.batch_size // (self.world_size * self.accumulate)

    def position(self, step: int) -> dict[str, int]:
        """Where step ``step`` (the next to run) reads: epoch and batch within it."""
        return {
            "epoch": step // self.steps_per_epoch,
            "batch_in_epoch": step % self.steps_per_epoch,
            "samples_seen": step * self.batch_size,
        }

    def order(self, epoch: int) -> torch.Tensor:
        if not self.shuffle:
            return torch.arange(self.num_samples)
        g = torch.Generator().manual_seed(mix_seed(self.seed, epoch))
        return torch.randperm(self.num_samples, generator=g)

    def __iter__(self) -> Iterator[list[int]]:
        step = self.start_step
        per_rank = self.batch_size // self.world_size
        micro = self.micro_batch_size
        epoch = -1
        perm = torch.empty(0, dtype=torch.long)
        while True:
            e, b = divmod(step, self.steps_per_epoch)
            if e != epoch:
                epoch, perm = e, self.order(e)
            start = b * self.batch_size + self.rank * per_rank
            for k in range(self.accumulate):
                lo = start + k * micro
                yield perm[lo : lo + micro].tolist()
            step += 1
