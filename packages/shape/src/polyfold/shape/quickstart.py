"""polyfold-shape's quickstart: a few real meshes (pybullet_data) converted to M-SDF and meshed
back with their reconstruction metrics, and shapes sampled from the shipped flow model with their
generation metrics against held-out procedural shapes, and a short score distillation into 3D
(SDS beside VSD, exact teacher); renders from a few views in the report.

Registered in the ``polyfold.quickstart`` entry-point group. Writes ``out/report.html`` and
``out/shape-quickstart.json``. Offline, one CPU thread.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from pathlib import Path

from polyfold.core.quickstart import quickstart_run
from polyfold.core.report import Report

__all__ = ["MARKER", "quickstart"]

MARKER = "shape-quickstart.json"
REAL = ("bunny", "duck")
PER_CLASS = 4
DISTILL_STEPS = 30


def quickstart(out: Path, *, quiet: bool = False) -> Path:
    """Run the quickstart; write ``out/report.html`` and return its path."""
    from polyfold.shape.convert import ConvertConfig, convert, target_of
    from polyfold.shape.evaluation import generation_report, msdf_points, reconstruction_metrics
    from polyfold.shape.generate import load_flow, msdf_mesh, sample_msdfs
    from polyfold.shape.meshes import pybullet_mesh
    from polyfold.shape.render import render_views

    out = Path(out)
    t0 = time.perf_counter()
    with quickstart_run("shape", out, quiet=quiet, marker=MARKER) as echo:
        report = Report("polyfold-shape quickstart: Mosaic-SDF")
        cfg = ConvertConfig(n=256, k=7, steps=10, surface_samples=10_000)
        rows, renders, recon = [], [], {}
        for name in REAL:
            echo(f"converting pybullet_data's {name} to an M-SDF (n=256, k=7)")
            target = target_of(pybullet_mesh(name), samples=cfg.surface_samples)
            t = time.perf_counter()
            m = convert(target, cfg)
            sec = time.perf_counter() - t
            recon[name] = reconstruction_metrics(m, target, res=96, points=10_000) | {
                "seconds": sec
            }
            rows.append([name, *(f"{v:.3g}" for v in recon[name].values())])
            renders += [
                ((target.vertices, target.faces), f"{name} (mesh)"),
                (msdf_mesh(m, 64), f"{name} (M-SDF)"),
            ]
        report.heading("Real meshes to M-SDF and back")
        report.paragraph(
            "pybullet_data meshes normalised to the unit cube, converted with "
            f"{cfg.steps} refinement steps and meshed back by sparse evaluation at 96^3 (the "
            "renders at 64^3) and marching cubes."
        )
        report.table(["mesh", *next(iter(recon.values())).keys()], rows)
        report.image(
            render_views([r[0] for r in renders], [r[1] for r in renders]), "mesh vs M-SDF"
        )

        flow, card = load_flow()
        classes = list(flow.config.classes)
        echo(f"sampling {PER_CLASS} shapes of each of {', '.join(classes)} from the shipped model")
        gen, meshes = {}, []
        for c in classes:
            ms = sample_msdfs(flow, [c] * PER_CLASS, seed=0)
            gen[c] = [msdf_points(m) for m in ms]
            with contextlib.suppress(ValueError):
                meshes.append((msdf_mesh(ms[0], 48), f"{c} (sampled)"))
        echo("scoring samples against held-out procedural shapes (1-NNA, COV, MMD)")
        gm = generation_report(gen, use_emd=False)
        report.heading("Samples of the shipped flow model")
        report.paragraph(
            f"Trained by: {card.get('command')}. {PER_CLASS} samples per class against "
            f"{PER_CLASS} held-out procedural shapes (Chamfer, 2048 points; 1-NNA 0.5 is ideal)."
        )
        keys = list(gm["mean"])
        report.table(["class", *keys], [[c, *(f"{gm[c][k]:.3g}" for k in keys)] for c in gm])
        if meshes:
            report.image(render_views([m[0] for m in meshes], [m[1] for m in meshes]), "samples")
        distilled = _distill_section(report, echo)
        seconds = time.perf_counter() - t0
        report.paragraph(f"Total time {seconds:.1f} s on one CPU thread.")
        (out / MARKER).write_text(
            json.dumps(
                {
                    "reconstruction": recon,
                    "generation": gm,
                    "distillation": distilled,
                    "seconds": seconds,
                },
                indent=2,
            )
            + "\n"
        )
        path = report.write(out / "report.html")
        echo(f"wrote {path} in {seconds:.1f} s")
        return path


def _distill_section(report: Report, echo: Callable[[str], None]) -> list[dict[str, object]]:
    """SDS beside VSD: two particles each distilled from the exact teacher of two mugs
    (16^3 grids, 16^2 renders, a few seconds)."""
    import numpy as np

    from polyfold.core.report import data_uri, png_bytes
    from polyfold.shape.distill3d import DistillConfig
    from polyfold.shape.distill_run import compare_methods
    from polyfold.shape.teachers import procshape_teacher

    echo(f"score distillation into 3D, exact teacher: SDS beside VSD ({DISTILL_STEPS} steps)")
    size = 16
    teacher = procshape_teacher("mug", k=2, res=size, samples=size, beta=0.01)
    cfg = DistillConfig(
        steps=DISTILL_STEPS, particles=2, grid=size, res=size, samples=size, aux_warmup=20
    )
    rows, img = compare_methods(teacher, "mug", ("sds", "vsd"), cfg)
    report.heading("Score distillation into 3D (exact teacher)")
    report.paragraph(
        f"Two particles per method start from spheres and follow the exact teacher of two "
        f"procedural mugs for {DISTILL_STEPS} steps (same seed, cameras and budget). Chamfer "
        "is to the nearest target. So few steps only start the shapes moving (the renders "
        "are still blobs); `polyfold-shape distill` and apps/bench/distill3d.py run 500."
    )
    report.table(
        ["method", "Chamfer", "targets reached", "s/step"],
        [
            [r["method"], f"{r['chamfer']:.3g}", r["targets_reached"], r["seconds_per_step"]]
            for r in rows
        ],
    )
    big = np.repeat(np.repeat(img, 4, 0), 4, 1)
    report.image(
        data_uri(png_bytes(big), "image/png"), "final renders: SDS particles (top), VSD (bottom)"
    )
    return rows
