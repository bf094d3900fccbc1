"""HumanML3D: 263-d ``new_joint_vecs/<id>.npy`` (22 SMPL joints at 20 fps) with
``texts/<id>.txt`` captions (``caption#tokens#start#end`` per line) and split files.

The 263 values per frame are: root yaw velocity (1), root xz velocity in the facing frame (2),
root height (1), joint positions in the facing frame (21 x 3; x and z relative to the root,
y the height above the floor), 6D joint rotations (21 x 6), joint velocities (22 x 3) and four
foot contacts.
:func:`humanml3d_joints` recovers joint positions the way HumanML3D defines them (the yaw
and root velocities of frame ``t`` move frame ``t+1``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from polyfold.core.errors import InputError, reading
from polyfold.motion.quaternion import qconj, qrotate

__all__ = [
    "HUMANML3D_DIM",
    "HUMANML3D_JOINTS",
    "HumanML3DItem",
    "humanml3d_joints",
    "read_humanml3d",
    "read_humanml3d_item",
]

HUMANML3D_DIM = 263
HUMANML3D_JOINTS = 22


@dataclass(frozen=True)
class HumanML3DItem:
    """One HumanML3D motion: ``features (T, 263)`` and its captions with their time spans in
    seconds (``0, 0`` for the whole motion)."""

    name: str
    features: np.ndarray
    captions: list[str]
    spans: list[tuple[float, float]]

    def joints(self) -> np.ndarray:
        return humanml3d_joints(self.features)


def humanml3d_joints(features: np.ndarray) -> np.ndarray:
    """Joint positions ``(T, 22, 3)`` from HumanML3D feature rows ``(T, 263)``."""
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2 or f.shape[1] != HUMANML3D_DIM:
        raise InputError(f"HumanML3D features: expected (T, {HUMANML3D_DIM}), got {f.shape}")
    t = f.shape[0]
    half = np.zeros(t)
    half[1:] = f[:-1, 0]
    half = np.cumsum(half)
    q = np.zeros((t, 4))
    q[:, 0] = np.cos(half)
    q[:, 2] = np.sin(half)
    inv = qconj(q)
    vel = np.zeros((t, 3))
    vel[1:, [0, 2]] = f[:-1, 1:3]
    root = np.cumsum(qrotate(inv, vel), axis=0)
    root[:, 1] = f[:, 3]
    ric = f[:, 4 : 4 + 3 * (HUMANML3D_JOINTS - 1)].reshape(t, HUMANML3D_JOINTS - 1, 3)
    pos = qrotate(np.broadcast_to(inv[:, None], (*ric.shape[:-1], 4)), ric)
    pos[..., 0] += root[:, None, 0]
    pos[..., 2] += root[:, None, 2]
    return np.concatenate([root[:, None], pos], axis=1)


def _read_texts(path: Path) -> tuple[list[str], list[tuple[float, float]]]:
    captions, spans = [], []
    with reading(path, "HumanML3D text"):
        for n, line in enumerate(path.read_text().splitlines(), start=1):
            if not line.strip():
                continue
            parts = line.split("#")
            if len(parts) < 4:
                raise InputError(
                    f"HumanML3D text {path} line {n}: expected 'caption#tokens#start#end'"
                )
            start, end = float(parts[-2] or 0), float(parts[-1] or 0)
            captions.append(parts[0].strip())
            spans.append((0.0 if np.isnan(start) else start, 0.0 if np.isnan(end) else end))
    if not captions:
        raise InputError(f"HumanML3D text {path}: no captions")
    return captions, spans


def read_humanml3d_item(root: str | Path, name: str) -> HumanML3DItem:
    """The motion ``name`` of a HumanML3D folder (``new_joint_vecs/`` and ``texts/``)."""
    root = Path(root)
    vec = root / "new_joint_vecs" / f"{name}.npy"
    with reading(vec, "HumanML3D motion"):
        feats = np.load(vec, allow_pickle=False)
    if feats.ndim != 2 or feats.shape[1] != HUMANML3D_DIM or not np.isfinite(feats).all():
        raise InputError(
            f"HumanML3D motion {vec}: expected finite (T, {HUMANML3D_DIM}), got {feats.shape}"
        )
    captions, spans = _read_texts(root / "texts" / f"{name}.txt")
    return HumanML3DItem(name, feats.astype(np.float32), captions, spans)


def read_humanml3d(root: str | Path, split: str = "train") -> list[HumanML3DItem]:
    """Every motion listed in ``<root>/<split>.txt``."""
    split_file = Path(root) / f"{split}.txt"
    with reading(split_file, "HumanML3D split"):
        names = [n.strip() for n in split_file.read_text().splitlines() if n.strip()]
    return [read_humanml3d_item(root, n) for n in names]
