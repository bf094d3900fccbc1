"""``polyfold-eeg``: ArtifactGen's label-aware EEG artifact synthesis (WGAN-GP and diffusion).

    polyfold-eeg prepare --out data/simtuar.npz                 # the simulated default set
    polyfold-eeg prepare --tuar /data/tuar --out data/tuar.npz   # a TUAR folder (EDF+ + CSV)
    polyfold-eeg train --model ddpm --steps 2000 --out runs/ddpm
    polyfold-eeg generate --class eyem -n 64 --out synthetic/     # the shipped model
    polyfold-eeg evaluate synthetic/synthetic.npz --out metrics.json
    polyfold-eeg quickstart --out eeg-quickstart

Training uses the training subjects of a subject-wise split and records the held-out subjects in
the model card; ``evaluate`` compares against those held-out subjects. Outputs are never
overwritten without ``--force``; ``train`` checkpoints its run and continues it with
``--resume``. Also reachable as ``polyfold eeg``.
"""

from __future__ import annotations

import io
import json
import math
import shlex
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer

from polyfold.core.cli import domain_app, run_app
from polyfold.core.errors import InputError, check_int, check_number
from polyfold.core.outputs import (
    Force,
    check_output_file,
    prepare_output_dir,
    write_bytes,
    write_text,
)
from polyfold.core.progress import (
    RUN_FOLDER,
    Progress,
    Quiet,
    Resume,
    check_steps_left,
    prepare_training_out,
    resuming_line,
    saved_model_config,
)

__all__ = ["app", "main"]

app = domain_app(
    "polyfold-eeg", "ArtifactGen: label-aware EEG artifact synthesis with WGAN-GP and diffusion."
)

DataOpt = Annotated[
    Path | None,
    typer.Option(
        "--data", help="Windows written by `prepare` (.npz) [default: the simtuar default set]."
    ),
]
TestFraction = Annotated[
    float, typer.Option(help="Share of subjects held out (subject-wise split, seeded).")
]
SplitSeed = Annotated[int, typer.Option(help="Seed of the subject-wise split.")]


def _single_thread() -> None:
    import torch

    torch.set_num_threads(1)


def _positive(value: int, option: str) -> int:
    try:
        return check_int(option, value, 1)
    except InputError:
        raise InputError(f"{option}: expected an integer >= 1, got {value}") from None


def _load_windows(
    data: Path | None, *, seconds: float = 2.0, per_class: int = 20, quiet: bool = True
) -> tuple[Any, str]:
    """The windows of ``--data`` (or the simtuar set with ``seconds`` windows and ``per_class``
    windows per class and subject) and their data card id."""
    from polyfold.eeg.data import Windows

    if data is not None:
        w = Windows.load(data)
        return w, str(w.card.get("id", f"file:{Path(data).name}"))
    from polyfold.eeg.simtuar import simulate

    if not (math.isfinite(seconds) and 0.2 <= seconds <= 60):
        raise InputError(f"--seconds: expected a number in [0.2, 60], got {seconds}")
    with Progress(12, "simulating simtuar", quiet=quiet) as bar:
        w = simulate(seconds=seconds, windows_per_class=per_class, progress=bar)
    return w, str(w.card.get("id", "simtuar"))


def _split(w: Any, test_fraction: float, seed: int) -> tuple[Any, Any]:
    from polyfold.eeg.data import subject_split

    if not 0.0 < test_fraction < 1.0:
        raise InputError(f"--test-fraction: expected a number in (0, 1), got {test_fraction}")
    return subject_split(w, test_fraction=test_fraction, seed=seed)


@app.command()
def prepare(
    out: Annotated[Path, typer.Option("--out", help="Windows file to write (.npz + .json).")],
    tuar: Annotated[
        Path | None, typer.Option(help="A TUAR folder (EDF+ with CSV annotations).")
    ] = None,
    subjects: Annotated[int, typer.Option(help="simtuar: subjects.")] = 12,
    per_class: Annotated[int, typer.Option(help="simtuar: windows per class and subject.")] = 20,
    seconds: Annotated[float, typer.Option(help="Window length in seconds.")] = 2.0,
    seed: Annotated[int, typer.Option(help="simtuar: seed.")] = 0,
    force: Force = False,
    quiet: Quiet = False,
) -> None:
    """Write labelled windows: the simulated simtuar set (default) or a TUAR folder's."""
    out = out if out.suffix == ".npz" else out.with_name(out.name + ".npz")
    check_output_file(out, force=force)
    check_output_file(out.with_suffix(".json"), force=force)
    if not (math.isfinite(seconds) and seconds > 0):
        raise InputError(f"--seconds: expected a number > 0, got {seconds}")
    if tuar is not None:
        from polyfold.eeg.tuar import load_tuar

        w = load_tuar(tuar, seconds=seconds)
    else:
        from polyfold.eeg.simtuar import simulate

        _positive(subjects, "--subjects")
        _positive(per_class, "--per-class")
        with Progress(subjects, "simulating simtuar", quiet=quiet) as bar:
            w = simulate(
                n_subjects=subjects,
                windows_per_class=per_class,
                seconds=seconds,
                seed=seed,
                progress=bar,
            )
    path = w.save(out)
    counts = ", ".join(f"{k} {v}" for k, v in w.counts().items())
    typer.echo(f"wrote {path} ({len(w)} windows, {len(np.unique(w.subject))} subjects: {counts})")


@app.command()
def train(
    model: Annotated[str, typer.Option("--model", help="wgan or ddpm.")],
    out: Annotated[Path, typer.Option("--out", help="Run folder (checkpoints and the model).")],
    data: DataOpt = None,
    steps: Annotated[int | None, typer.Option(help="Training steps [default: 2000].")] = None,
    preset: Annotated[
        str, typer.Option(help="ddpm: 'config' (cosine, v-prediction) or 'paper' (linear, eps).")
    ] = "config",
    lr: Annotated[
        float | None,
        typer.Option(help="Learning rate [default: wgan 1e-4 (Adam 0, 0.9), ddpm 2e-4 (AdamW)]."),
    ] = None,
    guidance: Annotated[
        float | None,
        typer.Option(help="ddpm: the model's default CFG scale at generation [preset's: 3.5]."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed.")] = 0,
    seconds: Annotated[
        float, typer.Option(help="Window length of the simtuar default set (without --data).")
    ] = 2.0,
    per_class: Annotated[
        int,
        typer.Option(
            help="simtuar (without --data): training windows per class and subject; evaluation "
            "still uses the default set's 20 of the held-out subjects."
        ),
    ] = 20,
    batch_size: Annotated[
        int | None, typer.Option(help="Windows per training step [default: 32].")
    ] = None,
    base: Annotated[
        int | None, typer.Option(help="ddpm: channels of the U-Net's first level [default: 16].")
    ] = None,
    test_fraction: TestFraction = 0.25,
    split_seed: SplitSeed = 0,
    checkpoint_every: Annotated[
        int | None, typer.Option(help="Checkpoint every N steps [default: steps / 10].")
    ] = None,
    resume: Resume = False,
    force: Force = False,
    quiet: Quiet = False,
) -> None:
    """Train a class-conditional WGAN-GP or diffusion model on the training subjects; writes
    OUT/model.safetensors + OUT/model.json (the held-out subjects are in the card)."""
    _single_thread()
    from polyfold.eeg.train import MODEL_KINDS, fit_model, model_config

    if model not in MODEL_KINDS:
        raise InputError(f"--model: expected one of {', '.join(MODEL_KINDS)}, got {model!r}")
    _positive(per_class, "--per-class")
    if data is not None and per_class != 20:
        raise InputError("--per-class: only for the simtuar default set (without --data)")
    for value, option in (
        (steps, "--steps"),
        (checkpoint_every, "--checkpoint-every"),
        (batch_size, "--batch-size"),
        (base, "--base"),
    ):
        if value is not None:
            _positive(value, option)
    if lr is not None and not (math.isfinite(lr) and lr > 0):
        raise InputError(f"--lr: expected a number > 0, got {lr}")
    if guidance is not None and (
        model != "ddpm" or not (math.isfinite(guidance) and guidance >= 0)
    ):
        raise InputError(f"--guidance: expected a number >= 0 for --model ddpm, got {guidance}")
    if base is not None and model != "ddpm":
        raise InputError(f"--base: only for --model ddpm, got --model {model}")
    if base is not None and base % 8:
        raise InputError(f"--base: expected a multiple of 8 (8 norm groups), got {base}")
    if model == "ddpm":
        from polyfold.eeg.diffusion import PRESETS

        if preset not in PRESETS:
            raise InputError(f"--preset: expected one of {', '.join(PRESETS)}, got {preset!r}")
    if data is not None and not data.with_suffix(".npz").is_file():
        raise InputError(f"--data {data}: no such windows file (write one with `prepare`)")
    resumed = prepare_training_out(out, resume=resume, force=force)
    w, card_id = _load_windows(data, seconds=seconds, per_class=per_class, quiet=quiet)
    tr, te = _split(w, test_fraction, split_seed)
    if resumed is not None:
        cfg = model_config(model, tr, steps=1, seed=seed, preset=preset)
        saved = saved_model_config(out / RUN_FOLDER)
        cfg = type(cfg)(**{**saved, "steps": saved["steps"] if steps is None else steps})
        check_steps_left(out, resumed, cfg.steps)
        typer.echo(resuming_line(resumed, cfg.steps, out / "run"), err=True)
    else:
        cfg = model_config(model, tr, steps=steps or 2000, seed=seed, preset=preset)
        if lr is not None:
            cfg.lr = lr
        if guidance is not None:
            cfg.guidance = guidance
        if batch_size is not None:
            cfg.batch_size = batch_size
        if base is not None:
            cfg.base = base
    label = "loss" if model == "ddpm" else "W-estimate"
    command = ["polyfold-eeg", "train", "--model", model, "--steps", str(cfg.steps)]
    settings: tuple[tuple[str, Any, Any], ...] = (
        ("--data", data, None),
        ("--preset", preset if model == "ddpm" else "config", "config"),
        ("--lr", lr, None),
        ("--guidance", guidance, None),
        ("--seed", seed, 0),
        ("--seconds", seconds if data is None else 2.0, 2.0),
        ("--per-class", per_class, 20),
        ("--batch-size", batch_size, None),
        ("--base", base, None),
        ("--test-fraction", test_fraction, 0.25),
        ("--split-seed", split_seed, 0),
        ("--checkpoint-every", checkpoint_every, None),
    )
    for option, value, default in settings:
        if value != default:
            command += [option, f"{value:g}" if isinstance(value, float) else str(value)]
    command += ["--out", str(out)]
    with Progress(cfg.steps, f"train {model}", quiet=quiet, done=resumed or 0) as bar:
        path = fit_model(
            model,
            tr,
            out,
            config=cfg,
            resume=resumed is not None,
            checkpoint_every=checkpoint_every,
            progress=lambda step, value: bar.update(
                step, **({label: value} if math.isfinite(value) else {})
            ),
            test_subjects=[int(s) for s in np.unique(te.subject)],
            data_card=card_id,
            command=shlex.join(command),
            data_source={
                "data": None if data is None else str(data),
                "seconds": w.n_times / w.sfreq,
                "train_windows_per_class": per_class if data is None else None,
                "test_fraction": test_fraction,
                "split_seed": split_seed,
            },
        )
    typer.echo(f"trained {model} for {cfg.steps} steps; wrote {path}.safetensors and .json")


def _classes(asked: list[str] | None, known: tuple[str, ...]) -> list[str]:
    from polyfold.eeg.data import class_index

    if not asked:
        return list(known)
    names = [c.strip() for a in asked for c in a.split(",") if c.strip()]
    for c in names:
        class_index(c, known, what="--class")
    return list(dict.fromkeys(names))


def _sample_options(
    sampler: str | None, steps: int | None, guidance: float | None
) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if sampler is not None:
        from polyfold.core.samplers import get_sampler

        try:
            get_sampler(sampler, kind="gaussian")
        except InputError as err:
            raise InputError(f"--sampler: {str(err).split(': ', 1)[1]}") from None
        options["sampler"] = sampler
    if steps is not None:
        options["steps"] = _positive(steps, "--steps")
    if guidance is not None:
        options["guidance"] = check_number("--guidance", guidance)
    return options


ModelOpt = Annotated[
    str,
    typer.Option(
        "--model", help="A model file written by `train`, or a shipped model: ddpm or wgan."
    ),
]


@app.command()
def generate(
    out: Annotated[Path, typer.Option("--out", help="Output folder.")],
    classes: Annotated[
        list[str] | None,
        typer.Option("--class", help="Artifact class (repeat, or comma-separated) [default: all]."),
    ] = None,
    n: Annotated[int, typer.Option("-n", help="Windows per class.")] = 64,
    model: ModelOpt = "ddpm",
    seed: Annotated[int, typer.Option(help="Seed.")] = 0,
    sampler: Annotated[
        str | None, typer.Option(help="ddpm: a core sampler name [default: the preset's ddim].")
    ] = None,
    steps: Annotated[int | None, typer.Option(help="ddpm: sampler steps [default: 50].")] = None,
    guidance: Annotated[
        float | None,
        typer.Option(help="ddpm: classifier-free guidance [default: the model's, shipped: 2]."),
    ] = None,
    force: Force = False,
    quiet: Quiet = False,
) -> None:
    """Generate labelled artifact windows in microvolts: OUT/<class>.npy (n, channels, samples),
    OUT/synthetic.npz (+ .json card, for `evaluate`) and OUT/synthetic.edf (EDF+, one annotated
    window after another)."""
    _single_thread()
    from polyfold.eeg.generate import load_synthesizer, synthesize, write_edf

    _positive(n, "-n")
    options = _sample_options(sampler, steps, guidance)
    synth = load_synthesizer(model)
    if synth.kind != "ddpm" and options:
        raise InputError(
            f"--{'/--'.join(options)}: the {synth.kind} model takes no sampler options"
        )
    names = _classes(classes, synth.classes)
    prepare_output_dir(out, force=force)
    with Progress(n * len(names), f"generate ({synth.kind})", quiet=quiet) as bar:
        w = synthesize(synth, names, n, seed=seed, callback=bar.advance, **options)
    for c in names:
        buf = io.BytesIO()
        np.save(buf, w.of_class(c).x)
        write_bytes(out / f"{c}.npy", buf.getvalue())
    w.save(out / "synthetic.npz")
    write_edf(out / "synthetic.edf", w)
    typer.echo(
        f"wrote {len(w)} windows ({n} per class: {', '.join(names)}) to {out}: "
        "<class>.npy, synthetic.npz/.json, synthetic.edf"
    )


@app.command()
def evaluate(
    fake: Annotated[
        Path | None, typer.Argument(help="synthetic.npz written by `generate`.")
    ] = None,
    model: Annotated[
        str | None,
        typer.Option("--model", help="Generate with this model instead (a file, ddpm or wgan)."),
    ] = None,
    n: Annotated[int, typer.Option("-n", help="With --model: windows per class.")] = 64,
    data: DataOpt = None,
    seconds: Annotated[
        float, typer.Option(help="Window length of the simtuar set (without --data or a model).")
    ] = 2.0,
    test_fraction: TestFraction = 0.25,
    split_seed: SplitSeed = 0,
    seed: Annotated[int, typer.Option(help="Seed of the metrics (and of --model's samples).")] = 0,
    out: Annotated[Path | None, typer.Option("--out", help="Write the metrics as JSON.")] = None,
    force: Force = False,
    quiet: Quiet = False,
) -> None:
    """Compare synthetic windows with the held-out subjects of the real set (per class and
    overall: band-power errors, PSD, MMD, covariance, autocorrelation, C2ST, class recovery,
    TSTR, diversity). Without --data, the real set and split are the model's own (from its
    card; for FAKE, the model that generated it)."""
    _single_thread()
    from polyfold.eeg.data import Windows
    from polyfold.eeg.evaluation import evaluate as run_evaluation

    if (fake is None) == (model is None):
        raise InputError("FAKE / --model: give exactly one of a synthetic.npz or --model")
    _positive(n, "-n")
    if out is not None:
        check_output_file(out, force=force)
    if data is not None and not data.with_suffix(".npz").is_file():
        raise InputError(f"--data {data}: no such windows file (write one with `prepare`)")
    from polyfold.eeg.generate import load_synthesizer, synthesize
    from polyfold.eeg.quickstart import heldout_windows

    synth = None
    if fake is not None:
        synthetic = Windows.load(fake)
        source = synthetic.card.get("model")
        if data is None and isinstance(source, str) and Path(source + ".json").is_file():
            synth = load_synthesizer(source)
    else:
        synth = load_synthesizer(model)
    if data is None and synth is not None:
        # the real windows the model was trained and held out on, rebuilt from its card
        train_real, test_real = heldout_windows(synth.card)
    else:
        w, _ = _load_windows(data, seconds=seconds, quiet=quiet)
        train_real, test_real = _split(w, test_fraction, split_seed)
    if fake is None:
        assert synth is not None
        held = synth.card.get("test_subjects") or []
        if held and sorted(held) != sorted(int(s) for s in np.unique(test_real.subject)):
            raise InputError(
                f"--model {model}: trained with subjects {sorted(held)} held out, not the "
                "held-out subjects of this split; pass the --data/--test-fraction/--split-seed "
                "it was trained with"
            )
        with Progress(n * len(synth.classes), "generate", quiet=quiet) as bar:
            synthetic = synthesize(synth, synth.classes, n, seed=seed, callback=bar.advance)
    if synthetic.channels != test_real.channels or synthetic.n_times != test_real.n_times:
        raise InputError(
            f"FAKE: windows of {synthetic.n_times} samples on {synthetic.channels}, but the real "
            f"set has {test_real.n_times} samples on {test_real.channels}"
        )
    result = run_evaluation(test_real, synthetic, train_real=train_real, seed=seed)
    overall = result.get("overall", result)
    for key, value in overall.items():
        if isinstance(value, int | float):
            typer.echo(f"{key:32s} {value:.4g}")
    if out is not None:
        write_text(out, json.dumps(result, indent=2, default=float) + "\n")
        typer.echo(f"wrote {out}")


@app.command()
def quickstart(
    out: Annotated[Path, typer.Option("--out", help="Output folder.")] = Path("eeg-quickstart"),
    quiet: Quiet = False,
) -> None:
    """Generate every class with both shipped models, evaluate them against held-out simtuar
    subjects and write a report with traces, spectra and the metric table."""
    from polyfold.eeg.quickstart import quickstart as run

    path = run(out, quiet=quiet)
    typer.echo(f"wrote {path}")


def main() -> None:
    """Console entry point."""
    run_app(app)
