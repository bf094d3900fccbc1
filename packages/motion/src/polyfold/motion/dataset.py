"""The embedded text-motion dataset: augmented fixed-length windows of the DeepMimic clips
with captions, action labels, features and a held-out split.

Every window is ``length`` frames at 20 fps. A single-action window is cut from a clip that is
looped (cyclic clips) or held on its last pose (one-shot clips) to cover it, after the
augmentation of its seed: mirroring (half the seeds; captions swap left/right), speed x0.8-1.25
and bone lengths x0.9-1.1 (symmetric, FK re-run), then a random heading (kept only with
``canonical=False``; by default each window starts at the origin facing +x, as in HumanML3D).
An "A then B" window joins two half-windows of different actions with a short slerp blend.

Held-out windows differ from training windows in two ways: their augmentation seeds come from a
disjoint stream, and they start at a different time in each clip (the last quarter of a cyclic
clip's phase or of a one-shot clip's possible starts; training windows start in the first three
quarters). The underlying 20 clips are the same: there is no unseen motion in this data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from polyfold.core.errors import InputError, check_int, reading
from polyfold.motion.augment import change_speed, concatenate, loop_to_length, mirror, scale_bones
from polyfold.motion.captions import ACTIONS, CLIP_ACTION, caption_for, mirror_action, then_caption
from polyfold.motion.deepmimic import CLIP_NAMES, RawClip, load_clips
from polyfold.motion.features import LAYOUT, motion_features
from polyfold.motion.heading import facing_yaw, rotate_motion
from polyfold.motion.motion import Motion
from polyfold.motion.skeleton import HUMANOID

__all__ = ["DatasetConfig", "MotionDataset", "augment_params", "build_dataset", "canonicalize"]

HELD_OUT_SEED_OFFSET = 1_000_003
TRAIN_PHASE = 0.75


@dataclass(frozen=True)
class DatasetConfig:
    """How :func:`build_dataset` cuts and augments windows."""

    length: int = 48
    train_windows_per_clip: int = 24
    test_windows_per_clip: int = 6
    train_then: int = 160
    test_then: int = 40
    blend: int = 4
    canonical: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        check_int("length", self.length, 8)
        for name in ("train_windows_per_clip", "test_windows_per_clip", "train_then", "test_then"):
            check_int(name, getattr(self, name), 0)


@dataclass
class MotionDataset:
    """Windows ``features (N, L, D)`` float32 with their ``joints (N, L, J, 3)``, one caption
    each, action ``labels (N,)`` (index into :data:`ACTIONS`), ``labels2 (N,)`` (the second
    action of an "A then B" window, else -1) and ``split`` (``"train"``/``"test"``)."""

    features: np.ndarray
    joints: np.ndarray
    captions: list[str]
    labels: np.ndarray
    labels2: np.ndarray
    split: np.ndarray
    config: DatasetConfig = field(default_factory=DatasetConfig)

    def __len__(self) -> int:
        return int(self.features.shape[0])

    def indices(self, split: str) -> np.ndarray:
        if split not in ("train", "test"):
            raise InputError(f"split: expected 'train' or 'test', got {split!r}")
        return np.flatnonzero(self.split == split)

    def stats(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-feature mean and std over the training windows (std floored at 1e-3)."""
        x = self.features[self.indices("train")].reshape(-1, self.features.shape[-1])
        return x.mean(0), np.maximum(x.std(0), 1e-3)

    def save(self, path: str | Path) -> None:
        np.savez_compressed(
            path,
            features=self.features,
            joints=self.joints,
            captions=np.array(self.captions),
            labels=self.labels,
            labels2=self.labels2,
            split=self.split,
        )

    @classmethod
    def load(cls, path: str | Path) -> MotionDataset:
        with reading(path, "motion dataset"), np.load(path, allow_pickle=False) as d:
            need = {"features", "joints", "captions", "labels", "labels2", "split"}
            if not need <= set(d.files):
                raise InputError(
                    f"motion dataset {path}: missing arrays {sorted(need - set(d.files))}"
                )
            return cls(
                d["features"],
                d["joints"],
                d["captions"].tolist(),
                d["labels"],
                d["labels2"],
                d["split"],
            )


def augment_params(rng: np.random.Generator) -> dict[str, object]:
    """One draw of the augmentation: mirror, speed, per-bone scales (left = right), heading."""
    sym = HUMANOID.mirror_index()
    scales = rng.uniform(0.9, 1.1, HUMANOID.num_joints)
    scales = np.where(sym < np.arange(len(sym)), scales[sym], scales)
    return {
        "mirror": bool(rng.integers(2)),
        "speed": float(np.exp(rng.uniform(np.log(0.8), np.log(1.25)))),
        "scales": scales,
        "heading": float(rng.uniform(-np.pi, np.pi)),
    }


def canonicalize(motion: Motion) -> Motion:
    """The motion moved so that its first frame stands at the origin (xz) facing +x."""
    yaw0 = facing_yaw(motion.joints()[:1], motion.skeleton)[0]
    turned = rotate_motion(motion, -float(yaw0))
    shift = turned.root_pos[0] * np.array([1.0, 0.0, 1.0])
    return Motion(
        turned.root_pos - shift, turned.rotations, motion.fps, motion.skeleton, motion.name
    )


def _augmented(
    clip: RawClip, p: dict[str, object], frames: int, cache: dict[str, Motion]
) -> Motion:
    if clip.name not in cache:
        cache[clip.name] = clip.resampled()
    m = cache[clip.name]
    m = change_speed(m, float(p["speed"]))  # type: ignore[arg-type]
    if clip.loop:
        m = loop_to_length(m, frames)
    elif m.num_frames < frames:
        m = concatenate(
            m,
            m.slice(m.num_frames - 1, m.num_frames).at_times(np.zeros(frames - m.num_frames + 1)),
            blend=0,
        )
    if p["mirror"]:
        m = mirror(m)
    return scale_bones(m, p["scales"])  # type: ignore[arg-type]


def _start(
    clip: RawClip,
    motion: Motion,
    length: int,
    held_out: bool,
    rng: np.random.Generator,
    speed: float,
) -> int:
    if clip.loop:
        cycle = max(1, round((clip.frame_times()[-1]) * motion.fps / speed))
        lo, hi = (TRAIN_PHASE, 1.0) if held_out else (0.0, TRAIN_PHASE)
        return int(rng.integers(int(lo * cycle), max(int(lo * cycle) + 1, int(hi * cycle))))
    room = motion.num_frames - length
    if room <= 0:
        return 0
    cut = int(TRAIN_PHASE * (room + 1))
    lo, hi = (cut, room + 1) if held_out else (0, max(cut, 1))
    return int(rng.integers(min(lo, room), max(hi, min(lo, room) + 1)))


def _window(
    clip: RawClip,
    length: int,
    held_out: bool,
    rng: np.random.Generator,
    p: dict[str, object],
    cache: dict[str, Motion],
) -> Motion:
    speed = float(p["speed"])  # type: ignore[arg-type]
    m = _augmented(clip, p, 2 * length, cache)
    s = _start(clip, m, length, held_out, rng, speed)
    if s + length > m.num_frames:
        s = m.num_frames - length
    return rotate_motion(m.slice(s, s + length), float(p["heading"]))  # type: ignore[arg-type]


def build_dataset(
    config: DatasetConfig | None = None, clips: list[RawClip] | None = None
) -> MotionDataset:
    """Windows of the embedded clips (or ``clips``), captioned and featurised."""
    cfg = config or DatasetConfig()
    clips = clips if clips is not None else load_clips()
    for c in clips:
        if c.name not in CLIP_ACTION:
            raise InputError(
                f"clip {c.name!r}: no action class (expected one of {', '.join(CLIP_NAMES)})"
            )
    motions: list[Motion] = []
    captions: list[str] = []
    labels: list[int] = []
    labels2: list[int] = []
    split: list[str] = []
    cache: dict[str, Motion] = {}
    for held_out, per_clip, n_then in (
        (False, cfg.train_windows_per_clip, cfg.train_then),
        (True, cfg.test_windows_per_clip, cfg.test_then),
    ):
        rng = np.random.default_rng(cfg.seed + (HELD_OUT_SEED_OFFSET if held_out else 0))
        tag = "test" if held_out else "train"
        for clip in clips:
            for _ in range(per_clip):
                p = augment_params(rng)
                m, mirrored = _window(clip, cfg.length, held_out, rng, p, cache), bool(p["mirror"])
                action = CLIP_ACTION[clip.name]
                action = mirror_action(action) if mirrored else action
                motions.append(m)
                captions.append(caption_for(action, rng, mirrored=mirrored))
                labels.append(ACTIONS.index(action))
                labels2.append(-1)
                split.append(tag)
        half = (cfg.length + cfg.blend) // 2
        for _ in range(n_then):
            a, b = rng.choice(len(clips), 2, replace=False)
            p = augment_params(rng)  # one body and one mirroring for both halves
            mirrored = bool(p["mirror"])
            acts = []
            parts = []
            for k in (a, b):
                parts.append(_window(clips[k], half, held_out, rng, p, cache))
                act = CLIP_ACTION[clips[k].name]
                acts.append((mirror_action(act) if mirrored else act, mirrored))
            if acts[0][0] == acts[1][0]:
                continue
            joined = concatenate(parts[0], parts[1], cfg.blend).slice(0, cfg.length)
            if joined.num_frames < cfg.length:
                continue
            motions.append(joined)
            captions.append(
                then_caption(
                    caption_for(acts[0][0], rng, mirrored=acts[0][1]),
                    caption_for(acts[1][0], rng, mirrored=acts[1][1]),
                )
            )
            labels.append(ACTIONS.index(acts[0][0]))
            labels2.append(ACTIONS.index(acts[1][0]))
            split.append(tag)
    if cfg.canonical:
        motions = [canonicalize(m) for m in motions]
    feats = np.stack([motion_features(m) for m in motions]).astype(np.float32)
    joints = np.stack([m.joints() for m in motions]).astype(np.float32)
    return MotionDataset(
        feats, joints, captions, np.array(labels), np.array(labels2), np.array(split), cfg
    )


assert LAYOUT.dim == 155
