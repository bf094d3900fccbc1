"""Scoring generated motion the same way for every model: the shipped evaluator's metrics
against the held-out real windows (with the real-vs-real floor) and physical metrics as
generated / real ratios.

    from polyfold.motion.evaluation import HeldOut, score
    held = HeldOut.build()                      # held-out windows, captions, embeddings
    result = score(held, generated_features)    # one generated window per held-out caption
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from polyfold.core.errors import InputError
from polyfold.motion.dataset import DatasetConfig, MotionDataset, build_dataset
from polyfold.motion.evaluator import MotionEvaluator, embed_features, evaluate_set, load_evaluator
from polyfold.motion.features import LAYOUT, joints_from_features
from polyfold.motion.metrics import (
    bone_length_std_cm,
    fid,
    foot_skating_ratio,
    ground_penetration_cm,
    jerk,
)

__all__ = ["HeldOut", "physical", "score"]


def physical(joints: np.ndarray) -> dict[str, float]:
    """Foot skating ratio, bone-length std (cm), jerk (m/s^3), ground penetration (cm)."""
    return {
        "skating": foot_skating_ratio(joints),
        "bone_std_cm": bone_length_std_cm(joints),
        "jerk": jerk(joints),
        "penetration_cm": ground_penetration_cm(joints),
    }


@dataclass
class HeldOut:
    """The held-out real windows with their captions, caption vectors, labels (-1 for "A then
    B"), evaluator embeddings and logits, and the evaluator itself."""

    data: MotionDataset
    index: np.ndarray
    text: np.ndarray
    labels: np.ndarray
    emb: np.ndarray
    logits: np.ndarray
    evaluator: MotionEvaluator
    mean: np.ndarray
    std: np.ndarray

    @property
    def captions(self) -> list[str]:
        return [self.data.captions[i] for i in self.index]

    @classmethod
    def build(cls, data: MotionDataset | None = None, evaluator_path: str | None = None) -> HeldOut:
        """From ``data`` (default: only the held-out windows of the default dataset) and an
        evaluator file (default: the shipped one)."""
        from polyfold.motion.shipped import shipped_path
        from polyfold.motion.text_encoder import encode_captions, load_text_encoder

        if data is None:
            data = build_dataset(DatasetConfig(train_windows_per_clip=0, train_then=0))
        idx = data.indices("test")
        ev, mean, std, _ = load_evaluator(evaluator_path or shipped_path("evaluator"))
        text = encode_captions(load_text_encoder(), [data.captions[i] for i in idx])
        emb, logits = embed_features(ev, data.features[idx], mean, std)
        labels = np.where(data.labels2[idx] < 0, data.labels[idx], -1)
        return cls(data, idx, text, labels, emb, logits, ev, mean, std)

    def floor(self, seed: int = 0) -> float:
        """FID between two disjoint random halves of the held-out windows."""
        perm = np.random.default_rng(seed).permutation(len(self.index))
        half = len(perm) // 2
        return fid(self.emb[perm[:half]], self.emb[perm[half:]])


def score(held: HeldOut, features: np.ndarray, *, reps: int = 100, seed: int = 0) -> dict[str, Any]:
    """Metrics of generated feature windows ``(N, L, D)``, row ``i`` generated from held-out
    caption ``i``: every evaluator metric as ``(value, low, high)`` against all held-out real
    windows, ``fid_over_real_floor``, and physical metrics with their generated/real ratios."""
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 3 or f.shape[0] != len(held.index) or f.shape[-1] != LAYOUT.dim:
        raise InputError(
            f"generated features: expected ({len(held.index)}, L, {LAYOUT.dim}) (one window "
            f"per held-out caption), got {f.shape}"
        )
    if not np.isfinite(f).all():
        raise InputError("generated features: contain NaN or infinite values")
    emb, logits = embed_features(held.evaluator, f, held.mean, held.std)
    out: dict[str, Any] = dict(
        evaluate_set(emb, logits, held.text, held.labels, held.emb, reps=reps, seed=seed)
    )
    floor = held.floor(seed)
    out["real_fid_floor"] = floor
    out["fid_over_real_floor"] = out["fid"][0] / floor
    gen = physical(np.stack([joints_from_features(x) for x in f]))
    real = physical(held.data.joints[held.index])
    for k, v in gen.items():
        out[k] = v
        out[f"{k}_over_real"] = v / real[k] if real[k] > 0 else float("nan")
    return out
