"""Monotonic alignment search (Glow-TTS, Grad-TTS): the best monotonic, surjective assignment of
mel frames to phones under a score matrix, by dynamic programming.

Every frame goes to one phone, phones in order, each phone at least one frame, the first frame to
the first phone and the last to the last; the path maximises the summed scores of its cells. The
search runs in float64 numpy on the CPU (it is a per-utterance O(phones * frames) loop over
frames, vectorised over phones) and its result carries no gradient, as in Glow-TTS.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from polyfold.core.errors import InputError

__all__ = ["durations_from_path", "monotonic_alignment", "monotonic_alignment_batch"]


def monotonic_alignment(score: np.ndarray) -> np.ndarray:
    """The best monotonic alignment of a ``(phones, frames)`` score matrix, as a 0/1 matrix of
    the same shape with exactly one 1 per frame. Needs ``frames >= phones``."""
    score = np.asarray(score, dtype=np.float64)
    if score.ndim != 2 or score.shape[0] < 1:
        raise InputError(f"score: expected a (phones, frames) matrix, got shape {score.shape}")
    n, t = score.shape
    if t < n:
        raise InputError(f"score: {t} frames cannot cover {n} phones (each needs one frame)")
    best = np.full((n, t), -np.inf)
    best[0, 0] = score[0, 0]
    for j in range(1, t):
        stay = best[:, j - 1]
        advance = np.concatenate(([-np.inf], best[:-1, j - 1]))
        best[:, j] = np.maximum(stay, advance) + score[:, j]
    path = np.zeros((n, t), dtype=np.int64)
    i = n - 1
    for j in range(t - 1, -1, -1):
        path[i, j] = 1
        # move to the previous phone when it got here with the better score (or must)
        if i > 0 and (i == j or best[i - 1, j - 1] > best[i, j - 1]):
            i -= 1
    return path


def durations_from_path(path: np.ndarray) -> np.ndarray:
    """Frames per phone of an alignment matrix ``(phones, frames)``."""
    durations: np.ndarray = np.asarray(path).sum(axis=1)
    return durations


def monotonic_alignment_batch(score: Tensor, phone_mask: Tensor, frame_mask: Tensor) -> Tensor:
    """Durations ``(B, phones)`` (long, zero on padding) of the best alignment of each item of a
    batch of scores ``(B, phones, frames)``, with masks ``(B, phones)`` and ``(B, frames)``."""
    scores = score.detach().to("cpu", torch.float64).numpy()
    n_phones = phone_mask.sum(1).tolist()
    n_frames = frame_mask.sum(1).tolist()
    out = torch.zeros(phone_mask.shape, dtype=torch.long)
    for b, (n, t) in enumerate(zip(n_phones, n_frames, strict=True)):
        path = monotonic_alignment(scores[b, : int(n), : int(t)])
        out[b, : int(n)] = torch.from_numpy(durations_from_path(path))
    return out.to(score.device)
