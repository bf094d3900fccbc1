"""``polyfold-shape``: Mosaic-SDF conversion, meshing, and a flow-matching model of shapes.

    polyfold-shape convert bunny.obj --out bunny.msdf         # a mesh (or a folder of meshes)
    polyfold-shape convert --procshape chair:3 --out chair.msdf
    polyfold-shape mesh bunny.msdf --out bunny.glb
    polyfold-shape train --out runs/flow   # the shipped procshapes-flow recipe
    polyfold-shape sample --class chair -n 8 --out samples/   # glb meshes, the shipped model
    polyfold-shape evaluate --out metrics.json                # 1-NNA/COV/MMD vs held-out shapes
    polyfold-shape distill --teacher exact --class chair --method vsd --steps 500 --out runs/d
    polyfold-shape train-teacher --out runs/teacher               # the learned 2D teacher
    polyfold-shape distill --teacher learned --class mug --method sds --steps 200 --out runs/l
    polyfold-shape train-one-step --guidance 2 --steps 400 --aux teacher --out runs/g
    polyfold-shape quickstart --out shape-quickstart

Outputs are never overwritten without ``--force``. Also reachable as ``polyfold shape``.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer

from polyfold.core.cli import domain_app, run_app
from polyfold.core.errors import InputError, check_int, check_number
from polyfold.core.outputs import Force, check_output_file, prepare_output_dir, write_text
from polyfold.core.progress import Progress, Quiet, prepare_training_out

__all__ = ["app", "main"]

app = domain_app("polyfold-shape", "Mosaic-SDF shapes and a flow-matching model over them.")

NOpt = Annotated[int, typer.Option("--grids", help="Grids per shape (the paper: 256).")]
KOpt = Annotated[int, typer.Option("--k", help="Grid side (the paper: 7).")]
ModelOpt = Annotated[
    Path | None, typer.Option("--model", help="A model file [default: the shipped model].")
]


def _one_thread() -> None:
    import torch

    torch.set_num_threads(1)


def _parse_procshape(spec: str) -> tuple[str, int]:
    cls, _, seed = spec.partition(":")
    try:
        return cls, int(seed or 0)
    except ValueError:
        raise InputError(f"--procshape: expected CLASS or CLASS:SEED, got {spec!r}") from None


@app.command()
def convert(
    source: Annotated[
        Path | None, typer.Argument(help="A mesh file or a folder of meshes.")
    ] = None,
    out: Annotated[
        Path, typer.Option("--out", help="The .msdf file (a folder for a folder).")
    ] = Path("shape.msdf"),
    procshape: Annotated[
        str | None, typer.Option(help="Convert a procedural shape CLASS[:SEED] instead.")
    ] = None,
    grids: NOpt = 256,
    k: KOpt = 7,
    steps: Annotated[int, typer.Option(help="Refinement steps.")] = 100,
    cls: Annotated[str, typer.Option("--class", help="Class recorded in the file.")] = "",
    force: Force = False,
    quiet: Quiet = False,
) -> None:
    """Convert a mesh (or every mesh of a folder, keeping class sub-folders) to M-SDF files."""
    _one_thread()
    from polyfold.shape.convert import ConvertConfig
    from polyfold.shape.convert import convert as run
    from polyfold.shape.meshes import Mesh, load_folder, load_mesh
    from polyfold.shape.msdf import save_msdf
    from polyfold.shape.procshapes import Shape, make_shape

    cfg = ConvertConfig(n=grids, k=k, steps=steps)
    if (source is None) == (procshape is None):
        raise InputError("convert: give a mesh file or folder, or --procshape (one of them)")
    if procshape is not None or (source is not None and not source.is_dir()):
        check_output_file(out, force=force)
        src: Mesh | Shape
        if procshape is not None:
            src = make_shape(*_parse_procshape(procshape))
        else:
            assert source is not None
            src = load_mesh(source, cls=cls)
        m = run(src, cfg)
        m.cls = cls or m.cls
        save_msdf(m, out)
        typer.echo(f"wrote {out} ({cfg.n} grids of {cfg.k}^3)")
        return
    assert source is not None
    meshes = load_folder(source)
    prepare_output_dir(out, force=force)
    with Progress(len(meshes), "convert", quiet=quiet) as bar:
        for mesh in meshes:
            rel = Path(mesh.name).relative_to(source).with_suffix(".msdf")
            m = run(mesh, cfg)
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            save_msdf(m, out / rel)
            bar.advance()
    typer.echo(f"wrote {len(meshes)} .msdf files under {out}")


@app.command()
def mesh(
    source: Annotated[Path, typer.Argument(help="An .msdf file.")],
    out: Annotated[Path, typer.Option("--out", help="Mesh file (.glb/.obj/.ply/.stl/.off).")],
    res: Annotated[int, typer.Option(help="Marching-cubes resolution.")] = 128,
    force: Force = False,
) -> None:
    """Mesh an M-SDF: sparse volume evaluation and marching cubes."""
    from polyfold.shape.generate import export_mesh, msdf_mesh
    from polyfold.shape.msdf import load_msdf

    check_int("--res", res, 8)
    check_output_file(out, force=force)
    v, f = msdf_mesh(load_msdf(source), res)
    export_mesh(v, f, out)
    typer.echo(f"wrote {out} ({len(v)} vertices, {len(f)} faces)")


@app.command()
def train(
    out: Annotated[Path, typer.Option("--out", help="Run folder (checkpoints and the model).")],
    classes: Annotated[
        str, typer.Option("--class", help="Procedural classes, comma-separated.")
    ] = "chair,table,mug,vase",
    data: Annotated[
        Path | None, typer.Option(help="A folder of .msdf files in class sub-folders instead.")
    ] = None,
    per_class: Annotated[int, typer.Option(help="Procedural shapes per class.")] = 32,
    grids: NOpt = 32,
    k: KOpt = 5,
    refine: Annotated[
        int, typer.Option(help="Refinement steps of each procedural shape's conversion.")
    ] = 40,
    steps: Annotated[int, typer.Option(help="Training steps.")] = 3000,
    width: Annotated[int, typer.Option(help="Transformer width.")] = 96,
    depth: Annotated[int, typer.Option(help="Transformer layers.")] = 3,
    tokens: Annotated[
        str, typer.Option(help="msdf, or points (the point-cloud baseline: --points per shape).")
    ] = "msdf",
    points: Annotated[int, typer.Option(help="Points per shape with --tokens points.")] = 256,
    coupling: Annotated[
        str, typer.Option(help="independent or ot (minibatch OT).")
    ] = "independent",
    geometry_weight: Annotated[
        float, typer.Option(help="Weight of the standardised centre and scale features.")
    ] = 5.0,
    seed: Annotated[int, typer.Option(help="Seed.")] = 0,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run in --out.")] = False,
    force: Force = False,
    quiet: Quiet = False,
) -> None:
    """Train the class-conditional flow over M-SDF grids; writes OUT/model.safetensors + .json."""
    _one_thread()
    from polyfold.shape.flow import FlowConfig
    from polyfold.shape.procshapes import check_classes
    from polyfold.shape.train import (
        TRAIN_CONVERT,
        fit_flow,
        fit_tokens,
        load_msdf_folder,
        procshape_msdfs,
        procshape_points,
    )

    check_int("--per-class", per_class, 1)
    check_int("--refine", refine, 0)
    check_number("--geometry-weight", geometry_weight, strict=True)
    if tokens not in ("msdf", "points"):
        raise InputError(f"--tokens: expected msdf or points, got {tokens!r}")
    resumed = prepare_training_out(out, resume=resume, force=force)
    if tokens == "points":
        if data is not None:
            raise InputError("--data: the point-cloud baseline trains on procshapes only")
        names = check_classes(classes)
        raw, labels = procshape_points(names, per_class, check_int("--points", points, 1))
        cfg = FlowConfig(
            classes=names,
            tokens="points",
            n=points,
            steps=steps,
            width=width,
            depth=depth,
            coupling=coupling,
            seed=seed,
        )
        with Progress(cfg.steps, "train (points)", quiet=quiet) as bar:
            path = fit_tokens(
                raw,
                labels,
                out,
                cfg,
                resume=resumed is not None,
                progress=bar.trainer_update,
                data_source={"per_class": per_class, "points": points},
            )
        typer.echo(f"trained for {cfg.steps} steps; wrote {path}")
        return
    if data is not None:
        shapes = load_msdf_folder(data)
        names = sorted({m.cls for m in shapes})
        grids, k = shapes[0].n, shapes[0].k
    else:
        names = check_classes(classes)
        with Progress(len(names) * per_class, "convert procshapes", quiet=quiet) as bar:
            shapes = procshape_msdfs(
                names,
                per_class,
                replace(TRAIN_CONVERT, n=grids, k=k, steps=refine),
                progress=lambda i, _n: bar.update(i),
            )
    cfg = FlowConfig(
        classes=names,
        n=grids,
        k=k,
        steps=steps,
        width=width,
        depth=depth,
        coupling=coupling,
        geometry_weight=geometry_weight,
        seed=seed,
    )
    with Progress(cfg.steps, "train", quiet=quiet) as bar:
        if resumed is not None:
            bar.update(resumed)
        path = fit_flow(
            shapes,
            out,
            cfg,
            resume=resumed is not None,
            progress=bar.trainer_update,
            data_card="procshapes" if data is None else None,
            data_source={
                "data": str(data) if data else None,
                "per_class": per_class,
                "refine": refine if data is None else None,
            },
        )
    typer.echo(f"trained for {cfg.steps} steps; wrote {path}")


@app.command()
def sample(
    out: Annotated[Path, typer.Option("--out", help="Output folder (one .glb per shape).")],
    cls: Annotated[str, typer.Option("--class", help="Class(es), comma-separated.")],
    n: Annotated[int, typer.Option("-n", help="Shapes per class.")] = 8,
    model: ModelOpt = None,
    sampler: Annotated[str | None, typer.Option(help="Core ODE sampler by name.")] = None,
    steps: Annotated[int | None, typer.Option(help="Sampler steps.")] = None,
    guidance: Annotated[float | None, typer.Option(help="Classifier-free guidance scale.")] = None,
    res: Annotated[int, typer.Option(help="Marching-cubes resolution.")] = 96,
    seed: Annotated[int, typer.Option(help="Seed.")] = 0,
    force: Force = False,
    quiet: Quiet = False,
) -> None:
    """Sample shapes of the given classes; writes OUT/<class>-<i>.glb and .msdf files."""
    _one_thread()
    from polyfold.shape.generate import export_mesh, load_flow, msdf_mesh, sample_msdfs
    from polyfold.shape.msdf import save_msdf

    check_int("-n", n, 1)
    flow, _card = load_flow(model)
    if flow.config.tokens != "msdf":
        raise InputError(
            f"--model {model}: a point-cloud baseline model; sample needs an M-SDF one"
        )
    names = [c.strip() for c in cls.split(",") if c.strip()]
    flow.labels(names)  # an unknown class fails before any work
    prepare_output_dir(out, force=force)
    wanted = [c for c in names for _ in range(n)]
    msdfs = sample_msdfs(flow, wanted, seed=seed, sampler=sampler, steps=steps, guidance=guidance)
    written = 0
    with Progress(len(msdfs), "mesh", quiet=quiet) as bar:
        for i, (c, m) in enumerate(zip(wanted, msdfs, strict=True)):
            name = f"{c}-{i % n}"
            save_msdf(m, out / f"{name}.msdf")
            try:
                export_mesh(*msdf_mesh(m, res), out / f"{name}.glb")
                written += 1
            except InputError as err:
                typer.echo(f"{name}: {err}", err=True)
            bar.advance()
    typer.echo(f"wrote {written} meshes (.glb) and {len(msdfs)} .msdf files to {out}")


@app.command()
def evaluate(
    out: Annotated[Path, typer.Option("--out", help="JSON file of the metrics.")],
    model: ModelOpt = None,
    n: Annotated[int, typer.Option("-n", help="Shapes per class (and held-out references).")] = 16,
    points: Annotated[int, typer.Option(help="Points per shape (PointFlow: 2048).")] = 2048,
    emd: Annotated[bool, typer.Option(help="Also EMD-based metrics (slow).")] = False,
    seed: Annotated[int, typer.Option(help="Seed.")] = 0,
    force: Force = False,
    quiet: Quiet = False,
) -> None:
    """1-NNA, COV and MMD of sampled shapes against held-out procedural shapes, per class."""
    _one_thread()
    from polyfold.shape.evaluation import generation_report, msdf_points
    from polyfold.shape.generate import load_flow, sample_msdfs

    check_int("-n", n, 1)
    check_output_file(out, force=force)
    flow, _card = load_flow(model)
    gen = {}
    for c in flow.config.classes:
        gen[c] = [msdf_points(m, points) for m in sample_msdfs(flow, [c] * n, seed=seed)]
    report = generation_report(
        gen, points=points, use_emd=emd, progress=None if quiet else typer.echo
    )
    write_text(out, json.dumps(report, indent=2) + "\n")
    typer.echo(json.dumps(report["mean"], indent=2))


@app.command("train-teacher")
def train_teacher(
    out: Annotated[Path, typer.Option("--out", help="Run folder (renders, checkpoints, model).")],
    classes: Annotated[
        str, typer.Option("--class", help="Procedural classes, comma-separated.")
    ] = "chair,table,mug,vase",
    per_class: Annotated[int, typer.Option(help="Procedural shapes per class.")] = 64,
    views: Annotated[int, typer.Option(help="Random camera views per shape.")] = 8,
    res: Annotated[int, typer.Option(help="Render side (a multiple of 4).")] = 24,
    width: Annotated[int, typer.Option(help="UNet width (a multiple of 8).")] = 16,
    steps: Annotated[int, typer.Option(help="Training steps.")] = 1500,
    batch_size: Annotated[int, typer.Option(help="Batch size.")] = 32,
    p_uncond: Annotated[float, typer.Option(help="Class dropout for CFG.")] = 0.1,
    seed: Annotated[int, typer.Option(help="Seed.")] = 0,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run in --out.")] = False,
    force: Force = False,
    quiet: Quiet = False,
) -> None:
    """Train the learned 2D teacher (a class- and camera-conditional diffusion model of renders
    of the procedural shapes); writes OUT/model.safetensors + .json."""
    _one_thread()
    from polyfold.shape.learned_teacher import TeacherConfig, fit_teacher

    cfg = TeacherConfig(
        classes=classes.split(","),
        per_class=per_class,
        views=views,
        res=res,
        samples=res,
        width=width,
        steps=steps,
        batch_size=batch_size,
        p_uncond=p_uncond,
        seed=seed,
    ).check()
    resumed = prepare_training_out(out, resume=resume, force=force)
    n = len(cfg.classes) * cfg.per_class
    with Progress(n, "render", quiet=quiet) as rbar:
        from polyfold.shape.learned_teacher import cached_renders

        data = cached_renders(out, cfg, lambda i, _n: rbar.update(i))
    with Progress(cfg.steps, "train", quiet=quiet) as bar:
        if resumed is not None:
            bar.update(resumed)
        path, card = fit_teacher(
            out, cfg, data=data, resume=resumed is not None, progress=bar.trainer_update
        )
    typer.echo(json.dumps(card["metrics"]))
    typer.echo(f"trained for {cfg.steps} steps; wrote {path}")


def _check_teacher(teacher: str, teacher_model: Path | None) -> None:
    if teacher not in ("exact", "learned"):
        raise InputError(f"--teacher: expected exact or learned, got {teacher!r}")
    if teacher_model is not None and teacher != "learned":
        raise InputError("--teacher-model: only with --teacher learned")


@app.command()
def distill(
    out: Annotated[Path, typer.Option("--out", help="Output folder.")],
    cls: Annotated[str, typer.Option("--class", help="Procedural class to distil.")] = "chair",
    method: Annotated[str, typer.Option(help="sds, vsd, ism or tsm.")] = "sds",
    steps: Annotated[int, typer.Option(help="Distillation steps.")] = 500,
    teacher: Annotated[str, typer.Option(help="The 2D teacher: exact or learned.")] = "exact",
    teacher_model: Annotated[
        Path | None,
        typer.Option(help="The learned teacher's model file [default: the shipped one]."),
    ] = None,
    particles: Annotated[int, typer.Option(help="Shapes optimised together.")] = 1,
    targets: Annotated[
        int,
        typer.Option(
            help="Target shapes of the exact teacher (the learned one: the Chamfer references)."
        ),
    ] = 4,
    guidance: Annotated[float, typer.Option(help="CFG scale (1: off).")] = 1.0,
    seed: Annotated[int, typer.Option(help="Seed.")] = 0,
    force: Force = False,
    quiet: Quiet = False,
) -> None:
    """Score distillation into 3D (SDS, VSD, ISM, TSM): OUT/shape-*.glb, renders/, log.jsonl."""
    _one_thread()
    from polyfold.shape.distill3d import DistillConfig
    from polyfold.shape.distill_run import run_distill, target_points
    from polyfold.shape.learned_teacher import LearnedTeacher, load_teacher
    from polyfold.shape.teachers import ExactTeacher, procshape_teacher

    _check_teacher(teacher, teacher_model)
    cfg = DistillConfig(
        method=method, steps=steps, particles=particles, guidance=guidance, seed=seed
    )
    cfg.check()
    check_int("--targets", targets, 1)
    t: ExactTeacher | LearnedTeacher
    refs = None
    if teacher == "learned":
        t = load_teacher(teacher_model)
        t.check_class(cls)
        cfg = replace(cfg, **t.render_kw)  # the renders the teacher was trained on
        refs = target_points(procshape_teacher(cls, k=targets), cls)
    else:
        t = procshape_teacher(
            cls,
            k=targets,
            all_classes=guidance != 1.0,
            res=cfg.res,
            samples=cfg.samples,
            beta=cfg.beta,
        )
    prepare_output_dir(out, force=force)
    with Progress(steps, f"distill ({method}, {teacher})", quiet=quiet) as bar:
        _, summary = run_distill(
            t,
            cls,
            cfg,
            out,
            progress=lambda i, e: bar.update(i, grad=e["grad_norm"]),
            references=refs,
        )
    typer.echo(
        json.dumps({k: summary[k] for k in ("chamfer_to_nearest_target", "seconds_per_step")})
    )
    typer.echo(f"wrote {summary['meshes']} meshes, renders/ and log.jsonl to {out}")


@app.command("train-one-step")
def train_one_step(
    out: Annotated[Path, typer.Option("--out", help="Output folder.")],
    cls: Annotated[
        str, typer.Option("--class", help="Classes, comma-separated [default: the teacher's].")
    ] = "",
    method: Annotated[str, typer.Option(help="vsd (SwiftBrush) or sds.")] = "vsd",
    steps: Annotated[int, typer.Option(help="Training steps (one class per step).")] = 600,
    batch: Annotated[int, typer.Option(help="Shapes per step.")] = 2,
    teacher: Annotated[str, typer.Option(help="The 2D teacher: exact or learned.")] = "learned",
    teacher_model: Annotated[
        Path | None,
        typer.Option(help="The learned teacher's model file [default: the shipped one]."),
    ] = None,
    targets: Annotated[int, typer.Option(help="Target shapes per class (exact teacher).")] = 4,
    guidance: Annotated[float, typer.Option(help="CFG scale (1: off).")] = 1.0,
    samples: Annotated[int, typer.Option(help="Sample meshes written per class.")] = 2,
    init: Annotated[
        str, typer.Option(help="Starting shapes: blobs (a random blob per z) or sphere.")
    ] = "blobs",
    aux: Annotated[
        str,
        typer.Option(
            help="VSD's auxiliary: net (a fresh small network) or teacher (a copy of it)."
        ),
    ] = "net",
    eikonal: Annotated[float, typer.Option(help="Weight of the grids' eikonal penalty.")] = 0.1,
    grids: Annotated[int, typer.Option(help="M-SDF grids per shape.")] = 32,
    k: Annotated[int, typer.Option(help="M-SDF values per grid edge.")] = 5,
    seed: Annotated[int, typer.Option(help="Seed.")] = 0,
    force: Force = False,
    quiet: Quiet = False,
) -> None:
    """Train a one-step generator (class, noise -> M-SDF) by SwiftBrush-style VSD through the
    renderer: OUT/model.safetensors + .json, samples/*.msdf + .glb, samples.png, log.jsonl."""
    _one_thread()
    from polyfold.shape.learned_teacher import LearnedTeacher, load_teacher
    from polyfold.shape.one_step3d import OneStepConfig
    from polyfold.shape.one_step_run import run_one_step
    from polyfold.shape.procshapes import check_classes, dataset
    from polyfold.shape.teachers import ExactTeacher

    _check_teacher(teacher, teacher_model)
    check_int("--targets", targets, 1)
    check_int("--samples", samples, 1)
    if aux == "teacher" and teacher != "learned":
        raise InputError("--aux teacher: needs --teacher learned (a network to copy)")
    classes = check_classes(cls) if cls else []
    cfg = OneStepConfig(
        classes=classes,
        method=method,
        steps=steps,
        batch=batch,
        guidance=guidance,
        init=init,
        grids=grids,
        k=k,
        aux=aux,
        eikonal=eikonal,
        seed=seed,
    ).check()
    t: ExactTeacher | LearnedTeacher
    if teacher == "learned":
        t = load_teacher(teacher_model)
        cfg = replace(cfg, **t.render_kw)
    else:
        names = classes or ["chair", "table", "mug", "vase"]
        if guidance != 1.0 and len(names) < 2:
            raise InputError("--guidance: CFG with the exact teacher needs two or more classes")
        shapes = {c: list(dataset([c], targets)) for c in names}
        t = ExactTeacher(shapes, **cfg.render_kw)  # type: ignore[arg-type]
    for c in classes:
        t.check_class(c)
    prepare_output_dir(out, force=force)
    with Progress(steps, f"one-step ({method}, {teacher})", quiet=quiet) as bar:
        _, card = run_one_step(
            t,
            cfg,
            out,
            teacher_name=teacher,
            per_class=samples,
            progress=lambda i, e: bar.update(i, loss=e["student"]),
        )
    typer.echo(json.dumps(card["metrics"]))
    typer.echo(f"wrote the generator, samples/ and log.jsonl to {out}")


@app.command()
def quickstart(
    out: Annotated[Path, typer.Option("--out", help="Output folder.")] = Path("shape-quickstart"),
    quiet: Quiet = False,
) -> None:
    """Convert real meshes, sample the shipped model, write OUT/report.html."""
    from polyfold.shape.quickstart import quickstart as run

    path = run(out, quiet=quiet)
    typer.echo(f"wrote {path}")


def main() -> None:
    run_app(app, prog_name="polyfold-shape")
