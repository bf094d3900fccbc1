"""Facing direction (yaw about +y) of poses, and the rigid moves that act on it."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from polyfold.motion.motion import Motion
from polyfold.motion.quaternion import qmul, qrotate, yaw_quat
from polyfold.motion.skeleton import HUMANOID, Skeleton

__all__ = ["facing_yaw", "rotate_motion", "wrap_angle"]


def wrap_angle(a: np.ndarray) -> np.ndarray:
    """Angles wrapped into ``[-pi, pi)``."""
    return (np.asarray(a) + np.pi) % (2 * np.pi) - np.pi


def facing_yaw(joints: np.ndarray, skeleton: Skeleton = HUMANOID) -> np.ndarray:
    """Yaw ``(T,)`` of the body's forward direction, from the left-to-right vector across the
    hips and shoulders (``up x right`` is forward; yaw 0 faces +x). Where that vector is nearly
    vertical (a cartwheel), the previous frame's yaw is kept."""
    r = skeleton.index("right_hip"), skeleton.index("right_shoulder")
    left = skeleton.index("left_hip"), skeleton.index("left_shoulder")
    across = joints[:, r[0]] - joints[:, left[0]] + joints[:, r[1]] - joints[:, left[1]]
    fx, fz = across[:, 2], -across[:, 0]  # up x across, with up = +y
    yaw = np.arctan2(-fz, fx)
    ok = np.hypot(fx, fz) > 1e-3 * np.linalg.norm(across, axis=-1).clip(1e-9)
    out = np.empty_like(yaw)
    prev = 0.0
    for t in range(len(yaw)):
        prev = yaw[t] if ok[t] else prev
        out[t] = prev
    return out


def rotate_motion(motion: Motion, yaw: float, pivot: np.ndarray | None = None) -> Motion:
    """The motion turned by ``yaw`` radians about the vertical axis through ``pivot`` (xz of
    the first root position by default)."""
    pivot = motion.root_pos[0] if pivot is None else np.asarray(pivot, dtype=np.float64)
    centre = np.array([pivot[0], 0.0, pivot[2]])
    q = yaw_quat(np.float64(yaw))
    root = qrotate(q, motion.root_pos - centre) + centre
    rot = motion.rotations.copy()
    rot[:, 0] = qmul(np.broadcast_to(q, rot[:, 0].shape), rot[:, 0])
    return replace(motion, root_pos=root, rotations=rot)
