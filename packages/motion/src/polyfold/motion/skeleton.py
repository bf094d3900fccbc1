"""The 15-joint DeepMimic humanoid: joint names, parents, rest offsets and joint kinds.

The offsets are the joint origins of pybullet's ``humanoid/humanoid.urdf`` times the
``globalScaling=0.25`` that DeepMimic loads it with (metres, y-up, +x forward, +z to the
character's right). :func:`skeleton_from_urdf` reads them from a URDF file instead.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from polyfold.core.errors import InputError, reading

__all__ = ["HUMANOID", "Skeleton", "skeleton_from_urdf"]

# DeepMimic's frame order after the root: (joint, number of values: 4 = quaternion, 1 = hinge)
DEEPMIMIC_ORDER = (
    ("chest", 4), ("neck", 4),
    ("right_hip", 4), ("right_knee", 1), ("right_ankle", 4),
    ("right_shoulder", 4), ("right_elbow", 1),
    ("left_hip", 4), ("left_knee", 1), ("left_ankle", 4),
    ("left_shoulder", 4), ("left_elbow", 1),
)  # fmt: skip


@dataclass(frozen=True)
class Skeleton:
    """A kinematic tree: ``parents[j] < j`` (``-1`` for the root), ``offsets[j]`` the rest
    translation of joint ``j`` in its parent's frame, ``kinds[j]`` one of ``"root"``,
    ``"ball"``, ``"hinge"`` (about ``hinge_axis``) or ``"fixed"``."""

    names: tuple[str, ...]
    parents: tuple[int, ...]
    offsets: np.ndarray
    kinds: tuple[str, ...]
    hinge_axis: np.ndarray = field(default_factory=lambda: np.array([0.0, 0.0, 1.0]))

    def __post_init__(self) -> None:
        n = len(self.names)
        if len(self.parents) != n or len(self.kinds) != n or self.offsets.shape != (n, 3):
            raise InputError("skeleton: names, parents, kinds and offsets (J, 3) must agree")
        if any(p >= j for j, p in enumerate(self.parents)) or self.parents[0] != -1:
            raise InputError("skeleton: parents must precede their children, root first")

    @property
    def num_joints(self) -> int:
        return len(self.names)

    def index(self, name: str) -> int:
        """Index of joint ``name``; an :class:`InputError` lists the names otherwise."""
        try:
            return self.names.index(name)
        except ValueError:
            raise InputError(
                f"joint {name!r}: not in the skeleton (expected one of {', '.join(self.names)})"
            ) from None

    def joints_of(self, kind: str) -> list[int]:
        return [j for j, k in enumerate(self.kinds) if k == kind]

    def mirror_index(self) -> np.ndarray:
        """For each joint, the index of its left/right twin (itself on the midline)."""
        out = []
        for name in self.names:
            twin = name.replace("left_", "@").replace("right_", "left_").replace("@", "right_")
            out.append(self.names.index(twin) if twin in self.names else self.names.index(name))
        return np.array(out)

    def scaled(self, scales: np.ndarray) -> Skeleton:
        """The skeleton with each bone (offset) multiplied by ``scales (J,)``."""
        return replace(self, offsets=self.offsets * np.asarray(scales)[:, None])

    def bone_lengths(self) -> np.ndarray:
        return np.linalg.norm(self.offsets, axis=-1)


_URDF_SCALE = 0.25
_NAMES = (
    "root", "chest", "neck",
    "right_hip", "right_knee", "right_ankle", "right_shoulder", "right_elbow", "right_wrist",
    "left_hip", "left_knee", "left_ankle", "left_shoulder", "left_elbow", "left_wrist",
)  # fmt: skip
_PARENTS = (-1, 0, 1, 0, 3, 4, 1, 6, 7, 0, 9, 10, 1, 12, 13)
_KINDS = (
    "root", "ball", "ball",
    "ball", "hinge", "ball", "ball", "hinge", "fixed",
    "ball", "hinge", "ball", "ball", "hinge", "fixed",
)  # fmt: skip
_URDF_OFFSETS = np.array(
    [
        [0.0, 0.0, 0.0],
        [0.0, 0.944604, 0.0],
        [0.0, 0.895576, 0.0],
        [0.0, 0.0, 0.339548],
        [0.0, -1.686184, 0.0],
        [0.0, -1.639480, 0.0],
        [-0.096200, 0.974000, 0.732440],
        [0.0, -1.099152, 0.0],
        [0.0, -1.035788, 0.0],
        [0.0, 0.0, -0.339548],
        [0.0, -1.686184, 0.0],
        [0.0, -1.639480, 0.0],
        [-0.096200, 0.974000, -0.732440],
        [0.0, -1.099152, 0.0],
        [0.0, -1.035788, 0.0],
    ]
)

HUMANOID = Skeleton(_NAMES, _PARENTS, _URDF_OFFSETS * _URDF_SCALE, _KINDS)

_KIND_OF_URDF = {"spherical": "ball", "revolute": "hinge", "fixed": "fixed"}


def skeleton_from_urdf(path: str | Path, scale: float = _URDF_SCALE) -> Skeleton:
    """Read the DeepMimic humanoid's joint origins from a URDF file (a trailing NUL byte, as in
    pybullet's copy, is stripped). Joints are returned in :data:`HUMANOID`'s order."""
    with reading(path, "URDF"):
        text = Path(path).read_bytes().rstrip(b"\x00").decode("utf-8")
        root = ET.fromstring(text)
    joints = {j.get("name"): j for j in root.iter("joint")}
    offsets = np.zeros((len(_NAMES), 3))
    kinds = ["root"]
    for j, name in enumerate(_NAMES[1:], start=1):
        node = joints.get(name)
        if node is None:
            raise InputError(f"URDF {path}: no joint named {name!r}")
        origin = node.find("origin")
        xyz = origin.get("xyz", "0 0 0") if origin is not None else "0 0 0"
        offsets[j] = [float(v) for v in xyz.split()]
        kind = _KIND_OF_URDF.get(node.get("type", ""))
        if kind is None:
            raise InputError(
                f"URDF {path}: joint {name!r} has unsupported type {node.get('type')!r}"
            )
        kinds.append(kind)
    return Skeleton(_NAMES, _PARENTS, offsets * scale, tuple(kinds))
