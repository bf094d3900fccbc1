"""Check polyfold.motion's forward kinematics against pybullet's link frames.

Run: ``python packages/motion/dev/check_fk_pybullet.py`` (needs pybullet). Loads the humanoid
URDF as DeepMimic does (``globalScaling=0.25``), sets every embedded clip's frames with
``resetJointStateMultiDof`` and compares ``getLinkState(...)[4]`` (the URDF link frame) with
:func:`forward_kinematics`. Also checks that the shipped offsets equal the URDF's.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pybullet as p
import pybullet_data

from polyfold.motion.deepmimic import load_clips
from polyfold.motion.skeleton import HUMANOID, skeleton_from_urdf


def xyzw(q: np.ndarray) -> list[float]:
    return [float(q[1]), float(q[2]), float(q[3]), float(q[0])]


def main() -> None:
    urdf = Path(pybullet_data.getDataPath()) / "humanoid/humanoid.urdf"
    parsed = skeleton_from_urdf(urdf)
    print(
        "max |URDF offset - shipped offset| (m):", np.abs(parsed.offsets - HUMANOID.offsets).max()
    )
    p.connect(p.DIRECT)
    body = p.loadURDF(str(urdf), [0, 0, 0], globalScaling=0.25)
    link_of = {p.getJointInfo(body, i)[12].decode(): i for i in range(p.getNumJoints(body))}
    worst = 0.0
    total = []
    for clip in load_clips():
        m = clip.motion()
        ours = m.joints()
        for t in range(m.num_frames):
            p.resetBasePositionAndOrientation(body, m.root_pos[t].tolist(), xyzw(m.rotations[t, 0]))
            for j, name in enumerate(HUMANOID.names[1:], start=1):
                i = link_of[name]
                kind = HUMANOID.kinds[j]
                if kind == "ball":
                    p.resetJointStateMultiDof(body, i, xyzw(m.rotations[t, j]))
                elif kind == "hinge":
                    q = m.rotations[t, j]
                    p.resetJointState(body, i, 2 * np.arctan2(q[3], q[0]))
            ref = np.array(
                [m.root_pos[t]] + [p.getLinkState(body, link_of[n])[4] for n in HUMANOID.names[1:]]
            )
            err = np.linalg.norm(ref - ours[t], axis=-1)
            total.append(err.mean())
            worst = max(worst, float(err.max()))
        print(f"{clip.name:30s} frames={m.num_frames:4d} max err={worst * 100:.4f} cm")
    print(f"all clips: mean {np.mean(total) * 100:.5f} cm, max {worst * 100:.5f} cm")
    print(
        "reference (walk frame 0):",
        np.round(load_clips(("humanoid3d_walk",))[0].motion().joints()[0], 6).tolist(),
    )


if __name__ == "__main__":
    main()
