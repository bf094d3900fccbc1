"""Training the MDLM (core's masked-diffusion loss, log-linear schedule) and the AR model
(next-token cross-entropy), both through core's :class:`~polyfold.core.train.Trainer` (EMA,
safetensors checkpoints, exact resume).

:func:`train_text_model` builds the tokenizer (saved as ``tokenizer.json`` in the run folder),
the chunked corpus and the model, trains (resuming the run folder when it holds a checkpoint),
evaluates on the validation split and, when ``export`` names a folder, writes the EMA model
there with its JSON config (command, steps, data card, validation numbers).
"""

from __future__ import annotations

import shlex
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from polyfold.core.discrete import masked_diffusion_loss
from polyfold.core.errors import InputError
from polyfold.core.train import Trainer, load_weights
from polyfold.text.checkpoint import RUN_TOKENIZER, save_model
from polyfold.text.data import TokenChunks, chunk_documents, load_corpus
from polyfold.text.metrics import ar_bpc, mdlm_bpc, mdlm_process
from polyfold.text.model import CausalTransformer, DiffusionTransformer, TransformerConfig
from polyfold.text.tokenizer import BPETokenizer, CharTokenizer, load_tokenizer

__all__ = ["TextTrainConfig", "TrainOutcome", "ar_loss", "mdlm_loss_fn", "train_text_model"]


@dataclass
class TextTrainConfig:
    """What :func:`train_text_model` trains (all saved with the exported model)."""

    kind: Literal["mdlm", "ar"] = "mdlm"
    corpus: str = "shakespeare"
    tokenizer: Literal["char", "bpe"] = "char"
    bpe_vocab: int = 512
    length: int = 128
    separate_documents: bool = False
    d_model: int = 256
    n_layers: int = 4
    n_heads: int = 4
    dropout: float = 0.0
    steps: int = 1000
    batch_size: int = 32
    lr: float = 1e-3
    warmup_steps: int = 100
    ema_decay: float = 0.999
    seed: int = 0
    checkpoint_every: int = 100
    val_chunks: int = 256
    device: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in ("mdlm", "ar"):
            raise InputError(f"kind: expected 'mdlm' or 'ar', got {self.kind!r}")
        if self.tokenizer not in ("char", "bpe"):
            raise InputError(f"tokenizer: expected 'char' or 'bpe', got {self.tokenizer!r}")


@dataclass
class TrainOutcome:
    model: nn.Module
    tokenizer: Any
    run_dir: Path
    steps: int
    metrics: dict[str, float]
    exported: Path | None


def mdlm_loss_fn(process: Any) -> Any:
    """``(model, batch, generator) -> NELBO`` for the trainer; the padding mask is ``cond``."""

    def loss(model: nn.Module, batch: dict[str, Tensor], g: torch.Generator) -> Tensor:
        m = batch["mask"]
        return masked_diffusion_loss(
            model, process, batch["tokens"], generator=g, valid=m, cond=m
        ).loss

    return loss


def ar_loss(model: nn.Module, batch: dict[str, Tensor], g: torch.Generator) -> Tensor:
    """Next-token cross-entropy over valid targets (nats per token)."""
    x, m = batch["tokens"], batch["mask"]
    logits = model(x, m)[:, :-1]
    valid = m[:, 1:]
    return F.cross_entropy(logits[valid].float(), x[:, 1:][valid])


def _last_logged_loss(run_dir: Path) -> float | None:
    """The last loss in the run's ``metrics.csv`` (core's metric log), if any."""
    path = run_dir / "metrics.csv"
    if not path.is_file():
        return None
    rows = [r.split(",") for r in path.read_text().splitlines() if r.strip()]
    if len(rows) < 2 or "loss" not in rows[0]:
        return None
    try:
        return float(rows[-1][rows[0].index("loss")])
    except (ValueError, IndexError):
        return None


def _tokenizer(cfg: TextTrainConfig, docs: list[str], run_dir: Path) -> Any:
    path = run_dir / RUN_TOKENIZER
    if path.is_file():  # a resumed run keeps its vocabulary
        return load_tokenizer(path)
    tok = (
        CharTokenizer.train(docs)
        if cfg.tokenizer == "char"
        else BPETokenizer.train(docs, cfg.bpe_vocab)
    )
    run_dir.mkdir(parents=True, exist_ok=True)
    tok.save(path)
    return tok


def evaluate_model(
    model: nn.Module,
    tokenizer: Any,
    kind: str,
    docs: list[str],
    length: int,
    max_chunks: int,
    *,
    separate: bool = False,
) -> dict[str, float]:
    """Validation bits per character (MDLM bound or AR NLL) on up to ``max_chunks`` chunks."""
    tokens, mask = chunk_documents(docs, tokenizer, length, bos=kind == "ar", separate=separate)
    tokens, mask = tokens[:max_chunks], mask[:max_chunks]
    if kind == "mdlm":
        out = mdlm_bpc(model, tokenizer, tokens, mask)
        return {"val_bpc": out["bpc"], "val_nats_per_token": out["nats_per_token"]}
    out = ar_bpc(model, tokenizer, tokens, mask)
    return {"val_bpc": out["bpc"], "val_nats_per_token": out["nats_per_token"]}


def train_text_model(
    cfg: TextTrainConfig,
    run_dir: str | Path,
    *,
    export: tuple[Path, str] | None = None,
    resume: bool = True,
    quiet: bool = False,
    command: str | None = None,
) -> TrainOutcome:
    """Train per ``cfg`` in ``run_dir``; export to ``export = (folder, name)`` when given."""
    run_dir = Path(run_dir)
    train_docs, card = load_corpus(cfg.corpus, "train")
    val_docs, _ = load_corpus(cfg.corpus, "validation")
    tokenizer = _tokenizer(cfg, train_docs, run_dir)
    bos = cfg.kind == "ar"
    tokens, mask = chunk_documents(
        train_docs,
        tokenizer,
        cfg.length,
        bos=bos,
        separate=cfg.separate_documents,
        eos=cfg.separate_documents,
    )
    mcfg = TransformerConfig(
        vocab_size=tokenizer.vocab_size,
        d_model=cfg.d_model,
        n_layers=cfg.n_layers,
        n_heads=cfg.n_heads,
        max_length=cfg.length,
        dropout=cfg.dropout,
    )
    model: nn.Module = DiffusionTransformer(mcfg) if cfg.kind == "mdlm" else CausalTransformer(mcfg)
    loss = mdlm_loss_fn(mdlm_process(tokenizer)) if cfg.kind == "mdlm" else ar_loss
    command = command or shlex.join([Path(sys.executable).name, *sys.argv])
    trainer = Trainer(
        model,
        loss,
        TokenChunks(tokens, mask),
        out_dir=run_dir,
        max_steps=cfg.steps,
        batch_size=cfg.batch_size,
        lr=cfg.lr,
        warmup_steps=min(cfg.warmup_steps, cfg.steps),
        ema_decay=cfg.ema_decay,
        seed=cfg.seed,
        checkpoint_every=cfg.checkpoint_every,
        data_card=card,
        quiet=quiet,
        device=cfg.device,
        min_lr_ratio=0.1,
    )
    trainer.command = command
    start = time.perf_counter()
    result = trainer.fit(resume=resume)
    wall = time.perf_counter() - start
    model = model.cpu()
    if result.checkpoint is not None:
        load_weights(result.checkpoint, model)  # the EMA weights
    model.eval()
    metrics = evaluate_model(
        model,
        tokenizer,
        cfg.kind,
        val_docs,
        cfg.length,
        cfg.val_chunks,
        separate=cfg.separate_documents,
    )
    last = _last_logged_loss(run_dir) if result.loss is None else float(result.loss)
    if last is not None:
        metrics["train_loss_last"] = last
    if wall > 1.0:  # a session that trained (a resumed, finished run only exports)
        metrics["train_wall_s_this_session"] = wall
    exported = None
    if export is not None:
        folder, name = export
        exported = save_model(
            model,
            tokenizer,
            folder,
            name,
            data_card=card,
            command=command,
            steps=result.step,
            training=asdict(cfg),
            metrics=metrics,
            corpus_chunks=int(tokens.shape[0]),
            validation=(
                f"{cfg.corpus} validation split, first {cfg.val_chunks} chunks of {cfg.length}"
            ),
        )
    return TrainOutcome(model, tokenizer, run_dir, result.step, metrics, exported)
