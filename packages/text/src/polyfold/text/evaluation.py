"""``polyfold-text evaluate``'s numbers, each with its direction and a reference measured on the
same held-out text: the MDLM bound against the AR model's exact bits per character, and the
samples' generative perplexity and unigram entropy against those of real held-out chunks of the
same length (the data's own values: a model matching the data scores about the same)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from polyfold.core.progress import Progress
from polyfold.text.data import chunk_documents
from polyfold.text.generate import generate, planned_steps
from polyfold.text.metrics import ar_bpc, generative_perplexity, mdlm_bpc, unigram_entropy

__all__ = ["evaluate_mdlm"]


def evaluate_mdlm(
    model: nn.Module,
    tokenizer: Any,
    ar: nn.Module,
    ar_tokenizer: Any,
    docs: list[str],
    *,
    chunks: int,
    samples: int,
    sampler: str = "first-hitting",
    steps: int | None = None,
    precision: str = "float64",
    seed: int = 0,
    quiet: bool = True,
) -> dict[str, Any]:
    """The metrics of ``evaluate`` plus ``about`` (per metric: direction and reference)."""
    length = int(model.config["max_length"])  # type: ignore[index]
    tokens, mask = chunk_documents(docs, tokenizer, length)
    tokens, mask = tokens[:chunks], mask[:chunks]
    bound = mdlm_bpc(model, tokenizer, tokens, mask, seed=seed)
    ar_length = int(ar.config["max_length"])  # type: ignore[index]
    ar_tokens, ar_mask = chunk_documents(docs, ar_tokenizer, ar_length, bos=True)
    ar_ref = ar_bpc(ar, ar_tokenizer, ar_tokens[:chunks], ar_mask[:chunks])["bpc"]
    real = _real_texts(tokenizer, tokens, mask, samples)
    free = torch.zeros(length, dtype=torch.bool)
    total = planned_steps(free, sampler, steps=steps if steps is not None else length)
    with Progress(max(total, 1), "evaluate: sampling", quiet=quiet) as bar:
        gen = generate(
            model,
            tokenizer,
            num_samples=samples,
            length=length,
            sampler=sampler,
            steps=steps,
            precision=precision,
            seed=seed,
            callback=bar.step_callback(),
        )
    data_ppl = generative_perplexity(ar, ar_tokenizer, real)
    data_entropy = unigram_entropy(real)
    metrics: dict[str, Any] = {
        "mdlm_bpc": bound["bpc"],
        "nats_per_token": bound["nats_per_token"],
        "ar_bpc_reference": ar_ref,
        "gen_ppl": generative_perplexity(ar, ar_tokenizer, gen.texts),
        "gen_ppl_of_held_out_text": data_ppl,
        "unigram_entropy_bits": unigram_entropy(gen.texts),
        "unigram_entropy_bits_of_held_out_text": data_entropy,
        "model_calls_per_sample": gen.nfe,
        "wall_s_per_sample": gen.wall_s_per_sample,
        "sampler": gen.sampler,
        "steps": gen.steps,
        "precision": precision,
    }
    n = f"{tokens.shape[0]} held-out chunks of {length} tokens"
    metrics["about"] = {
        "mdlm_bpc": (
            f"lower is better; an upper bound on the MDLM's bits per character on {n}. "
            f"Reference: ar_bpc_reference = {ar_ref:.3f}, the AR model's exact bits per "
            "character on the same text (the paper's MDLM sits a little above its AR baseline)"
        ),
        "nats_per_token": "lower is better; the same bound per token, in nats",
        "gen_ppl": (
            "lower is better down to the reference, not below it (far below means repetitive "
            "text); perplexity of the samples under the AR model. Reference: "
            f"gen_ppl_of_held_out_text = {data_ppl:.3f}, real held-out text of the same length"
        ),
        "unigram_entropy_bits": (
            "higher is better up to the reference (low means repetitive samples). Reference: "
            f"unigram_entropy_bits_of_held_out_text = {data_entropy:.3f}, real held-out text"
        ),
        "model_calls_per_sample": "lower is faster; first-hitting needs one per position",
        "wall_s_per_sample": "lower is faster; depends on the machine",
    }
    return metrics


def _real_texts(tokenizer: Any, tokens: Tensor, mask: Tensor, n: int) -> list[str]:
    """The first ``n`` held-out chunks as text (the reference for sample statistics)."""
    return [tokenizer.decode(row[m].tolist()) for row, m in zip(tokens[:n], mask[:n], strict=True)]
