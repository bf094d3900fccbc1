"""BVH (Biovision hierarchy) reading and writing, and the map onto the humanoid skeleton.

:func:`read_bvh` parses any BVH (joints, offsets, channels, frames) into a :class:`Bvh` whose
:meth:`Bvh.joints` runs its forward kinematics; :func:`bvh_to_motion` maps a BVH whose joints
carry the humanoid's names (as :func:`write_bvh` writes them) back onto a :class:`Motion`.
Euler angles follow the BVH convention: the channel order is the order of intrinsic rotations.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from polyfold.core.errors import InputError, reading
from polyfold.motion.motion import Motion
from polyfold.motion.skeleton import HUMANOID

__all__ = ["Bvh", "bvh_to_motion", "read_bvh", "write_bvh"]

_ROT_CHANNELS = {"Xrotation": "X", "Yrotation": "Y", "Zrotation": "Z"}
_POS_CHANNELS = ("Xposition", "Yposition", "Zposition")
_END_SITES = {"neck": (0.0, 0.2, 0.0), "right_ankle": (0.1, -0.05, 0.0),
              "left_ankle": (0.1, -0.05, 0.0)}  # fmt: skip


@dataclass(frozen=True)
class Bvh:
    """A parsed BVH: joint ``names``, ``parents``, ``offsets (J, 3)``, each joint's
    ``channels``, the ``values (T, C)`` of all channels and the ``frame_time`` in seconds."""

    names: tuple[str, ...]
    parents: tuple[int, ...]
    offsets: np.ndarray
    channels: tuple[tuple[str, ...], ...]
    values: np.ndarray
    frame_time: float

    def _columns(self) -> list[int]:
        starts, c = [], 0
        for ch in self.channels:
            starts.append(c)
            c += len(ch)
        return starts

    def local_rotations(self) -> np.ndarray:
        """``(T, J, 4)`` quaternions ``(w, x, y, z)`` of each joint's rotation channels."""
        t = self.values.shape[0]
        out = np.zeros((t, len(self.names), 4))
        out[..., 0] = 1.0
        for j, (start, ch) in enumerate(zip(self._columns(), self.channels, strict=True)):
            rot = [(i, _ROT_CHANNELS[c]) for i, c in enumerate(ch) if c in _ROT_CHANNELS]
            if rot:
                order = "".join(a for _, a in rot)
                ang = self.values[:, [start + i for i, _ in rot]]
                xyzw = Rotation.from_euler(order, ang, degrees=True).as_quat()
                out[:, j] = xyzw[:, [3, 0, 1, 2]]
        return out

    def translations(self) -> np.ndarray:
        """``(T, J, 3)``: each joint's offset, replaced by its position channels if it has any."""
        t = self.values.shape[0]
        out = np.broadcast_to(self.offsets, (t, *self.offsets.shape)).copy()
        for j, (start, ch) in enumerate(zip(self._columns(), self.channels, strict=True)):
            for axis, name in enumerate(_POS_CHANNELS):
                if name in ch:
                    out[:, j, axis] = self.values[:, start + ch.index(name)]
        return out

    def joints(self) -> np.ndarray:
        """World joint positions ``(T, J, 3)`` in the file's units."""
        rot = Rotation.from_quat(self.local_rotations()[..., [1, 2, 3, 0]].reshape(-1, 4))
        local = rot.as_matrix().reshape(*self.values.shape[:1], len(self.names), 3, 3)
        trans = self.translations()
        world = np.empty_like(local)
        pos = np.empty_like(trans)
        for j, p in enumerate(self.parents):
            if p < 0:
                world[:, j], pos[:, j] = local[:, j], trans[:, j]
            else:
                world[:, j] = world[:, p] @ local[:, j]
                pos[:, j] = pos[:, p] + np.einsum("tab,tb->ta", world[:, p], trans[:, j])
        return pos


def _parse(path: Path, text: str) -> Bvh:
    tokens = text.split()
    if not tokens or tokens[0] != "HIERARCHY":
        raise InputError(f"BVH {path}: expected the file to start with HIERARCHY")
    names: list[str] = []
    parents: list[int] = []
    offsets: list[list[float]] = []
    channels: list[tuple[str, ...]] = []
    stack: list[int] = []
    i = 1
    pending = -1
    while i < len(tokens) and tokens[i] != "MOTION":
        tok = tokens[i]
        if tok in ("ROOT", "JOINT"):
            names.append(tokens[i + 1])
            parents.append(stack[-1] if stack else -1)
            offsets.append([0.0, 0.0, 0.0])
            channels.append(())
            pending = len(names) - 1
            i += 2
        elif tok == "End":
            pending = -2  # an end site: its block is skipped
            i += 2
        elif tok == "{":
            stack.append(pending)
            i += 1
        elif tok == "}":
            stack.pop()
            i += 1
        elif tok == "OFFSET":
            if stack and stack[-1] >= 0:
                offsets[stack[-1]] = [float(v) for v in tokens[i + 1 : i + 4]]
            i += 4
        elif tok == "CHANNELS":
            n = int(tokens[i + 1])
            ch = tuple(tokens[i + 2 : i + 2 + n])
            bad = [c for c in ch if c not in _ROT_CHANNELS and c not in _POS_CHANNELS]
            if bad:
                raise InputError(f"BVH {path}: unknown channel {bad[0]!r}")
            channels[stack[-1]] = ch
            i += 2 + n
        else:
            raise InputError(f"BVH {path}: unexpected token {tok!r} in the hierarchy")
    if not names or i >= len(tokens):
        raise InputError(f"BVH {path}: no joints or no MOTION section")
    if tokens[i + 1] != "Frames:" or tokens[i + 3 : i + 5] != ["Frame", "Time:"]:
        raise InputError(f"BVH {path}: expected 'Frames: N' and 'Frame Time: s' after MOTION")
    frames = int(tokens[i + 2])
    frame_time = float(tokens[i + 5])
    width = sum(len(c) for c in channels)
    data = np.asarray(tokens[i + 6 :], dtype=np.float64)
    if frames < 1 or data.size != frames * width or not frame_time > 0:
        raise InputError(
            f"BVH {path}: expected {frames} frames of {width} values and a positive frame time, "
            f"got {data.size} values"
        )
    return Bvh(tuple(names), tuple(parents), np.array(offsets), tuple(channels),
               data.reshape(frames, width), frame_time)  # fmt: skip


def read_bvh(path: str | Path) -> Bvh:
    """Parse a BVH file; a malformed one raises an :class:`InputError` naming it."""
    path = Path(path)
    with reading(path, "BVH"):
        try:
            return _parse(path, path.read_text())
        except (IndexError, KeyError) as err:
            raise InputError(f"BVH {path}: truncated or malformed ({err})") from None


def bvh_to_motion(bvh: Bvh, units_per_metre: float = 100.0, fps: float | None = None) -> Motion:
    """A humanoid :class:`Motion` from a BVH with the humanoid's joint names (any subset
    order; joints missing from the file keep the identity). A joint the humanoid does not have
    raises an :class:`InputError` naming it."""
    unknown = [n for n in bvh.names if n not in HUMANOID.names]
    if unknown:
        raise InputError(
            f"BVH joint {unknown[0]!r}: not a joint of the humanoid skeleton "
            f"(expected names from {', '.join(HUMANOID.names)})"
        )
    if bvh.names[0] != "root":
        raise InputError(f"BVH root joint {bvh.names[0]!r}: expected 'root'")
    rot = np.zeros((bvh.values.shape[0], HUMANOID.num_joints, 4))
    rot[..., 0] = 1.0
    local = bvh.local_rotations()
    for j, name in enumerate(bvh.names):
        rot[:, HUMANOID.index(name)] = local[:, j]
    root = bvh.translations()[:, 0] / units_per_metre
    return Motion(root, rot, fps=fps or 1.0 / bvh.frame_time)


def write_bvh(path: str | Path, motion: Motion, units_per_metre: float = 100.0) -> None:
    """Write ``motion`` as BVH (centimetres by default, ZXY Euler channels as in CMU files)."""
    sk = motion.skeleton
    children: dict[int, list[int]] = {j: [] for j in range(sk.num_joints)}
    for j, p in enumerate(sk.parents):
        if p >= 0:
            children[p].append(j)
    lines = ["HIERARCHY"]
    order: list[int] = []  # joints in the order the hierarchy lists them (depth first)

    def emit(j: int, depth: int) -> None:
        order.append(j)
        pad = "  " * depth
        off = sk.offsets[j] * units_per_metre
        head = "ROOT" if j == 0 else "JOINT"
        lines.append(f"{pad}{head} {sk.names[j]}")
        lines.append(pad + "{")
        lines.append(f"{pad}  OFFSET {off[0]:.6f} {off[1]:.6f} {off[2]:.6f}")
        pos = "Xposition Yposition Zposition " if j == 0 else ""
        lines.append(f"{pad}  CHANNELS {6 if j == 0 else 3} {pos}Zrotation Xrotation Yrotation")
        for c in children[j]:
            emit(c, depth + 1)
        if not children[j]:
            end = np.array(_END_SITES.get(sk.names[j], (0.0, -0.1, 0.0))) * units_per_metre
            site = f"{pad}    OFFSET {end[0]:.6f} {end[1]:.6f} {end[2]:.6f}"
            lines.extend([f"{pad}  End Site", pad + "  {", site, pad + "  }"])
        lines.append(pad + "}")

    emit(0, 0)
    t = motion.num_frames
    xyzw = motion.rotations[..., [1, 2, 3, 0]].reshape(-1, 4)
    euler = Rotation.from_quat(xyzw).as_euler("ZXY", degrees=True).reshape(t, -1, 3)
    euler = euler[:, order].reshape(t, -1)
    values = np.concatenate([motion.root_pos * units_per_metre, euler], axis=1)
    lines += ["MOTION", f"Frames: {t}", f"Frame Time: {1.0 / motion.fps:.8f}"]
    lines += [" ".join(f"{v:.6f}" for v in row) for row in values]
    Path(path).write_text("\n".join(lines) + "\n")
