"""Evaluation: reconstruction quality of an M-SDF against its source, and generation quality of a
flow model against held-out procedural shapes (PointFlow protocol: 2048 points per shape)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from polyfold.core.errors import InputError
from polyfold.shape.convert import Target, target_of
from polyfold.shape.exact import exact_chamfer
from polyfold.shape.meshes import sample_surface
from polyfold.shape.metrics import (
    chamfer,
    components,
    fscore,
    generation_metrics,
    normal_consistency,
    volume_iou,
)
from polyfold.shape.msdf import MSDF, evaluate_volume, to_mesh, volume_points
from polyfold.shape.procshapes import dataset

__all__ = [
    "TEST_SEED",
    "generation_report",
    "mesh_points",
    "msdf_pieces",
    "reconstruction_metrics",
    "reference_points",
    "target_chamfer",
]

#: procedural shapes of the held-out split are drawn with this dataset seed (training uses 0)
TEST_SEED = 1


def mesh_points(
    vertices: np.ndarray, faces: np.ndarray, n: int, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` surface samples and normals of a mesh."""
    return sample_surface(vertices, faces, n, seed=seed)


def reconstruction_metrics(
    m: MSDF, target: Target, *, res: int = 128, points: int = 20_000, seed: int = 0
) -> dict[str, float]:
    """Chamfer, normal consistency, F-score at 1% and 2% of the unit cube, volumetric IoU (SDF
    signs on the ``res^3`` voxel centres, uncovered voxels signed by region as in meshing) of
    ``m``'s mesh against ``target``; ``chamfer_floor`` is the Chamfer between two independent
    samples of the target itself (what sampling alone costs). ``chamfer_exact`` measures against
    the exact surface instead (:func:`~polyfold.shape.exact.exact_chamfer`: no sampling floor),
    ``chamfer_exact_floor`` is that of the marching-cubes mesh of the target's own SDF at ``res``
    (what meshing alone costs)."""
    vol = evaluate_volume(m, res)
    v, f = to_mesh(vol)
    a, na = mesh_points(v, f, points, seed)
    b, nb = target.surface[:points], target.normals[:points]
    other = mesh_points(target.vertices, target.faces, points, seed + 1)[0]
    ft = target.sdf(volume_points(res, dtype=torch.float64)).double()
    floor_mesh = to_mesh(ft.reshape(res, res, res))
    return {
        "chamfer": chamfer(a, b),
        "chamfer_floor": chamfer(other, b),
        "chamfer_exact": target_chamfer(v, f, target, points, seed),
        "chamfer_exact_floor": target_chamfer(*floor_mesh, target, points, seed),
        "normal_consistency": normal_consistency(a, na, b, nb),
        "fscore_1pct": fscore(a, b, 0.01),
        "fscore_2pct": fscore(a, b, 0.02),
        "iou": volume_iou((vol.reshape(-1) < 0).numpy(), (ft < 0).numpy()),
    }


def target_chamfer(
    vertices: np.ndarray, faces: np.ndarray, target: Target, points: int = 20_000, seed: int = 0
) -> float:
    """:func:`~polyfold.shape.exact.exact_chamfer` of a mesh against ``target``'s true surface."""
    return exact_chamfer(
        vertices,
        faces,
        target.sdf,
        target.surface,
        points=points,
        seed=seed,
        project=target.analytic,
    )


def reference_points(cls: str, n: int, points: int = 2048) -> list[np.ndarray]:
    """Point sets of ``n`` held-out procedural shapes of class ``cls``."""
    return [target_of(s, samples=points, res=64).surface for s in dataset([cls], n, seed=TEST_SEED)]


def generation_report(
    gen: dict[str, list[np.ndarray]],
    *,
    n_ref: int | None = None,
    points: int = 2048,
    use_emd: bool = True,
    progress: Callable[[str], None] | None = None,
) -> dict[str, dict[str, float]]:
    """Per-class and mean generation metrics of point sets ``gen[cls]`` against held-out shapes."""
    if not gen:
        raise InputError("generation metrics: no generated shapes")
    out: dict[str, dict[str, float]] = {}
    for cls, sets in gen.items():
        if progress is not None:
            progress(f"scoring {cls}")
        ref = reference_points(cls, n_ref or len(sets), points)
        out[cls] = generation_metrics(sets, ref, use_emd=use_emd)
    keys = next(iter(out.values())).keys()
    out["mean"] = {k: float(np.mean([out[c][k] for c in gen])) for k in keys}
    return out


def msdf_points(m: MSDF, points: int = 2048, *, res: int = 64, seed: int = 0) -> np.ndarray:
    """Surface samples of an M-SDF's mesh (the origin repeated when it has no surface)."""
    try:
        v, f = to_mesh(evaluate_volume(m, res))
        return mesh_points(v, f, points, seed)[0]
    except InputError:
        return np.zeros((points, 3))


def msdf_pieces(shapes: list[MSDF], res: int = 64) -> dict[str, float]:
    """Fragmentation of M-SDF meshes at ``res^3``: ``pieces`` is the mean number of connected
    surface pieces per shape (1 for a single-body shape; each extra piece is a floater),
    ``largest_area`` the mean share of the surface area in each shape's largest piece. A shape
    with no surface counts 0 pieces and a largest share of 0."""
    if not shapes:
        raise InputError("shapes: expected at least one M-SDF")
    counts, shares = [], []
    for m in shapes:
        try:
            count, share = components(*to_mesh(evaluate_volume(m, res)))
        except InputError:
            count, share = 0, 0.0
        counts.append(count)
        shares.append(share)
    return {"pieces": float(np.mean(counts)), "largest_area": float(np.mean(shares))}
