"""Augmentations of a :class:`Motion` that keep it physically a motion of the skeleton:
mirroring, heading, speed, bone-length scaling (FK is re-run, never positions stretched), and
joining clips with a short slerp blend (for looping a cycle and for "A then B")."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from polyfold.core.errors import InputError
from polyfold.motion.heading import facing_yaw, rotate_motion, wrap_angle
from polyfold.motion.motion import Motion
from polyfold.motion.quaternion import slerp

__all__ = ["change_speed", "concatenate", "loop_to_length", "mirror", "scale_bones"]

_REFLECT_Q = np.array([1.0, -1.0, -1.0, 1.0])  # (w, x, y, z) under the reflection z -> -z


def mirror(motion: Motion) -> Motion:
    """The left/right mirror image: reflect the world in the x-y plane (the skeleton's
    sagittal plane at rest) and swap every left joint with its right twin."""
    idx = motion.skeleton.mirror_index()
    root = motion.root_pos * np.array([1.0, 1.0, -1.0])
    rot = motion.rotations[:, idx] * _REFLECT_Q
    return replace(motion, root_pos=root, rotations=rot)


def change_speed(motion: Motion, factor: float) -> Motion:
    """The motion played ``factor`` times faster, resampled by slerp at the same frame rate."""
    if not factor > 0:
        raise InputError(f"speed factor: expected a positive number, got {factor}")
    n = int(np.floor((motion.num_frames - 1) / factor + 1e-6)) + 1
    return motion.at_times(np.arange(n) * factor / motion.fps)


def scale_bones(motion: Motion, scales: np.ndarray) -> Motion:
    """The motion on a skeleton whose bones are scaled by ``scales (J,)``; the root trajectory
    is scaled by the legs' mean factor and shifted so the lowest ankle height is unchanged."""
    sk = motion.skeleton
    scales = np.asarray(scales, dtype=np.float64)
    legs = [sk.index(n) for n in ("left_knee", "left_ankle", "right_knee", "right_ankle")]
    ankles = [sk.index("left_ankle"), sk.index("right_ankle")]
    before = motion.joints()[:, ankles, 1].min()
    out = replace(
        motion, root_pos=motion.root_pos * scales[legs].mean(), skeleton=sk.scaled(scales)
    )
    shift = before - out.joints()[:, ankles, 1].min()
    return replace(out, root_pos=out.root_pos + np.array([0.0, shift, 0.0]))


def _align(second: Motion, to: Motion, at: int) -> Motion:
    """``second`` turned and moved on the ground so that its first frame faces and stands
    where frame ``at`` of ``to`` does."""
    yaw_to = facing_yaw(to.slice(at, at + 1).joints(), to.skeleton)[0]
    yaw_from = facing_yaw(second.slice(0, 1).joints(), second.skeleton)[0]
    turned = rotate_motion(second, float(wrap_angle(yaw_to - yaw_from)))
    delta = to.root_pos[at] - turned.root_pos[0]
    delta[1] = 0.0
    return replace(turned, root_pos=turned.root_pos + delta)


def concatenate(first: Motion, second: Motion, blend: int = 4) -> Motion:
    """``first`` then ``second``: the second is aligned to the first's last frame (heading and
    ground position) and the two overlap over ``blend`` frames, crossfaded by slerp."""
    if first.skeleton is not second.skeleton and not np.allclose(
        first.skeleton.offsets, second.skeleton.offsets
    ):
        raise InputError("concatenate: both motions must use the same skeleton")
    blend = int(min(blend, first.num_frames - 1, second.num_frames - 1))
    if blend < 1:
        b = _align(second, first, first.num_frames - 1)
        return replace(
            first,
            root_pos=np.concatenate([first.root_pos, b.root_pos[1:]]),
            rotations=np.concatenate([first.rotations, b.rotations[1:]]),
        )
    start = first.num_frames - blend
    b = _align(second, first, start)
    u = (np.arange(1, blend + 1) / (blend + 1))[:, None]
    root_mix = first.root_pos[start:] * (1 - u) + b.root_pos[:blend] * u
    rot_mix = slerp(first.rotations[start:], b.rotations[:blend], u)
    return replace(
        first,
        root_pos=np.concatenate([first.root_pos[:start], root_mix, b.root_pos[blend:]]),
        rotations=np.concatenate([first.rotations[:start], rot_mix, b.rotations[blend:]]),
    )


def loop_to_length(motion: Motion, frames: int) -> Motion:
    """A looping clip repeated (each cycle continuing from where the last ended; the shared
    end/start frame is kept once) until it has at least ``frames`` frames."""
    out = motion
    while out.num_frames < frames:
        out = concatenate(out, motion, blend=0)
    return out.slice(0, max(frames, 1))
