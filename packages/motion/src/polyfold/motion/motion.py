"""A motion clip as root trajectory plus local joint rotations, and slerp resampling."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from polyfold.core.errors import InputError
from polyfold.motion.kinematics import forward_kinematics
from polyfold.motion.quaternion import slerp
from polyfold.motion.skeleton import HUMANOID, Skeleton

__all__ = ["FPS", "Motion"]

FPS = 20.0
"""The frame rate every clip is resampled to (HumanML3D's)."""


@dataclass(frozen=True)
class Motion:
    """``root_pos (T, 3)`` in metres (y-up) and ``rotations (T, J, 4)`` unit quaternions
    ``(w, x, y, z)`` (root global, the rest local), sampled at ``fps``."""

    root_pos: np.ndarray
    rotations: np.ndarray
    fps: float = FPS
    skeleton: Skeleton = field(default=HUMANOID, repr=False)
    name: str = ""

    def __post_init__(self) -> None:
        t = self.root_pos.shape[0]
        if self.root_pos.shape != (t, 3) or self.rotations.shape != (
            t,
            self.skeleton.num_joints,
            4,
        ):
            raise InputError(
                f"motion {self.name!r}: expected root_pos (T, 3) and rotations "
                f"(T, {self.skeleton.num_joints}, 4), got {self.root_pos.shape} and "
                f"{self.rotations.shape}"
            )
        if t < 1 or not (np.isfinite(self.root_pos).all() and np.isfinite(self.rotations).all()):
            raise InputError(f"motion {self.name!r}: needs at least one frame of finite values")
        if not self.fps > 0:
            raise InputError(f"motion {self.name!r}: fps must be > 0, got {self.fps}")

    @property
    def num_frames(self) -> int:
        return int(self.root_pos.shape[0])

    @property
    def seconds(self) -> float:
        return (self.num_frames - 1) / self.fps

    def joints(self) -> np.ndarray:
        """World joint positions ``(T, J, 3)`` by forward kinematics."""
        return forward_kinematics(self.root_pos, self.rotations, self.skeleton)

    def slice(self, start: int, stop: int) -> Motion:
        return replace(
            self, root_pos=self.root_pos[start:stop], rotations=self.rotations[start:stop]
        )

    def at_times(self, times: np.ndarray, frame_times: np.ndarray | None = None) -> Motion:
        """The pose at ``times`` (seconds): root position interpolated linearly, every joint
        rotation by slerp between the two nearest frames (``frame_times`` default to
        ``arange(T) / fps``). Joint positions then come from FK, so bones never stretch."""
        ft = np.arange(self.num_frames) / self.fps if frame_times is None else frame_times
        times = np.clip(np.asarray(times, dtype=np.float64), ft[0], ft[-1])
        hi = np.clip(np.searchsorted(ft, times, side="right"), 1, len(ft) - 1)
        lo = hi - 1
        span = np.maximum(ft[hi] - ft[lo], 1e-12)
        u = np.clip((times - ft[lo]) / span, 0.0, 1.0)
        if len(ft) == 1:
            lo = hi = np.zeros_like(lo)
        root = self.root_pos[lo] + (self.root_pos[hi] - self.root_pos[lo]) * u[:, None]
        rot = slerp(self.rotations[lo], self.rotations[hi], u[:, None])
        return replace(self, root_pos=root, rotations=rot)

    def resample(self, fps: float = FPS, frame_times: np.ndarray | None = None) -> Motion:
        """The clip at ``fps`` by slerp (see :meth:`at_times`), covering the same duration."""
        if not fps > 0:
            raise InputError(f"fps: expected a positive number, got {fps}")
        ft = np.arange(self.num_frames) / self.fps if frame_times is None else frame_times
        n = int(np.floor((ft[-1] - ft[0]) * fps + 1e-6)) + 1
        out = self.at_times(ft[0] + np.arange(n) / fps, ft)
        return replace(out, fps=float(fps))
