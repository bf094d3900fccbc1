"""Masked-diffusion sampling: the first-hitting sampler against ancestral sampling, and the cost
of float32 Gumbel noise.

A fixed, randomly initialised, time-agnostic bidirectional transformer (plain torch.nn, seeded)
generates sequences over a 1000-token vocabulary (plus the mask token). Rows: ancestral sampling
with T = L and T = 4 L steps, with and without the time-agnostic cache, and the first-hitting
sampler (one token per sequence per call: L calls for a batch). The cache only skips a call when
no sequence of the batch changed, so it pays off for small batches: one extra row runs a single
sequence. A peer row runs MDLM's own form of the ancestral step (a float64 categorical over the
V + 1 outcomes at every position and every step) with T = 4 L: ``fhs_speedup_vs_mdlm_ancestral``
is its wall time over the first-hitting sampler's (the comparison the first-hitting paper makes),
and ``mdlm_joint_step_cost_ratio`` its CPU time over ``sample_ancestral``'s at the same T (no
cache). ``fhs_speedup_vs_ancestral`` compares with polyfold's own ancestral sampler, whose step
costs little beyond its model call, so it stays near the call ratio T / L = 4 (4.6 in full
mode). Every row is one timed run; ``cpu_s`` (process CPU time) is given beside the wall time,
which other load can inflate.

Full mode: 64 sequences of length 256, T = 256 and 1024, 2e9 Gumbel draws per precision.
``--quick``: 16 sequences of length 128, T = 128 and 512, 2e8 draws.

Entropy: one category with logit 0 and 999 with logit -17.5 (each ~2.5e-8 as likely, below what
float32 Gumbel noise resolves). ``float64_entropy_gap`` = H(float64 draws) - H(float32 draws), in
nats, each H estimated from the drawn frequency q of the rare categories as h(q) + q log 999 (the
rare ones are exchangeable). ``float64_entropy_gap_exact`` = H(exact law) - H(law of float32
Gumbel-max), the latter computed exactly over the 2**24 float32 uniforms.

    python apps/bench/discrete.py [--quick] [--out FILE]
"""

from __future__ import annotations

import math
import time
from functools import partial
from typing import Any

import torch
from _common import parse_args, print_table, time_call, write_json  # type: ignore[import-not-found]
from torch import nn

from polyfold.core.discrete import (
    LinearSchedule,
    MaskedProcess,
    TokenSample,
    sample_ancestral,
    sample_first_hitting,
)
from polyfold.core.ops.categorical import _gumbel_from_uniform, sample_categorical

VOCAB = 1000  # data tokens; the mask token is id VOCAB
RARE_GAP = 17.5


class TinyLogitsModel(nn.Module):
    """A small bidirectional transformer ``model(x_t, t, cond) -> logits``; ignores ``t``."""

    def __init__(self, length: int, width: int = 64, depth: int = 2, seed: int = 0) -> None:
        super().__init__()
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            self.embed = nn.Embedding(VOCAB + 1, width)
            self.position = nn.Parameter(torch.randn(length, width) * 0.02)
            layer = nn.TransformerEncoderLayer(
                width, 4, 4 * width, dropout=0.0, batch_first=True, norm_first=True
            )
            self.encoder = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
            self.norm = nn.LayerNorm(width)
            self.head = nn.Linear(width, VOCAB + 1)
        self.eval()

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, cond: Any = None) -> torch.Tensor:
        h = self.embed(x_t) + self.position[: x_t.shape[1]]
        return self.head(self.norm(self.encoder(h)))


def mdlm_joint_ancestral(
    model: TinyLogitsModel, process: MaskedProcess, x: torch.Tensor, *, steps: int, generator: Any
) -> TokenSample:
    """Peer: MDLM's reference step, one float64 categorical over the V + 1 outcomes (each token
    and "stay masked") at every position and every step. Same law as ``sample_ancestral``, which
    draws a float64 Bernoulli and then a categorical for the revealed positions only."""
    x_t = torch.full_like(x, process.mask_id)
    times = torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64)
    mask_prob = process.schedule.mask_prob(times)
    onehot = process.mask_onehot(VOCAB + 1, x.device)
    nfe = 0
    for i in range(steps):
        masked = x_t == process.mask_id
        if not bool(masked.any()):
            break
        logits = model(x_t, times[i].float().expand(x.shape[0]), None)
        nfe += 1
        joint = torch.log_softmax(logits.double().masked_fill(onehot, -math.inf), dim=-1)
        joint += math.log((mask_prob[i] - mask_prob[i + 1]) / mask_prob[i])
        joint[..., process.mask_id] = torch.log(mask_prob[i + 1] / mask_prob[i])
        x_t = torch.where(masked, sample_categorical(joint, generator=generator), x_t)
    return TokenSample(tokens=x_t, nfe=nfe)


def timed(run: Any) -> tuple[TokenSample, float, float]:
    """One timed call (runs take seconds to minutes; the model is warm): the result, the wall
    time and the process CPU time (less sensitive to other load on a shared machine)."""
    out: list[TokenSample] = []

    def call() -> None:
        with torch.inference_mode():
            out.append(run())

    cpu = time.process_time()
    wall = time_call(call, repeats=1, warmup=0)
    return out[0], wall, time.process_time() - cpu


def sampler_rows(batch: int, length: int) -> list[dict[str, Any]]:
    model = TinyLogitsModel(length)
    process = MaskedProcess(LinearSchedule(), mask_id=VOCAB)
    x = torch.zeros(batch, length, dtype=torch.long)
    with torch.inference_mode():
        model(x, torch.ones(batch), None)  # warm-up
    runs: list[tuple[str, int, bool | str, int, Any]] = []
    for steps in (length, 4 * length):
        for cache in (False, True):
            runs.append(
                (
                    "ancestral",
                    steps,
                    cache,
                    batch,
                    partial(sample_ancestral, steps=steps, cache=cache),
                )
            )
    runs.append(("first_hitting", length, "-", batch, sample_first_hitting))
    runs.append(
        (
            "mdlm_joint_peer",
            4 * length,
            False,
            batch,
            partial(mdlm_joint_ancestral, steps=4 * length),
        )
    )
    runs.append(("ancestral", 4 * length, True, 1, partial(sample_ancestral, steps=4 * length)))
    rows = []
    for name, steps, cache, rows_in_batch, sampler in runs:
        result, wall, cpu = timed(
            partial(sampler, model, process, x[:rows_in_batch], generator=torch.Generator())
        )
        assert bool((result.tokens != VOCAB).all())
        rows.append(
            {
                "sampler": name,
                "steps": steps,
                "cache": cache,
                "batch": rows_in_batch,
                "length": length,
                "nfe": result.nfe,
                "wall_s": wall,
                "cpu_s": cpu,
                "ms_per_call": 1000 * wall / max(result.nfe, 1),
            }
        )
    return rows


def rare_frequency(precision: torch.dtype, draws: int, chunk: int = 10_000) -> tuple[int, int]:
    """How often Gumbel-max in ``precision`` draws one of the 999 rare categories."""
    logits = torch.full((VOCAB,), -RARE_GAP)
    logits[0] = 0.0
    generator = torch.Generator().manual_seed(1)
    hits = done = 0
    while done < draws:
        n = min(chunk, draws - done)
        samples = sample_categorical(
            logits.expand(n, VOCAB), generator=generator, precision=precision
        )
        hits += int((samples != 0).sum())
        done += n
    return hits, done


def entropy(rare_prob: float) -> float:
    """Entropy (nats) of: the mode with 1 - q, the 999 rare categories q / 999 each."""
    if rare_prob <= 0.0:
        return 0.0
    return -(rare_prob * math.log(rare_prob) + (1 - rare_prob) * math.log1p(-rare_prob)) + (
        rare_prob * math.log(VOCAB - 1)
    )


def float32_rare_prob_exact() -> float:
    """P(a rare category wins) under float32 Gumbel-max, exactly over the 2**24 uniforms.

    With the noises sorted (they are monotone in u), the largest of the 999 rare noises sits at
    grid index j with probability ((j+1)/N)**999 - (j/N)**999, and then wins if the mode's noise
    is below it minus the gap (a tie goes to the mode, index 0).
    """
    n = 2**24
    noise = _gumbel_from_uniform(torch.arange(n, dtype=torch.float32) / n)
    idx = torch.arange(n + 1, dtype=torch.float64) / n
    p_max = torch.diff(idx ** (VOCAB - 1))
    beaten = torch.searchsorted(noise, noise - torch.tensor(RARE_GAP, dtype=torch.float32)) / n
    return float((p_max * beaten.double()).sum())


def entropy_summary(draws: int) -> dict[str, Any]:
    rare = (VOCAB - 1) * math.exp(-RARE_GAP)
    exact = rare / (1 + rare)
    hits64, n = rare_frequency(torch.float64, draws)
    hits32, _ = rare_frequency(torch.float32, draws)
    law32 = float32_rare_prob_exact()
    return {
        "rare_prob_exact": exact,
        "rare_hits_float64": hits64,
        "rare_hits_float32": hits32,
        "rare_hits_expected": exact * n,
        "rare_hits_expected_float32_law": law32 * n,
        "draws": n,
        "entropy_exact": entropy(exact),
        "entropy_float64_draws": entropy(hits64 / n),
        "entropy_float32_draws": entropy(hits32 / n),
        "entropy_float32_law": entropy(law32),
        "float64_entropy_gap": entropy(hits64 / n) - entropy(hits32 / n),
        "float64_entropy_gap_exact": entropy(exact) - entropy(law32),
    }


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    batch, length, draws = (16, 128, 200_000) if args.quick else (64, 256, 2_000_000)
    mode = "quick" if args.quick else "full"
    print(
        f"mode: {mode}: {batch} sequences of length {length}, vocabulary {VOCAB} + mask, "
        f"ancestral T = {length} and {4 * length}; {draws} x {VOCAB} Gumbel draws per precision"
    )
    rows = sampler_rows(batch, length)
    print_table(rows)
    slow = next(
        r
        for r in rows
        if r["sampler"] == "ancestral" and r["steps"] == 4 * length and r["cache"] is False
    )
    fhs = next(r for r in rows if r["sampler"] == "first_hitting")
    peer = next(r for r in rows if r["sampler"] == "mdlm_joint_peer")
    ent = entropy_summary(draws)
    print()
    for key, value in ent.items():
        print(f"{key:32s} {value:.6g}" if isinstance(value, float) else f"{key:32s} {value}")
    summary = {
        "fhs_speedup_vs_ancestral": slow["wall_s"] / fhs["wall_s"],
        "fhs_speedup_vs_ancestral_cpu": slow["cpu_s"] / fhs["cpu_s"],
        "fhs_speedup_vs_mdlm_ancestral": peer["wall_s"] / fhs["wall_s"],
        "fhs_nfe": fhs["nfe"],
        "ancestral_nfe": slow["nfe"],
        "mdlm_joint_step_cost_ratio": peer["cpu_s"] / slow["cpu_s"],
        "float64_entropy_gap": ent["float64_entropy_gap"],
        "float64_entropy_gap_exact": ent["float64_entropy_gap_exact"],
    }
    print()
    print_table([summary])
    write_json(args.out, rows, summary, mode=mode, entropy=ent)


if __name__ == "__main__":
    main()
