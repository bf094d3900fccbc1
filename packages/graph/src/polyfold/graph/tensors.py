"""The dense graph batch every dataset, encoder and sampler shares: :class:`GraphTensors`."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor

from polyfold.core.errors import InputError

__all__ = ["GraphTensors"]


@dataclass(frozen=True)
class GraphTensors:
    """A batch of dense graphs: ``x (G, N, F)`` float, ``adj (G, N, N)`` float, ``mask (G, N)``.

    ``mask`` is True on real nodes; padding rows of ``x`` and rows/columns of ``adj`` are zero.
    ``adj`` is symmetric. Indexing with an int, a slice, a list or a tensor returns a
    ``GraphTensors`` (an int keeps a batch of one).
    """

    x: Tensor
    adj: Tensor
    mask: Tensor

    def __post_init__(self) -> None:
        x, adj, mask = self.x, self.adj, self.mask
        if not (isinstance(x, Tensor) and isinstance(adj, Tensor) and isinstance(mask, Tensor)):
            raise InputError("GraphTensors: x, adj and mask must be torch tensors")
        if x.dim() != 3:
            raise InputError(f"GraphTensors.x: expected shape (G, N, F), got {tuple(x.shape)}")
        g, n = x.shape[:2]
        if adj.shape != (g, n, n):
            raise InputError(
                f"GraphTensors.adj: expected shape {(g, n, n)}, got {tuple(adj.shape)}"
            )
        if mask.shape != (g, n):
            raise InputError(f"GraphTensors.mask: expected shape {(g, n)}, got {tuple(mask.shape)}")
        if mask.dtype != torch.bool:
            raise InputError(f"GraphTensors.mask: expected dtype torch.bool, got {mask.dtype}")
        if not (x.is_floating_point() and adj.is_floating_point()):
            raise InputError("GraphTensors: x and adj must be floating-point tensors")

    def __len__(self) -> int:
        return self.x.shape[0]

    def __getitem__(self, index) -> GraphTensors:
        if isinstance(index, int):
            if not -len(self) <= index < len(self):
                raise IndexError(f"graph index {index} out of range for {len(self)} graphs")
            index = slice(index % len(self), index % len(self) + 1)
        return GraphTensors(self.x[index], self.adj[index], self.mask[index])

    def __iter__(self) -> Iterator[GraphTensors]:
        for k in range(len(self)):
            yield self[k]

    @property
    def max_nodes(self) -> int:
        return self.x.shape[1]

    @property
    def n_features(self) -> int:
        return self.x.shape[2]

    @property
    def n_nodes(self) -> Tensor:
        """Number of real nodes of each graph, ``(G,)`` long."""
        return self.mask.sum(-1)

    def to(self, device: torch.device | str) -> GraphTensors:
        return GraphTensors(self.x.to(device), self.adj.to(device), self.mask.to(device))

    def save(self, path: str | os.PathLike) -> None:
        """Write to a safetensors file (x, adj float32, mask bool)."""
        tensors = {"x": self.x.float(), "adj": self.adj.float(), "mask": self.mask}
        save_file({k: v.contiguous().cpu() for k, v in tensors.items()}, str(path))

    @classmethod
    def load(cls, path: str | os.PathLike) -> GraphTensors:
        """Read a file written by :meth:`save` (safetensors, no pickle)."""
        try:
            t = load_file(str(path))
        except Exception as err:
            raise InputError(f"{path}: not a readable safetensors file ({err})") from None
        missing = {"x", "adj", "mask"} - set(t)
        if missing:
            raise InputError(f"{path}: missing tensors {sorted(missing)}")
        return cls(t["x"].float(), t["adj"].float(), t["mask"].bool())
