"""Mosaic-SDF benchmark: conversion quality against a dense grid of equal parameter count, sparse
against dense volumetric evaluation, and generation quality of the shipped flow model.

    python apps/bench/shape.py --quick --out runs/bench/shape.json

Summary keys (goals from issue 23):

- ``msdf_chamfer`` (n=256, k=7, after refinement; mean over procedural classes and the real
  pybullet meshes; <= 1e-4) and ``msdf_fscore_2pct`` (>= 0.99);
- ``msdf_chamfer_over_dense_grid``: M-SDF Chamfer over that of a dense SDF grid with the same
  number of parameters (n (k^3 + 4) values: 45^3 for n=256, k=7), thin-part classes (<= 0.5);
- ``sparse_eval_speedup``: dense (every voxel against every grid) over sparse (scatter over the
  voxels each grid covers) volume evaluation time, and ``sparse_eval_max_diff`` between them;
- ``flow_1nna_chamfer``: 1-NNA (Chamfer, 2048 points) of the shipped model's samples against
  held-out procedural shapes, mean over its classes (<= 0.75; 0.5 ideal);
- ``seconds_per_converted_shape``, ``seconds_per_sampled_shape`` (this machine's CPU; the paper
  reports GPU figures).

The point-cloud flow-matching baseline of the issue is not implemented (see the package README).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from _common import parse_args, print_table, time_call, write_json  # type: ignore[import-not-found]

from polyfold.shape.convert import ConvertConfig, convert, target_of
from polyfold.shape.evaluation import generation_report, msdf_points, reconstruction_metrics
from polyfold.shape.generate import load_flow, sample_msdfs
from polyfold.shape.meshes import pybullet_mesh, sample_surface
from polyfold.shape.metrics import chamfer
from polyfold.shape.msdf import BOUND, evaluate_volume, evaluate_volume_dense, to_mesh
from polyfold.shape.procshapes import CLASSES, make_shape

THIN = ("chair", "table", "lamp", "shelf")


def dense_grid_chamfer(target: Any, side: int, res: int, points: int) -> float:
    """Chamfer of a dense ``side^3`` SDF grid (exact values at its nodes), trilinearly
    upsampled to ``res^3`` and meshed by marching cubes."""
    g = torch.linspace(-BOUND, BOUND, side, dtype=torch.float64)
    nodes = torch.stack(torch.meshgrid(g, g, g, indexing="ij"), -1).reshape(-1, 3)
    grid = target.sdf(nodes).reshape(1, 1, side, side, side).float()
    up = F.interpolate(grid, size=(res, res, res), mode="trilinear", align_corners=True)[0, 0]
    v, f = to_mesh(up)
    return chamfer(sample_surface(v, f, points)[0], target.surface[:points])


def main() -> None:
    args = parse_args(__doc__.split("\n")[0])
    torch.set_num_threads(1)
    quick = args.quick
    classes = ("chair", "mug", "lamp") if quick else CLASSES
    real = ("bunny",) if quick else ("bunny", "duck", "teddy")
    cfg = ConvertConfig(n=256, k=7, steps=20 if quick else 100, surface_samples=10_000)
    res, points = (96, 10_000) if quick else (128, 20_000)
    side = round((cfg.n * (cfg.k**3 + 4)) ** (1 / 3))
    rows: list[dict[str, Any]] = []
    convert_seconds, last = [], None
    sources = [(c, make_shape(c, 0)) for c in classes]
    sources += [(name, pybullet_mesh(name)) for name in real]
    for name, src in sources:
        target = target_of(src, samples=cfg.surface_samples, res=res)
        t = time.perf_counter()
        m = convert(target, cfg)
        convert_seconds.append(time.perf_counter() - t)
        row: dict[str, Any] = {
            "shape": name,
            **reconstruction_metrics(m, target, res=res, points=points),
        }
        if name in THIN:
            row["dense_grid_chamfer"] = dense_grid_chamfer(target, side, res, points)
        row["seconds"] = convert_seconds[-1]
        rows.append(row)
        last = m
    thin = [r for r in rows if "dense_grid_chamfer" in r]

    assert last is not None
    eval_res = 40 if quick else 96
    sparse_t = time_call(lambda: evaluate_volume(last, eval_res), repeats=3)
    dense_t = time_call(lambda: evaluate_volume_dense(last, eval_res), repeats=1, warmup=0)
    diff = float(
        (evaluate_volume(last, eval_res) - evaluate_volume_dense(last, eval_res)).abs().max()
    )
    rows.append(
        {"shape": f"eval {eval_res}^3", "sparse_s": sparse_t, "dense_s": dense_t, "max_diff": diff}
    )

    flow, _card = load_flow()
    per_class = 4 if quick else 16
    gen, t = {}, time.perf_counter()
    for c in flow.config.classes:
        gen[c] = [msdf_points(m) for m in sample_msdfs(flow, [c] * per_class, seed=0)]
    sample_seconds = (time.perf_counter() - t) / (per_class * len(flow.config.classes))
    gm = generation_report(gen, use_emd=False)
    for c in flow.config.classes:
        rows.append({"shape": f"flow {c}", **gm[c]})

    summary = {
        "msdf_chamfer": float(np.mean([r["chamfer"] for r in rows[: len(sources)]])),
        "msdf_fscore_2pct": float(np.mean([r["fscore_2pct"] for r in rows[: len(sources)]])),
        "msdf_normal_consistency": float(
            np.mean([r["normal_consistency"] for r in rows[: len(sources)]])
        ),
        "msdf_iou": float(np.mean([r["iou"] for r in rows[: len(sources)]])),
        "msdf_chamfer_over_dense_grid": float(
            np.mean([r["chamfer"] for r in thin]) / np.mean([r["dense_grid_chamfer"] for r in thin])
        ),
        "dense_grid_side": side,
        "sparse_eval_speedup": dense_t / sparse_t,
        "sparse_eval_max_diff": diff,
        "flow_1nna_chamfer": gm["mean"]["1nna_cd"],
        "flow_cov_chamfer": gm["mean"]["cov_cd"],
        "flow_mmd_chamfer": gm["mean"]["mmd_cd"],
        "seconds_per_converted_shape": float(np.mean(convert_seconds)),
        "seconds_per_sampled_shape": sample_seconds,
        "refinement_steps": cfg.steps,
    }
    print_table(rows)
    print_table([summary])
    write_json(args.out, rows, summary)


if __name__ == "__main__":
    main()
