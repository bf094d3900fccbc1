"""polyfold-shape's quickstart: a few real meshes (pybullet_data) converted to M-SDF and meshed
back with their reconstruction metrics, and shapes sampled from the shipped flow model with their
generation metrics against held-out procedural shapes; renders from a few views in the report.

Registered in the ``polyfold.quickstart`` entry-point group. Writes ``out/report.html`` and
``out/shape-quickstart.json``. Offline, one CPU thread.
"""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path

from polyfold.core.quickstart import quickstart_run
from polyfold.core.report import Report

__all__ = ["MARKER", "quickstart"]

MARKER = "shape-quickstart.json"
REAL = ("bunny", "duck")
PER_CLASS = 4


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
        seconds = time.perf_counter() - t0
        report.paragraph(f"Total time {seconds:.1f} s on one CPU thread.")
        (out / MARKER).write_text(
            json.dumps({"reconstruction": recon, "generation": gm, "seconds": seconds}, indent=2)
            + "\n"
        )
        path = report.write(out / "report.html")
        echo(f"wrote {path} in {seconds:.1f} s")
        return path
