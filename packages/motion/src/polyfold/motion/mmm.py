"""MMM: a conditional masked motion transformer over motion tokens (Pinyoanuntapong et al.).

Tokens are the first-codebook codes of the shipped RVQ tokenizer (one token per 4 frames; 256
codes). :class:`MaskedMotionTransformer` sees, in one bidirectional sequence, the caption's
MiniLM sentence vector, its MiniLM word tokens (padding masked out of attention) and the motion
tokens (the mask token is id ``num_codes``); it returns logits over the codes for every motion
position. Training is core's masked-diffusion loss on a cosine masking schedule
(:func:`~polyfold.core.discrete.masked_diffusion_loss`), optionally with core's CDCD contrastive
term (:func:`~polyfold.core.discrete.cdcd_loss`), through core's Trainer. Generation is core's
confidence-based sampler by name (``get_sampler("confidence", kind="masked")``): parallel,
iterative decoding, and editing by fixing the tokens that stay (see :mod:`polyfold.motion.edit`).

Decoding goes through the tokenizer: generated positions carry the first codebook only; given
positions keep all the codebooks of the motion they came from.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import TensorDataset

from polyfold.core.discrete import (
    CosineSchedule,
    MaskedProcess,
    TokenSample,
    cdcd_loss,
    inter_negatives,
    intra_negatives,
    masked_diffusion_loss,
)
from polyfold.core.errors import InputError, check_int
from polyfold.core.export import load_model, register_model, save_model
from polyfold.core.samplers import get_sampler
from polyfold.motion.dataset import MotionDataset
from polyfold.motion.denoiser import time_embedding
from polyfold.motion.tokenizer import MotionTokenizer
from polyfold.motion.trainer import motion_trainer

__all__ = [
    "MMM",
    "MMMConfig",
    "MMMSettings",
    "MaskedMotionTransformer",
    "TextCondition",
    "load_mmm",
    "mmm_process",
    "text_condition",
    "train_mmm",
]

TextCondition = tuple[Tensor, Tensor, Tensor]
"""``(words (B, T, token_dim), word_mask (B, T) bool, vector (B, text_dim))``."""


@dataclass(frozen=True)
class MMMConfig:
    num_codes: int = 256
    text_dim: int = 384
    token_dim: int = 384
    width: int = 128
    layers: int = 3
    heads: int = 4
    dropout: float = 0.1


def mmm_process(num_codes: int) -> MaskedProcess:
    """Cosine masking (MMM's schedule) with the mask token right after the codes."""
    return MaskedProcess(CosineSchedule(), mask_id=num_codes)


@register_model("motion.MaskedMotionTransformer")
class MaskedMotionTransformer(nn.Module):
    """``forward(x_t (B, n), t (B,), cond: TextCondition) -> logits (B, n, num_codes + 1)``
    (``t`` is unused: the masked positions say how far decoding is)."""

    def __init__(self, **config: object) -> None:
        super().__init__()
        cfg = MMMConfig(**config)  # type: ignore[arg-type]
        self.config = cfg
        w = cfg.width
        self.tokens = nn.Embedding(cfg.num_codes + 1, w)
        self.words = nn.Linear(cfg.token_dim, w)
        self.vector = nn.Linear(cfg.text_dim, w)
        self.kind = nn.Embedding(3, w)  # sentence vector, word, motion
        layer = nn.TransformerEncoderLayer(
            w, cfg.heads, 4 * w, cfg.dropout, activation="gelu", batch_first=True, norm_first=True
        )
        self.body = nn.TransformerEncoder(layer, cfg.layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(w)
        self.out = nn.Linear(w, cfg.num_codes + 1)

    def model_config(self) -> dict[str, object]:
        return asdict(self.config)

    def forward(self, x_t: Tensor, t: Tensor, cond: TextCondition) -> Tensor:
        words, word_mask, vector = cond
        b, n = x_t.shape
        if words.shape[0] != b or word_mask.shape != words.shape[:2] or vector.shape[0] != b:
            raise InputError(
                f"cond: expected text for {b} sequences (words (B, T, d), mask (B, T), vector "
                f"(B, d)), got {tuple(words.shape)}, {tuple(word_mask.shape)}, "
                f"{tuple(vector.shape)}"
            )
        w = self.config.width
        kinds = self.kind.weight
        h_vec = self.vector(vector)[:, None] + kinds[0]
        h_words = self.words(words) + kinds[1]
        pos = time_embedding(torch.arange(n, device=x_t.device).float(), w, scale=1.0)
        h_motion = self.tokens(x_t) + pos[None] + kinds[2]
        keep = torch.ones(b, 1, dtype=torch.bool, device=x_t.device)
        pad = ~torch.cat([keep, word_mask, keep.expand(b, n)], dim=1)
        h = self.body(torch.cat([h_vec, h_words, h_motion], dim=1), src_key_padding_mask=pad)
        out: Tensor = self.out(self.norm(h[:, -n:]))
        return out


def text_condition(captions: list[str], encoder: Any = None) -> TextCondition:
    """The MiniLM condition of ``captions`` (``encoder`` default: the shipped MiniLM)."""
    from polyfold.motion.text_encoder import encode_captions, load_text_encoder

    enc = encoder if encoder is not None else load_text_encoder()
    unique = sorted({c.strip() for c in captions})
    words, mask = enc.encode_tokens(unique)
    vec = torch.from_numpy(encode_captions(enc, unique))
    row = {c: i for i, c in enumerate(unique)}
    idx = torch.tensor([row[c.strip()] for c in captions])
    return words[idx].float(), mask[idx], vec[idx].float()


@dataclass(frozen=True)
class MMMSettings:
    """Optimisation of :func:`train_mmm`; ``cdcd`` None (plain masked loss), ``"step"`` or
    ``"sample"`` (core's CDCD with ``intra`` + ``inter`` negatives per window)."""

    steps: int = 1500
    batch_size: int = 32
    lr: float = 5e-4
    cdcd: str | None = None
    cdcd_weight: float = 0.1
    intra: int = 1
    inter: int = 2
    intra_fraction: float = 0.5
    sample_steps: int = 10
    temperature: float = 1.0
    seed: int = 0


def _load_tokenizer(path: str | Path | None) -> tuple[MotionTokenizer, Tensor, Tensor]:
    from polyfold.motion.shipped import shipped_path
    from polyfold.motion.train_tokenizer import load_tokenizer

    tok, mean, std, _ = load_tokenizer(path or shipped_path("tokenizer"))
    tok.eval()
    return tok, torch.from_numpy(mean).float(), torch.from_numpy(std).float()


def train_mmm(
    data: MotionDataset,
    out_dir: str | Path,
    settings: MMMSettings | None = None,
    *,
    tokenizer: str | Path | None = None,
    width: int = 128,
    layers: int = 3,
    quiet: bool = False,
    command: str = "",
    resume: bool = False,
) -> MaskedMotionTransformer:
    """Train MMM on the training windows' first-codebook tokens (tokenizer default: shipped);
    save ``out_dir/model.safetensors`` + ``.json``."""
    s = settings or MMMSettings()
    check_int("steps", s.steps, 1)
    if s.cdcd not in (None, "step", "sample"):
        raise InputError(f"cdcd: expected none, step or sample, got {s.cdcd!r}")
    torch.manual_seed(s.seed)
    tok, mean, std = _load_tokenizer(tokenizer)
    idx = data.indices("train")
    x = (torch.from_numpy(data.features[idx]).float() - mean) / std
    tokens = tok.encode(x)[..., 0].long()
    captions = [data.captions[i] for i in idx]
    unique = sorted({c.strip() for c in captions})
    table = text_condition(unique)
    cap_idx = torch.tensor([unique.index(c.strip()) for c in captions])
    v = tok.config.num_codes
    dims = {"text_dim": int(table[2].shape[-1]), "token_dim": int(table[0].shape[-1])}
    net = MaskedMotionTransformer(num_codes=v, width=width, layers=layers, **dims)
    process = mmm_process(v)
    stats: dict[str, float] = {}

    def loss_fn(m: nn.Module, batch: Any, g: torch.Generator) -> Tensor:
        x0, ci = batch
        cond = (table[0][ci], table[1][ci], table[2][ci])
        if s.cdcd is None:
            return masked_diffusion_loss(m, process, x0, generator=g, cond=cond).loss
        negs = []
        if s.intra:
            negs.append(intra_negatives(x0, s.intra, vocab_size=v + 1, mask_id=v,
                                        fraction=s.intra_fraction, generator=g))  # fmt: skip
        if s.inter:
            negs.append(inter_negatives(x0, s.inter))
        out = cdcd_loss(m, process, x0, torch.cat(negs, dim=1), generator=g, cond=cond,
                        mode=s.cdcd, weight=s.cdcd_weight)  # fmt: skip
        stats.update(
            diffusion=float(out.diffusion.detach()), contrastive=float(out.contrastive.detach())
        )
        return out.loss

    out = Path(out_dir)
    trainer = motion_trainer(
        net,
        loss_fn,
        TensorDataset(tokens, cap_idx),
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
    save_model(
        net, out / "model", config=net.model_config(),
        card={"data_card": "deepmimic", "kind": "mmm", "command": command,
              "tokenizer": str(tokenizer) if tokenizer else "shipped",
              "sample_steps": s.sample_steps, "temperature": s.temperature,
              "train": s.__dict__, "final_loss": result.loss, "final_parts": stats},
    )  # fmt: skip
    return net


@dataclass
class MMM:
    """A trained MMM with its tokenizer: token generation, decoding and text-to-motion."""

    net: MaskedMotionTransformer
    tokenizer: MotionTokenizer
    mean: Tensor
    std: Tensor
    card: dict[str, Any]
    kind: str = "mmm"
    encoder: Any = None
    last_nfe: int = 0

    def condition(self, captions: list[str]) -> TextCondition:
        """The text condition of ``captions`` (the MiniLM encoder loaded on first use)."""
        if self.encoder is None:
            from polyfold.motion.text_encoder import load_text_encoder

            self.encoder = load_text_encoder()
        return text_condition(list(captions), self.encoder)

    @property
    def process(self) -> MaskedProcess:
        return mmm_process(self.net.config.num_codes)

    @property
    def factor(self) -> int:
        """Frames per token."""
        return self.tokenizer.factor

    @torch.no_grad()
    def encode(self, features: np.ndarray) -> Tensor:
        """All codebooks ``(N, n, Q)`` of raw feature windows ``(N, n * factor, D)``."""
        x = (torch.from_numpy(np.asarray(features, dtype=np.float32)) - self.mean) / self.std
        return self.tokenizer.encode(x).long()

    @torch.no_grad()
    def decode(
        self, first: Tensor, full: Tensor | None = None, keep: Tensor | None = None
    ) -> np.ndarray:
        """Raw features ``(N, n * factor, D)`` of first-codebook tokens ``(N, n)``; where
        ``keep (N, n)`` is True the residual codebooks of ``full (N, n, Q)`` are added back."""
        q = self.tokenizer.quantizer
        b, n = first.shape
        z = q.decode_codes(first.reshape(b * n, 1)).reshape(b, n, -1)
        if full is not None and keep is not None and full.shape[-1] > 1:
            flat = full.reshape(b * n, -1)
            residual = (q.decode_codes(flat) - q.decode_codes(flat[:, :1])).reshape(b, n, -1)
            z = z + residual * keep[..., None].to(z.dtype)
        x = self.tokenizer._decode_latent(z)
        return (x * self.std + self.mean).numpy()

    @torch.no_grad()
    def generate_tokens(
        self,
        cond: TextCondition,
        tokens: Tensor,
        fixed: Tensor | None = None,
        *,
        steps: int | None = None,
        seed: int = 0,
        temperature: float | None = None,
    ) -> TokenSample:
        """Fill every non-``fixed`` position of ``tokens (N, n)`` by core's confidence sampler
        in ``steps`` (default: the card's) steps; fixed positions come back unchanged."""
        n = int(steps or self.card.get("sample_steps", 10))
        check_int("steps", n, 1)
        temp = float(self.card.get("temperature", 1.0) if temperature is None else temperature)
        sampler = get_sampler("confidence", kind="masked")
        g = torch.Generator().manual_seed(seed)
        out: TokenSample = sampler(self.net, self.process, tokens.long(), steps=n, generator=g,
                                   fixed=fixed, cond=cond, temperature=temp)  # fmt: skip
        self.last_nfe = out.nfe
        return out

    def generate(
        self, captions: list[str], frames: int, *, steps: int | None = None, seed: int = 0
    ) -> np.ndarray:
        """Raw feature windows ``(N, frames, D)``, one per caption."""
        check_int("frames", frames, 1)
        n = -(-frames // self.factor)
        cond = self.condition(list(captions))
        blank = torch.zeros(len(captions), n, dtype=torch.long)
        res = self.generate_tokens(cond, blank, steps=steps, seed=seed)
        return self.decode(res.tokens)[:, :frames]

    def sample(
        self,
        text: np.ndarray,
        length: int,
        *,
        steps: int | None = None,
        seed: int = 0,
        captions: list[str] | None = None,
    ) -> np.ndarray:
        """The :class:`~polyfold.motion.emdm.MotionModel` interface; MMM needs ``captions``
        (its condition is the caption's word tokens as well as ``text``)."""
        if captions is None or len(captions) != len(text):
            raise InputError("captions: MMM needs the caption strings, one per text vector")
        return self.generate(list(captions), length, steps=steps, seed=seed)


def load_mmm(path: str | Path) -> MMM:
    """An MMM model file written by :func:`train_mmm` (with its tokenizer)."""
    loaded = load_model(path)
    card = dict(loaded.card)
    if card.get("kind") != "mmm":
        raise InputError(f"{path}: not an MMM model file (card kind {card.get('kind')!r})")
    tok_ref = card.get("tokenizer", "shipped")
    tok, mean, std = _load_tokenizer(None if tok_ref == "shipped" else tok_ref)
    net = loaded.model
    net.eval()
    return MMM(net, tok, mean, std, card)  # type: ignore[arg-type]
