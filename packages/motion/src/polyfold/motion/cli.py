"""``polyfold-motion``: the text-motion dataset, previews and format conversion.

    polyfold-motion prepare --out runs/motion/data.npz
    polyfold-motion show humanoid3d_cartwheel walk.bvh --out runs/show
    polyfold-motion train-tokenizer --data runs/motion/data.npz --out runs/tokenizer
    polyfold-motion train-evaluator --data runs/motion/data.npz --out runs/evaluator
    polyfold-motion train --model emdm --data runs/motion/data.npz --out runs/emdm
    polyfold-motion generate "a person cartwheels then walks" --seconds 2.4 --out runs/gen
    polyfold-motion stream "a person walks" "a person jumps" --seconds 3 --out runs/stream.txt
    polyfold-motion evaluate --model runs/emdm/model
    polyfold-motion train-mmm --data runs/motion/data.npz --cdcd sample --out runs/mmm
    polyfold-motion generate "a person waves" --model mmm --out runs/gen_mmm
    polyfold-motion edit humanoid3d_walk "a person jumps" --start 8 --end 20 --out runs/edit
    polyfold-motion quickstart --out runs/motion

``show`` takes embedded clip names (see ``polyfold-motion clips``), DeepMimic ``.txt`` files,
BVH files of the humanoid and ``.npz`` feature files of this package, and writes an animated
preview (SVG and GIF) plus joints ``.npy`` and BVH for each. Outputs are never overwritten
without ``--force``. Also reachable as ``polyfold motion``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from polyfold.core.cli import domain_app, run_app
from polyfold.core.errors import InputError
from polyfold.core.outputs import Force, check_output_file, prepare_output_dir
from polyfold.core.progress import Quiet, Resume

__all__ = ["app", "main"]

app = domain_app(
    "polyfold-motion", "Text-to-motion data, previews and evaluation on a 15-joint humanoid."
)

Out = Annotated[Path, typer.Option("--out", "-o", help="Output folder.")]


@app.command()
def clips() -> None:
    """List the embedded DeepMimic clips with their action and length."""
    from polyfold.motion.captions import CLIP_ACTION
    from polyfold.motion.deepmimic import load_clips

    for c in load_clips():
        m = c.resampled()
        print(f"{c.name:28s} {CLIP_ACTION[c.name]:24s} {m.num_frames:4d} frames at 20 fps")


@app.command()
def prepare(
    out: Annotated[Path, typer.Option("--out", "-o", help="Dataset file (.npz) to write.")],
    length: Annotated[int, typer.Option(help="Frames per window (20 fps).")] = 48,
    seed: Annotated[int, typer.Option(help="Augmentation seed.")] = 0,
    force: Force = False,
    quiet: Quiet = False,
) -> None:
    """Build the augmented, captioned window dataset of the embedded clips."""
    from polyfold.motion.dataset import DatasetConfig, build_dataset

    path = check_output_file(out, force=force)
    if path.suffix != ".npz":
        raise InputError(f"--out {out}: expected a .npz file name")
    cfg = DatasetConfig(length=length, seed=seed)
    if not quiet:
        print("building windows (about 10-30 s) ...", flush=True)
    data = build_dataset(cfg)
    data.save(path)
    if not quiet:
        n_train, n_test = len(data.indices("train")), len(data.indices("test"))
        print(f"wrote {path}: {n_train} training and {n_test} held-out windows of {length} frames")


def _load_any(item: str):  # type: ignore[no-untyped-def]
    """``(name, Motion)`` from a clip name or a file."""
    from polyfold.motion.deepmimic import CLIP_NAMES, load_clips, read_deepmimic
    from polyfold.motion.features import motion_from_features
    from polyfold.motion.formats.bvh import bvh_to_motion, read_bvh

    if item in CLIP_NAMES:
        return item, load_clips((item,))[0].resampled()
    path = Path(item)
    if not path.is_file():
        raise InputError(
            f"{item}: neither an embedded clip (see `polyfold-motion clips`) nor a file"
        )
    if path.suffix.lower() == ".bvh":
        return path.stem, bvh_to_motion(read_bvh(path)).resample()
    if path.suffix.lower() == ".txt":
        return path.stem, read_deepmimic(path).resampled()
    if path.suffix.lower() == ".npy":
        import numpy as np

        from polyfold.core.errors import reading

        with reading(path, "features"):
            feats = np.load(path, allow_pickle=False)
        if feats.ndim == 3:
            raise InputError(
                f"{item}: holds joint positions {feats.shape}; expected feature rows (T, D) "
                "such as the <name>.features.npy that generate writes"
            )
        return path.stem, motion_from_features(feats)
    raise InputError(f"{item}: expected a .bvh, DeepMimic .txt or features .npy file")


@app.command()
def show(
    items: Annotated[list[str], typer.Argument(help="Clip names or motion files.")],
    out: Out,
    force: Force = False,
) -> None:
    """Write preview.svg / preview.gif and <name>.npy / <name>.bvh for each motion."""
    from polyfold.motion.export import motion_files
    from polyfold.motion.render import write_gif, write_svg

    loaded = [_load_any(i) for i in items]
    folder = prepare_output_dir(out, force=force)
    joints = [m.joints() for _, m in loaded]
    names = [n for n, _ in loaded]
    for name, m in loaded:
        motion_files(folder, name, m)
    write_svg(folder / "preview.svg", joints, names)
    write_gif(folder / "preview.gif", joints, names)
    print(f"wrote {folder}/preview.svg, preview.gif and {len(loaded)} .npy/.bvh pairs")


def _dataset(path: Path | None, quiet: bool):  # type: ignore[no-untyped-def]
    from polyfold.motion.dataset import MotionDataset, build_dataset

    if path is not None:
        return MotionDataset.load(path)
    if not quiet:
        print("building the default window set (pass --data from `prepare` to reuse one) ...")
    return build_dataset()


Data = Annotated[
    Path | None, typer.Option("--data", help="Dataset .npz from `prepare` (default: build it).")
]
Steps = Annotated[int, typer.Option(help="Optimizer steps.")]


@app.command("train-tokenizer")
def train_tokenizer_cmd(
    out: Out,
    data: Data = None,
    steps: Steps = 1500,
    width: Annotated[int, typer.Option(help="Convolution channels.")] = 64,
    codes: Annotated[int, typer.Option(help="Entries per codebook.")] = 256,
    quantizers: Annotated[int, typer.Option(help="Residual codebooks (1: VQ-VAE).")] = 4,
    root_weight: Annotated[float, typer.Option(help="Weight of the root-track features.")] = 5.0,
    joint_weight: Annotated[float, typer.Option(help="World joint position/velocity loss.")] = 0.0,
    batch_size: Annotated[int, typer.Option(help="Windows per step.")] = 32,
    seed: Annotated[int, typer.Option(help="Seed.")] = 0,
    resume: Resume = False,
    force: Force = False,
    quiet: Quiet = False,
) -> None:
    """Train a VQ-VAE / RVQ-VAE motion tokenizer; writes OUT/tokenizer.safetensors + .json."""
    import dataclasses
    import sys

    from polyfold.core.progress import prepare_training_out
    from polyfold.motion.tokenizer import TokenizerConfig
    from polyfold.motion.train_tokenizer import train_tokenizer

    cfg = TokenizerConfig(
        width=width,
        num_codes=codes,
        num_quantizers=quantizers,
        blocks=1,
        root_weight=root_weight,
        joint_weight=joint_weight,
        joint_vel_weight=joint_weight,
    )  # checked before --out is touched
    prepare_training_out(out, resume=resume, force=force)
    d = _dataset(data, quiet)
    cfg = dataclasses.replace(cfg, feature_dim=int(d.features.shape[-1]))
    _, metrics = train_tokenizer(
        d, out, cfg, steps=steps, batch_size=batch_size, seed=seed, quiet=quiet,
        command="polyfold-motion " + " ".join(sys.argv[1:]), resume=resume,
    )  # fmt: skip
    print(", ".join(f"{k}={v:.4g}" for k, v in metrics.items()))


@app.command("train-evaluator")
def train_evaluator_cmd(
    out: Out,
    data: Data = None,
    steps: Steps = 1500,
    batch_size: Annotated[int, typer.Option(help="Windows per step.")] = 64,
    seed: Annotated[int, typer.Option(help="Seed.")] = 0,
    resume: Resume = False,
    force: Force = False,
    quiet: Quiet = False,
) -> None:
    """Train the contrastive motion evaluator; writes OUT/evaluator.safetensors + .json."""
    import sys

    from polyfold.core.progress import prepare_training_out
    from polyfold.motion.evaluator import train_evaluator
    from polyfold.motion.text_encoder import encode_captions, load_text_encoder

    prepare_training_out(out, resume=resume, force=force)
    d = _dataset(data, quiet)
    text = encode_captions(load_text_encoder(), d.captions)
    train_evaluator(
        d, text, out, steps=steps, batch_size=batch_size, seed=seed, quiet=quiet,
        command="polyfold-motion " + " ".join(sys.argv[1:]), resume=resume,
    )  # fmt: skip
    print(f"wrote {out}/evaluator.safetensors")


@app.command("train")
def train_cmd(
    out: Out,
    model: Annotated[
        str,
        typer.Option("--model", help="emdm (GAN), ddpm (50-step), mmdm, mogo, t2m-gpt or bipo."),
    ],
    data: Data = None,
    steps: Steps = 2000,
    width: Annotated[int, typer.Option(help="Transformer width.")] = 96,
    layers: Annotated[int, typer.Option(help="Transformer layers.")] = 2,
    batch_size: Annotated[int, typer.Option(help="Windows per step.")] = 32,
    p_uncond: Annotated[float, typer.Option(help="EMDM/DDPM: caption drop rate (CFG).")] = 0.0,
    guidance: Annotated[float, typer.Option(help="EMDM/DDPM: default CFG scale (card).")] = 1.0,
    geo_weight: Annotated[float, typer.Option(help="EMDM: world joint geometric loss.")] = 0.0,
    foot_weight: Annotated[float, typer.Option(help="EMDM: foot contact loss.")] = 0.0,
    gan_loss: Annotated[
        str, typer.Option(help="EMDM: ns-r1 (DDGAN/EMDM: non-saturating + R1) or wgan-gp.")
    ] = "ns-r1",
    adv_weight: Annotated[float, typer.Option(help="EMDM: adversarial loss weight.")] = 0.02,
    r1_gamma: Annotated[float, typer.Option(help="EMDM: R1 weight gamma (ns-r1).")] = 0.02,
    seed: Annotated[int, typer.Option(help="Seed.")] = 0,
    resume: Resume = False,
    force: Force = False,
    quiet: Quiet = False,
) -> None:
    """Train EMDM or its DDPM baseline; writes OUT/model.safetensors + .json."""
    import sys

    from polyfold.core.progress import prepare_training_out
    from polyfold.motion.emdm import MODEL_KINDS, TrainSettings, train_motion_model
    from polyfold.motion.mogo_generate import TOKEN_KINDS
    from polyfold.motion.text_encoder import encode_captions, load_text_encoder

    kinds = (*MODEL_KINDS, "mmdm", *TOKEN_KINDS, "bipo")
    if model not in kinds:
        raise InputError(f"--model: expected one of {', '.join(kinds)}, got {model!r}")
    if model == "bipo":  # a run killed in its first stage has only the part tokenizer's run
        from polyfold.motion.bipo_train import current_stage

        stage = current_stage(out)
    else:
        stage = out
    if model in MODEL_KINDS:  # settings checked before --out is touched
        cfg: dict[str, Any] = {"p_uncond": p_uncond, "guidance": guidance}
        if model == "emdm":
            cfg.update(geo_weight=geo_weight, foot_weight=foot_weight, gan_loss=gan_loss,
                       adv_weight=adv_weight, r1_gamma=r1_gamma)  # fmt: skip
        settings = TrainSettings(steps=steps, batch_size=batch_size, seed=seed, **cfg)
    prepare_training_out(stage, resume=resume, force=force)
    d = _dataset(data, quiet)
    text = encode_captions(load_text_encoder(), d.captions)
    if model in TOKEN_KINDS:
        from polyfold.motion.mogo_train import TokenTrainSettings, train_token_model

        train_token_model(
            model, d, text, out, TokenTrainSettings(steps=steps, width=width, base_layers=layers,
                                                    batch_size=batch_size, seed=seed),
            quiet=quiet, resume=resume, command="polyfold-motion " + " ".join(sys.argv[1:]),
        )  # fmt: skip
        print(f"wrote {out}/model.safetensors")
        return
    if model == "bipo":
        from polyfold.motion.bipo_train import BiPOSettings, train_bipo

        train_bipo(d, text, out, BiPOSettings(tokenizer_steps=steps, steps=steps, width=width,
                                              layers=layers, batch_size=batch_size, seed=seed),
                   quiet=quiet, resume=resume,
                   command="polyfold-motion " + " ".join(sys.argv[1:]))  # fmt: skip
        print(f"wrote {out}/model.safetensors and {out}/part_tokenizer.safetensors")
        return
    if model == "mmdm":
        from polyfold.motion.mmdm import train_mmdm

        train_mmdm(d, text, out, steps=steps, batch_size=batch_size, width=width, layers=layers,
                   seed=seed, quiet=quiet, resume=resume,
                   command="polyfold-motion " + " ".join(sys.argv[1:]))  # fmt: skip
        print(f"wrote {out}/model.safetensors")
        return
    train_motion_model(
        model, d, text, out, settings, width=width, layers=layers, quiet=quiet,
        command="polyfold-motion " + " ".join(sys.argv[1:]), resume=resume,
    )  # fmt: skip
    print(f"wrote {out}/model.safetensors")


@app.command("train-mmm")
def train_mmm_cmd(
    out: Out,
    data: Data = None,
    steps: Steps = 1000,
    width: Annotated[int, typer.Option(help="Transformer width.")] = 96,
    layers: Annotated[int, typer.Option(help="Transformer layers.")] = 2,
    batch_size: Annotated[int, typer.Option(help="Windows per step.")] = 32,
    cdcd: Annotated[str, typer.Option(help="CDCD term: none, step or sample.")] = "none",
    cdcd_weight: Annotated[float, typer.Option(help="Weight of the CDCD term.")] = 0.1,
    seed: Annotated[int, typer.Option(help="Seed.")] = 0,
    resume: Resume = False,
    force: Force = False,
    quiet: Quiet = False,
) -> None:
    """Train MMM (masked motion transformer over the shipped tokenizer's first codebook)."""
    import sys

    from polyfold.core.progress import prepare_training_out
    from polyfold.motion.mmm import MMMSettings, train_mmm

    if cdcd not in ("none", "step", "sample"):
        raise InputError(f"--cdcd: expected none, step or sample, got {cdcd!r}")
    prepare_training_out(out, resume=resume, force=force)
    mode = None if cdcd == "none" else cdcd
    settings = MMMSettings(steps=steps, batch_size=batch_size, seed=seed, cdcd=mode,
                           cdcd_weight=cdcd_weight)  # fmt: skip
    train_mmm(_dataset(data, quiet), out, settings, width=width, layers=layers, quiet=quiet,
              command="polyfold-motion " + " ".join(sys.argv[1:]), resume=resume)  # fmt: skip
    print(f"wrote {out}/model.safetensors")


SampleSteps = Annotated[int | None, typer.Option(help="Sampling steps [default: the model's].")]
ModelOpt = Annotated[
    str,
    typer.Option(
        "--model",
        help="A model file from `train`/`train-mmm`, or shipped: emdm, ddpm, mmdm, mogo, "
        "t2m-gpt, mmm, mmm_plain or bipo.",
    ),
]


@app.command()
def generate(
    captions: Annotated[list[str], typer.Argument(help="One or more captions.")],
    out: Out,
    seconds: Annotated[float, typer.Option(help="Length in seconds (20 fps).")] = 2.4,
    model: ModelOpt = "emdm",
    steps: SampleSteps = None,
    seed: Annotated[int, typer.Option(help="Seed.")] = 0,
    auto_length: Annotated[
        bool,
        typer.Option(
            "--auto-length", help="The model ends each motion itself (bipo); --seconds unused."
        ),
    ] = False,
    force: Force = False,
) -> None:
    """Generate motion from text: OUT/<i>_<caption>.npy (joints), .bvh and .features.npy (the
    raw features, which `edit` takes), preview.svg/.gif."""
    import time

    from polyfold.motion.generate import (
        frames_for,
        generate_free_length,
        generate_motion,
        resolve_model,
        write_features,
        write_motions,
    )

    frames_for(seconds)  # check before loading anything
    if auto_length and steps is not None:
        raise InputError("--steps: a BiPO model with --auto-length takes no step count")
    m = resolve_model(model)
    t0 = time.perf_counter()
    if auto_length:
        feats: Any = generate_free_length(captions, model=m, seed=seed)
    else:
        feats = generate_motion(captions, seconds, model=m, steps=steps, seed=seed)
    dt = time.perf_counter() - t0
    folder = prepare_output_dir(out, force=force)
    write_motions(folder, captions, feats)
    write_features(folder, captions, feats)
    frames = "/".join(str(len(f)) for f in feats) if auto_length else str(feats.shape[1])
    print(f"wrote {len(captions)} motions ({frames} frames, {m.kind}, {dt:.2f} s) "
          f"and preview.svg/.gif to {folder}")  # fmt: skip


@app.command()
def stream(
    captions: Annotated[list[str], typer.Argument(help="One or more captions, chained.")],
    seconds: Annotated[float, typer.Option(help="Seconds per caption (20 fps).")] = 4.8,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Text file (default: stdout).")
    ] = None,
    model: Annotated[str, typer.Option("--model", help="mogo, t2m-gpt or a model file.")] = "mogo",
    seed: Annotated[int, typer.Option(help="Seed.")] = 0,
    force: Force = False,
) -> None:
    """Stream one motion as it is generated: a line per frame (index, then x y z of each
    joint in metres) to OUT or stdout while sampling runs; progress on stderr."""
    import sys

    from polyfold.motion.generate import frames_for, resolve_model
    from polyfold.motion.mogo_generate import TokenMotionModel, stream_joints

    frames_for(seconds)
    m = resolve_model(model)
    if not isinstance(m, TokenMotionModel):
        raise InputError(f"--model {model}: streaming needs a mogo or t2m-gpt model")
    path = None if out is None else check_output_file(out, force=force)
    sink = sys.stdout if path is None else path.open("w", encoding="utf-8")
    try:
        sink.write("# frame, then x y z of each of 15 joints (metres, y up, 20 fps)\n")
        done = 0
        for chunk in stream_joints(m, captions, frames_for(seconds), seed):
            for row in chunk.reshape(len(chunk), -1):
                sink.write(f"{done} " + " ".join(f"{v:.4f}" for v in row) + "\n")
                done += 1
            sink.flush()
            print(f"{done} frames", file=sys.stderr, flush=True)
    finally:
        if path is not None:
            sink.close()
    print(f"streamed {done} frames{'' if path is None else f' to {path}'}", file=sys.stderr)


@app.command()
def evaluate(
    model: ModelOpt = "emdm",
    steps: SampleSteps = None,
    seed: Annotated[int, typer.Option(help="Seed.")] = 0,
) -> None:
    """Score a model on the held-out captions with the shipped evaluator (FID over the
    real-vs-real floor, R-precision, accuracy, physical ratios)."""
    from polyfold.motion.evaluation import HeldOut, score
    from polyfold.motion.generate import resolve_model
    from polyfold.motion.mmm import MMM

    m = resolve_model(model)
    held = HeldOut.build()
    length = held.data.features.shape[1]
    if isinstance(m, MMM):  # MMM also encodes the captions' words
        feats = m.sample(held.text, length, steps=steps, seed=seed, captions=held.captions)
    else:
        feats = m.sample(held.text, length, steps=steps, seed=seed)
    for k, v in score(held, feats).items():
        print(f"{k:28s} " + (f"{v[0]:.4g} [{v[1]:.4g}, {v[2]:.4g}]" if isinstance(v, tuple)
                             else f"{v:.4g}"))  # fmt: skip


EDIT_MODES = ("inbetween", "body-part", "continue")


@app.command()
def edit(
    motion: Annotated[
        str, typer.Argument(help="Clip name, .bvh, DeepMimic .txt or features .npy.")
    ],
    caption: Annotated[str, typer.Argument(help="Caption the edited part follows.")],
    out: Out,
    mode: Annotated[str, typer.Option(help="inbetween, body-part or continue.")] = "inbetween",
    start: Annotated[int | None, typer.Option(help="inbetween: first frame to regenerate.")] = None,
    end: Annotated[int | None, typer.Option(help="inbetween: frame after the last one.")] = None,
    parts: Annotated[
        str, typer.Option(help="body-part: comma-separated parts/joints (bipo: its five parts).")
    ] = "upper",
    seconds: Annotated[float, typer.Option(help="continue: seconds to add.")] = 1.2,
    model: Annotated[
        str, typer.Option("--model", help="mmm, bipo (body-part only) or a model file.")
    ] = "mmm",
    candidates: Annotated[int, typer.Option(help="inbetween/continue: draws to pick from.")] = 8,
    steps: SampleSteps = None,
    seed: Annotated[int, typer.Option(help="Seed.")] = 0,
    force: Force = False,
) -> None:
    """Edit a motion with MMM: regenerate a frame range (in-betweening; a range at either end
    completes a prefix or suffix), move body parts to a new caption, or continue it. With
    BiPO, regenerate body parts (torso, left_arm, ...) over --start/--end (default: all).
    Writes OUT/00_<caption>.npy/.bvh, preview.svg/.gif and features.npy (editable again)."""
    import numpy as np

    from polyfold.motion.bipo_generate import BiPOModel
    from polyfold.motion.edit import body_part_edit, continue_motion, edit_range
    from polyfold.motion.features import motion_features
    from polyfold.motion.generate import frames_for, resolve_model, write_motions
    from polyfold.motion.mmm import MMM
    from polyfold.motion.text_encoder import encode_captions, load_text_encoder

    if mode not in EDIT_MODES:
        raise InputError(f"--mode: expected one of {', '.join(EDIT_MODES)}, got {mode!r}")
    _, loaded = _load_any(motion)
    feats = motion_features(loaded).astype(np.float32)
    if mode == "inbetween" and (start is None or end is None):
        raise InputError("--start/--end: inbetween needs the frame range to regenerate")
    m = resolve_model(model)
    names = [p.strip() for p in parts.split(",") if p.strip()]
    if isinstance(m, BiPOModel):
        if mode != "body-part":
            raise InputError(f"--mode {mode}: a BiPO model edits body parts only (body-part)")
        text = encode_captions(load_text_encoder(), [caption])
        lo, hi = 0 if start is None else start, len(feats) if end is None else end
        result = m.edit_span(feats, text, names, lo, hi, seed=seed)
    elif not isinstance(m, MMM):
        raise InputError(f"--model {model}: editing needs an MMM or BiPO model (got {m.kind})")
    elif mode == "inbetween":
        result = edit_range(m, feats, caption, int(start), int(end), steps=steps, seed=seed,  # type: ignore[arg-type]
                            candidates=candidates)  # fmt: skip
    elif mode == "body-part":
        result = body_part_edit(m, feats, caption, names, steps=steps, seed=seed)
    else:
        result = continue_motion(m, feats, caption, frames_for(seconds), steps=steps, seed=seed,
                                 candidates=candidates)  # fmt: skip
    folder = prepare_output_dir(out, force=force)
    write_motions(folder, [caption], result[None])
    np.save(folder / "features.npy", result)
    print(f"wrote the edited motion ({len(result)} frames, {mode}) to {folder}")


@app.command()
def quickstart(
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")] = Path(
        "polyfold-quickstart/motion"
    ),
    quiet: Quiet = False,
) -> None:
    """Run the quickstart on the embedded clips and write an HTML report."""
    from polyfold.motion.quickstart import quickstart as run

    print(run(out, quiet=quiet))


def main() -> None:
    run_app(app, prog_name="polyfold-motion")
