"""Training Mogo (all RVQ layers) or the T2M-GPT ablation (first layer only) on the codes of a
trained tokenizer, through core's :class:`~polyfold.core.train.Trainer`.

The training windows are encoded once by the (frozen) tokenizer; the transformer learns the
cross-entropy of every token's codes given the caption vector and the earlier tokens. The
model file's card names the tokenizer (``"shipped"`` or a path) with its weights' sha256.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import TensorDataset

from polyfold.core.errors import InputError, check_int
from polyfold.core.export import read_card, save_model
from polyfold.motion.dataset import MotionDataset
from polyfold.motion.mogo import MogoTransformer, mogo_loss
from polyfold.motion.mogo_generate import TOKEN_KINDS
from polyfold.motion.tokenizer import MotionTokenizer
from polyfold.motion.trainer import motion_trainer

if TYPE_CHECKING:
    from polyfold.motion.bipo import PartTokenizer

__all__ = ["TokenTrainSettings", "encode_windows", "train_token_model"]


@dataclass(frozen=True)
class TokenTrainSettings:
    """Network size and optimisation of :func:`train_token_model`."""

    steps: int = 3000
    batch_size: int = 64
    lr: float = 1e-3
    width: int = 128
    base_layers: int = 3
    residual_layers: int = 1
    dropout: float = 0.1
    temperature: float = 1.0
    top_k: int = 0
    seed: int = 0


@torch.no_grad()
def encode_windows(
    tokenizer: MotionTokenizer | PartTokenizer,
    features: np.ndarray,
    mean: np.ndarray,
    std: np.ndarray,
) -> Tensor:
    """Codes ``(N, L / factor, Q)`` of raw feature windows ``(N, L, D)`` (``Q``: the RVQ
    layers, or BiPO's five parts), encoded 256 windows at a time."""
    x = torch.from_numpy(((features - mean) / std).astype(np.float32))
    return torch.cat([tokenizer.encode(x[i : i + 256]) for i in range(0, len(x), 256)])


def train_token_model(
    kind: str,
    data: MotionDataset,
    text_features: np.ndarray,
    out_dir: str | Path,
    settings: TokenTrainSettings | None = None,
    *,
    tokenizer: str | Path = "shipped",
    quiet: bool = False,
    command: str = "",
    resume: bool = False,
) -> MogoTransformer:
    """Train ``kind`` (``mogo`` or ``t2m-gpt``) on the training windows' codes against caption
    vectors ``text_features (N, text_dim)``; save ``out_dir/model.safetensors`` + ``.json``."""
    from polyfold.motion.shipped import shipped_path
    from polyfold.motion.train_tokenizer import load_tokenizer

    if kind not in TOKEN_KINDS:
        raise InputError(f"--model: expected one of {', '.join(TOKEN_KINDS)}, got {kind!r}")
    s = settings or TokenTrainSettings()
    check_int("steps", s.steps, 1)
    tok_path = shipped_path("tokenizer") if str(tokenizer) == "shipped" else Path(tokenizer)
    tok, mean, std, _ = load_tokenizer(tok_path)
    tok.eval()
    idx = data.indices("train")
    codes = encode_windows(tok, data.features[idx], mean, std)
    text = torch.from_numpy(np.asarray(text_features, dtype=np.float32)[idx])
    torch.manual_seed(s.seed)
    net = MogoTransformer(
        num_codes=tok.config.num_codes,
        num_quantizers=tok.config.num_quantizers if kind == "mogo" else 1,
        text_dim=int(text.shape[1]), width=s.width, base_layers=s.base_layers,
        residual_layers=s.residual_layers, max_positions=int(codes.shape[1]), dropout=s.dropout,
    )  # fmt: skip

    def loss_fn(m: nn.Module, batch: Any, g: torch.Generator) -> Tensor:
        return mogo_loss(m, batch[1], batch[0])  # type: ignore[arg-type]

    out = Path(out_dir)
    trainer = motion_trainer(
        net,
        loss_fn,
        TensorDataset(codes, text),
        out,
        steps=s.steps,
        batch_size=s.batch_size,
        lr=s.lr,
        seed=s.seed,
        quiet=quiet,
        model_config=net.model_config(),
    )
    result = trainer.fit(resume=resume)
    net.eval()
    held = data.indices("test")
    test_loss = float("nan")
    if len(held):
        with torch.no_grad():
            test_codes = encode_windows(tok, data.features[held], mean, std)
            test_text = torch.from_numpy(np.asarray(text_features, dtype=np.float32)[held])
            test_loss = float(mogo_loss(net, test_text, test_codes))
    save_model(
        net, out / "model", config=net.model_config(),
        card={"data_card": "deepmimic", "kind": kind, "command": command,
              "tokenizer": "shipped" if str(tokenizer) == "shipped" else str(tok_path),
              "tokenizer_sha256": read_card(tok_path)["weights_sha256"],
              "temperature": s.temperature, "top_k": s.top_k, "train": s.__dict__,
              "final_loss": result.loss, "metrics": {"held_out_cross_entropy": test_loss}},
    )  # fmt: skip
    return net
