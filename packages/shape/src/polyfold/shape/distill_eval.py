"""Generation quality of distilled shapes: 1-NNA (Chamfer) of shapes distilled from a teacher
against held-out procedural shapes of their class, beside the flow model's samples at the same
count (PointFlow's protocol, 2048 points per shape; :mod:`polyfold.shape.evaluation`)."""

from __future__ import annotations

import numpy as np
import torch

from polyfold.core.errors import InputError
from polyfold.shape.distill3d import DistillConfig, distill
from polyfold.shape.distill_run import grid_points
from polyfold.shape.evaluation import msdf_points, reference_points
from polyfold.shape.metrics import generation_metrics
from polyfold.shape.one_step3d import ShapeGenerator, generate_msdfs
from polyfold.shape.teachers import Teacher

__all__ = ["distilled_metrics", "flow_metrics", "one_step_metrics", "pairwise_chamfer"]


def _scores(gen: list[np.ndarray], ref: list[np.ndarray]) -> dict[str, float]:
    m = generation_metrics(gen, ref, use_emd=False)
    return {"1nna_cd": m["1nna_cd"], "cov_cd": m["cov_cd"], "mmd_cd": m["mmd_cd"]}


def distilled_metrics(
    teacher: Teacher, cls: str, cfg: DistillConfig, ref: list[np.ndarray] | None = None
) -> dict[str, float]:
    """Distil ``cfg.particles`` shapes of class ``cls`` in one run (independent random starts,
    :func:`~polyfold.shape.distill3d.initial_shapes`) and score them against ``ref`` (default:
    as many held-out procedural shapes of ``cls``); a shape without a surface counts as the
    origin repeated (``empty`` counts them). Also seconds per step and per shape (one shape's
    share of the run)."""
    res = distill(teacher, cls, cfg)
    pts = [grid_points(g) for g in res.grids]
    empty = sum(p is None for p in pts)
    gen = [p if p is not None else np.zeros((2048, 3)) for p in pts]
    ref = ref if ref is not None else reference_points(cls, len(gen))
    per_step = res.seconds_per_step / cfg.particles
    return {
        **_scores(gen, ref),
        "empty": float(empty),
        "seconds_per_step": per_step,
        "seconds_per_shape": per_step * cfg.steps,
    }


def flow_metrics(
    cls: str, n: int, ref: list[np.ndarray] | None = None, *, seed: int = 0
) -> dict[str, float]:
    """The same scores for ``n`` samples of class ``cls`` from the shipped flow model (part 1)."""
    from polyfold.shape.generate import load_flow, sample_msdfs

    flow, _ = load_flow()
    with torch.no_grad():
        gen = [msdf_points(m) for m in sample_msdfs(flow, [cls] * n, seed=seed)]
    return _scores(gen, ref if ref is not None else reference_points(cls, n))


def one_step_metrics(
    gen: ShapeGenerator, cls: str, n: int, ref: list[np.ndarray] | None = None, *, seed: int = 0
) -> dict[str, float]:
    """The same scores for ``n`` M-SDFs of class ``cls`` from a one-step generator (one batched
    forward pass; surface points as the flow model's, :func:`msdf_points`), plus the pass's wall
    seconds per shape (meshing not counted) and ``pairwise_cd``, the mean Chamfer between
    distinct generated shapes (diversity; compare :func:`pairwise_chamfer` of real shapes)."""
    msdfs, secs = generate_msdfs(gen, [cls] * n, seed=seed)
    gen_pts = [msdf_points(m) for m in msdfs]
    ref = ref if ref is not None else reference_points(cls, n)
    empty = float(sum(not p.any() for p in gen_pts))
    return {
        **_scores(gen_pts, ref),
        "empty": empty,
        "seconds_per_shape": secs / n,
        "pairwise_cd": pairwise_chamfer(gen_pts),
    }


def pairwise_chamfer(points: list[np.ndarray]) -> float:
    """Mean Chamfer distance over the distinct pairs of a set of point clouds (its spread)."""
    from polyfold.shape.metrics import chamfer, pairwise

    if len(points) < 2:
        raise InputError("points: expected two or more point clouds")
    d = pairwise(points, points, chamfer)
    return float(d[~np.eye(len(points), dtype=bool)].mean())
