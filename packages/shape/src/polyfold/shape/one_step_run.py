"""One one-step generator training run to disk, and loading the generator back.

``OUT/model.safetensors`` + ``.json`` (core's model file with its card: command, teacher,
config, seconds per step, last log entry), ``OUT/log.jsonl``, ``OUT/samples/<class>-<i>.msdf``
(part 1's M-SDF files, one forward pass for all) with their meshes ``<class>-<i>.glb`` (64^3
marching cubes) and ``OUT/samples.png`` (shaded renders, a row per sample).
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from polyfold.core.errors import InputError
from polyfold.core.outputs import write_bytes, write_text
from polyfold.core.report import png_bytes
from polyfold.shape.msdf import evaluate_volume, save_msdf, to_mesh
from polyfold.shape.one_step3d import (
    OneStepConfig,
    OneStepResult,
    ShapeGenerator,
    generate_msdfs,
    train_one_step,
)
from polyfold.shape.teachers import Teacher

__all__ = ["SHIPPED_GENERATOR", "load_generator", "run_one_step", "sample_renders"]

#: the shipped one-step generator (weights/<name>.safetensors + .json; its card in the README)
SHIPPED_GENERATOR = Path(__file__).parent / "weights" / "procshapes-onestep3d"


def sample_renders(gen: ShapeGenerator, classes: list[str], *, seed: int = 0) -> Any:
    """uint8 ``(len(classes) * H, 3 * W)``: each generated shape from three cameras
    (distillation's :func:`~polyfold.shape.distill3d.snapshot`)."""
    import torch

    from polyfold.shape.volrender import MSDFBatch, cameras, render

    labels = gen.labels(classes)
    z = torch.randn(len(classes), gen.z_dim, generator=torch.Generator().manual_seed(seed))
    cams = cameras([20.0, 20.0, 20.0], [-150.0, -30.0, 90.0])
    rkw = {k: gen.render[k] for k in ("res", "samples", "beta") if k in gen.render}
    with torch.no_grad():
        field = MSDFBatch(*gen(labels, z), views=len(cams))
        shade = render(field, cams.tile(len(classes)), **rkw).shading
    rows = shade.reshape(len(classes), len(cams), *shade.shape[1:])
    img = torch.cat([torch.cat(list(r), 1) for r in rows], 0)
    return (img.clamp(0, 1) * 255).round().to(torch.uint8).numpy()


def run_one_step(
    teacher: Teacher,
    cfg: OneStepConfig,
    out: Path,
    *,
    teacher_name: str,
    per_class: int = 2,
    progress: Callable[[int, dict[str, float]], None] | None = None,
) -> tuple[OneStepResult, dict[str, Any]]:
    """Train (:func:`~polyfold.shape.one_step3d.train_one_step`) and write the outputs above
    under ``out`` (an existing folder); returns the result and the card."""
    from polyfold.core.export import save_model
    from polyfold.shape.generate import export_mesh

    res = train_one_step(teacher, cfg, progress=progress)
    gen = res.generator
    classes = [c for c in gen.classes for _ in range(per_class)]
    msdfs, _ = generate_msdfs(gen, classes, seed=cfg.seed)
    meshes = 0
    for i, (c, m) in enumerate(zip(classes, msdfs, strict=True)):
        save_msdf(m, out / "samples" / f"{c}-{i % per_class}.msdf")
        try:
            v, f = to_mesh(evaluate_volume(m, 64))
        except InputError:
            continue
        export_mesh(v, f, out / "samples" / f"{c}-{i % per_class}.glb")
        meshes += 1
    write_bytes(out / "samples.png", png_bytes(sample_renders(gen, classes, seed=cfg.seed)))
    write_text(out / "log.jsonl", "".join(json.dumps(e) + "\n" for e in res.log))
    card = {
        "data_card": "procshapes",
        "data_source": f"no 3D data: distilled from the {teacher_name} 2D teacher",
        "command": shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "teacher": teacher_name,
        "training": res.config,
        "metrics": {
            "seconds_per_step": res.seconds_per_step,
            "last_log": res.log[-1],
            "sample_meshes": f"{meshes} of {len(classes)}",
        },
    }
    save_model(gen, out / "model", config=gen.config(), card=card)
    return res, card


def load_generator(
    path: str | os.PathLike[str] | None = None,
) -> tuple[ShapeGenerator, dict[str, Any]]:
    """A trained :class:`ShapeGenerator` and its card from a model file (default: the shipped
    one)."""
    from polyfold.core.export import load_model

    path = SHIPPED_GENERATOR if path is None else Path(path)
    loaded = load_model(path)
    if not isinstance(loaded.model, ShapeGenerator):
        raise InputError(f"--model {path}: not a one-step shape generator (ShapeGenerator)")
    return loaded.model, dict(loaded.card)
