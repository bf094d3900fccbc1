"""``polyfold-speech``: ProDiff (2-step) and CoMoSpeech (1-step) text-to-speech.

    polyfold-speech prepare --out data/flite-slt             # flite speaks 1,200 Shakespeare lines
    polyfold-speech train --model teacher --path vp --data data/flite-slt --out runs/teacher-vp
    polyfold-speech train --model prodiff --teacher runs/teacher-vp/model --data ... --out pd
    polyfold-speech train --model teacher --path edm --data data/flite-slt --out runs/teacher-edm
    polyfold-speech train --model comospeech --teacher runs/teacher-edm/model --data ... --out cm
    polyfold-speech tts "Now is the winter of our discontent." --model comospeech --out out.wav
    polyfold-speech quickstart --out speech-quickstart

``--model`` of ``tts`` is a shipped model (``prodiff``, ``comospeech``) or a model file. The
vocoder is HiFi-GAN V1 (the ``hifigan`` extra) or ``griffin-lim``. Outputs are never
overwritten without ``--force``. Also reachable as ``polyfold speech``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import typer

from polyfold.core.cli import domain_app, run_app
from polyfold.core.errors import InputError, check_int
from polyfold.core.outputs import Force, check_output_file, prepare_output_dir
from polyfold.core.progress import Progress, Quiet, prepare_training_out

__all__ = ["app", "main"]

app = domain_app(
    "polyfold-speech", "ProDiff and CoMoSpeech text-to-speech on polyfold's diffusion core."
)

MODELS = ("teacher", "prodiff", "comospeech")


@app.command()
def prepare(
    out: Annotated[Path, typer.Option("--out", help="Corpus folder to write.")] = Path("flite-slt"),
    utterances: Annotated[int, typer.Option(help="Lines to speak (per voice).")] = 1200,
    test: Annotated[int, typer.Option(help="Lines held out for testing.")] = 100,
    voices: Annotated[
        str, typer.Option(help="flite voices, comma-separated (slt,rms,awb,kal16).")
    ] = "slt",
    seed: Annotated[int, typer.Option(help="Seed of the line sample.")] = 0,
    workers: Annotated[int, typer.Option(help="flite processes at a time.")] = 2,
    force: Force = False,
    quiet: Quiet = False,
) -> None:
    """Build the flite-slt corpus: Shakespeare lines spoken by flite, with its phone durations."""
    from polyfold.speech.flite import flite_binary, prepare_flite_corpus

    flite_binary()  # a clear error before any work when flite is missing
    check_int("--utterances", utterances, 2)
    check_int("--test", test, 1)
    names = tuple(v.strip() for v in voices.split(",") if v.strip())
    prepare_output_dir(out, force=force)
    with Progress(utterances * len(names), "speaking with flite", quiet=quiet) as bar:
        utts = prepare_flite_corpus(
            out,
            n_utterances=utterances,
            n_test=test,
            voices=names,
            seed=seed,
            workers=workers,
            on_done=bar.update,
        )
    typer.echo(f"wrote {out} ({len(utts)} utterances, {test * len(names)} held out)")


def _settings(steps: int, batch_size: int, lr: float, seed: int, quiet: bool):  # type: ignore[no-untyped-def]
    from polyfold.speech.training import TrainSettings

    check_int("--steps", steps)
    check_int("--batch-size", batch_size)
    if not (math.isfinite(lr) and lr > 0):
        raise InputError(f"--lr: expected a number > 0, got {lr}")
    return TrainSettings(steps=steps, batch_size=batch_size, lr=lr, seed=seed, quiet=quiet)


@app.command()
def train(
    model: Annotated[str, typer.Option("--model", help="teacher, prodiff or comospeech.")],
    data: Annotated[Path, typer.Option("--data", help="A prepared corpus or an LJSpeech folder.")],
    out: Annotated[Path, typer.Option("--out", help="Run folder (checkpoints and OUT/model).")],
    teacher: Annotated[
        Path | None, typer.Option(help="prodiff / comospeech: the teacher's model file.")
    ] = None,
    path: Annotated[
        str, typer.Option(help="teacher: 'vp' (ProDiff's) or 'edm' (CoMoSpeech's).")
    ] = "vp",
    preset: Annotated[
        str, typer.Option(help="teacher: default (~5M), cpu (~1M) or paper.")
    ] = "default",
    steps: Annotated[int, typer.Option(help="Optimizer steps (per round for prodiff).")] = 2000,
    teacher_steps: Annotated[int, typer.Option(help="prodiff: the teacher's DDIM steps.")] = 8,
    batch_size: Annotated[int, typer.Option(help="Utterances per step.")] = 16,
    lr: Annotated[float, typer.Option(help="Learning rate (AdamW).")] = 2e-4,
    seed: Annotated[int, typer.Option(help="Seed.")] = 0,
    resume: Annotated[
        bool, typer.Option("--resume", help="teacher: continue the run in --out.")
    ] = False,
    force: Force = False,
    quiet: Quiet = False,
) -> None:
    """Train a teacher or distil a ProDiff / CoMoSpeech student; writes OUT/model.safetensors."""
    from polyfold.speech.corpus import load_corpus
    from polyfold.speech.training import distill_comospeech, distill_prodiff, train_teacher

    if model not in MODELS:
        raise InputError(f"--model: expected one of {', '.join(MODELS)}, got {model!r}")
    settings = _settings(steps, batch_size, lr, seed, quiet)
    if model != "teacher" and teacher is None:
        raise InputError(f"--teacher: {model} distils a trained teacher; pass its model file")
    if model != "teacher" and resume:
        raise InputError(
            f"--resume: only a teacher's run can be continued; a {model} distillation restarts "
            "(pass --force to start it again in --out)"
        )
    prepare_training_out(out, resume=resume, force=force)
    corpus = load_corpus(data)
    if model == "teacher":
        saved = train_teacher(
            corpus, out, preset=preset, path=path, settings=settings, resume=resume
        )
    else:
        from polyfold.speech.generate import load_acoustic

        t = load_acoustic(str(teacher))
        if model == "prodiff":
            saved = distill_prodiff(corpus, t, out, teacher_steps=teacher_steps, settings=settings)
        else:
            saved = distill_comospeech(corpus, t, out, settings=settings)
    typer.echo(f"wrote {saved}")


@app.command()
def tts(
    text: Annotated[
        str, typer.Argument(help="The text, or a .txt file with one utterance a line.")
    ],
    out: Annotated[Path, typer.Option("--out", help="WAV file (a folder for a text file).")],
    model: Annotated[
        str, typer.Option("--model", help="prodiff, comospeech, teacher or a model file.")
    ] = "comospeech",
    steps: Annotated[int | None, typer.Option(help="Sampler steps [default: the model's].")] = None,
    vocoder: Annotated[str, typer.Option(help="hifigan, ddsp or griffin-lim.")] = "hifigan",
    seed: Annotated[int, typer.Option(help="Seed.")] = 0,
    length_scale: Annotated[float, typer.Option(help="> 1 speaks slower.")] = 1.0,
    force: Force = False,
) -> None:
    """Speak text with a shipped or trained model."""
    from polyfold.speech.generate import load_acoustic, speak_lines

    if not (math.isfinite(length_scale) and 0.25 <= length_scale <= 4):
        raise InputError(f"--length-scale: expected a number in [0.25, 4], got {length_scale}")
    source = Path(text)
    if text.endswith(".txt") or source.is_file():
        from polyfold.core.errors import reading

        with reading(source, "text"):
            lines = [ln.strip() for ln in source.read_text(encoding="utf-8").splitlines()]
        lines = [ln for ln in lines if ln]
        if not lines:
            raise InputError(f"{source}: holds no text")
        prepare_output_dir(out, force=force)
        targets = [out / f"{i:04d}.wav" for i in range(len(lines))]
    else:
        lines, targets = [text], [check_output_file(out, force=force)]
    acoustic = load_acoustic(model)
    written = speak_lines(
        acoustic, lines, targets, vocoder=vocoder, steps=steps, seed=seed, length_scale=length_scale
    )
    for path, seconds in written:
        typer.echo(f"wrote {path} ({seconds:.2f} s)")


@app.command()
def evaluate(
    data: Annotated[
        Path, typer.Option("--data", help="A corpus folder; its test split is scored.")
    ],
    model: Annotated[
        str, typer.Option("--model", help="prodiff, comospeech, teacher or a model file.")
    ] = "comospeech",
    steps: Annotated[int | None, typer.Option(help="Sampler steps [default: the model's].")] = None,
    n: Annotated[int, typer.Option("-n", help="Test utterances to score.")] = 20,
    vocoder: Annotated[str, typer.Option(help="hifigan, ddsp or griffin-lim.")] = "hifigan",
    out: Annotated[Path | None, typer.Option("--out", help="Write the metrics as JSON.")] = None,
    force: Force = False,
) -> None:
    """MCD, F0 RMSE, voicing error, CER/WER (pocketsphinx), DNSMOS and RTF on a test split."""
    import json
    import time

    import torch

    from polyfold.core.audio import read_audio
    from polyfold.core.outputs import write_text
    from polyfold.speech.corpus import load_corpus
    from polyfold.speech.evaluation import Recognizer, score_system
    from polyfold.speech.generate import load_acoustic
    from polyfold.speech.mcd import world_features
    from polyfold.speech.synthesis import synthesize
    from polyfold.speech.vocoder import load_vocoder

    check_int("-n", n)
    if out is not None:
        check_output_file(out, force=force)
    torch.set_num_threads(1)
    corpus = load_corpus(data)
    tests = corpus.split("test")[:n]
    if not tests:
        raise InputError(f"--data {data}: no test utterances")
    acoustic, voc, asr = load_acoustic(model), load_vocoder(vocoder), Recognizer()
    sr = corpus.settings.sample_rate
    truth, waves, mel_s, audio_s = [], [], 0.0, 0.0
    for k, utt in enumerate(tests):
        truth.append(world_features(read_audio(corpus.root / utt.wav, sample_rate=sr)[0], sr))
        t0 = time.perf_counter()
        result = synthesize(acoustic, phones=utt.phones, steps=steps, seed=k)
        mel_s += time.perf_counter() - t0
        waves.append(voc(result.mel[None])[0].numpy())
        audio_s += waves[-1].size / sr
    metrics = score_system(truth, waves, [u.text for u in tests], sr, asr)
    metrics.update(mel_rtf_1thread=mel_s / audio_s, nfe=result.nfe, utterances=len(tests))
    for key, value in metrics.items():
        typer.echo(f"{key}: {value:.4g}")
    if out is not None:
        write_text(out, json.dumps({"model": model, "data": str(data), **metrics}, indent=2) + "\n")


@app.command()
def quickstart(
    out: Annotated[Path, typer.Option("--out", help="Report folder.")] = Path("speech-quickstart"),
    quiet: Quiet = False,
) -> None:
    """Speak a few sentences with the shipped ProDiff and CoMoSpeech models; writes a report."""
    from polyfold.speech.quickstart import quickstart as run

    path = run(out, quiet=quiet)
    typer.echo(f"wrote {path}")


def main() -> None:
    """The ``polyfold-speech`` console script."""
    run_app(app, prog_name="polyfold-speech")
