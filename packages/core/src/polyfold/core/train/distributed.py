"""torch.distributed plumbing for runs launched by ``torchrun`` (never a home-made launcher).

``torchrun --nproc_per_node=G [--nnodes=N --rdzv-endpoint=...] script.py`` sets ``RANK``,
``WORLD_SIZE`` and ``LOCAL_RANK``; :func:`setup_distributed` reads them and joins the process
group (NCCL on CUDA, gloo on CPU). A plain ``python script.py`` is a world of one.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from polyfold.core.errors import InputError

__all__ = ["DistInfo", "barrier", "detect_distributed", "setup_distributed"]


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits in the run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise InputError(f"environment variable {name}: expected an integer, got {raw!r}") from None


def detect_distributed() -> DistInfo:
    """Rank, world size and local rank from the torchrun environment (or an initialised group)."""
    if dist.is_available() and dist.is_initialized():
        return DistInfo(dist.get_rank(), dist.get_world_size(), _env_int("LOCAL_RANK", 0))
    world = _env_int("WORLD_SIZE", 1)
    rank = _env_int("RANK", 0)
    local = _env_int("LOCAL_RANK", 0)
    if world < 1 or not 0 <= rank < world:
        raise InputError(
            f"environment: expected 0 <= RANK < WORLD_SIZE, got RANK={rank} WORLD_SIZE={world}"
        )
    return DistInfo(rank, world, local)


def setup_distributed(device: torch.device) -> tuple[DistInfo, bool]:
    """Join the process group when launched by torchrun with ``WORLD_SIZE > 1``.

    Returns the :class:`DistInfo` and whether this call created the group (so the caller knows
    whether to destroy it). Uses NCCL when ``device`` is CUDA, gloo otherwise.
    """
    info = detect_distributed()
    if not info.enabled or dist.is_initialized():
        return info, False
    if not dist.is_available():  # pragma: no cover - builds without distributed support
        raise InputError("WORLD_SIZE > 1 but this torch build has no torch.distributed")
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
        dist.init_process_group(backend=backend, device_id=device)
    else:
        dist.init_process_group(backend=backend)
    return DistInfo(dist.get_rank(), dist.get_world_size(), info.local_rank), True


def barrier() -> None:
    """Wait for every rank (no-op outside a process group)."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
