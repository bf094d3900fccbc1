"""DeepMimic motion files (pybullet's ``data/motions``) and the embedded converted copy.

A DeepMimic file is JSON: ``{"Loop": ..., "Frames": [[dt, root xyz, root quat, chest quat, neck
quat, right hip quat, right knee angle, right ankle quat, right shoulder quat, right elbow angle,
left ...], ...]}`` with quaternions ``(w, x, y, z)`` and ``dt`` the time to the next frame.
The 20 humanoid clips that ship with pybullet are embedded as ``data/deepmimic.npz`` (converted
by ``packages/motion/dev/convert_deepmimic.py``; MIT data, see ``data/DEEPMIMIC_LICENSE.txt``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from polyfold.core.errors import InputError, reading
from polyfold.motion.motion import Motion
from polyfold.motion.quaternion import axis_angle, normalize
from polyfold.motion.skeleton import DEEPMIMIC_ORDER, HUMANOID

__all__ = ["CLIP_NAMES", "RawClip", "frames_to_motion", "load_clips", "read_deepmimic"]

FRAME_WIDTH = 1 + 3 + 4 + sum(n for _, n in DEEPMIMIC_ORDER)  # 44

CLIP_NAMES = (
    "humanoid3d_backflip", "humanoid3d_cartwheel", "humanoid3d_crawl", "humanoid3d_dance_a",
    "humanoid3d_dance_b", "humanoid3d_getup_facedown", "humanoid3d_getup_faceup",
    "humanoid3d_jump", "humanoid3d_kick", "humanoid3d_punch", "humanoid3d_roll",
    "humanoid3d_run", "humanoid3d_spin", "humanoid3d_spinkick", "humanoid3d_walk",
    "walker_0walk_forward", "walker_turn_left0", "walker_turn_left1", "walker_turn_right0",
    "walker_turn_right1",
)  # fmt: skip


@dataclass(frozen=True)
class RawClip:
    """One DeepMimic clip as stored: ``frames (T, 44)`` and whether it loops."""

    name: str
    frames: np.ndarray
    loop: bool

    def frame_times(self) -> np.ndarray:
        """Seconds of each frame (``dt`` is the time to the next frame)."""
        return np.concatenate([[0.0], np.cumsum(self.frames[:-1, 0].astype(np.float64))])

    def motion(self) -> Motion:
        """The clip at its own (possibly uneven) timing, as a :class:`Motion` at the rate of
        its first frame; use :meth:`resampled` for a uniform rate."""
        return frames_to_motion(self.frames, fps=1.0 / float(self.frames[0, 0]), name=self.name)

    def resampled(self, fps: float = 20.0) -> Motion:
        """The clip resampled to ``fps`` by slerp on its true frame times."""
        return self.motion().resample(fps, frame_times=self.frame_times())


def frames_to_motion(frames: np.ndarray, fps: float, name: str = "") -> Motion:
    """A :class:`Motion` from DeepMimic frame rows ``(T, 44)``."""
    frames = np.asarray(frames, dtype=np.float64)
    if frames.ndim != 2 or frames.shape[1] != FRAME_WIDTH:
        raise InputError(
            f"motion {name!r}: expected frames of {FRAME_WIDTH} values, got {frames.shape}"
        )
    t = frames.shape[0]
    rot = np.zeros((t, HUMANOID.num_joints, 4))
    rot[..., 0] = 1.0
    rot[:, 0] = frames[:, 4:8]
    col = 8
    for joint, width in DEEPMIMIC_ORDER:
        j = HUMANOID.index(joint)
        if width == 4:
            rot[:, j] = frames[:, col : col + 4]
        else:
            rot[:, j] = axis_angle(HUMANOID.hinge_axis, frames[:, col])
        col += width
    return Motion(frames[:, 1:4].copy(), normalize(rot), fps=fps, name=name)


def read_deepmimic(path: str | Path) -> RawClip:
    """Read a DeepMimic motion file (JSON with a ``Frames`` list of 44-value rows)."""
    path = Path(path)
    with reading(path, "DeepMimic motion"):
        data = json.loads(path.read_bytes().rstrip(b"\x00").decode("utf-8"))
        if not isinstance(data, dict) or "Frames" not in data:
            raise InputError(f"DeepMimic motion {path}: expected a JSON object with 'Frames'")
        rows = data["Frames"]
        if not rows or any(not isinstance(r, list) or len(r) != FRAME_WIDTH for r in rows):
            raise InputError(
                f"DeepMimic motion {path}: every frame must be a list of {FRAME_WIDTH} numbers"
            )
        frames = np.asarray(rows, dtype=np.float64)
    if not np.isfinite(frames).all() or (frames[:-1, 0] <= 0).any():
        raise InputError(f"DeepMimic motion {path}: non-finite values or non-positive frame times")
    return RawClip(path.stem, frames, str(data.get("Loop", "none")).lower() == "wrap")


def load_clips(names: tuple[str, ...] | None = None) -> list[RawClip]:
    """The embedded DeepMimic clips (all 20, or ``names`` in that order)."""
    ref = resources.files("polyfold.motion").joinpath("data/deepmimic.npz")
    with ref.open("rb") as fh, np.load(fh) as data:
        loops = dict(zip(data["names"].tolist(), data["loops"].tolist(), strict=True))
        wanted = CLIP_NAMES if names is None else names
        out = []
        for name in wanted:
            if name not in loops:
                raise InputError(
                    f"clip {name!r}: not embedded (expected one of {', '.join(CLIP_NAMES)})"
                )
            out.append(RawClip(name, data[f"frames_{name}"].astype(np.float64), bool(loops[name])))
    return out
