"""polyfold-text: MDLM bound, samplers at several step counts, float32 vs float64 categorical
sampling, EDLM vs MDLM at low step counts, S^3 vs unscaffolded JSON generation.

All on the shipped checkpoints (character-level MDLM and AR model on Shakespeare; the S^3 rows
use the shipped JSON-records MDLM when it is there):

* ``mdlm_bpc``: the MDLM negative ELBO in bits per character on chunks of the held-out plays.
* samplers: unconditional samples of ``LENGTH`` characters with first-hitting (FHS), ancestral
  (cached, and uncached as the exact reference at many steps), confidence remasking and
  semi-autoregressive blocks; generative perplexity under the AR model, unigram entropy, model
  calls, wall and CPU seconds per sample. ``fhs_speedup_vs_ancestral``: CPU time of uncached
  ancestral sampling with many steps (512 quick, 2048 full: a fine discretisation of the same
  continuous-time process that FHS samples exactly) over that of FHS, on one thread (CPU time,
  not wall time, because the benchmark machine may be shared; the wall-time ratio is reported
  as ``fhs_wall_speedup_vs_ancestral``).
* ``float32_entropy_drop``: unigram entropy (bits) of float64 minus float32 categorical sampling
  (Zheng et al.: truncated Gumbel noise lowers the temperature), same sampler and seeds.
* ``edlm_over_mdlm_genppl_low_steps``: EDLM-AR (``polyfold.text.edlm.compare_genppl``:
  residual energy from the AR model, k candidates in the paper's time window) over plain MDLM
  generative perplexity, averaged over the low step counts.
* ``s3_schema_valid_rate`` / ``unscaffolded_schema_valid_rate``: JSON that parses and validates
  against the records schema, S^3 scaffolding (the paper's top-K confidence remasking, K = 1
  slot token per step) vs prompting with ``{`` for as many steps
  (``polyfold.text.s3.evaluate_schema_adherence``); ``s3_k2_schema_valid_rate`` with K = 2
  (half the model calls), and ``s3_k2_constrained_schema_valid_rate`` with K = 2 and per-slot
  token constraints (an extension: type-incompatible tokens banned).

    python apps/bench/text.py --quick --out runs/bench/text.json
"""

from __future__ import annotations

import statistics
from typing import Any

import torch
from _common import parse_args, print_table, write_json  # type: ignore[import-not-found]

from polyfold.text.checkpoint import DEFAULT_AR, DEFAULT_JSON_MDLM, DEFAULT_MDLM, load_checkpoint
from polyfold.text.data import chunk_documents, shakespeare_corpus
from polyfold.text.edlm import DEFAULT_WINDOW, compare_genppl
from polyfold.text.generate import NoSpecialTokens, generate
from polyfold.text.json_records import json_records, json_records_schema, json_records_slot_lengths
from polyfold.text.metrics import generative_perplexity, mdlm_bpc, mdlm_process, unigram_entropy
from polyfold.text.s3 import evaluate_schema_adherence

LENGTH = 127  # the AR model (context 128) scores [BOS] + 127 characters
S3_K = 1  # S^3: slot tokens revealed per top-K confidence remasking step (summary rows)


def _sampler_rows(model: Any, tok: Any, ar: Any, ar_tok: Any, quick: bool) -> list[dict[str, Any]]:
    n = 8 if quick else 16
    reference_steps = 512 if quick else 2048
    configs: list[tuple[str, dict[str, Any]]] = [
        ("first-hitting", {"sampler": "first-hitting"}),
        ("ancestral", {"sampler": "ancestral", "steps": 32}),
        ("ancestral", {"sampler": "ancestral", "steps": 128}),
        ("ancestral", {"sampler": "ancestral", "steps": reference_steps, "cache": False}),
        ("confidence", {"sampler": "confidence", "steps": 32}),
        ("confidence", {"sampler": "confidence", "steps": 128}),
        ("blockwise", {"sampler": "blockwise", "steps": 128, "block_length": 32}),
        ("first-hitting", {"sampler": "first-hitting", "precision": "float32"}),
        ("ancestral", {"sampler": "ancestral", "steps": 128, "precision": "float32"}),
    ]
    rows = []
    generate(model, tok, num_samples=n, length=LENGTH, sampler="ancestral", steps=4)  # warm-up
    for name, kw in configs:
        gen = generate(model, tok, num_samples=n, length=LENGTH, seed=0, **kw)
        rows.append(
            {
                "part": "samplers",
                "sampler": name,
                "steps": kw.get("steps", "-"),
                "cache": kw.get("cache", True) if name == "ancestral" else "-",
                "precision": kw.get("precision", "float64"),
                "samples": n,
                "nfe": gen.nfe,
                "s_per_sample": gen.wall_s_per_sample,
                "cpu_s_per_sample": gen.cpu_s_per_sample,
                "gen_ppl": generative_perplexity(ar, ar_tok, gen.texts),
                "entropy_bits": unigram_entropy(gen.texts),
            }
        )
    return rows


def _find(rows: list[dict[str, Any]], **match: Any) -> dict[str, Any]:
    return next(r for r in rows if all(r.get(k) == v for k, v in match.items()))


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    torch.set_num_threads(1)
    model, tok, cfg = load_checkpoint(DEFAULT_MDLM)
    ar, ar_tok, _ = load_checkpoint(DEFAULT_AR)
    rows: list[dict[str, Any]] = []
    summary: dict[str, Any] = {}

    # 1. held-out bound
    chunks = 32 if args.quick else 256
    tokens, mask = chunk_documents(
        shakespeare_corpus("validation"), tok, model.config["max_length"]
    )
    bound = mdlm_bpc(model, tok, tokens[:chunks], mask[:chunks], n_times=2 if args.quick else 8)
    summary["mdlm_bpc"] = bound["bpc"]
    rows.append({"part": "bound", "chunks": chunks, "bpc": bound["bpc"]})

    # 2. samplers, 3. float32 vs float64
    srows = _sampler_rows(model, tok, ar, ar_tok, args.quick)
    rows.extend(srows)
    fhs = _find(srows, sampler="first-hitting", precision="float64")
    ref = _find(srows, sampler="ancestral", cache=False)
    # CPU time of this single-threaded process: wall time swings with other jobs on the machine
    summary["fhs_speedup_vs_ancestral"] = ref["cpu_s_per_sample"] / fhs["cpu_s_per_sample"]
    summary["fhs_wall_speedup_vs_ancestral"] = ref["s_per_sample"] / fhs["s_per_sample"]
    summary["fhs_nfe_ratio_vs_ancestral"] = ref["nfe"] / fhs["nfe"]
    summary["fhs_gen_ppl"] = fhs["gen_ppl"]
    summary["ancestral_reference_gen_ppl"] = ref["gen_ppl"]
    summary["ancestral_reference_steps"] = ref["steps"]
    drops = []
    for sampler, steps in (("first-hitting", "-"), ("ancestral", 128)):
        hi = _find(srows, sampler=sampler, steps=steps, precision="float64")
        lo = _find(srows, sampler=sampler, steps=steps, precision="float32")
        drops.append(hi["entropy_bits"] - lo["entropy_bits"])
    summary["float32_entropy_drop"] = statistics.mean(drops)

    # 4. EDLM vs MDLM at low step counts: the paper's time window, and every step
    low_steps = (4, 8) if args.quick else (4, 8, 16)
    for key, window in (
        ("edlm_over_mdlm_genppl_low_steps", DEFAULT_WINDOW),
        ("edlm_full_window_over_mdlm_genppl_low_steps", (0.0, 1.0)),
    ):
        erows = compare_genppl(
            NoSpecialTokens(model, tok),
            ar,
            mdlm_process(tok),
            length=LENGTH,
            n=8 if args.quick else 32,
            steps=low_steps,
            k_candidates=4 if args.quick else 8,
            window=window,
            bos_id=ar_tok.bos_id,
        )
        for r in erows:
            rows.append({"part": "edlm", "window": f"{window[0]}-{window[1]}", **r})
        summary[key] = statistics.mean(r["ratio"] for r in erows)

    # 5. S^3 vs unscaffolded prompting: the paper's decoding with K = 1 and K = 2 slot tokens per
    # step, and K = 2 with per-slot token constraints (our extension)
    jmodel, jtok, _ = load_checkpoint(DEFAULT_JSON_MDLM)
    for key, constrain, k in (
        ("s3_schema_valid_rate", False, S3_K),
        ("s3_k2_schema_valid_rate", False, 2),
        ("s3_k2_constrained_schema_valid_rate", True, 2),
    ):
        s3 = evaluate_schema_adherence(
            jmodel,
            jtok,
            json_records_schema(),
            reference=json_records("train"),
            n=16 if args.quick else 64,
            slot_len=json_records_slot_lengths(jtok),
            k=k,
            constrain_slots=constrain,
        )
        rows.append({"part": "s3", "k": k, "constrain_slots": constrain, **s3})
        summary[key] = s3["s3_schema_valid_rate"]
        if k == S3_K:
            summary["unscaffolded_schema_valid_rate"] = s3["unscaffolded_schema_valid_rate"]

    print_table([r for r in rows if r["part"] == "samplers"])
    print()
    for part in ("bound", "edlm", "s3"):
        part_rows = [r for r in rows if r["part"] == part]
        if part_rows:
            print_table(part_rows)
            print()
    print_table([{"metric": k, "value": v} for k, v in summary.items()])
    write_json(
        args.out,
        rows,
        summary,
        model=DEFAULT_MDLM,
        model_steps=cfg.get("steps"),
        quick=args.quick,
    )


if __name__ == "__main__":
    main()
