"""AMASS ``.npz`` motions: SMPL(-H/-X) axis-angle ``poses``, ``trans`` and the capture rate.

Without SMPL model files these give joint rotations and the root track only; joint positions
and meshes need ``polyfold-motion[smpl]`` and the user's SMPL files (:mod:`polyfold.motion.smpl`).
Every clip can be resampled to 20 fps by slerp on the joint rotations.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from polyfold.core.errors import InputError, reading
from polyfold.motion.quaternion import slerp

__all__ = ["AmassMotion", "read_amass"]


@dataclass(frozen=True)
class AmassMotion:
    """``rotations (T, J, 4)`` quaternions ``(w, x, y, z)`` of the SMPL joints (root first),
    ``trans (T, 3)``, ``fps``, body shape ``betas`` and ``gender``."""

    rotations: np.ndarray
    trans: np.ndarray
    fps: float
    betas: np.ndarray
    gender: str

    def axis_angle(self) -> np.ndarray:
        """``(T, J, 3)`` axis-angle rotations (SMPL's pose parameters)."""
        t, j = self.rotations.shape[:2]
        xyzw = self.rotations[..., [1, 2, 3, 0]].reshape(-1, 4)
        return Rotation.from_quat(xyzw).as_rotvec().reshape(t, j, 3)

    def resample(self, fps: float = 20.0) -> AmassMotion:
        """The clip at ``fps``: slerp on rotations, linear on the root translation."""
        if not fps > 0:
            raise InputError(f"fps: expected a positive number, got {fps}")
        t = self.trans.shape[0]
        n = int(np.floor((t - 1) / self.fps * fps + 1e-6)) + 1
        pos = np.arange(n) * self.fps / fps
        lo = np.minimum(np.floor(pos).astype(int), t - 1)
        hi = np.minimum(lo + 1, t - 1)
        u = pos - lo
        trans = self.trans[lo] + (self.trans[hi] - self.trans[lo]) * u[:, None]
        rot = slerp(self.rotations[lo], self.rotations[hi], u[:, None])
        return replace(self, rotations=rot, trans=trans, fps=float(fps))


def read_amass(path: str | Path, num_joints: int | None = None) -> AmassMotion:
    """Read an AMASS ``.npz`` (keys ``poses``, ``trans`` and ``mocap_framerate`` or
    ``mocap_frame_rate``; ``betas`` and ``gender`` optional). ``num_joints`` keeps the first
    joints only (22 for the SMPL body without hands)."""
    path = Path(path)
    with reading(path, "AMASS motion"), np.load(path, allow_pickle=False) as d:
        missing = [k for k in ("poses", "trans") if k not in d.files]
        rate_key = next((k for k in ("mocap_framerate", "mocap_frame_rate") if k in d.files), None)
        if missing or rate_key is None:
            raise InputError(
                f"AMASS motion {path}: missing {', '.join(missing) or 'mocap_framerate'} "
                f"(has {', '.join(d.files)})"
            )
        poses = np.asarray(d["poses"], dtype=np.float64)
        trans = np.asarray(d["trans"], dtype=np.float64)
        fps = float(d[rate_key])
        betas = np.asarray(d["betas"], dtype=np.float64) if "betas" in d.files else np.zeros(10)
        gender = str(d["gender"]) if "gender" in d.files else "neutral"
    if poses.ndim != 2 or poses.shape[1] % 3 or trans.shape != (poses.shape[0], 3):
        raise InputError(
            f"AMASS motion {path}: expected poses (T, 3J) and trans (T, 3), got "
            f"{poses.shape} and {trans.shape}"
        )
    if poses.shape[0] < 1 or not (np.isfinite(poses).all() and np.isfinite(trans).all()):
        raise InputError(f"AMASS motion {path}: needs at least one frame of finite values")
    if not fps > 0:
        raise InputError(f"AMASS motion {path}: {rate_key} must be positive, got {fps}")
    aa = poses.reshape(poses.shape[0], -1, 3)
    if num_joints is not None:
        aa = aa[:, :num_joints]
    xyzw = Rotation.from_rotvec(aa.reshape(-1, 3)).as_quat()
    rot = xyzw[:, [3, 0, 1, 2]].reshape(*aa.shape[:2], 4)
    return AmassMotion(rot, trans, fps, betas, gender.replace("b'", "").strip("'"))
