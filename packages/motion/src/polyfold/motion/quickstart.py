"""polyfold-motion's quickstart: the embedded DeepMimic data, captioned and animated.

Registered in the ``polyfold.quickstart`` entry-point group. Builds a small version of the
text-motion dataset, shows one real window of each action class as an animated stick figure
with its caption, checks the feature round trip and scores the windows with the shipped
evaluator's action head. Writes ``out/report.html``,
``out/real.gif`` and ``out/motion-quickstart.json``. Offline, one CPU thread.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from polyfold.core.quickstart import quickstart_run
from polyfold.core.report import Report

__all__ = ["MARKER", "quickstart"]

MARKER = "motion-quickstart.json"


def quickstart(out: Path, *, quiet: bool = False) -> Path:
    """Run the quickstart; write ``out/report.html`` and return its path."""
    from polyfold.motion.captions import ACTIONS
    from polyfold.motion.dataset import DatasetConfig, build_dataset
    from polyfold.motion.features import joints_from_features
    from polyfold.motion.render import svg_text, write_gif

    out = Path(out)
    t0 = time.perf_counter()
    with quickstart_run("motion", out, quiet=quiet, marker=MARKER) as echo:
        echo("building a small captioned window set from the 20 embedded DeepMimic clips")
        cfg = DatasetConfig(train_windows_per_clip=2, test_windows_per_clip=1, train_then=8,
                            test_then=4)  # fmt: skip
        data = build_dataset(cfg)
        picks = [int(np.flatnonzero((data.labels == k) & (data.labels2 < 0))[0])
                 for k in range(len(ACTIONS))]  # fmt: skip
        picks.append(int(np.flatnonzero(data.labels2 >= 0)[0]))
        joints = [data.joints[i] for i in picks]
        captions = [data.captions[i] for i in picks]
        write_gif(out / "real.gif", joints[:4], captions[:4])
        err = max(
            float(np.abs(joints_from_features(data.features[i]) - data.joints[i]).max())
            for i in picks
        )
        from polyfold.motion.evaluator import embed_features, load_evaluator
        from polyfold.motion.metrics import accuracy
        from polyfold.motion.shipped import shipped_path

        echo("scoring the windows with the shipped evaluator's action head")
        ev, mean, std, _ = load_evaluator(shipped_path("evaluator"))
        _, logits = embed_features(ev, data.features, mean, std)
        single = (data.labels2 < 0) & (data.split == "test")  # windows it never trained on
        summary: dict[str, float | int] = {
            "windows": len(data),
            "evaluator_action_accuracy_held_out": accuracy(logits[single], data.labels[single]),
            "held_out_windows": len(data.indices("test")),
            "feature_dim": int(data.features.shape[-1]),
            "feature_round_trip_max_error_m": err,
        }
        report = Report("polyfold-motion quickstart: the DeepMimic text-motion data")
        report.paragraph(
            f"{len(data)} windows of {cfg.length} frames (20 fps) cut from the 20 DeepMimic "
            "clips that ship with pybullet (MIT data), augmented by mirroring, speed and bone "
            "length and captioned from 16 action classes. Below: one real window per class, "
            "and one 'A then B' window. No generative model ships in this version."
        )
        report.raw(svg_text(joints[:6], captions[:6]))
        report.raw(svg_text(joints[6:12], captions[6:12]))
        report.raw(svg_text(joints[12:], captions[12:]))
        report.heading("Checks")
        report.table(["check", "value"], [[k, v] for k, v in summary.items()])
        summary["seconds"] = round(time.perf_counter() - t0, 2)
        (out / MARKER).write_text(json.dumps(summary, indent=2))
        path = report.write(out / "report.html")
        echo(f"wrote {path}")
    return path
