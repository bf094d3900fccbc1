"""Baselines without a generative model: nearest-neighbour retrieval by caption embedding
(text-to-motion) and slerp in-betweening (motion editing)."""

from __future__ import annotations

import numpy as np

from polyfold.core.errors import InputError
from polyfold.motion.features import motion_from_features
from polyfold.motion.motion import Motion

__all__ = ["retrieve", "slerp_inbetween"]


def retrieve(
    query_text: np.ndarray, bank_text: np.ndarray, bank_features: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """For each caption vector of ``query_text (M, d)`` the window of ``bank_features (N, L, D)``
    whose caption vector in ``bank_text (N, d)`` has the highest cosine similarity; returns the
    windows ``(M, L, D)`` and their bank indices ``(M,)`` (ties: the lowest index)."""
    q, b = np.asarray(query_text, np.float64), np.asarray(bank_text, np.float64)
    if q.ndim != 2 or b.ndim != 2 or q.shape[1] != b.shape[1] or len(b) != len(bank_features):
        raise InputError(
            f"retrieve: expected query (M, d), bank text (N, d) and N bank windows, got "
            f"{q.shape}, {b.shape} and {len(bank_features)}"
        )
    if len(b) == 0:
        raise InputError("retrieve: the bank is empty")
    qn = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
    bn = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    idx = np.argmax(qn @ bn.T, axis=1)
    return np.asarray(bank_features)[idx], idx


def slerp_inbetween(features: np.ndarray, start: int, end: int) -> Motion:
    """The motion of ``features (L, D)`` with frames ``[start, end)`` replaced by slerp of every
    joint rotation (root position linearly) between the key frames ``start - 1`` and ``end``."""
    m = motion_from_features(np.asarray(features))
    if not 1 <= start < end <= m.num_frames - 1:
        raise InputError(
            f"frame range: slerp needs key frames on both sides: expected 1 <= start < end <= "
            f"{m.num_frames - 1}, got start={start}, end={end}"
        )
    times = np.arange(m.num_frames, dtype=np.float64)
    keys = np.r_[0:start, end : m.num_frames]
    filled = Motion(m.root_pos[keys], m.rotations[keys], fps=1.0, skeleton=m.skeleton)
    out = filled.at_times(times, frame_times=keys.astype(np.float64))
    return Motion(out.root_pos, out.rotations, fps=m.fps, skeleton=m.skeleton)
