"""Score EMDM / DDPM model files at given classifier-free guidance scales, as the bench does.

Each model generates one window per caption (seed 0) and is scored by
:func:`polyfold.motion.evaluation.score`, exactly as ``apps/bench/motion.py`` scores its EMDM
and DDPM rows; time per sequence is the median of one caption on one CPU thread.

    python packages/motion/dev/score_guidance.py runs/emdm/model runs/ddpm/model \
        --guidance 1 2.5 --out scores.json
    # comparing scales without the held-out captions: a split of the TRAINING windows
    python packages/motion/dev/score_guidance.py runs/emdm/model --guidance 1 2 2.5 3 \
        --train-split data.npz

``--train-split DATA`` scores on 158 random training windows of ``DATA`` (the `prepare` file the
models were trained on) in place of the held-out ones, so a scale can be chosen without looking
at the held-out captions.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import replace
from typing import Any

import numpy as np
import torch

from polyfold.motion.dataset import DatasetConfig, MotionDataset, build_dataset
from polyfold.motion.emdm import load_motion_model
from polyfold.motion.evaluation import HeldOut, score

SHOWN = ("kind", "guidance", "split", "accuracy", "fid", "fid_over_real_floor", "r_precision_top3",
         "skating_over_real", "bone_std_cm", "jerk_over_real", "s_per_sequence")  # fmt: skip


def _median_time(fn: Any, repeats: int = 5) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _windows(train_split: str | None, n: int = 158, seed: int = 0) -> HeldOut:
    if train_split is None:  # the bench's held-out windows
        return HeldOut.build(build_dataset(DatasetConfig(train_windows_per_clip=0, train_then=0)))
    data = MotionDataset.load(train_split)
    pick = np.random.default_rng(seed).choice(data.indices("train"), n, replace=False)
    split = np.full(len(data), "train", dtype=data.split.dtype)
    split[pick] = "test"  # HeldOut.build scores the "test" rows
    return HeldOut.build(replace(data, split=split))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="+", help="model files (without suffix)")
    ap.add_argument("--guidance", nargs="+", type=float, default=[1.0])
    ap.add_argument("--train-split", default=None, help="score on training windows of this file")
    ap.add_argument("--reps", type=int, default=30, help="bootstrap repetitions (bench --quick)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    held = _windows(args.train_split)
    length = held.data.features.shape[1]
    rows = []
    for path in args.models:
        m = load_motion_model(path)
        for w in args.guidance:
            res = score(held, m.sample(held.text, length, seed=0, guidance=w), reps=args.reps)
            one = _median_time(lambda m=m, w=w: m.sample(held.text[:1], length, guidance=w))
            row: dict[str, Any] = {"model": path, "kind": m.kind, "guidance": w,
                                   "split": "train" if args.train_split else "held-out",
                                   "s_per_sequence": one}  # fmt: skip
            row.update({k: (v[0] if isinstance(v, tuple) else v) for k, v in res.items()})
            rows.append(row)
            print(json.dumps({k: row[k] for k in SHOWN}), flush=True)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump(rows, f, indent=1, default=float)


if __name__ == "__main__":
    main()
