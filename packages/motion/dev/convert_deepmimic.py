"""Convert pybullet's DeepMimic humanoid clips into the embedded ``deepmimic.npz``.

Run: ``python packages/motion/dev/convert_deepmimic.py`` (needs ``pip install pybullet``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pybullet_data

from polyfold.motion.deepmimic import CLIP_NAMES, read_deepmimic

OUT = Path(__file__).resolve().parents[1] / "src/polyfold/motion/data/deepmimic.npz"


def main() -> None:
    root = Path(pybullet_data.getDataPath()) / "data" / "motions"
    arrays: dict[str, np.ndarray] = {}
    loops = []
    for name in CLIP_NAMES:
        rel = name.replace("walker_", "walker/", 1) + ".txt"
        clip = read_deepmimic(root / rel)
        arrays[f"frames_{name}"] = clip.frames.astype(np.float32)
        loops.append(clip.loop)
    np.savez_compressed(OUT, names=np.array(CLIP_NAMES), loops=np.array(loops), **arrays)
    frames = sum(a.shape[0] for a in arrays.values())
    print(f"wrote {OUT} ({len(CLIP_NAMES)} clips, {frames} frames, {OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
