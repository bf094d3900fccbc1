"""HumanML3D-style motion features for the 15-joint humanoid, with exact recovery.

Per frame ``t`` (``T`` frames in, ``T`` rows out; :data:`LAYOUT` gives the slices):

- ``yaw_vel`` (1): change of facing yaw since frame ``t-1`` (row 0: the absolute yaw),
- ``root_vel`` (2): root xz displacement since ``t-1`` in frame ``t``'s facing frame
  (row 0: the absolute xz position),
- ``root_height`` (1),
- ``ric`` (3 (J-1)): joint positions relative to the root, in the facing frame,
- ``rot6d`` (6 (1 + ball joints)): the root rotation without its yaw, then each ball joint's
  local rotation, as 6D rotations,
- ``hinge`` (2 x hinges): sin and cos of each knee and elbow angle,
- ``joint_vel`` (3 J): joint displacement since ``t-1`` in the facing frame (row 0: zeros),
- ``contact`` (2): ankle contact with the ground (low and slow) as 0/1.

:func:`joints_from_features` inverts the first four groups exactly (cumulative sums), so
``joints_from_features(motion_features(m)) == m.joints()`` to float precision;
:func:`motion_from_features` rebuilds the rotations (and the skeleton's exact bone lengths).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from polyfold.core.errors import InputError
from polyfold.motion.heading import facing_yaw, wrap_angle
from polyfold.motion.motion import FPS, Motion
from polyfold.motion.quaternion import axis_angle, from_rot6d, qmul, qrotate, to_rot6d, yaw_quat
from polyfold.motion.skeleton import HUMANOID, Skeleton

__all__ = [
    "LAYOUT",
    "FeatureLayout",
    "foot_contacts",
    "joints_from_features",
    "motion_features",
    "motion_from_features",
]

CONTACT_HEIGHT = 0.15  # metres: an ankle this low ...
CONTACT_SPEED = 0.5  # m/s: ... and this slow is on the ground


@dataclass(frozen=True)
class FeatureLayout:
    """Where each feature group sits in a feature row, for a skeleton."""

    skeleton: Skeleton

    @property
    def groups(self) -> dict[str, slice]:
        sk = self.skeleton
        sizes = {
            "yaw_vel": 1,
            "root_vel": 2,
            "root_height": 1,
            "ric": 3 * (sk.num_joints - 1),
            "rot6d": 6 * (1 + len(sk.joints_of("ball"))),
            "hinge": 2 * len(sk.joints_of("hinge")),
            "joint_vel": 3 * sk.num_joints,
            "contact": 2,
        }
        out, start = {}, 0
        for name, size in sizes.items():
            out[name] = slice(start, start + size)
            start += size
        return out

    @property
    def dim(self) -> int:
        return list(self.groups.values())[-1].stop


LAYOUT = FeatureLayout(HUMANOID)


def foot_contacts(joints: np.ndarray, fps: float, skeleton: Skeleton = HUMANOID) -> np.ndarray:
    """``(T, 2)`` 0/1 contacts of the left and right ankles (low and slow)."""
    ankles = [skeleton.index("left_ankle"), skeleton.index("right_ankle")]
    feet = joints[:, ankles]
    speed = np.zeros(feet.shape[:2])
    speed[1:] = np.linalg.norm(np.diff(feet, axis=0), axis=-1) * fps
    speed[0] = speed[1] if len(speed) > 1 else 0.0
    return ((feet[..., 1] < CONTACT_HEIGHT) & (speed < CONTACT_SPEED)).astype(np.float64)


def _heading_frame(yaw: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Vectors ``v (T, ..., 3)`` expressed in each frame's facing frame."""
    q = yaw_quat(-yaw).reshape(yaw.shape + (1,) * (v.ndim - 2) + (4,))
    return qrotate(np.broadcast_to(q, (*v.shape[:-1], 4)), v)


def motion_features(motion: Motion) -> np.ndarray:
    """Feature rows ``(T, LAYOUT.dim)`` (float64) of a motion (see the module docstring)."""
    sk = motion.skeleton
    joints = motion.joints()
    yaw = facing_yaw(joints, sk)
    root = joints[:, 0]
    t = joints.shape[0]
    yaw_vel = np.concatenate([yaw[:1], wrap_angle(np.diff(yaw))])
    disp = np.concatenate([root[:1], np.diff(root, axis=0)]) * np.array([1.0, 0.0, 1.0])
    root_vel = _heading_frame(yaw, disp)[:, [0, 2]]
    ric = _heading_frame(yaw, joints[:, 1:] - root[:, None])
    root_noyaw = qmul(yaw_quat(-yaw), motion.rotations[:, 0])
    balls = sk.joints_of("ball")
    rot6d = to_rot6d(np.concatenate([root_noyaw[:, None], motion.rotations[:, balls]], axis=1))
    hq = motion.rotations[:, sk.joints_of("hinge")]
    angle = 2 * np.arctan2(hq[..., 1:] @ sk.hinge_axis, hq[..., 0])
    hinge = np.stack([np.sin(angle), np.cos(angle)], axis=-1)
    jvel = np.zeros_like(joints)
    jvel[1:] = np.diff(joints, axis=0)
    jvel = _heading_frame(yaw, jvel)
    contact = foot_contacts(joints, motion.fps, sk)
    parts = [yaw_vel[:, None], root_vel, root[:, 1:2], ric.reshape(t, -1), rot6d.reshape(t, -1),
             hinge.reshape(t, -1), jvel.reshape(t, -1), contact]  # fmt: skip
    return np.concatenate(parts, axis=1)


def _check(features: np.ndarray, layout: FeatureLayout) -> np.ndarray:
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2 or f.shape[1] != layout.dim or f.shape[0] < 1:
        raise InputError(f"features: expected an array (T, {layout.dim}), got {f.shape}")
    if not np.isfinite(f).all():
        raise InputError("features: contain NaN or infinite values")
    return f


def _root_track(f: np.ndarray, g: dict[str, slice]) -> tuple[np.ndarray, np.ndarray]:
    yaw = np.cumsum(f[:, g["yaw_vel"]][:, 0])
    v = np.zeros((f.shape[0], 3))
    v[:, [0, 2]] = f[:, g["root_vel"]]
    world = qrotate(yaw_quat(yaw), v)
    root = np.cumsum(world, axis=0)
    root[:, 1] = f[:, g["root_height"]][:, 0]
    return yaw, root


def joints_from_features(features: np.ndarray, layout: FeatureLayout = LAYOUT) -> np.ndarray:
    """World joint positions ``(T, J, 3)`` from feature rows (exact inverse of
    :func:`motion_features` on the position groups)."""
    f = _check(features, layout)
    g = layout.groups
    yaw, root = _root_track(f, g)
    ric = f[:, g["ric"]].reshape(f.shape[0], -1, 3)
    q = np.broadcast_to(yaw_quat(yaw)[:, None], (*ric.shape[:-1], 4))
    return np.concatenate([root[:, None], qrotate(q, ric) + root[:, None]], axis=1)


def motion_from_features(
    features: np.ndarray, layout: FeatureLayout = LAYOUT, fps: float = FPS
) -> Motion:
    """A :class:`Motion` (rotations and root track) from feature rows: its FK keeps the
    skeleton's bone lengths exactly, whatever the ``ric`` group of generated rows says."""
    f = _check(features, layout)
    sk = layout.skeleton
    g = layout.groups
    t = f.shape[0]
    yaw, root = _root_track(f, g)
    r6 = f[:, g["rot6d"]].reshape(t, -1, 6)
    q = from_rot6d(r6)
    rot = np.zeros((t, sk.num_joints, 4))
    rot[..., 0] = 1.0
    rot[:, 0] = qmul(yaw_quat(yaw), q[:, 0])
    rot[:, sk.joints_of("ball")] = q[:, 1:]
    sc = f[:, g["hinge"]].reshape(t, -1, 2)
    rot[:, sk.joints_of("hinge")] = axis_angle(sk.hinge_axis, np.arctan2(sc[..., 0], sc[..., 1]))
    return Motion(root, rot, fps=fps, skeleton=sk)
