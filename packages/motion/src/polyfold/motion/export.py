"""Writing generated motion for other tools: joint positions as ``.npy`` and BVH for Blender."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from polyfold.core.errors import InputError
from polyfold.core.outputs import write_bytes
from polyfold.motion.formats.bvh import write_bvh
from polyfold.motion.motion import Motion

__all__ = ["save_joints", "write_bvh"]


def save_joints(path: str | Path, joints: np.ndarray) -> Path:
    """Write joint positions ``(T, J, 3)`` in metres (y-up) as a float32 ``.npy``, atomically."""
    joints = np.asarray(joints)
    if joints.ndim != 3 or joints.shape[-1] != 3:
        raise InputError(f"joints: expected an array (T, J, 3), got {joints.shape}")
    buf = io.BytesIO()
    np.save(buf, joints.astype(np.float32))
    return write_bytes(path, buf.getvalue())


def motion_files(out: Path, stem: str, motion: Motion) -> list[Path]:
    """``<stem>.npy`` (joints) and ``<stem>.bvh`` for one motion in folder ``out``."""
    npy = save_joints(out / f"{stem}.npy", motion.joints())
    bvh = out / f"{stem}.bvh"
    write_bvh(bvh, motion)
    return [npy, bvh]
