"""Text metrics: the MDLM bound in bits per character, AR bits per character, generative
perplexity under the AR model, and unigram entropy of samples.

* :func:`mdlm_bpc`: the MDLM negative ELBO (core's :func:`masked_diffusion_loss`, in nats,
  summed over tokens) averaged over ``n_times`` antithetic time draws per chunk, divided by the
  number of characters the tokens decode to and by ``ln 2``: an upper bound on the model's
  negative log-likelihood in bits per character (nats/token -> bits/char).
* :func:`ar_bpc`: the exact NLL of the causal model in bits per character.
* :func:`generative_perplexity`: ``exp`` of the AR model's mean NLL per token of generated
  texts (re-encoded with the AR tokenizer, ``[BOS]`` first).
* :func:`unigram_entropy`: the mean over samples of the entropy (bits) of each sample's token
  histogram: low values expose the low effective temperature of float32 categorical sampling.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from polyfold.core.discrete import LogLinearSchedule, MaskedProcess, masked_diffusion_loss
from polyfold.core.errors import InputError

__all__ = [
    "ar_bpc",
    "generative_perplexity",
    "mdlm_bpc",
    "mdlm_process",
    "unigram_entropy",
]

LN2 = math.log(2.0)


def mdlm_process(tokenizer: object) -> MaskedProcess:
    """The log-linear masked process over ``tokenizer``'s ``[MASK]`` (training and sampling)."""
    return MaskedProcess(LogLinearSchedule(), int(tokenizer.mask_id))  # type: ignore[attr-defined]


def _chars(tokenizer: object, tokens: Tensor, mask: Tensor) -> int:
    return sum(
        len(tokenizer.decode(row[m].tolist(), mask_char=None))  # type: ignore[attr-defined]
        for row, m in zip(tokens, mask, strict=True)
    )


@torch.no_grad()
def mdlm_bpc(
    model: nn.Module,
    tokenizer: object,
    tokens: Tensor,
    mask: Tensor,
    *,
    n_times: int = 4,
    batch_size: int = 32,
    seed: int = 0,
) -> dict[str, float]:
    """``{"bpc", "nats_per_token", "tokens", "chars"}`` of the MDLM bound on ``tokens (N, L)``."""
    if n_times < 1:
        raise InputError(f"n_times: expected an int >= 1, got {n_times}")
    process = mdlm_process(tokenizer)
    device = next(model.parameters()).device
    was = model.training
    model.eval()
    total = 0.0
    try:
        for start in range(0, tokens.shape[0], batch_size):
            x = tokens[start : start + batch_size].to(device)
            m = mask[start : start + batch_size].to(device)
            g = torch.Generator(device=device).manual_seed(seed + start)
            for _ in range(n_times):
                out = masked_diffusion_loss(model, process, x, generator=g, valid=m, cond=m)
                total += float(out.token_loss.double().sum()) / n_times
    finally:
        model.train(was)
    n_tok = int(mask.sum())
    chars = _chars(tokenizer, tokens, mask)
    return {
        "bpc": total / max(chars, 1) / LN2,
        "nats_per_token": total / max(n_tok, 1),
        "tokens": float(n_tok),
        "chars": float(chars),
    }


@torch.no_grad()
def _ar_nll(model: nn.Module, tokens: Tensor, mask: Tensor, batch_size: int) -> tuple[float, int]:
    """Summed NLL (nats) of the targets ``tokens[:, 1:]`` where valid, and their count."""
    device = next(model.parameters()).device
    was = model.training
    model.eval()
    total, count = 0.0, 0
    try:
        for start in range(0, tokens.shape[0], batch_size):
            x = tokens[start : start + batch_size].to(device)
            m = mask[start : start + batch_size].to(device)
            logp = model(x, m)[:, :-1].double().log_softmax(-1)
            nll = -logp.gather(-1, x[:, 1:, None]).squeeze(-1)
            valid = m[:, 1:]
            total += float(nll[valid].sum())
            count += int(valid.sum())
    finally:
        model.train(was)
    return total, count


def ar_bpc(
    model: nn.Module, tokenizer: object, tokens: Tensor, mask: Tensor, *, batch_size: int = 32
) -> dict[str, float]:
    """``{"bpc", "nats_per_token"}`` of the causal model on ``[BOS]``-led chunks."""
    total, count = _ar_nll(model, tokens, mask, batch_size)
    target_mask = mask.clone()
    target_mask[:, 0] = False  # the [BOS] input is not a target
    chars = _chars(tokenizer, tokens, target_mask)
    return {"bpc": total / max(chars, 1) / LN2, "nats_per_token": total / max(count, 1)}


def generative_perplexity(
    ar_model: nn.Module, ar_tokenizer: object, texts: Sequence[str], *, batch_size: int = 32
) -> float:
    """``exp(mean NLL per token)`` of ``texts`` under the AR model (``[BOS]`` + text)."""
    if not texts:
        raise InputError("texts: expected at least one generated text")
    max_len = int(ar_model.config["max_length"])  # type: ignore[index]
    rows = []
    for text in texts:
        ids = [ar_tokenizer.bos_id, *ar_tokenizer.encode(text)][:max_len]  # type: ignore[attr-defined]
        rows.append(ids)
    length = max(len(r) for r in rows)
    tokens = torch.full((len(rows), length), int(ar_tokenizer.pad_id), dtype=torch.long)  # type: ignore[attr-defined]
    mask = torch.zeros((len(rows), length), dtype=torch.bool)
    for i, r in enumerate(rows):
        tokens[i, : len(r)] = torch.tensor(r)
        mask[i, : len(r)] = True
    total, count = _ar_nll(ar_model, tokens, mask, batch_size)
    return math.exp(total / max(count, 1))


def unigram_entropy(samples: Sequence[Sequence[int]] | Sequence[str]) -> float:
    """Mean per-sample entropy (bits) of the unigram histogram of tokens (or characters)."""
    if not samples:
        raise InputError("samples: expected at least one sample")
    out = []
    for s in samples:
        counts = Counter(list(s))
        n = sum(counts.values())
        out.append(-sum(c / n * math.log2(c / n) for c in counts.values()) if n else 0.0)
    return float(sum(out) / len(out))
