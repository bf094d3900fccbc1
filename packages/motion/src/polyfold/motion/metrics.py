"""Text-to-motion metrics on evaluator embeddings, with bootstrap intervals, and physical
metrics on joint positions.

Distribution metrics compare embedding sets: FID (core's Frechet distance), KID (unbiased MMD
with the cubic polynomial kernel), Diversity (mean distance of random pairs). Text-motion
metrics follow HumanML3D's protocol: R-precision ranks each motion's own caption among a pool
of 32 by Euclidean distance of unit embeddings; MM-Dist is the mean distance of matched pairs.
Physical metrics (foot skating, bone-length spread, jerk, ground penetration) are reported by
the benchmark as generated divided by real on the same classes.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from polyfold.core.errors import InputError
from polyfold.core.metrics import frechet_distance
from polyfold.motion.skeleton import HUMANOID, Skeleton

__all__ = [
    "accuracy",
    "bone_length_std_cm",
    "bootstrap",
    "diversity",
    "fid",
    "foot_skating_ratio",
    "ground_penetration_cm",
    "jerk",
    "kid",
    "mm_dist",
    "r_precision",
]

SKATE_HEIGHT = 0.12  # metres: an ankle this low counts as planted ...
SKATE_SPEED = 0.4  # m/s: ... and sliding if it moves faster than this horizontally


def _rows(x: np.ndarray, name: str, min_rows: int = 2) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < min_rows or not np.isfinite(x).all():
        raise InputError(f"{name}: expected finite embeddings (N >= {min_rows}, D), got {x.shape}")
    return x


def fid(a: np.ndarray, b: np.ndarray) -> float:
    """Frechet distance of Gaussians fitted to two embedding sets (0 for a set with itself)."""
    a, b = _rows(a, "fid a"), _rows(b, "fid b")
    return frechet_distance(torch.from_numpy(a), torch.from_numpy(b))


def kid(a: np.ndarray, b: np.ndarray) -> float:
    """Unbiased squared MMD with the kernel ``(x.y / d + 1) ** 3`` (Binkowski et al.)."""
    a, b = _rows(a, "kid a"), _rows(b, "kid b")
    d = a.shape[1]

    def k(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return (x @ y.T / d + 1.0) ** 3

    kaa, kbb = k(a, a), k(b, b)
    m, n = len(a), len(b)
    within_a = (kaa.sum() - np.trace(kaa)) / (m * (m - 1))
    within_b = (kbb.sum() - np.trace(kbb)) / (n * (n - 1))
    return float(within_a + within_b - 2 * k(a, b).mean())


def diversity(x: np.ndarray, pairs: int = 300, seed: int = 0) -> float:
    """Mean Euclidean distance between ``pairs`` random pairs of distinct rows."""
    x = _rows(x, "diversity")
    rng = np.random.default_rng(seed)
    i = rng.integers(0, len(x), pairs)
    j = (i + rng.integers(1, len(x), pairs)) % len(x)
    return float(np.linalg.norm(x[i] - x[j], axis=-1).mean())


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def r_precision(
    text: np.ndarray, motion: np.ndarray, top_k: tuple[int, ...] = (1, 3), pool: int = 32,
    seed: int = 0,
) -> dict[int, float]:  # fmt: skip
    """Fraction of motions whose own caption is among the ``k`` nearest of a pool of ``pool``
    captions (its own and ``pool - 1`` others drawn at random), by distance of unit vectors."""
    t, m = _unit(_rows(text, "text")), _unit(_rows(motion, "motion"))
    if t.shape != m.shape:
        raise InputError(f"r_precision: text {t.shape} and motion {m.shape} must pair up")
    n = len(t)
    pool = min(pool, n)
    rng = np.random.default_rng(seed)
    hits = dict.fromkeys(top_k, 0)
    for i in range(n):
        others = rng.choice(np.delete(np.arange(n), i), pool - 1, replace=False)
        cand = np.concatenate([[i], others])
        dist = np.linalg.norm(t[cand] - m[i], axis=-1)
        rank = int((dist < dist[0]).sum())
        for k in top_k:
            hits[k] += rank < k
    return {k: hits[k] / n for k in top_k}


def mm_dist(text: np.ndarray, motion: np.ndarray) -> float:
    """Mean Euclidean distance between each motion's and its caption's unit embeddings."""
    t, m = _unit(_rows(text, "text", 1)), _unit(_rows(motion, "motion", 1))
    return float(np.linalg.norm(t - m, axis=-1).mean())


def accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of rows whose largest logit is at their label."""
    return float((np.asarray(logits).argmax(-1) == np.asarray(labels)).mean())


def bootstrap(
    fn: Callable[[np.ndarray], float], n: int, reps: int = 200, seed: int = 0
) -> tuple[float, float, float]:
    """``(value, low, high)``: ``fn`` on all ``n`` indices and the 2.5/97.5 percentiles of
    ``fn`` on ``reps`` resamples with replacement."""
    rng = np.random.default_rng(seed)
    full = fn(np.arange(n))
    vals = [fn(rng.integers(0, n, n)) for _ in range(reps)]
    lo, hi = np.percentile(vals, [2.5, 97.5])
    return float(full), float(lo), float(hi)


def _joints(j: np.ndarray) -> np.ndarray:
    j = np.asarray(j, dtype=np.float64)
    if j.ndim == 3:
        j = j[None]
    if j.ndim != 4 or j.shape[-1] != 3 or not np.isfinite(j).all():
        raise InputError(f"joints: expected finite (N, T, J, 3) positions, got {j.shape}")
    return j


def foot_skating_ratio(
    joints: np.ndarray, fps: float = 20.0, skeleton: Skeleton = HUMANOID
) -> float:
    """Fraction of planted ankle-frames (height < 12 cm) whose horizontal speed exceeds
    0.4 m/s: feet that slide while on the ground."""
    j = _joints(joints)
    feet = j[:, :, [skeleton.index("left_ankle"), skeleton.index("right_ankle")]]
    speed = np.linalg.norm(np.diff(feet[..., [0, 2]], axis=1), axis=-1) * fps
    planted = feet[:, 1:, :, 1] < SKATE_HEIGHT
    return float((planted & (speed > SKATE_SPEED)).sum() / max(planted.sum(), 1))


def bone_length_std_cm(joints: np.ndarray, skeleton: Skeleton = HUMANOID) -> float:
    """Standard deviation over time of each bone's length, averaged over bones and motions (cm;
    0 for motions built by FK on one skeleton)."""
    j = _joints(joints)
    bones = [(c, p) for c, p in enumerate(skeleton.parents) if p >= 0 and skeleton.offsets[c].any()]
    lengths = np.stack([np.linalg.norm(j[:, :, c] - j[:, :, p], axis=-1) for c, p in bones], -1)
    return float(lengths.std(axis=1).mean() * 100.0)


def jerk(joints: np.ndarray, fps: float = 20.0) -> float:
    """Mean magnitude of the third time derivative of joint positions (m/s^3)."""
    j = _joints(joints)
    if j.shape[1] < 4:
        raise InputError("jerk: needs motions of at least 4 frames")
    d3 = np.diff(j, n=3, axis=1) * fps**3
    return float(np.linalg.norm(d3, axis=-1).mean())


def ground_penetration_cm(joints: np.ndarray) -> float:
    """Mean depth (cm) of the lowest joint below the floor (y = 0), 0 when above."""
    j = _joints(joints)
    return float(np.maximum(0.0, -j[..., 1].min(-1)).mean() * 100.0)
