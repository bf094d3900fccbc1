"""The in-house text-motion evaluator: a motion encoder trained contrastively against the
frozen caption encoder, with an action-class head.

It replaces HumanML3D's evaluator (which only ships from a hub): ``embed`` gives the motion
embedding (FID, KID, Diversity), its unit vector is compared with the caption's unit sentence
vector (R-precision, MM-Dist), and ``logits`` classify the action (accuracy; single-action
windows only). Inputs are normalised feature windows ``(B, L, D)``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import TensorDataset

from polyfold.core.errors import InputError
from polyfold.core.export import load_model, register_model, save_model
from polyfold.motion.captions import ACTIONS
from polyfold.motion.dataset import MotionDataset
from polyfold.motion.metrics import accuracy, bootstrap, diversity, fid, kid, mm_dist, r_precision
from polyfold.motion.trainer import motion_trainer

__all__ = [
    "EvaluatorConfig",
    "MotionEvaluator",
    "embed_features",
    "evaluate_set",
    "load_evaluator",
    "train_evaluator",
]


@dataclass(frozen=True)
class EvaluatorConfig:
    feature_dim: int = 155
    width: int = 128
    text_dim: int = 384
    num_classes: int = len(ACTIONS)
    temperature: float = 0.07


@register_model("motion.MotionEvaluator")
class MotionEvaluator(nn.Module):
    def __init__(self, **config: object) -> None:
        super().__init__()
        cfg = EvaluatorConfig(**config)  # type: ignore[arg-type]
        self.config = cfg
        w = cfg.width
        self.net = nn.Sequential(
            nn.Conv1d(cfg.feature_dim, w, 3, padding=1), nn.SiLU(),
            nn.Conv1d(w, w, 4, stride=2, padding=1), nn.SiLU(),
            nn.Conv1d(w, w, 3, padding=2, dilation=2), nn.SiLU(),
            nn.Conv1d(w, w, 4, stride=2, padding=1), nn.SiLU(),
        )  # fmt: skip
        self.proj = nn.Linear(2 * w, cfg.text_dim)
        self.head = nn.Linear(cfg.text_dim, cfg.num_classes)

    def model_config(self) -> dict[str, object]:
        return asdict(self.config)

    def embed(self, x: Tensor) -> Tensor:
        """Motion embeddings ``(B, text_dim)`` of normalised feature windows ``(B, L, D)``."""
        if x.ndim != 3 or x.shape[-1] != self.config.feature_dim:
            raise InputError(
                f"evaluator input: expected (B, L, {self.config.feature_dim}), got {tuple(x.shape)}"
            )
        h = self.net(x.transpose(1, 2))
        return self.proj(torch.cat([h.mean(-1), h.amax(-1)], dim=-1))

    def logits(self, emb: Tensor) -> Tensor:
        return self.head(emb)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        emb = self.embed(x)
        return emb, self.logits(emb)


def _loss(
    model: MotionEvaluator, x: Tensor, text: Tensor, labels: Tensor, text_id: Tensor
) -> Tensor:
    emb, logits = model(x)
    sim = F.normalize(emb, dim=-1) @ text.T / model.config.temperature
    same = text_id[:, None] == text_id[None, :]
    eye = torch.eye(len(x), dtype=torch.bool, device=x.device)
    sim = sim.masked_fill(same & ~eye, float("-inf"))  # a duplicate caption is no negative
    target = torch.arange(len(x), device=x.device)
    nce = 0.5 * (F.cross_entropy(sim, target) + F.cross_entropy(sim.T, target))
    single = labels >= 0
    ce = F.cross_entropy(logits[single], labels[single]) if bool(single.any()) else nce * 0
    return nce + ce


def train_evaluator(
    data: MotionDataset,
    text_features: np.ndarray,
    out_dir: str | Path,
    *,
    steps: int = 2000,
    batch_size: int = 64,
    lr: float = 1e-3,
    seed: int = 0,
    quiet: bool = False,
    command: str = "",
    resume: bool = False,
) -> MotionEvaluator:
    """Train on the training windows against unit caption vectors ``text_features (N, 384)``
    (one per window); save ``out_dir/evaluator.safetensors`` with the feature normalisation."""
    torch.manual_seed(seed)
    mean, std = data.stats()
    idx = data.indices("train")
    x = torch.from_numpy((data.features[idx] - mean) / std).float()
    text = torch.from_numpy(text_features[idx]).float()
    labels = torch.from_numpy(np.where(data.labels2[idx] < 0, data.labels[idx], -1)).long()
    _, text_id = np.unique(np.array(data.captions)[idx], return_inverse=True)
    model = MotionEvaluator(feature_dim=int(x.shape[-1]), text_dim=int(text.shape[-1]))

    def loss_fn(m: nn.Module, batch: Any, g: torch.Generator) -> Tensor:
        return _loss(m, *batch)  # type: ignore[arg-type]

    ds = TensorDataset(x, text, labels, torch.from_numpy(text_id).long())
    trainer = motion_trainer(
        model,
        loss_fn,
        ds,
        out_dir,
        steps=steps,
        batch_size=batch_size,
        lr=lr,
        seed=seed,
        quiet=quiet,
        warmup=100,
    )
    trainer.fit(resume=resume)
    model.eval()
    save_model(
        model, Path(out_dir) / "evaluator", config=model.model_config(),
        card={"data_card": "deepmimic", "command": command, "steps": steps,
              "batch_size": batch_size, "lr": lr, "seed": seed},
        tensors={"mean": torch.from_numpy(mean).float(), "std": torch.from_numpy(std).float()},
    )  # fmt: skip
    return model


def load_evaluator(
    path: str | Path,
) -> tuple[MotionEvaluator, np.ndarray, np.ndarray, dict[str, Any]]:
    """``(model, mean, std, card)`` of a saved evaluator."""
    loaded = load_model(path)
    return (loaded.model, loaded.tensors["mean"].numpy(), loaded.tensors["std"].numpy(),
            loaded.card)  # fmt: skip


@torch.no_grad()
def embed_features(
    model: MotionEvaluator, features: np.ndarray, mean: np.ndarray, std: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``(embeddings, logits)`` of raw (un-normalised) feature windows ``(N, L, D)``."""
    x = torch.from_numpy((np.asarray(features) - mean) / std).float()
    embs, logits = [], []
    for chunk in torch.split(x, 256):
        e, lg = model(chunk)
        embs.append(e.numpy())
        logits.append(lg.numpy())
    return np.concatenate(embs).astype(np.float64), np.concatenate(logits)


def evaluate_set(
    emb: np.ndarray,
    logits: np.ndarray,
    text: np.ndarray,
    labels: np.ndarray,
    real_emb: np.ndarray,
    *,
    reps: int = 100,
    seed: int = 0,
) -> dict[str, tuple[float, float, float]]:
    """Every metric of one motion set as ``(value, low, high)`` (95 % bootstrap interval):
    ``fid`` and ``kid`` against ``real_emb``, ``diversity``, ``r_precision_top1/3``,
    ``mm_dist``, and ``accuracy`` over rows whose ``labels`` are >= 0."""
    n = len(emb)
    single = np.flatnonzero(labels >= 0)

    def rprec(k: int) -> tuple[float, float, float]:
        return bootstrap(lambda i: r_precision(text[i], emb[i], seed=seed)[k], n, reps, seed)

    out = {
        "fid": bootstrap(lambda i: fid(emb[i], real_emb), n, reps, seed),
        "kid": bootstrap(lambda i: kid(emb[i], real_emb), n, reps, seed),
        "diversity": bootstrap(lambda i: diversity(emb[i], seed=seed), n, reps, seed),
        "r_precision_top1": rprec(1),
        "r_precision_top3": rprec(3),
        "mm_dist": bootstrap(lambda i: mm_dist(text[i], emb[i]), n, reps, seed),
    }  # fmt: skip
    if len(single):
        out["accuracy"] = bootstrap(
            lambda i: accuracy(logits[single[i]], labels[single[i]]), len(single), reps, seed
        )
    return out
