"""Minibatch optimal-transport coupling (exact assignment) for flow matching.

Pairing data ``x0[i]`` with noise ``noise[perm[i]]`` minimises the batch's total squared
distance ``sum_i ||x0_i - noise_perm(i)||^2`` over all permutations (Tong et al., Pooladian et
al.). The assignment is exact: :func:`scipy.optimize.linear_sum_assignment` when SciPy is
installed, else a built-in O(n^3) shortest-augmenting-path Hungarian algorithm.
"""

from __future__ import annotations

import importlib

import numpy as np
import torch
from torch import Tensor

from polyfold.core.errors import InputError
from polyfold.core.state import Mask, State, expand_mask, tree_map

__all__ = ["hungarian", "linear_assignment", "ot_coupling", "pairwise_sq_cost"]


def hungarian(cost: np.ndarray) -> np.ndarray:
    """Minimum-cost perfect assignment of a square cost matrix: ``col[i]`` for each row ``i``.

    Rows are added one at a time; each is matched through a shortest augmenting path under
    the reduced costs ``cost[i, j] - u[i] - v[j]`` (dual potentials kept feasible), which makes
    the final matching optimal. Index 0 of the column arrays is a virtual start column.
    """
    c = np.asarray(cost, dtype=np.float64)
    n = c.shape[0]
    if c.ndim != 2 or c.shape[1] != n:
        raise InputError(f"cost: expected a square matrix, got shape {c.shape}")
    u, v = np.zeros(n + 1), np.zeros(n + 1)
    match = np.zeros(n + 1, dtype=np.int64)  # match[j] = 1-based row on column j, 0 = free
    way = np.zeros(n + 1, dtype=np.int64)
    for row in range(1, n + 1):
        match[0], j0 = row, 0
        dist = np.full(n + 1, np.inf)
        used = np.zeros(n + 1, dtype=bool)
        while True:
            used[j0] = True
            i0 = match[j0]
            free = ~used[1:]
            reduced = c[i0 - 1] - u[i0] - v[1:]
            better = free & (reduced < dist[1:])
            dist[1:][better] = reduced[better]
            way[1:][better] = j0
            masked = np.where(free, dist[1:], np.inf)
            j1 = int(np.argmin(masked)) + 1
            delta = masked[j1 - 1]
            u[match[used]] += delta
            v[used] -= delta
            dist[1:][free] -= delta
            j0 = j1
            if match[j0] == 0:
                break
        while j0:  # flip the augmenting path
            j1 = way[j0]
            match[j0] = match[j1]
            j0 = j1
    col = np.empty(n, dtype=np.int64)
    col[match[1:] - 1] = np.arange(n)
    return col


def linear_assignment(cost: Tensor) -> Tensor:
    """``perm`` (long, on ``cost``'s device) minimising ``sum_i cost[i, perm[i]]``."""
    c = cost.detach().to(torch.float64).cpu().numpy()
    if not np.isfinite(c).all():
        raise InputError("cost: expected finite values")
    try:
        scipy_optimize = importlib.import_module("scipy.optimize")
    except ImportError:  # SciPy is optional: fall back to the built-in solver
        col = hungarian(c)
    else:
        col = scipy_optimize.linear_sum_assignment(c)[1]
    return torch.as_tensor(np.asarray(col, dtype=np.int64), device=cost.device)


def pairwise_sq_cost(x0: State, noise: State, mask: Mask = None) -> Tensor:
    """``(B, B)`` float64 costs ``C[i, j] = sum of ||x0_i - noise_j||^2`` over ``x0_i``'s valid
    entries, summed over a dict state's keys."""

    def one(x: Tensor, n: Tensor, m: Tensor | None) -> Tensor:
        if x.shape != n.shape:
            raise InputError(f"noise: expected shape {tuple(x.shape)}, got {tuple(n.shape)}")
        w = torch.ones_like(x) if m is None else expand_mask(m, x).expand_as(x)
        x, n, w = (a.detach().to(torch.float64).flatten(1) for a in (x, n, w))
        return (w * x * x).sum(1, keepdim=True) - 2.0 * (w * x) @ n.T + w @ (n * n).T

    costs = tree_map(one, x0, noise, mask)
    return torch.stack(list(costs.values())).sum(0) if isinstance(costs, dict) else costs


def ot_coupling(x0: State, noise: State, mask: Mask = None) -> Tensor:
    """The permutation ``perm`` making ``(x0[i], noise[perm[i]])`` a minibatch OT coupling."""
    return linear_assignment(pairwise_sq_cost(x0, noise, mask))
