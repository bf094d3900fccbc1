"""Shape metrics: reconstruction (Chamfer, normal consistency, F-score, volumetric IoU) and
generation (1-NNA, COV, MMD with Chamfer or EMD distances; the PointFlow protocol on 2048 points).

Shapes are point samples ``(N, 3)`` (with normals where asked) in the unit cube. Chamfer is the
mean squared nearest-neighbour distance, summed over both directions. F-score at threshold ``tau``
is the harmonic mean of precision and recall of points within ``tau``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from scipy.spatial import cKDTree

from polyfold.core.errors import InputError

__all__ = [
    "chamfer",
    "components",
    "emd",
    "fscore",
    "generation_metrics",
    "normal_consistency",
    "pairwise",
    "volume_iou",
]


def _points(a: np.ndarray, name: str) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    if a.ndim != 2 or a.shape[1] != 3 or len(a) == 0:
        raise InputError(f"{name}: expected a non-empty (N, 3) point array, got {a.shape}")
    if not np.isfinite(a).all():
        raise InputError(f"{name}: points must be finite")
    return a


def _nn(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distance and index of each point of ``a``'s nearest neighbour in ``b``."""
    d, i = cKDTree(b).query(a)
    return np.asarray(d), np.asarray(i)


def chamfer(a: np.ndarray, b: np.ndarray) -> float:
    """``mean_a min_b |a-b|^2 + mean_b min_a |a-b|^2``."""
    a, b = _points(a, "a"), _points(b, "b")
    return float((_nn(a, b)[0] ** 2).mean() + (_nn(b, a)[0] ** 2).mean())


def fscore(a: np.ndarray, b: np.ndarray, tau: float) -> float:
    """F-score at distance ``tau`` between predicted points ``a`` and reference points ``b``."""
    a, b = _points(a, "a"), _points(b, "b")
    precision = float((_nn(a, b)[0] < tau).mean())
    recall = float((_nn(b, a)[0] < tau).mean())
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def normal_consistency(a: np.ndarray, na: np.ndarray, b: np.ndarray, nb: np.ndarray) -> float:
    """Mean absolute cosine between each point's normal and its nearest neighbour's, both ways."""
    a, b = _points(a, "a"), _points(b, "b")
    ia, ib = _nn(a, b)[1], _nn(b, a)[1]
    ab = np.abs((na * nb[ia]).sum(-1))
    ba = np.abs((nb * na[ib]).sum(-1))
    return float((ab.mean() + ba.mean()) / 2)


def components(vertices: np.ndarray, faces: np.ndarray) -> tuple[int, float]:
    """Connected pieces of a triangle mesh: ``(count, largest piece's share of the area)``.
    Faces are connected through shared edges after merging coincident vertices (a surface of
    ``count`` separate shells: a user sees ``count - 1`` floaters)."""
    import trimesh

    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces, dtype=np.int64)
    if v.ndim != 2 or v.shape[1] != 3 or f.ndim != 2 or f.shape[1] != 3 or len(f) == 0:
        raise InputError(
            f"mesh: expected vertices (V, 3) and faces (F, 3) with F > 0, got {v.shape}, {f.shape}"
        )
    mesh = trimesh.Trimesh(v, f, process=True)  # merges coincident vertices
    label = trimesh.graph.connected_component_labels(mesh.face_adjacency, len(mesh.faces))
    area = np.bincount(label, weights=mesh.area_faces)
    return len(area), float(area.max() / max(area.sum(), 1e-30))


def volume_iou(inside_a: np.ndarray, inside_b: np.ndarray) -> float:
    """IoU of two boolean occupancy arrays (e.g. SDF < 0 on the same points)."""
    a, b = np.asarray(inside_a, bool), np.asarray(inside_b, bool)
    if a.shape != b.shape:
        raise InputError(f"occupancy: shapes differ, {a.shape} vs {b.shape}")
    union = (a | b).sum()
    return 1.0 if union == 0 else float((a & b).sum() / union)


def emd(a: np.ndarray, b: np.ndarray) -> float:
    """Earth mover's distance between equal-size point sets: mean distance of the optimal
    one-to-one matching (exact, Hungarian)."""
    from scipy.optimize import linear_sum_assignment

    a, b = _points(a, "a"), _points(b, "b")
    if len(a) != len(b):
        raise InputError(f"emd: expected equal-size point sets, got {len(a)} and {len(b)}")
    cost = np.linalg.norm(a[:, None] - b[None], axis=-1)
    r, c = linear_sum_assignment(cost)
    return float(cost[r, c].mean())


def pairwise(
    xs: Sequence[np.ndarray],
    ys: Sequence[np.ndarray],
    dist: Callable[[np.ndarray, np.ndarray], float],
) -> np.ndarray:
    """``(len(xs), len(ys))`` matrix of ``dist``."""
    return np.array([[dist(x, y) for y in ys] for x in xs], dtype=np.float64)


def generation_metrics(
    gen: Sequence[np.ndarray], ref: Sequence[np.ndarray], *, use_emd: bool = True
) -> dict[str, float]:
    """1-NNA, COV and MMD of generated point sets ``gen`` against reference sets ``ref``
    (PointFlow's protocol), with Chamfer (``_cd``) and, when ``use_emd``, EMD (``_emd``)."""
    if len(gen) < 1 or len(ref) < 1 or len(gen) + len(ref) < 3:
        raise InputError("generation metrics: need at least one generated and one reference set")
    dists: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {"cd": chamfer}
    if use_emd:
        dists["emd"] = emd
    out: dict[str, float] = {}
    for key, dist in dists.items():
        gr = pairwise(gen, ref, dist)
        gg = pairwise(gen, gen, dist)
        rr = pairwise(ref, ref, dist)
        out[f"mmd_{key}"] = float(gr.min(0).mean())
        out[f"cov_{key}"] = float(len(np.unique(gr.argmin(1))) / len(ref))
        out[f"1nna_{key}"] = one_nna(gg, gr, rr)
    return out


def one_nna(gg: np.ndarray, gr: np.ndarray, rr: np.ndarray) -> float:
    """Leave-one-out 1-nearest-neighbour accuracy of telling generated from reference sets."""
    ng, nr = len(gg), len(rr)
    full = np.block([[gg, gr], [gr.T, rr]]).astype(np.float64)
    np.fill_diagonal(full, np.inf)
    label = np.r_[np.zeros(ng), np.ones(nr)]
    pred = label[full.argmin(1)]
    return float((pred == label).mean())
