"""``polyfold-text``: train, generate, evaluate masked diffusion language models; quickstart.

    polyfold-text train --kind mdlm --corpus shakespeare --steps 1000 --run runs/mdlm
    polyfold-text generate --prompt "ROMEO:" --length 128 --sampler first-hitting
    polyfold-text generate --infill "To be, or ____ to be" --sampler ancestral --steps 64
    polyfold-text generate --schema penguin.json --model json-records-char-mdlm -n 4
    polyfold-text evaluate --model shakespeare-char-mdlm --samples 8
    polyfold-text quickstart --out runs/text

Also reachable as ``polyfold text ...`` through the umbrella command.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Annotated, Any

import typer

from polyfold.core.cli import domain_app, run_app
from polyfold.core.errors import InputError, check_int
from polyfold.core.outputs import (
    Force,
    check_output_file,
    prepare_output_dir,
    probe_writable,
    write_text,
)
from polyfold.core.progress import Progress, Quiet, checkpoint_step, resuming_line
from polyfold.text.checks import (
    check_device,
    check_export,
    check_prompt_chars,
    missing_optional_data,
    require_corpus,
    schema_report,
)

__all__ = ["app", "main"]

app = domain_app(
    "polyfold-text", "Masked diffusion language models: MDLM, first-hitting sampling, EDLM and S^3."
)


@app.callback()
def _root() -> None:
    """Masked diffusion language models: MDLM, first-hitting sampling, EDLM and S^3."""


def _threads(n: int) -> None:
    import torch

    if n < 1:
        raise InputError(f"--threads: expected an int >= 1, got {n}")
    torch.set_num_threads(n)


@app.command()
def train(
    run: Annotated[
        Path, typer.Option("--run", help="Run folder (checkpoints; resumed if present).")
    ],
    kind: Annotated[
        str, typer.Option(help="'mdlm' (masked diffusion) or 'ar' (causal LM).")
    ] = "mdlm",
    corpus: Annotated[
        str, typer.Option(help="'shakespeare', 'json-records', or a .txt/.jsonl file or folder.")
    ] = "shakespeare",
    tokenizer: Annotated[str, typer.Option(help="'char' or 'bpe' (trained locally).")] = "char",
    bpe_vocab: Annotated[int, typer.Option(help="BPE vocabulary size.")] = 512,
    length: Annotated[int, typer.Option(help="Context length (tokens per chunk).")] = 128,
    separate_documents: Annotated[
        bool,
        typer.Option(help="Chunk each document on its own (records) instead of concatenating."),
    ] = False,
    d_model: Annotated[int, typer.Option(help="Width.")] = 256,
    n_layers: Annotated[int, typer.Option(help="Blocks.")] = 4,
    n_heads: Annotated[int, typer.Option(help="Attention heads.")] = 4,
    steps: Annotated[int, typer.Option(help="Optimizer steps.")] = 1000,
    batch_size: Annotated[int, typer.Option(help="Chunks per step.")] = 32,
    lr: Annotated[float, typer.Option(help="Peak learning rate.")] = 1e-3,
    warmup_steps: Annotated[int, typer.Option(help="Linear warmup steps.")] = 100,
    checkpoint_every: Annotated[int, typer.Option(help="Checkpoint interval (steps).")] = 100,
    seed: Annotated[int, typer.Option(help="Seed.")] = 0,
    export: Annotated[
        Path | None, typer.Option(help="Folder to write the trained model into (with --name).")
    ] = None,
    name: Annotated[str | None, typer.Option(help="Model name for --export.")] = None,
    device: Annotated[str | None, typer.Option(help="torch device (default: cuda if any).")] = None,
    threads: Annotated[int, typer.Option(help="CPU threads.")] = 1,
    resume: Annotated[
        bool, typer.Option(help="Continue the run folder's newest checkpoint (the default).")
    ] = True,
    quiet: Quiet = False,
    force: Force = False,
) -> None:
    """Train an MDLM or AR model (core Trainer: EMA, safetensors checkpoints). Rerunning the
    command on the same --run folder resumes it from its newest checkpoint (--no-resume refuses
    a folder that holds a run instead)."""
    import sys

    from polyfold.text.checkpoint import RUN_TOKENIZER
    from polyfold.text.training import TextTrainConfig, train_text_model

    _threads(threads)
    if export is not None and not name:
        raise InputError("--name: required with --export (the model's file name)")
    for option, value in (("--steps", steps), ("--batch-size", batch_size)):
        check_int(option, value)
    check_int("--checkpoint-every", checkpoint_every)
    check_device(device)
    require_corpus(corpus, "--corpus")
    if export is not None and name:
        check_export(export, name, force=force)
    if run.exists() and not run.is_dir():
        raise InputError(f"--run {run}: exists and is not a folder")
    done = checkpoint_step(run) if run.is_dir() else None
    if done is None and not (run / RUN_TOKENIZER).is_file():  # not a run: a new or empty folder
        prepare_output_dir(run, force=force, option="--run")
    probe_writable(run, "--run")
    if done is not None and not resume:
        raise InputError(
            f"--run {run}: holds a run at step {done}; drop --no-resume to continue it, or "
            "choose a new --run folder"
        )
    if done is not None:
        typer.echo(resuming_line(done, steps, run), err=True)
        if done >= steps:
            typer.echo(
                f"the run in {run} is finished ({done} of {steps} steps): evaluating"
                + (" and exporting" if export is not None else "")
                + "; raise --steps to train further, or choose a new --run folder to start over",
                err=True,
            )
    cfg = TextTrainConfig(
        kind=kind,
        corpus=corpus,
        tokenizer=tokenizer,
        bpe_vocab=bpe_vocab,  # type: ignore[arg-type]
        length=length,
        separate_documents=separate_documents,
        d_model=d_model,
        n_layers=n_layers,
        n_heads=n_heads,
        steps=steps,
        batch_size=batch_size,
        lr=lr,
        warmup_steps=warmup_steps,
        seed=seed,
        checkpoint_every=checkpoint_every,
        device=device,
    )
    command = shlex.join(["polyfold-text", *sys.argv[1:]])
    out = train_text_model(
        cfg,
        run,
        export=(export, name) if export is not None and name else None,  # type: ignore[arg-type]
        resume=True,
        quiet=quiet,
        command=command,
    )
    typer.echo(json.dumps({"steps": out.steps, **out.metrics, "exported": str(out.exported)}))


def load_schema_file(path: Path) -> Any:
    """The S^3 schema in ``--schema``'s file (checked before the model loads)."""
    from polyfold.core.errors import reading
    from polyfold.text.s3 import load_schema

    if not path.is_file():
        raise InputError(f"--schema: {path} is not a file")
    with reading(path, "--schema"):
        data = json.loads(path.read_text(encoding="utf-8"))
    try:
        return load_schema(data)
    except InputError as err:
        raise InputError(f"--schema {path}: {err}") from None


@app.command()
def generate(
    model: Annotated[
        str, typer.Option(help="Shipped model name, model .json file or training run folder.")
    ] = "shakespeare-char-mdlm",
    prompt: Annotated[str, typer.Option(help="Fixed text at the start (prefix).")] = "",
    suffix: Annotated[str, typer.Option(help="Fixed text at the end.")] = "",
    infill: Annotated[
        str | None,
        typer.Option(help="Template: each --hole character is generated, the rest kept."),
    ] = None,
    hole: Annotated[str, typer.Option(help="Placeholder character of --infill.")] = "_",
    schema: Annotated[
        Path | None, typer.Option(help="JSON schema file: S^3 scaffolded JSON generation.")
    ] = None,
    constrain_slots: Annotated[
        bool,
        typer.Option(
            help="S^3: ban tokens a slot's type cannot hold (e.g. quotes in a number), an "
            "extension of the paper's decoding (off: the paper's)."
        ),
    ] = False,
    length: Annotated[
        int | None, typer.Option(help="Sequence length (default: the context).")
    ] = None,
    num_samples: Annotated[int, typer.Option("--num-samples", "-n", help="Samples.")] = 1,
    sampler: Annotated[
        str | None,
        typer.Option(
            help="ancestral, first-hitting, confidence or blockwise (default: first-hitting; "
            "with --schema, confidence, the paper's top-K remasking)."
        ),
    ] = None,
    steps: Annotated[int | None, typer.Option(help="Sampling steps (default: positions).")] = None,
    precision: Annotated[
        str, typer.Option(help="Categorical precision: float64 or float32.")
    ] = "float64",
    block_length: Annotated[int, typer.Option(help="Block length of the blockwise sampler.")] = 32,
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="Ancestral without caching.")
    ] = False,
    seed: Annotated[int, typer.Option(help="Seed.")] = 0,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print JSON with NFE and wall time.")
    ] = False,
    threads: Annotated[int, typer.Option(help="CPU threads.")] = 1,
    quiet: Quiet = False,
) -> None:
    """Generate text (prompt, suffix, infilling) or schema-constrained JSON (--schema).

    With --schema, records that are not valid JSON for the schema are still printed, a summary
    (count and first reason) goes to stderr and the exit status is 1."""
    from polyfold.text.checkpoint import load_checkpoint
    from polyfold.text.generate import planned_steps, sampler_name

    _threads(threads)
    check_int("--num-samples", num_samples)
    check_int("--block-length", block_length)
    if steps is not None:
        check_int("--steps", steps)
    if length is not None:
        check_int("--length", length)
    chosen = sampler or ("confidence" if schema is not None else "first-hitting")
    sampler_name(chosen)  # an unknown name fails here, before the model loads
    spec = load_schema_file(schema) if schema is not None else None
    net, tok, _ = load_checkpoint(model)
    template = infill.replace(hole, "") if infill is not None else None  # holes are masks
    check_prompt_chars(tok, {"--prompt": prompt, "--suffix": suffix, "--infill": template})
    if spec is not None:
        import torch

        from polyfold.text.s3 import DEFAULT_SLOT_LEN, build_scaffold, s3_generate

        if prompt or suffix or infill is not None:
            raise InputError("--schema: --prompt, --suffix and --infill do not apply to it")
        free = ~build_scaffold(spec, tok, slot_len=DEFAULT_SLOT_LEN).fixed
        n_steps = steps if steps is not None else int(free.sum())
        total = planned_steps(~free, chosen, steps=n_steps, block_length=block_length)
        with Progress(max(total, 1), "generate", quiet=quiet) as bar:
            texts = s3_generate(
                net,
                tok,
                spec,
                n=num_samples,
                generator=torch.Generator().manual_seed(seed),
                constrain_slots=constrain_slots,
                steps=n_steps,
                sampler=sampler_name(chosen).replace("_", "-"),
                callback=bar.step_callback(),
            )
        assert isinstance(texts, list)
        valid, summary = schema_report(texts, spec)
        if as_json:
            typer.echo(json.dumps({"texts": texts, "valid": valid}, indent=2))
        else:
            for text in texts:
                typer.echo(text)
        if summary:
            typer.echo(f"error: {summary}", err=True)
            raise typer.Exit(1)
        return
    from polyfold.text.generate import build_template
    from polyfold.text.generate import generate as run

    _, fixed = build_template(
        tok,
        length,
        int(net.config["max_length"]),  # type: ignore[index]
        prefix=prompt,
        suffix=suffix,
        infill=infill,
        hole=hole,
    )
    n_steps = steps if steps is not None else int((~fixed).sum())
    total = planned_steps(fixed, chosen, steps=n_steps, block_length=block_length)
    with Progress(max(total, 1), "generate", quiet=quiet) as bar:
        gen = run(
            net,
            tok,
            num_samples=num_samples,
            length=length,
            prefix=prompt,
            suffix=suffix,
            infill=infill,
            hole=hole,
            sampler=chosen,
            steps=steps,
            precision=precision,
            seed=seed,
            cache=not no_cache,
            block_length=block_length,
            callback=bar.step_callback(),
        )
    if as_json:
        payload = {
            "texts": gen.texts,
            "sampler": gen.sampler,
            "steps": gen.steps,
            "model_calls": gen.nfe,
            "wall_s_per_sample": gen.wall_s_per_sample,
        }
        typer.echo(json.dumps(payload, indent=2))
        return
    for i, text in enumerate(gen.texts):
        if num_samples > 1:
            typer.echo(f"--- sample {i + 1}")
        typer.echo(text)


@app.command()
def evaluate(
    model: Annotated[str, typer.Option(help="MDLM: shipped name, .json file or run folder.")] = (
        "shakespeare-char-mdlm"
    ),
    ar_model: Annotated[
        str, typer.Option("--ar-model", help="AR model for generative perplexity.")
    ] = "shakespeare-char-ar",
    corpus: Annotated[
        str, typer.Option(help="Held-out text: corpus name or path.")
    ] = "shakespeare",
    chunks: Annotated[int, typer.Option(help="Held-out chunks for the bound.")] = 64,
    samples: Annotated[int, typer.Option(help="Generated samples for perplexity/entropy.")] = 8,
    sampler: Annotated[
        str, typer.Option(help="Sampler for the generated samples.")
    ] = "first-hitting",
    steps: Annotated[int | None, typer.Option(help="Sampling steps.")] = None,
    precision: Annotated[str, typer.Option(help="Categorical precision.")] = "float64",
    seed: Annotated[int, typer.Option(help="Seed.")] = 0,
    out: Annotated[Path | None, typer.Option(help="Write the metrics as JSON here.")] = None,
    threads: Annotated[int, typer.Option(help="CPU threads.")] = 1,
    quiet: Quiet = False,
    force: Force = False,
) -> None:
    """MDLM bound (bits/char) on held-out text; generative perplexity, unigram entropy, NFE and
    wall time of samples; each with its direction and a reference (``about``)."""
    from polyfold.text.checkpoint import load_checkpoint
    from polyfold.text.data import load_corpus
    from polyfold.text.evaluation import evaluate_mdlm
    from polyfold.text.generate import sampler_name

    _threads(threads)
    check_int("--chunks", chunks)
    check_int("--samples", samples)
    if steps is not None:
        check_int("--steps", steps)
    sampler_name(sampler)
    require_corpus(corpus, "--corpus")
    if out is not None:
        check_output_file(out, force=force)
    net, tok, _cfg = load_checkpoint(model)
    ar, ar_tok, _ = load_checkpoint(ar_model)
    docs, _ = load_corpus(corpus, "validation")
    metrics = evaluate_mdlm(
        net,
        tok,
        ar,
        ar_tok,
        docs,
        chunks=chunks,
        samples=samples,
        sampler=sampler,
        steps=steps,
        precision=precision,
        seed=seed,
        quiet=quiet,
    )
    text = json.dumps({"model": model, **metrics}, indent=2)
    if out is not None:
        write_text(out, text + "\n")
    typer.echo(text)


@app.command()
def quickstart(
    out: Annotated[Path, typer.Option(help="Folder for the report.")] = Path("runs/text"),
    quiet: Quiet = False,
) -> None:
    """Generate from the shipped checkpoint with two samplers; write report.html (< 60 s)."""
    from polyfold.text.quickstart import quickstart as run

    for note in missing_optional_data():
        typer.echo(f"note: {note}", err=True)
    path = run(out, quiet=quiet)
    typer.echo(f"report: {path}")


def main() -> None:
    """Entry point of the ``polyfold-text`` script."""
    run_app(app)


if __name__ == "__main__":
    main()
