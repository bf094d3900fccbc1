"""MMDM: the MDM-style motion denoiser trained with masks in its motion embedding.

During training each window is, with equal probability, left whole, given a **time-frame
mask** (a random ``frame_ratio`` share of its frames have their embedding replaced by a learned
frame token) or a **body-part mask** (one or two of five parts: root+torso, each arm, each leg
lose their feature dimensions, and a learned token per masked part is added); the network must
still predict the whole clean window. This makes it learn the relations between frames and
between body parts. Sampling uses no masks: the same 50-step DDPM as part 1's baseline
(core's ``ddpm`` sampler), so ``mmdm`` against ``ddpm`` compares the same network and budget
with and without masked training.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import TensorDataset

from polyfold.core.errors import InputError, check_int
from polyfold.core.export import load_model, read_card, register_model, save_model
from polyfold.core.losses import dsm_loss
from polyfold.motion.dataset import MotionDataset
from polyfold.motion.denoiser import MotionDenoiser
from polyfold.motion.emdm import MotionModel, motion_path
from polyfold.motion.features import LAYOUT, FeatureLayout
from polyfold.motion.trainer import motion_trainer

__all__ = [
    "BODY_PARTS",
    "MaskSettings",
    "MaskedEmbedding",
    "MaskedMotionDenoiser",
    "draw_masks",
    "is_mmdm_file",
    "load_mmdm",
    "part_feature_dims",
    "train_mmdm",
]

BODY_PARTS: dict[str, tuple[str, ...]] = {
    "torso": ("root", "chest", "neck"),
    "right_arm": ("right_shoulder", "right_elbow", "right_wrist"),
    "left_arm": ("left_shoulder", "left_elbow", "left_wrist"),
    "right_leg": ("right_hip", "right_knee", "right_ankle"),
    "left_leg": ("left_hip", "left_knee", "left_ankle"),
}


def part_feature_dims(layout: FeatureLayout = LAYOUT) -> dict[str, list[int]]:
    """The feature dimensions of each body part: its joints' ``ric``, rotations, hinge
    angles, velocities and foot contacts (the root track belongs to the torso)."""
    sk, g = layout.skeleton, layout.groups
    balls, hinges = sk.joints_of("ball"), sk.joints_of("hinge")
    out: dict[str, list[int]] = {}
    for part, names in BODY_PARTS.items():
        dims: list[int] = []
        for j in (sk.index(n) for n in names):
            if j == 0:
                r6 = g["rot6d"].start
                dims += [*range(g["root_height"].stop), *range(r6, r6 + 6)]
            else:
                dims += range(g["ric"].start + 3 * (j - 1), g["ric"].start + 3 * j)
            if j in balls:
                s = g["rot6d"].start + 6 * (1 + balls.index(j))
                dims += range(s, s + 6)
            if j in hinges:
                s = g["hinge"].start + 2 * hinges.index(j)
                dims += range(s, s + 2)
            dims += range(g["joint_vel"].start + 3 * j, g["joint_vel"].start + 3 * j + 3)
        foot = {"left_leg": 0, "right_leg": 1}.get(part)
        if foot is not None:
            dims.append(g["contact"].start + foot)
        out[part] = sorted(dims)
    return out


class MaskedEmbedding(nn.Module):
    """MMDM's input projection of feature rows ``(B, L, D) -> (B, L, width)``: with
    :attr:`masks` set to ``(frames (B, L), parts (B, P))`` booleans, masked parts lose their
    features and gain a learned part token, masked frames become a learned frame token."""

    member: Tensor

    def __init__(self, feature_dim: int, width: int) -> None:
        super().__init__()
        dims = part_feature_dims()
        if feature_dim != LAYOUT.dim:
            raise InputError(f"mmdm feature_dim: expected {LAYOUT.dim}, got {feature_dim}")
        self.linear = nn.Linear(feature_dim, width)
        self.frame_token = nn.Parameter(torch.zeros(width))
        self.part_tokens = nn.Parameter(torch.zeros(len(dims), width))
        member = torch.zeros(len(dims), feature_dim)
        for i, d in enumerate(dims.values()):
            member[i, d] = 1.0
        self.register_buffer("member", member, persistent=False)
        self.masks: tuple[Tensor, Tensor] | None = None

    def forward(self, x: Tensor) -> Tensor:
        if self.masks is None:
            return self.linear(x)  # type: ignore[no-any-return]
        frames, parts = self.masks
        p = parts.to(x.dtype)
        keep = 1.0 - (p @ self.member).clamp(max=1.0)
        h = self.linear(x * keep[:, None]) + (p @ self.part_tokens)[:, None]
        return torch.where(frames[..., None], self.frame_token.expand_as(h), h)


@register_model("motion.MaskedMotionDenoiser")
class MaskedMotionDenoiser(MotionDenoiser):
    """:class:`MotionDenoiser` whose input projection is a :class:`MaskedEmbedding`."""

    def __init__(self, **config: object) -> None:
        super().__init__(**config)
        self.inp = MaskedEmbedding(self.config.feature_dim, self.config.width)  # type: ignore[assignment]

    @property
    def embedding(self) -> MaskedEmbedding:
        """The masked input projection (set its ``masks`` for a training step)."""
        return cast(MaskedEmbedding, self.inp)


@dataclass(frozen=True)
class MaskSettings:
    """Per window: whole / frame mask / part mask in proportions ``p_frames``, ``p_parts``
    (the rest whole); a frame mask hides ``frame_ratio`` of the frames, a part mask one or
    two parts."""

    p_frames: float = 1 / 3
    p_parts: float = 1 / 3
    frame_ratio: float = 0.4

    def __post_init__(self) -> None:
        ok = min(self.p_frames, self.p_parts) >= 0 and self.p_frames + self.p_parts <= 1
        if not ok or not 0 < self.frame_ratio < 1:
            raise InputError("mask settings: expected p_frames, p_parts >= 0 summing to <= 1 "
                             "and 0 < frame_ratio < 1")  # fmt: skip


def draw_masks(
    batch: int, length: int, s: MaskSettings, g: torch.Generator, device: torch.device
) -> tuple[Tensor, Tensor]:
    """``(frames (B, L), parts (B, P))`` boolean masks for one training batch."""
    u = torch.rand(batch, generator=g, device=device)
    use_frames, use_parts = u < s.p_frames, (u >= s.p_frames) & (u < s.p_frames + s.p_parts)

    def ranks(n: int) -> Tensor:  # a random permutation of 0..n-1 per row
        return torch.rand(batch, n, generator=g, device=device).argsort(1).argsort(1)

    frames = ranks(length) < max(1, round(s.frame_ratio * length))
    parts = ranks(len(BODY_PARTS)) < torch.randint(1, 3, (batch, 1), generator=g, device=device)
    return frames & use_frames[:, None], parts & use_parts[:, None]


def train_mmdm(
    data: MotionDataset,
    text_features: np.ndarray,
    out_dir: str | Path,
    *,
    steps: int = 2000,
    batch_size: int = 32,
    lr: float = 5e-4,
    width: int = 96,
    layers: int = 2,
    masks: MaskSettings | None = None,
    seed: int = 0,
    quiet: bool = False,
    command: str = "",
    resume: bool = False,
) -> MaskedMotionDenoiser:
    """Train MMDM like part 1's ``ddpm`` (core's ``dsm_loss``, x0 prediction, same optimiser)
    with masked embeddings; save ``out_dir/model.safetensors`` + ``.json``."""
    check_int("steps", steps, 1)
    m_set = masks or MaskSettings()
    torch.manual_seed(seed)
    mean, std = data.stats()
    idx = data.indices("train")
    x = torch.from_numpy((data.features[idx] - mean) / std).float()
    text = torch.from_numpy(np.asarray(text_features)[idx]).float()
    net = MaskedMotionDenoiser(feature_dim=int(x.shape[-1]), text_dim=int(text.shape[-1]),
                               width=width, layers=layers)  # fmt: skip
    path = motion_path()

    def loss_fn(m: nn.Module, batch: Any, g: torch.Generator) -> Tensor:
        x0 = batch[0]
        net.embedding.masks = draw_masks(x0.shape[0], x0.shape[1], m_set, g, x0.device)
        try:
            return dsm_loss(m, x0, path=path, prediction="x0", cond=batch[1], generator=g)
        finally:
            net.embedding.masks = None

    out = Path(out_dir)
    trainer = motion_trainer(
        net, loss_fn, TensorDataset(x, text), out, steps=steps, batch_size=batch_size, lr=lr,
        seed=seed, quiet=quiet, model_config=net.model_config(),
        optimizer=lambda p: torch.optim.Adam(p, lr=lr, betas=(0.5, 0.9)),
    )  # fmt: skip
    result = trainer.fit(resume=resume)
    net.eval()
    save_model(
        net, out / "model", config=net.model_config(),
        card={"data_card": "deepmimic", "kind": "mmdm", "command": command,
              "path": repr(path), "sample_steps": 50, "masks": m_set.__dict__,
              "train": {"steps": steps, "batch_size": batch_size, "lr": lr, "seed": seed},
              "final_loss": result.loss},
        tensors={"mean": torch.from_numpy(mean).float(), "std": torch.from_numpy(std).float()},
    )  # fmt: skip
    return net


def load_mmdm(path: str | Path) -> MotionModel:
    """A file written by :func:`train_mmdm`, sampled like the DDPM baseline."""
    loaded = load_model(path)
    card = dict(loaded.card)
    if card.get("kind") != "mmdm":
        raise InputError(f"{path}: not an MMDM model file (card kind {card.get('kind')!r})")
    return MotionModel(loaded.model, "mmdm", loaded.tensors["mean"].numpy(),
                       loaded.tensors["std"].numpy(), card)  # fmt: skip


def is_mmdm_file(path: str | Path) -> bool:
    """Whether ``path`` (a model file pair) holds an MMDM model."""
    try:
        return bool(read_card(path).get("card", {}).get("kind") == "mmdm")
    except (InputError, OSError, ValueError):
        return False
