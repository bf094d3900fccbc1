"""Stratified row subsets, shared by the evaluation protocol and the PFN's held-out check."""

from __future__ import annotations

import numpy as np

from polyfold.core.errors import InputError

__all__ = ["stratified_indices"]


def stratified_indices(
    y: np.ndarray, n: int, rng: np.random.Generator, *, min_per_class: int = 2
) -> np.ndarray:
    """``n`` row indices of ``y``, class proportions kept, at least ``min_per_class`` each."""
    classes, counts = np.unique(y, return_counts=True)
    if n > len(y):
        raise InputError(f"cannot draw {n} rows from {len(y)}")
    if n < min_per_class * len(classes) or (counts < min_per_class).any():
        raise InputError(
            f"{n} rows cannot hold {min_per_class} rows of each of {len(classes)} classes"
        )
    alloc = np.maximum(min_per_class, np.floor(n * counts / counts.sum()).astype(int))
    alloc = np.minimum(alloc, counts)
    while alloc.sum() > n:  # take back from the largest allocations
        i = int(np.argmax(np.where(alloc > min_per_class, alloc, -1)))
        alloc[i] -= 1
    while alloc.sum() < n:  # hand out the rest by largest remainder of the proportion
        room = alloc < counts
        i = int(np.argmax(np.where(room, n * counts / counts.sum() - alloc, -np.inf)))
        alloc[i] += 1
    picks = [
        rng.choice(np.flatnonzero(y == c), size=k, replace=False)
        for c, k in zip(classes, alloc, strict=True)
    ]
    return np.sort(np.concatenate(picks))
