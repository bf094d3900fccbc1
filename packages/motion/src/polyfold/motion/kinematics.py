"""Forward kinematics: local joint rotations and a root trajectory to world joint positions.

A pose is a root position ``(T, 3)`` plus one unit quaternion per joint ``(T, J, 4)`` in
``(w, x, y, z)`` order: the root's is global, every other joint's is relative to its parent
(hinge joints hold a rotation about the skeleton's hinge axis, fixed joints the identity).
"""

from __future__ import annotations

import numpy as np

from polyfold.motion.quaternion import normalize, qmul, to_matrix
from polyfold.motion.skeleton import HUMANOID, Skeleton

__all__ = ["forward_kinematics", "global_rotations"]


def global_rotations(rotations: np.ndarray, skeleton: Skeleton = HUMANOID) -> np.ndarray:
    """World orientation of every joint's frame, ``(..., J, 4)``."""
    rotations = normalize(rotations)
    out = np.empty_like(rotations)
    for j, p in enumerate(skeleton.parents):
        out[..., j, :] = (
            rotations[..., j, :] if p < 0 else qmul(out[..., p, :], rotations[..., j, :])
        )
    return out


def forward_kinematics(
    root_pos: np.ndarray, rotations: np.ndarray, skeleton: Skeleton = HUMANOID
) -> np.ndarray:
    """World positions ``(..., J, 3)`` of every joint's frame origin (pybullet's link frames)."""
    root_pos = np.asarray(root_pos, dtype=np.float64)
    local = to_matrix(normalize(np.asarray(rotations, dtype=np.float64)))
    world = np.empty_like(local)
    pos = np.empty((*local.shape[:-2], 3))
    for j, p in enumerate(skeleton.parents):
        if p < 0:
            world[..., j, :, :] = local[..., j, :, :]
            pos[..., j, :] = root_pos
        else:
            world[..., j, :, :] = world[..., p, :, :] @ local[..., j, :, :]
            pos[..., j, :] = pos[..., p, :] + world[..., p, :, :] @ skeleton.offsets[j]
    return pos
