"""One distillation run to disk: meshes, renders over the run, a loss/metric log, a summary.

``OUT/shape-<i>.glb`` (marching cubes of particle ``i``'s grid), ``OUT/renders/step-<n>.png``
(shaded views of every particle, one row each), ``OUT/log.jsonl`` (one JSON object per logged
step), ``OUT/summary.json`` (config, seconds per step, final Chamfer to the nearest target).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from polyfold.core.errors import InputError
from polyfold.core.outputs import write_bytes, write_text
from polyfold.core.report import png_bytes
from polyfold.shape.distill3d import DistillConfig, DistillResult, distill
from polyfold.shape.metrics import chamfer
from polyfold.shape.msdf import to_mesh
from polyfold.shape.teachers import ExactTeacher, Teacher

__all__ = [
    "chamfer_metric",
    "compare_methods",
    "grid_points",
    "nearest_target",
    "run_distill",
    "target_points",
]


def grid_points(values: torch.Tensor, n: int = 2048, seed: int = 0) -> np.ndarray | None:
    """``n`` surface points of a distilled grid's mesh (``None`` when it has no surface)."""
    from polyfold.shape.meshes import sample_surface

    try:
        v, f = to_mesh(values)
    except InputError:
        return None
    return sample_surface(v, f, n, seed=seed)[0]


def target_points(teacher: ExactTeacher, cls: str, n: int = 2048) -> list[np.ndarray]:
    """Surface points of each target shape of class ``cls`` (marching cubes at 64^3)."""
    from polyfold.shape.msdf import volume_points

    out = []
    for f in teacher.fields[cls]:
        with torch.no_grad():
            vol = f(volume_points(64, dtype=torch.float64)).reshape(64, 64, 64)
        pts = grid_points(vol, n)
        assert pts is not None, "a target shape without a surface"
        out.append(pts)
    return out


def nearest_target(points: np.ndarray | None, targets: list[np.ndarray]) -> tuple[float, int]:
    """Chamfer to the nearest target and its index (``inf, -1`` without a surface)."""
    if points is None:
        return float("inf"), -1
    d = [chamfer(points, t) for t in targets]
    return float(min(d)), int(np.argmin(d))


def chamfer_metric(
    targets: list[np.ndarray],
) -> Callable[[list[torch.nn.Module]], dict[str, float]]:
    """A :func:`distill` metric: per particle, Chamfer to the nearest target and its index."""

    def metric(shapes: list[torch.nn.Module]) -> dict[str, float]:
        out: dict[str, float] = {}
        for i, s in enumerate(shapes):
            cd, k = nearest_target(grid_points(s.values.detach()), targets)  # type: ignore[arg-type]
            out[f"chamfer_{i}"], out[f"nearest_{i}"] = cd, float(k)
        return out

    return metric


def _finite(v: object) -> object:
    """``v`` with non-finite floats as ``None`` (JSON has no infinity)."""
    if isinstance(v, dict):
        return {k: _finite(x) for k, x in v.items()}
    return v if not isinstance(v, float) or np.isfinite(v) else None


def run_distill(
    teacher: Teacher,
    cls: str,
    cfg: DistillConfig,
    out: Path,
    *,
    progress: Callable[[int, dict[str, float]], None] | None = None,
    metric_every: int = 50,
    snapshot_every: int = 50,
    references: list[np.ndarray] | None = None,
) -> tuple[DistillResult, dict[str, object]]:
    """Run :func:`distill` and write its outputs under ``out`` (an existing folder); the
    Chamfer metric is to the nearest of ``references`` (point sets; default: the exact
    teacher's targets)."""
    if references is None:
        if not isinstance(teacher, ExactTeacher):
            raise InputError("references: a teacher without target shapes needs reference points")
        references = target_points(teacher, cls)
    targets = references
    res = distill(
        teacher,
        cls,
        cfg,
        progress=progress,
        metric=chamfer_metric(targets),
        metric_every=metric_every,
        snapshot_every=snapshot_every,
    )
    meshes = 0
    for i, g in enumerate(res.grids):
        try:
            v, f = to_mesh(g)
        except InputError:
            continue
        from polyfold.shape.generate import export_mesh

        export_mesh(v, f, out / f"shape-{i}.glb")
        meshes += 1
    (out / "renders").mkdir(parents=True, exist_ok=True)
    for step, img in res.snapshots:
        write_bytes(out / "renders" / f"step-{step:05d}.png", png_bytes(img))
    write_text(out / "log.jsonl", "".join(json.dumps(_finite(e)) + "\n" for e in res.log))
    final = res.log[-1]
    summary: dict[str, object] = {
        "class": cls,
        "method": cfg.method,
        "steps": cfg.steps,
        "meshes": meshes,
        "seconds_per_step": res.seconds_per_step,
        "chamfer_to_nearest_target": [
            _finite(final[f"chamfer_{i}"]) for i in range(len(res.grids))
        ],
        "nearest_target": [int(final[f"nearest_{i}"]) for i in range(len(res.grids))],
        "config": res.config,
    }
    write_text(out / "summary.json", json.dumps(summary, indent=2, default=str) + "\n")
    return res, summary


def compare_methods(
    teacher: ExactTeacher, cls: str, methods: tuple[str, ...], cfg: DistillConfig
) -> tuple[list[dict[str, object]], np.ndarray]:
    """Distil ``cls`` with each of ``methods`` (``cfg`` otherwise the same: seed, budget,
    renderer): per method its mean final Chamfer to the nearest target, the targets reached and
    seconds per step, and one uint8 image of the final renders (a row per particle and method)."""
    from dataclasses import replace

    targets = target_points(teacher, cls)
    rows: list[dict[str, object]] = []
    images = []
    for method in methods:
        res = distill(
            teacher,
            cls,
            replace(cfg, method=method),
            metric=chamfer_metric(targets),
            snapshot_every=cfg.steps,
        )
        final, n = res.log[-1], len(res.grids)
        rows.append(
            {
                "method": method,
                "chamfer": sum(final[f"chamfer_{i}"] for i in range(n)) / n,
                "targets_reached": len({int(final[f"nearest_{i}"]) for i in range(n)}),
                "seconds_per_step": res.seconds_per_step,
            }
        )
        images.append(res.snapshots[-1][1])
    return rows, np.concatenate(images, 0)
