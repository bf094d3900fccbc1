"""PaD-TS's ablation: the same network, seed and steps trained with and without the population
loss, compared by FDDS (and VDS and the correlational score) against the real windows."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import numpy as np
import torch
from torch import Tensor

from polyfold.core.errors import InputError
from polyfold.timeseries.metrics import correlational_score, fdds, vds
from polyfold.timeseries.padts.config import PaDTSConfig
from polyfold.timeseries.padts.model import as_windows, train_padts

__all__ = ["ablation"]


def ablation(
    windows: np.ndarray | Tensor,
    config: PaDTSConfig,
    *,
    n_samples: int | None = None,
    sampler: str | None = None,
    sample_steps: int | None = None,
    seeds: tuple[int, ...] = (0,),
    quiet: bool = True,
) -> dict[str, Any]:
    """Train PaD-TS with ``config.alpha`` and with ``alpha = 0`` for each seed (same seed, data,
    steps and network for both), sample ``n_samples`` windows from each (default: as many as
    ``windows``, at most 2000) with the same sampler generator, and score them on ``windows``.

    Returns ``{"runs": [...], "fdds": {"padts": mean, "ablation": mean},
    "fdds_ratio": padts / ablation, "vds": {...}, "correlational": {...}}``; each run records
    the seed, alpha, training seconds and its scores.
    """
    x = as_windows(windows)
    if not isinstance(config, PaDTSConfig):
        raise InputError(f"config: expected a PaDTSConfig, got {type(config).__name__}")
    if config.alpha == 0:
        raise InputError("config: expected alpha > 0 (the ablation trains the alpha = 0 twin)")
    if not seeds or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        raise InputError(f"seeds: expected a non-empty tuple of integer seeds, got {seeds!r}")
    n = min(len(x), 2000) if n_samples is None else n_samples
    runs: list[dict[str, Any]] = []
    for seed in seeds:
        for alpha in (float(config.alpha), 0.0):
            cfg = dataclasses.replace(config, alpha=alpha, seed=seed)
            t0 = time.perf_counter()
            model = train_padts(x, cfg, quiet=quiet)
            t1 = time.perf_counter()
            fake = model.sample(
                n,
                generator=torch.Generator().manual_seed(10_000 + seed),
                sampler=sampler,
                steps=sample_steps,
            )
            t2 = time.perf_counter()
            runs.append(
                {
                    "seed": seed,
                    "alpha": alpha,
                    "train_s": round(t1 - t0, 2),
                    "sample_s": round(t2 - t1, 2),
                    "fdds": fdds(x, fake),
                    "vds": vds(x, fake, generator=seed),
                    "correlational": correlational_score(x, fake),
                }
            )

    def mean(key: str, padts: bool) -> float:
        vals = [r[key] for r in runs if (r["alpha"] > 0) == padts]
        return float(np.mean(vals))

    out: dict[str, Any] = {"runs": runs}
    for key in ("fdds", "vds", "correlational"):
        out[key] = {"padts": mean(key, True), "ablation": mean(key, False)}
    out["fdds_ratio"] = out["fdds"]["padts"] / max(out["fdds"]["ablation"], 1e-12)
    return out
