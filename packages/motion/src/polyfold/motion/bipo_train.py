"""Training BiPO through core's :class:`~polyfold.core.train.Trainer`: first the part tokenizer
(five VQ-VAEs on the training windows), then the transformer on its frozen part codes. Both
files go to ``out_dir`` (``part_tokenizer`` and ``model``); the model's card names the
tokenizer file with its weights' sha256 and holds the held-out figures under ``metrics``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import TensorDataset

from polyfold.core.errors import check_int
from polyfold.core.export import read_card, save_model
from polyfold.motion.bipo import BiPOTransformer, PartTokenizer, bipo_loss, part_tokenizer_loss
from polyfold.motion.dataset import MotionDataset
from polyfold.motion.features import joints_from_features
from polyfold.motion.mogo_train import encode_windows
from polyfold.motion.train_tokenizer import mpjpe_mm
from polyfold.motion.trainer import motion_trainer

__all__ = ["BiPOSettings", "current_stage", "train_bipo", "train_part_tokenizer"]

TOKENIZER_STAGE = "tokenizer"
"""The sub-folder of a BiPO run's ``out`` where the part tokenizer trains first."""


def current_stage(out: str | Path) -> Path:
    """The folder whose ``run`` holds a BiPO run's newest checkpoint: ``out`` once the
    transformer has checkpointed, the part tokenizer's sub-folder while only it has."""
    from polyfold.core.progress import RUN_FOLDER, checkpoint_step

    out = Path(out)
    first = out / TOKENIZER_STAGE
    if checkpoint_step(out / RUN_FOLDER) is None and checkpoint_step(first / RUN_FOLDER):
        return first
    return out


@dataclass(frozen=True)
class BiPOSettings:
    """Sizes and optimisation of both stages (``p_occlude``: partial occlusion rate;
    ``temperature`` and ``candidates``, forward samples ranked by the backward direction, go
    to the card as sampling defaults)."""

    tokenizer_steps: int = 1500
    steps: int = 1500
    batch_size: int = 32
    lr: float = 2e-3
    num_codes: int = 128
    tokenizer_width: int = 32
    width: int = 64
    layers: int = 2
    p_occlude: float = 0.2
    temperature: float = 1.0
    candidates: int = 8
    seed: int = 0


def _decode_raw(tok: PartTokenizer, codes: Tensor, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    out: np.ndarray = tok.decode(codes).numpy().astype(np.float64) * std + mean
    return out


def train_part_tokenizer(
    data: MotionDataset,
    out_dir: str | Path,
    settings: BiPOSettings,
    *,
    quiet: bool = False,
    command: str = "",
    resume: bool = False,
) -> tuple[PartTokenizer, np.ndarray, np.ndarray, dict[str, float]]:
    """Train the part tokenizer on the training windows; save ``out_dir/part_tokenizer``
    (with the normalisation and the held-out MPJPE in mm)."""
    s = settings
    torch.manual_seed(s.seed)
    mean, std = data.stats()
    x = torch.from_numpy(((data.features[data.indices("train")] - mean) / std).astype(np.float32))
    tok = PartTokenizer(feature_dim=int(x.shape[-1]), width=s.tokenizer_width,
                        code_dim=s.tokenizer_width, num_codes=s.num_codes)  # fmt: skip
    stats: dict[str, float] = {}

    def loss_fn(m: nn.Module, batch: Any, g: torch.Generator) -> Tensor:
        loss, parts = part_tokenizer_loss(m, batch[0])  # type: ignore[arg-type]
        stats.update(parts)
        return loss

    out = Path(out_dir)
    motion_trainer(
        tok, loss_fn, TensorDataset(x), out / TOKENIZER_STAGE, steps=s.tokenizer_steps,
        batch_size=s.batch_size, lr=s.lr, seed=s.seed, quiet=quiet,
    ).fit(resume=resume)  # fmt: skip
    tok.eval()
    held = data.indices("test")
    metrics = {f"train_{k}": v for k, v in stats.items()}
    if len(held):
        rec = _decode_raw(tok, encode_windows(tok, data.features[held], mean, std), mean, std)
        joints = np.stack([joints_from_features(r) for r in rec])
        metrics["mpjpe_mm"] = mpjpe_mm(joints, data.joints[held])
    save_model(
        tok, out / "part_tokenizer", config=tok.model_config(),
        card={"data_card": "deepmimic", "kind": "bipo_tokenizer", "command": command,
              "metrics": metrics},
        tensors={"mean": torch.from_numpy(mean).float(), "std": torch.from_numpy(std).float()},
    )  # fmt: skip
    return tok, mean, std, metrics


def train_bipo(
    data: MotionDataset,
    text_features: np.ndarray,
    out_dir: str | Path,
    settings: BiPOSettings | None = None,
    *,
    quiet: bool = False,
    command: str = "",
    resume: bool = False,
) -> BiPOTransformer:
    """Train the part tokenizer, then the transformer on caption vectors ``text_features
    (N, text_dim)``; save ``out_dir/part_tokenizer`` and ``out_dir/model`` (+ ``.json``)."""
    s = settings or BiPOSettings()
    check_int("steps", s.steps, 1)
    check_int("tokenizer steps", s.tokenizer_steps, 1)
    out = Path(out_dir)
    tok, mean, std, tok_metrics = train_part_tokenizer(
        data, out, s, quiet=quiet, command=command, resume=resume
    )
    idx = data.indices("train")
    codes = encode_windows(tok, data.features[idx], mean, std)
    text = torch.from_numpy(np.asarray(text_features, dtype=np.float32)[idx])
    torch.manual_seed(s.seed)
    net = BiPOTransformer(num_codes=s.num_codes, text_dim=int(text.shape[1]), width=s.width,
                          layers=s.layers, max_tokens=int(codes.shape[1]))  # fmt: skip

    def loss_fn(m: nn.Module, batch: Any, g: torch.Generator) -> Tensor:
        return bipo_loss(m, batch[1], batch[0], g, s.p_occlude)  # type: ignore[arg-type]

    result = motion_trainer(
        net, loss_fn, TensorDataset(codes, text), out, steps=s.steps, batch_size=s.batch_size,
        lr=s.lr, seed=s.seed, quiet=quiet, model_config=net.model_config(),
    ).fit(resume=resume)  # fmt: skip
    net.eval()
    metrics: dict[str, float] = {"part_tokenizer_mpjpe_mm": tok_metrics.get("mpjpe_mm", np.nan)}
    held = data.indices("test")
    if len(held):
        with torch.no_grad():
            test_codes = encode_windows(tok, data.features[held], mean, std)
            test_text = torch.from_numpy(np.asarray(text_features, dtype=np.float32)[held])
            g = torch.Generator().manual_seed(0)
            metrics["held_out_loss"] = float(bipo_loss(net, test_text, test_codes, g))
    save_model(
        net, out / "model", config=net.model_config(),
        card={"data_card": "deepmimic", "kind": "bipo", "command": command,
              "tokenizer": "part_tokenizer",
              "tokenizer_sha256": read_card(out / "part_tokenizer")["weights_sha256"],
              "temperature": s.temperature, "candidates": s.candidates, "train": asdict(s),
              "final_loss": result.loss, "metrics": metrics},
    )  # fmt: skip
    return net
