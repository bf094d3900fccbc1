"""Training and scoring a motion tokenizer with core's :class:`~polyfold.core.train.Trainer`.

Features are normalised with the training windows' mean and std (stored with the model);
held-out reconstruction is scored as MPJPE in millimetres on the recovered joint positions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import TensorDataset

from polyfold.core.export import load_model, save_model
from polyfold.motion.dataset import MotionDataset
from polyfold.motion.features import joints_from_features
from polyfold.motion.tokenizer import MotionTokenizer, TokenizerConfig, tokenizer_loss
from polyfold.motion.trainer import motion_trainer

__all__ = ["load_tokenizer", "mpjpe_mm", "reconstruct", "train_tokenizer"]


class _Batch(TensorDataset):
    def __getitem__(self, i: int) -> torch.Tensor:  # type: ignore[override]
        return self.tensors[0][i]


def mpjpe_mm(pred: np.ndarray, true: np.ndarray) -> float:
    """Mean per-joint position error in millimetres of joints ``(..., J, 3)`` in metres."""
    return float(np.linalg.norm(pred - true, axis=-1).mean() * 1000.0)


def train_tokenizer(
    data: MotionDataset,
    out_dir: str | Path,
    config: TokenizerConfig | None = None,
    *,
    steps: int = 3000,
    batch_size: int = 64,
    lr: float = 2e-3,
    seed: int = 0,
    quiet: bool = False,
    command: str = "",
    resume: bool = False,
) -> tuple[MotionTokenizer, dict[str, Any]]:
    """Train on the training windows; save ``out_dir/tokenizer.safetensors`` (+ ``.json``
    card with the normalisation, held-out MPJPE and codebook statistics)."""
    torch.manual_seed(seed)
    cfg = config or TokenizerConfig(feature_dim=int(data.features.shape[-1]))
    mean, std = data.stats()
    norm = (data.features - mean) / std
    x = torch.from_numpy(norm[data.indices("train")]).float()
    model = MotionTokenizer(**cfg.__dict__)
    stats: dict[str, float] = {}
    denorm = (torch.from_numpy(mean).float(), torch.from_numpy(std).float())

    def loss_fn(m: torch.nn.Module, batch: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        loss, parts = tokenizer_loss(m, batch, denorm)  # type: ignore[arg-type]
        stats.update(parts)
        return loss

    out = Path(out_dir)
    trainer = motion_trainer(
        model,
        loss_fn,
        _Batch(x),
        out,
        steps=steps,
        batch_size=batch_size,
        lr=lr,
        seed=seed,
        quiet=quiet,
    )
    trainer.fit(resume=resume)
    model.eval()
    metrics = evaluate_tokenizer(model, data, mean, std)
    metrics.update({f"train_{k}": v for k, v in stats.items()})
    save_model(
        model, out / "tokenizer", config=model.model_config(),
        card={"data_card": "deepmimic", "command": command, "metrics": metrics,
              "steps": steps, "batch_size": batch_size, "lr": lr, "seed": seed},
        tensors={"mean": torch.from_numpy(mean).float(), "std": torch.from_numpy(std).float()},
    )  # fmt: skip
    return model, metrics


def reconstruct(
    model: MotionTokenizer, norm: np.ndarray, num_quantizers: int | None = None
) -> np.ndarray:
    """Normalised features through encode/decode (with the first ``num_quantizers`` codes)."""
    with torch.no_grad():
        codes = model.encode(torch.from_numpy(norm).float())
        if num_quantizers is not None:
            codes = codes[..., :num_quantizers]
        return model.decode(codes).numpy()


def evaluate_tokenizer(
    model: MotionTokenizer, data: MotionDataset, mean: np.ndarray, std: np.ndarray
) -> dict[str, float]:
    """Held-out MPJPE (mm) with all codebooks, with the first only, and with all codebooks but
    the true root track (the first four feature groups' 4 values: how much of the error is the
    integrated root trajectory), and codebook usage and perplexity of the first codebook."""
    from polyfold.motion.quantizers import codebook_stats

    idx = data.indices("test")
    norm = (data.features[idx] - mean) / std
    out: dict[str, float] = {}
    for q, key in ((None, "mpjpe_mm"), (1, "mpjpe_mm_first_codebook")):
        rec = reconstruct(model, norm, q) * std + mean
        joints = np.stack([joints_from_features(r) for r in rec])
        out[key] = mpjpe_mm(joints, data.joints[idx])
        if q is None:
            rec[..., :4] = data.features[idx][..., :4]
            true_root = np.stack([joints_from_features(r) for r in rec])
            out["mpjpe_mm_true_root"] = mpjpe_mm(true_root, data.joints[idx])
    codes = model.encode(torch.from_numpy(norm).float())
    usage, perplexity = codebook_stats(codes[..., 0], model.config.num_codes)
    out["usage"] = float(usage)
    out["perplexity"] = float(perplexity)
    return out


def load_tokenizer(
    path: str | Path,
) -> tuple[MotionTokenizer, np.ndarray, np.ndarray, dict[str, Any]]:
    """``(model, mean, std, card)`` of a saved tokenizer."""
    loaded = load_model(path)
    return (loaded.model, loaded.tensors["mean"].numpy(), loaded.tensors["std"].numpy(),
            loaded.card)  # fmt: skip
