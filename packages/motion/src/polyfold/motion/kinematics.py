"""Forward kinematics: local joint rotations and a root trajectory to world joint positions.

A pose is a root position ``(T, 3)`` plus one unit quaternion per joint ``(T, J, 4)`` in
``(w, x, y, z)`` order: the root's is global, every other joint's is relative to its parent
(hinge joints hold a rotation about the skeleton's hinge axis, fixed joints the identity).
"""

from __future__ import annotations

import numpy as np

from polyfold.motion.quaternion import normalize, qmul, qrotate
from polyfold.motion.skeleton import HUMANOID, Skeleton

__all__ = ["forward_kinematics", "global_rotations"]


def global_rotations(rotations: np.ndarray, skeleton: Skeleton = HUMANOID) -> np.ndarray:
    """World orientation of every joint's frame, ``(..., J, 4)``."""
    rotations = normalize(rotations)
    out = np.empty_like(rotations)
    for j, p in enumerate(skeleton.parents):
        out[..., j, :] = rotations[..., j, :] if p < 0 else qmul(out[..., p, :], rotations[..., j, :])
    return out


def forward_kinematics(
    root_pos: np.ndarray, rotations: np.ndarray, skeleton: Skeleton = HUMANOID
) -> np.ndarray:
    """World positions ``(..., J, 3)`` of every joint's frame origin (pybullet's link frames)."""
    root_pos = np.asarray(root_pos, dtype=np.float64)
    grot = global_rotations(np.asarray(rotations, dtype=np.float64), skeleton)
    pos = np.empty(grot.shape[:-1] + (3,))
    for j, p in enumerate(skeleton.parents):
        if p < 0:
            pos[..., j, :] = root_pos
        else:
            pos[..., j, :] = pos[..., p, :] + qrotate(grot[..., p, :], skeleton.offsets[j])
    return pos
