"""polyfold-motion's quickstart: the embedded DeepMimic data, and every shipped text-to-motion
model animated side by side with its metrics.

Registered in the ``polyfold.quickstart`` entry-point group. Builds a small version of the
text-motion dataset, shows one real window of each action class as an animated stick figure
with its caption, checks the feature round trip and scores the windows with the shipped
evaluator's action head. Then every shipped generative model (:func:`shipped_generative_models`)
generates the same captions with the same seed; each caption gets one row of panels (the real
window of its action, then one panel per model labelled with the model's held-out figures from
its card). Writes ``out/report.html``, ``out/real.gif``, ``out/models.gif`` (the first caption,
real + every model) and ``out/motion-quickstart.json``. Offline, one CPU thread.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from polyfold.core.quickstart import quickstart_run
from polyfold.core.report import Report

__all__ = [
    "GENERATIVE_MODELS",
    "MARKER",
    "card_metrics",
    "model_label",
    "quickstart",
    "shipped_generative_models",
]

MARKER = "motion-quickstart.json"
GENERATED_CAPTIONS = ("a person does a cartwheel", "a person walks forward",
                      "a person punches forward", "a person jumps forward")  # fmt: skip
GENERATED_ACTIONS = ("cartwheel", "walk", "punch", "jump")
GENERATIVE_MODELS = ("emdm", "ddpm", "mmdm", "mogo", "t2m-gpt", "mmm", "bipo")
"""The text-to-motion models the quickstart compares, in display order (those shipped)."""
_FID_KEYS = ("fid_over_real_floor", "fid_over_floor")


def shipped_generative_models() -> tuple[str, ...]:
    """The names of :data:`GENERATIVE_MODELS` that this installation ships, in that order."""
    from polyfold.motion import shipped

    return tuple(m for m in GENERATIVE_MODELS if m in shipped.SHIPPED)


def card_metrics(card: Mapping[str, Any]) -> dict[str, float]:
    """``accuracy`` and ``fid_over_floor`` (FID over the real-vs-real floor) from a card's
    ``metrics`` field, each only where the card records a finite number."""
    metrics = card.get("metrics")
    if not isinstance(metrics, Mapping):
        return {}
    out: dict[str, float] = {}
    for key, names in (("accuracy", ("accuracy",)), ("fid_over_floor", _FID_KEYS)):
        values = [metrics.get(n) for n in names]
        found = [float(v) for v in values if isinstance(v, int | float) and math.isfinite(v)]
        if found:
            out[key] = found[0]
    return out


def model_label(name: str, metrics: Mapping[str, float]) -> str:
    """A panel label: the model name and its card's held-out figures, else "not measured"."""
    parts = []
    if "accuracy" in metrics:
        parts.append(f"acc {metrics['accuracy']:.2f}")
    if "fid_over_floor" in metrics:
        parts.append(f"FID/floor {metrics['fid_over_floor']:.2f}")
    return f"{name}: " + (", ".join(parts) if parts else "not measured")


def _fmt(metrics: Mapping[str, float], key: str) -> str:
    return f"{metrics[key]:.2f}" if key in metrics else "not measured"


def quickstart(out: Path, *, quiet: bool = False) -> Path:
    """Run the quickstart; write ``out/report.html`` and return its path."""
    from polyfold.core.export import read_card
    from polyfold.motion.captions import ACTIONS
    from polyfold.motion.dataset import DatasetConfig, build_dataset
    from polyfold.motion.evaluator import embed_features, load_evaluator
    from polyfold.motion.features import joints_from_features
    from polyfold.motion.generate import generate_motion, resolve_model
    from polyfold.motion.metrics import accuracy
    from polyfold.motion.render import svg_text, write_gif
    from polyfold.motion.shipped import shipped_path

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
        echo("scoring the windows with the shipped evaluator's action head")
        ev, mean, std, _ = load_evaluator(shipped_path("evaluator"))
        _, logits = embed_features(ev, data.features, mean, std)
        single = (data.labels2 < 0) & (data.split == "test")  # windows it never trained on
        summary: dict[str, Any] = {
            "windows": len(data),
            "evaluator_action_accuracy_held_out": accuracy(logits[single], data.labels[single]),
            "held_out_windows": len(data.indices("test")),
            "feature_dim": int(data.features.shape[-1]),
            "feature_round_trip_max_error_m": err,
        }
        checks = dict(summary)  # the per-model figures go in their own table

        models = shipped_generative_models()
        summary["models"] = list(models)
        gen_caps = list(GENERATED_CAPTIONS)
        want = np.array([ACTIONS.index(a) for a in GENERATED_ACTIONS])
        real = [joints[ACTIONS.index(a)] for a in GENERATED_ACTIONS]
        rows: list[list[object]] = []
        labels: list[str] = []
        generated: list[list[np.ndarray]] = []  # per model, one joints array per caption
        for name in models:
            echo(f"generating {len(gen_caps)} captions with the shipped {name}")
            metrics = card_metrics(read_card(shipped_path(name)).get("card", {}))
            model = resolve_model(name)
            t1 = time.perf_counter()
            feats = generate_motion(gen_caps, 2.4, model=model, seed=0)
            seconds = round(time.perf_counter() - t1, 3)
            _, gen_logits = embed_features(ev, feats, mean, std)
            hits = accuracy(gen_logits, want)
            summary[f"{name}_seconds_for_{len(gen_caps)}_sequences"] = seconds
            summary[f"{name}_action_accuracy_{len(gen_caps)}_captions"] = hits
            summary[f"{name}_card"] = metrics
            generated.append([joints_from_features(f) for f in feats])
            labels.append(model_label(name, metrics))
            rows.append([name, _fmt(metrics, "accuracy"), _fmt(metrics, "fid_over_floor"),
                         hits, seconds])  # fmt: skip
        if models:
            write_gif(out / "models.gif", [real[0], *(g[0] for g in generated)],
                      ["real clip", *labels])  # fmt: skip

        report = Report("polyfold-motion quickstart: the DeepMimic text-motion data")
        report.paragraph(
            f"{len(data)} windows of {cfg.length} frames (20 fps) cut from the 20 DeepMimic "
            "clips that ship with pybullet (MIT data), augmented by mirroring, speed and bone "
            "length and captioned from 16 action classes. Below: one real window per class, "
            "and one 'A then B' window."
        )
        report.raw(svg_text(joints[:6], captions[:6]))
        report.raw(svg_text(joints[6:12], captions[6:12]))
        report.raw(svg_text(joints[12:], captions[12:]))
        report.heading("Every shipped model, side by side")
        report.paragraph(
            f"The same {len(gen_caps)} captions, seed 0, 2.4 s, from each shipped text-to-motion "
            f"model ({', '.join(models) or 'none shipped'}); the first panel of each row is a "
            "real window of the caption's action. Panel labels give the held-out action "
            "accuracy and FID over the real-vs-real floor that the model's card records "
            "(measured by `python apps/bench/motion.py --quick` on 158 held-out captions); "
            "'not measured' where its card has no such figure. The first row is also in "
            "models.gif."
        )
        for i, cap in enumerate(gen_caps):
            report.heading(f"\u201c{cap}\u201d", level=3)
            report.raw(svg_text([real[i], *(g[i] for g in generated)], ["real clip", *labels]))
        report.table(
            ["model", "card: held-out accuracy", "card: FID / real floor",
             f"action hits on these {len(gen_caps)} captions", "seconds for all captions"],
            rows,
        )  # fmt: skip
        report.heading("Checks")
        report.table(["check", "value"], [[k, v] for k, v in checks.items()])
        summary["seconds"] = round(time.perf_counter() - t0, 2)
        (out / MARKER).write_text(json.dumps(summary, indent=2))
        path = report.write(out / "report.html")
        echo(f"wrote {path}")
    return path
