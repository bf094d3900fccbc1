"""``polyfold-text``: train, generate, evaluate masked diffusion language models; quickstart.

    polyfold-text train --kind mdlm --corpus shakespeare --steps 1000 --run runs/mdlm
    polyfold-text generate --prompt "ROMEO:" --length 128 --sampler first-hitting
    polyfold-text generate --infill "To be, or ____ to be" --sampler ancestral --steps 64
    polyfold-text generate --schema person.json --model json-records-char-mdlm
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
from polyfold.core.errors import InputError

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
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar.")] = False,
) -> None:
    """Train an MDLM or AR model (core Trainer: EMA, safetensors checkpoints, resume)."""
    import sys

    from polyfold.text.training import TextTrainConfig, train_text_model

    _threads(threads)
    if export is not None and not name:
        raise InputError("--name: required with --export (the model's file name)")
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


def _read_schema(path: Path) -> Any:
    if not path.is_file():
        raise InputError(f"--schema: {path} is not a file")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as err:
        raise InputError(f"--schema: {path} is not JSON ({err})") from None


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
        str, typer.Option(help="ancestral, first-hitting, confidence or blockwise.")
    ] = "first-hitting",
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
) -> None:
    """Generate text (prompt, suffix, infilling) or schema-constrained JSON (--schema)."""
    from polyfold.text.checkpoint import load_checkpoint

    _threads(threads)
    net, tok, _ = load_checkpoint(model)
    if schema is not None:
        import torch

        from polyfold.text.s3 import load_schema, s3_generate, validate_json

        spec = load_schema(_read_schema(schema))
        gen = torch.Generator().manual_seed(seed)
        decode: dict[str, Any] = {"steps": steps} if steps is not None else {"k": 1}
        texts = list(
            s3_generate(
                net,
                tok,
                spec,
                n=num_samples,
                generator=gen,
                constrain_slots=constrain_slots,
                **decode,
            )
        )
        if as_json:
            typer.echo(
                json.dumps(
                    {"texts": texts, "valid": [validate_json(t, spec) for t in texts]}, indent=2
                )
            )
        else:
            for text in texts:
                typer.echo(text)
        return
    from polyfold.text.generate import generate as run

    gen = run(
        net,
        tok,
        num_samples=num_samples,
        length=length,
        prefix=prompt,
        suffix=suffix,
        infill=infill,
        hole=hole,
        sampler=sampler,
        steps=steps,
        precision=precision,
        seed=seed,
        cache=not no_cache,
        block_length=block_length,
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
) -> None:
    """MDLM bound (bits/char) on held-out text; generative perplexity, unigram entropy, NFE and
    wall time of samples."""
    from polyfold.text.checkpoint import load_checkpoint
    from polyfold.text.data import chunk_documents, load_corpus
    from polyfold.text.generate import generate as run
    from polyfold.text.metrics import generative_perplexity, mdlm_bpc, unigram_entropy

    _threads(threads)
    if chunks < 1 or samples < 1:
        raise InputError("--chunks/--samples: expected ints >= 1")
    net, tok, _cfg = load_checkpoint(model)
    ar, ar_tok, _ = load_checkpoint(ar_model)
    docs, _ = load_corpus(corpus, "validation")
    length = int(net.config["max_length"])  # type: ignore[index]
    tokens, mask = chunk_documents(docs, tok, length)
    bound = mdlm_bpc(net, tok, tokens[:chunks], mask[:chunks], seed=seed)
    gen = run(
        net,
        tok,
        num_samples=samples,
        length=length,
        sampler=sampler,
        steps=steps,
        precision=precision,
        seed=seed,
    )
    metrics = {
        "model": model,
        "mdlm_bpc": bound["bpc"],
        "nats_per_token": bound["nats_per_token"],
        "gen_ppl": generative_perplexity(ar, ar_tok, gen.texts),
        "unigram_entropy_bits": unigram_entropy(gen.texts),
        "model_calls_per_sample": gen.nfe,
        "wall_s_per_sample": gen.wall_s_per_sample,
        "sampler": gen.sampler,
        "steps": gen.steps,
        "precision": precision,
    }
    text = json.dumps(metrics, indent=2)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n", encoding="utf-8")
    typer.echo(text)


@app.command()
def quickstart(
    out: Annotated[Path, typer.Option(help="Folder for the report.")] = Path("runs/text"),
    quiet: Annotated[bool, typer.Option("--quiet", help="Less output.")] = False,
) -> None:
    """Generate from the shipped checkpoint with two samplers; write report.html (< 60 s)."""
    from polyfold.text.quickstart import quickstart as run

    path = run(out, quiet=quiet)
    typer.echo(f"report: {path}")


def main() -> None:
    """Entry point of the ``polyfold-text`` script."""
    run_app(app)


if __name__ == "__main__":
    main()
