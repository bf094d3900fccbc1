"""Score distillation into 3D with the exact and the learned teacher: SDS, VSD, ISM and TSM on the
same renderer, teacher, seeds and budget (polyfold-shape's ``distill3d``).

    python apps/bench/distill3d.py --quick --out runs/bench/distill3d.json
    python apps/bench/distill3d.py --part learned --out runs/bench/distill3d-learned.json

Teacher: the exact render posterior (``polyfold.shape.teachers``, default ``tau = 0.5``). Errors are
Chamfer distances (2048 points each way, marching cubes of the distilled ``grid^3`` SDF) to the
nearest target shape. Summary keys (goals from issue 24, the papers' claims):

- ``vsd_over_sds_error``, ``ism_over_sds_error``, ``tsm_over_ism_error``: ratios of the final
  error, one particle each, class ``chair`` with 4 chair targets (< 1 each);
- ``vsd_modes_covered`` / ``sds_modes_covered``: distinct nearest targets of 4 particles over 4
  distinct targets (chair, table, mug, vase under one label; goal >= 3 and <= 2); the particles
  are independent random starts (``distill3d.initial_shapes``), the same ones for SDS and VSD;
- ``tsm_over_ism_error_drift``: TSM's error growth factor over the last half of the run
  (``error(end) / error(half)``) over ISM's (< 1);
  ISM and TSM use LucidDreamer's weighting ``sigma / alpha``, SDS and VSD DreamFusion's ``sigma^2``;
- ``seconds_per_step`` (per method, one particle, this CPU) and ``seconds_per_shape``;
- ``alignment_{sds,ism,tsm}``: a diagnostic, the cosine between each method's descent direction
  at the initial sphere's renders and the way to the nearest target render (mean over 4 times).

``--quick``: 40 steps, the full run 500 steps; both at 24^2 renders (24 samples per ray) and a
24^3 grid (the CLI's default is 32: a CPU budget choice).

Learned teacher (the shipped ``procshapes-teacher2d``, 24^2 renders; ``--part learned`` runs only
these rows, ``--part exact`` only the ones above): for each class (chair, table, mug, vase) and
method, ``LEARNED_N`` (16, the issue's count) shapes distilled in one run from independent random
starts (rendered as one batch, :class:`~polyfold.shape.volrender.GridBatch`), scored by 1-NNA
(Chamfer, 2048 points) against as many held-out procedural shapes of the class, beside the
shipped flow model's samples (part 1) at the same count; ``learned_1nna`` (per method, mean over
classes), ``flow_1nna``, ``learned_seconds_per_step`` / ``learned_seconds_per_shape`` (one
shape's share). All methods at CFG scale ``LEARNED_GUIDANCE`` (the null class) and
``LEARNED_INVERSION`` DDIM-inversion steps for ISM/TSM (the network costs one call per step).
The rows run method-major (flow, SDS, VSD, ISM, TSM; all four classes each) and ``--part
learned`` rewrites its JSON after every row (``"partial": true`` until the end), so a run
stopped early keeps every finished method; ``learned_classes_done`` says how many classes each
method's means cover. ``--quick``: 2 shapes per class and 10 steps; full: 16 shapes per class
and ``LEARNED_STEPS`` steps.

One-step generator (``--part one-step``; also in ``all``): the shipped ``procshapes-onestep3d``
(``polyfold.shape.one_step3d``: class and ``z`` -> an M-SDF in one pass, trained by
SwiftBrush-style VSD with the learned teacher; its training command on its card) generates each
class's shapes in one forward pass, scored the same way (M-SDF meshes at 64^3, as the flow
model's) beside the flow model at ``LEARNED_N`` shapes per class (``--quick``: 4):
``one_step_1nna``, ``one_step_flow_1nna``, ``one_step_seconds_per_shape`` (one batched pass over
the class's shapes, meshing not counted) and ``one_step_pairwise_over_real`` (per class: the
mean Chamfer between distinct generated shapes over the same between the real references; 1 is
the data's spread, below 1 mode collapse).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import torch
from _common import parse_args, print_table, write_json  # type: ignore[import-not-found]

from polyfold.shape.distill3d import METHODS, DistillConfig, distill
from polyfold.shape.distill_run import chamfer_metric, target_points
from polyfold.shape.procshapes import make_shape
from polyfold.shape.teachers import ExactTeacher

MIX = ("chair", "table", "mug", "vase")
LEARNED_N, LEARNED_STEPS, LEARNED_INVERSION, LEARNED_GUIDANCE = 16, 100, 8, 5.0


def alignment(teacher: ExactTeacher, cls: str, method: str, size: int) -> float:
    """Mean over t in {0.2, 0.4, 0.6, 0.8} of the cosine between a method's descent direction
    ``-G`` at the initial sphere's renders (8 azimuths) and the way to the nearest target."""
    from polyfold.core.distill import ism_gradient, sds_gradient, tsm_gradient
    from polyfold.shape.volrender import cameras, render

    cams = cameras([25.0] * 8, [float(a) for a in range(-180, 180, 45)])
    with torch.no_grad():
        x = render(lambda p: p.norm(dim=-1) - 0.3, cams, res=size, samples=size).image()
    tg = teacher.targets(cls, cams)
    way = tg[torch.arange(8), (tg - x[:, None]).pow(2).sum((2, 3, 4)).argmin(1)] - x
    d = teacher.denoiser(cls, cams)
    gen = torch.Generator().manual_seed(0)
    steps = DistillConfig().inversion_steps
    cos = []
    for t in (0.2, 0.4, 0.6, 0.8):
        kw: dict[str, Any] = {"path": teacher.path, "t": torch.full((8,), t, dtype=torch.float64)}
        if method == "sds":
            g = sds_gradient(x, d, generator=gen, **kw)
        else:
            fn = ism_gradient if method == "ism" else tsm_gradient
            g = fn(x, d, inversion_steps=steps, **kw)
        cos.append(float((-g * way).sum() / (g.norm() * way.norm())))
    return sum(cos) / len(cos)


def run(
    teacher: ExactTeacher, cls: str, method: str, particles: int, base: dict[str, Any]
) -> dict[str, Any]:
    steps = base["steps"]
    cfg = DistillConfig(method=method, particles=particles, **base)
    res = distill(
        teacher,
        cls,
        cfg,
        metric=chamfer_metric(target_points(teacher, cls)),
        metric_every=steps // 2,
    )
    logged = [e for e in res.log if "chamfer_0" in e]
    mid, end = logged[0], logged[-1]
    errors = [end[f"chamfer_{i}"] for i in range(particles)]
    return {
        "method": method,
        "particles": particles,
        "error": sum(errors) / particles,
        "error_half": sum(mid[f"chamfer_{i}"] for i in range(particles)) / particles,
        "modes": len({int(end[f"nearest_{i}"]) for i in range(particles)}),
        "seconds_per_step": res.seconds_per_step / particles,
    }


def learned(
    quick: bool, checkpoint: Callable[[list[dict[str, Any]], dict[str, Any]], None] | None = None
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The learned-teacher rows (see the module docstring) and their summary keys;
    ``checkpoint(rows, summary)`` after every row."""
    from polyfold.shape.distill_eval import distilled_metrics, flow_metrics
    from polyfold.shape.evaluation import reference_points
    from polyfold.shape.learned_teacher import load_teacher

    teacher = load_teacher()
    n, steps = (2, 10) if quick else (LEARNED_N, LEARNED_STEPS)
    base = DistillConfig(
        steps=steps,
        particles=n,
        grid=24,
        inversion_steps=LEARNED_INVERSION,
        guidance=LEARNED_GUIDANCE,
        **teacher.render_kw,
    )
    rows: list[dict[str, Any]] = []

    def mean(method: str, key: str) -> float:
        vals = [r[key] for r in rows if r["method"] == method]
        return sum(vals) / len(vals) if vals else float("nan")

    def summary() -> dict[str, Any]:
        done = [m for m in METHODS if any(r["method"] == m for r in rows)]
        return {
            "learned_1nna": {m: mean(m, "1nna_cd") for m in done},
            "flow_1nna": mean("flow", "1nna_cd"),
            "learned_empty_shapes": {m: mean(m, "empty") * len(MIX) for m in done},
            "learned_seconds_per_step": {m: mean(m, "seconds_per_step") for m in done},
            "learned_seconds_per_shape": {m: mean(m, "seconds_per_shape") for m in done},
            "learned_classes_done": {m: sum(r["method"] == m for r in rows) for m in done},
            "learned_shapes_per_class": n,
            "learned_steps": steps,
            "learned_inversion_steps": LEARNED_INVERSION,
            "learned_guidance": LEARNED_GUIDANCE,
        }

    # method-major (the flow model first), the summary rewritten after every row: a long run
    # stopped early still leaves every finished method's four classes on disk
    refs = {cls: reference_points(cls, n) for cls in MIX}
    for m in ("flow", *METHODS):
        for cls in MIX:
            if m == "flow":
                r = flow_metrics(cls, n, refs[cls])
            else:
                r = distilled_metrics(teacher, cls, replace(base, method=m), refs[cls])
            rows.append({"class": cls, "method": m, "n": n, **r})
            print(rows[-1], flush=True)
            if checkpoint is not None:
                checkpoint(rows, summary())
    return rows, summary()


def one_step(quick: bool) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The one-step generator's rows (see the module docstring) and their summary keys."""
    from polyfold.shape.distill_eval import flow_metrics, one_step_metrics, pairwise_chamfer
    from polyfold.shape.evaluation import reference_points
    from polyfold.shape.one_step_run import load_generator

    gen, card = load_generator()
    n = 4 if quick else LEARNED_N
    rows: list[dict[str, Any]] = []
    for cls in MIX:
        ref = reference_points(cls, n)
        real = pairwise_chamfer(ref)
        for method in ("one-step", "flow"):
            r = (
                one_step_metrics(gen, cls, n, ref)
                if method == "one-step"
                else flow_metrics(cls, n, ref)
            )
            rows.append({"class": cls, "method": method, "n": n, **r, "real_pairwise_cd": real})
            print(rows[-1], flush=True)

    def mean(method: str, key: str) -> float:
        vals = [r[key] for r in rows if r["method"] == method]
        return sum(vals) / len(vals)

    one = [r for r in rows if r["method"] == "one-step"]
    summary = {
        "one_step_1nna": mean("one-step", "1nna_cd"),
        "one_step_flow_1nna": mean("flow", "1nna_cd"),
        "one_step_empty_shapes": mean("one-step", "empty") * len(MIX),
        "one_step_seconds_per_shape": mean("one-step", "seconds_per_shape"),
        "one_step_pairwise_over_real": {
            r["class"]: r["pairwise_cd"] / r["real_pairwise_cd"] for r in one
        },
        "one_step_shapes_per_class": n,
        "one_step_training": card.get("command"),
    }
    return rows, summary


def main() -> None:
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--part", choices=("all", "exact", "learned", "one-step"), default="all")
    known, rest = pre.parse_known_args()
    args = parse_args(__doc__.split("\n")[0], rest)
    torch.set_num_threads(1)
    if known.part in ("one-step", "learned"):

        def partial(rows: list[dict[str, Any]], summary: dict[str, Any]) -> None:
            write_json(args.out, rows, summary, quick=args.quick, part=known.part, partial=True)

        if known.part == "learned":
            rows, summary = learned(args.quick, partial)
        else:
            rows, summary = one_step(args.quick)
        print_table(rows)
        print(summary)
        write_json(args.out, rows, summary, quick=args.quick, part=known.part, partial=False)
        return
    size = 24
    base = {"steps": 40 if args.quick else 500, "grid": size, "res": size, "samples": size}
    rkw = {"res": size, "samples": size, "beta": 0.01}
    chairs = ExactTeacher({"chair": [make_shape("chair", s) for s in range(4)]}, **rkw)
    mix = ExactTeacher({"mix": [make_shape(c, 0) for c in MIX]}, **rkw)
    rows = [run(chairs, "chair", m, 1, base) for m in ("sds", "vsd", "ism", "tsm")]
    rows += [run(mix, "mix", m, 4, base) for m in ("sds", "vsd")]
    for r in rows:
        r["drift"] = r["error"] / r["error_half"]
    print_table(rows)
    one = {r["method"]: r for r in rows[:4]}
    modes = {r["method"]: r["modes"] for r in rows[4:]}
    sps = {m: r["seconds_per_step"] for m, r in one.items()}
    summary = {
        "vsd_over_sds_error": one["vsd"]["error"] / one["sds"]["error"],
        "ism_over_sds_error": one["ism"]["error"] / one["sds"]["error"],
        "tsm_over_ism_error": one["tsm"]["error"] / one["ism"]["error"],
        "vsd_modes_covered": modes["vsd"],
        "sds_modes_covered": modes["sds"],
        "tsm_over_ism_error_drift": one["tsm"]["drift"] / one["ism"]["drift"],
        "seconds_per_step": sps,
        "seconds_per_shape": {m: s * base["steps"] for m, s in sps.items()},
        "errors": {m: r["error"] for m, r in one.items()},
        **{f"alignment_{m}": alignment(chairs, "chair", m, size) for m in ("sds", "ism", "tsm")},
        "steps": base["steps"],
    }
    if known.part == "all":
        for part in (learned, one_step):
            more, extra = part(args.quick)
            print_table(more)
            rows += more
            summary.update(extra)
    print(summary)
    write_json(args.out, rows, summary, quick=args.quick, part=known.part, partial=False)


if __name__ == "__main__":
    main()
