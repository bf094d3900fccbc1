"""``polyfold-ddsp``: DDSP harmonic-plus-noise synthesis, resynthesis and timbre transfer.

    polyfold-ddsp prepare --instrument violin --clips 64 --out data/violin.npz   # fluid-solo
    polyfold-ddsp prepare --wavs my_recordings/ --out data/mine.npz             # your wavs
    polyfold-ddsp train --instrument violin --steps 1000 --out runs/violin
    polyfold-ddsp resynth in.wav --out out.wav                 # the shipped violin model
    polyfold-ddsp transfer voice.wav --model violin --octave 1 --out out.wav
    polyfold-ddsp evaluate --model violin --out metrics.json    # held-out fluid-solo clips
    polyfold-ddsp vocode mel.npy --out out.wav                 # the shipped speech vocoder (slt)
    polyfold-ddsp train-vocoder --corpus data/flite-slt --steps 1200 --out runs/vocoder
    polyfold-ddsp quickstart --out ddsp-quickstart

Outputs are never overwritten without ``--force``; ``train`` continues a run with ``--resume``.
Also reachable as ``polyfold ddsp``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated

import typer

from polyfold.core.cli import domain_app, run_app
from polyfold.core.errors import InputError, check_int, check_number
from polyfold.core.outputs import Force, check_output_file, write_text
from polyfold.core.progress import Progress, Quiet, Resume, prepare_training_out, resuming_line

__all__ = ["app", "main"]

app = domain_app(
    "polyfold-ddsp", "DDSP: differentiable harmonic-plus-noise synthesis and timbre transfer."
)

ModelOpt = Annotated[str, typer.Option("--model", help="A shipped model (violin) or a model file.")]


def _single_thread() -> None:
    import torch

    torch.set_num_threads(1)


def _clips(data: Path | None, instrument: str, n: int, split: str, quiet: bool):  # type: ignore[no-untyped-def]
    from polyfold.ddsp.data import Clips, fluid_solo, load_wav_folder

    if data is not None:
        return load_wav_folder(data) if data.is_dir() else Clips.load(data)
    check_int("--clips", n, 1)
    with Progress(n, f"rendering fluid-solo {instrument} ({split})", quiet=quiet) as bar:
        return fluid_solo(instrument, split, n, progress=bar.advance)


@app.command()
def prepare(
    out: Annotated[Path, typer.Option("--out", help="Clips file to write (.npz + .json).")],
    instrument: Annotated[str, typer.Option(help="fluid-solo instrument.")] = "violin",
    clips: Annotated[int, typer.Option(help="fluid-solo: clips to render.")] = 64,
    split: Annotated[str, typer.Option(help="fluid-solo: train or test seeds.")] = "train",
    wavs: Annotated[Path | None, typer.Option(help="A folder of mono wavs instead.")] = None,
    force: Force = False,
    quiet: Quiet = False,
) -> None:
    """Write clips with f0 and loudness: fluid-solo (default) or a folder of your wavs."""
    out = out if out.suffix == ".npz" else out.with_name(out.name + ".npz")
    check_output_file(out, force=force)
    check_output_file(out.with_suffix(".json"), force=force)
    c = _clips(wavs, instrument, clips, split, quiet)
    c.save(out)
    typer.echo(f"wrote {out} ({len(c)} clips of {c.audio.shape[1] / 16000:.1f} s)")


def _start_training(
    out: Path, steps: int, batch_size: int, lr: float, *, resume: bool, force: bool, quiet: bool
) -> int:
    """Check the optimisation options and prepare ``out`` (say where a resumed run stands);
    the steps already done."""
    _single_thread()
    check_int("--steps", steps, 1)
    check_int("--batch-size", batch_size, 1)
    if not (math.isfinite(lr) and lr > 0):
        raise InputError(f"--lr: expected a number > 0, got {lr}")
    done = prepare_training_out(out, resume=resume, force=force)
    if done is not None and not quiet:
        typer.echo(resuming_line(done, steps, out))
    return done or 0


@app.command()
def train(
    out: Annotated[Path, typer.Option("--out", help="Run folder (checkpoints and the model).")],
    instrument: Annotated[str, typer.Option(help="fluid-solo instrument to train on.")] = "violin",
    clips: Annotated[int, typer.Option(help="fluid-solo: training clips.")] = 64,
    data: Annotated[
        Path | None, typer.Option(help="Clips from `prepare` or a folder of wavs instead.")
    ] = None,
    steps: Annotated[int, typer.Option(help="Optimizer steps.")] = 1000,
    batch_size: Annotated[int, typer.Option(help="Clips per step.")] = 8,
    lr: Annotated[float, typer.Option(help="Peak learning rate.")] = 3e-3,
    loudness_weight: Annotated[
        float | None,
        typer.Option(help="Weight of the loudness L1 (dB) in the loss [default: 0.3]."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed.")] = 0,
    resume: Resume = False,
    force: Force = False,
    quiet: Quiet = False,
) -> None:
    """Train the autoencoder (f0 + loudness -> GRU -> harmonic + noise synth -> reverb)."""
    from polyfold.ddsp.train import LOUDNESS_WEIGHT, fit_autoencoder

    if loudness_weight is not None:
        check_number("--loudness-weight", loudness_weight)
    done = _start_training(out, steps, batch_size, lr, resume=resume, force=force, quiet=quiet)
    c = _clips(data, instrument, clips, "train", quiet)
    with Progress(steps, "training", quiet=quiet, done=done) as bar:
        path = fit_autoencoder(
            c, out, steps=steps, batch_size=batch_size, lr=lr, seed=seed, resume=resume,
            progress=bar.trainer_update,
            loudness_weight=LOUDNESS_WEIGHT if loudness_weight is None else loudness_weight,
        )  # fmt: skip
    typer.echo(f"wrote {path}.safetensors")


@app.command()
def resynth(
    audio: Annotated[Path, typer.Argument(help="A mono wav (any rate; resampled to 16 kHz).")],
    out: Annotated[Path, typer.Option("--out", help="The wav to write.")],
    model: ModelOpt = "violin",
    f0: Annotated[
        Path | None, typer.Option(help="f0 per 64 samples (.npy) instead of tracking it.")
    ] = None,
    dry: Annotated[bool, typer.Option(help="Drop the learned reverb (dereverberation).")] = False,
    seed: Annotated[int, typer.Option(help="Seed of the noise.")] = 0,
    force: Force = False,
) -> None:
    """Resynthesise a recording from its f0 and loudness."""
    from polyfold.ddsp.synthesis import render_file

    _single_thread()
    check_output_file(out, force=force)
    render_file(audio, out, model=model, f0_file=f0, reverb=not dry, seed=seed)
    typer.echo(f"wrote {out}")


@app.command()
def transfer(
    audio: Annotated[Path, typer.Argument(help="The source recording (mono wav).")],
    out: Annotated[Path, typer.Option("--out", help="The wav to write.")],
    model: ModelOpt = "violin",
    octave: Annotated[int, typer.Option(help="Octaves to shift the source's f0.")] = 0,
    loudness_db: Annotated[float, typer.Option(help="dB added to the source's loudness.")] = 0.0,
    f0: Annotated[Path | None, typer.Option(help="f0 per 64 samples (.npy).")] = None,
    dry: Annotated[bool, typer.Option(help="Drop the learned reverb.")] = False,
    seed: Annotated[int, typer.Option(help="Seed of the noise.")] = 0,
    force: Force = False,
) -> None:
    """Timbre transfer: the source's f0 and loudness played by another instrument's model."""
    from polyfold.ddsp.synthesis import render_file

    _single_thread()
    check_output_file(out, force=force)
    if not math.isfinite(loudness_db):
        raise InputError(f"--loudness-db: expected a finite number, got {loudness_db}")
    render_file(
        audio, out, model=model, f0_file=f0, octave=octave, loudness_db=loudness_db,
        reverb=not dry, seed=seed,
    )  # fmt: skip
    typer.echo(f"wrote {out}")


@app.command()
def evaluate(
    out: Annotated[Path, typer.Option("--out", help="Metrics file (.json).")],
    model: ModelOpt = "violin",
    instrument: Annotated[
        str | None,
        typer.Option(help="Held-out fluid-solo clips of this instrument [default: the model's]."),
    ] = None,
    clips: Annotated[int, typer.Option(help="Held-out clips.")] = 8,
    force: Force = False,
    quiet: Quiet = False,
) -> None:
    """Resynthesis metrics on held-out fluid-solo clips (MSS, loudness L1, re-tracked f0)."""
    from polyfold.ddsp.evaluation import evaluate_model
    from polyfold.ddsp.shipped import load_autoencoder

    _single_thread()
    check_output_file(out, force=force)
    loaded = load_autoencoder(model)
    inst = instrument or str(loaded.card.get("data", {}).get("instrument", "violin"))
    test = _clips(None, inst, clips, "test", quiet)
    metrics = evaluate_model(loaded.model, test)
    write_text(out, json.dumps(metrics, indent=2) + "\n")
    for k, v in metrics.items():
        typer.echo(f"{k}: {v:.4g}")


@app.command()
def vocode(
    source: Annotated[
        Path, typer.Argument(help="A log-mel (.npy, 80 x frames, core's log_mel) or a mono wav.")
    ],
    out: Annotated[Path, typer.Option("--out", help="The wav to write (22,050 Hz).")],
    model: Annotated[
        str, typer.Option("--model", help="A shipped vocoder (slt) or a model file.")
    ] = "slt",
    seed: Annotated[int, typer.Option(help="Seed of the noise.")] = 0,
    force: Force = False,
) -> None:
    """Mel to waveform with the DDSP vocoder (a wav is vocoded from its own mel)."""
    from polyfold.ddsp.shipped import load_vocoder
    from polyfold.ddsp.vocoder import vocode_file

    _single_thread()
    check_output_file(out, force=force)
    vocode_file(source, out, load_vocoder(model).model, seed=seed)
    typer.echo(f"wrote {out}")


@app.command("train-vocoder")
def train_vocoder(
    corpus: Annotated[
        Path, typer.Option(help="A speech corpus: metadata.jsonl + wavs/ (flite-slt) or wavs.")
    ],
    out: Annotated[Path, typer.Option("--out", help="Run folder (checkpoints and the model).")],
    utterances: Annotated[int, typer.Option(help="Training utterances (split train).")] = 300,
    steps: Annotated[int, typer.Option(help="Optimizer steps.")] = 1200,
    batch_size: Annotated[int, typer.Option(help="Chunks per step.")] = 8,
    lr: Annotated[float, typer.Option(help="Peak learning rate.")] = 3e-3,
    seed: Annotated[int, typer.Option(help="Seed.")] = 0,
    resume: Resume = False,
    force: Force = False,
    quiet: Quiet = False,
) -> None:
    """Train the DDSP vocoder (mel -> f0, voicing, harmonics, noise -> synth) on a corpus."""
    from polyfold.ddsp.vocoder_train import fit_vocoder

    check_int("--utterances", utterances, 1)
    done = _start_training(out, steps, batch_size, lr, resume=resume, force=force, quiet=quiet)
    with Progress(steps, "training the vocoder", quiet=quiet, done=done) as bar:
        path = fit_vocoder(
            corpus, out, utterances=utterances, steps=steps, batch_size=batch_size, lr=lr,
            seed=seed, resume=resume, progress=bar.trainer_update,
        )  # fmt: skip
    typer.echo(f"wrote {path}.safetensors")


@app.command()
def quickstart(
    out: Annotated[Path, typer.Option("--out", help="Report folder.")] = Path("ddsp-quickstart"),
    quiet: Quiet = False,
) -> None:
    """Resynthesis and a timbre transfer with the shipped model; writes report.html."""
    from polyfold.ddsp.quickstart import quickstart as run

    typer.echo(f"wrote {run(out, quiet=quiet)}")


def main() -> None:
    run_app(app)
