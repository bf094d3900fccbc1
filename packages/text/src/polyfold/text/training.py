"""Training the MDLM (core's masked-diffusion loss, log-linear schedule) and the AR model
(next-token cross-entropy), both through core's :class:`~polyfold.core.train.Trainer` (EMA,
safetensors checkpoints, exact resume).

:func:`train_text_model` is the one training function: it builds the tokenizer (saved as
``tokenizer.json`` in the run folder), the training chunks and the model, trains (resuming the
run folder when it holds a checkpoint), evaluates on the validation chunks and, when ``export``
names a folder, writes the EMA model there with its JSON config (command, steps, data card,
validation numbers). What it trains on is a :class:`TrainingData`: by default
:func:`corpus_data` (a corpus cut into chunks); :func:`json_records_data` is S^3's null-augmented
JSON-records layout, and :func:`train_json_records_mdlm` the preset of the shipped
``json-records-char-mdlm``.
"""

from __future__ import annotations

import dataclasses
import shlex
import sys
import time
from collections.abc import Callable, Sequence
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
from polyfold.text.json_records import (
    JSON_RECORDS_CARD,
    json_records,
    json_records_corpus,
    json_records_schema,
    null_augmented_chunks,
)
from polyfold.text.metrics import ar_bpc, mdlm_bpc, mdlm_process
from polyfold.text.model import CausalTransformer, DiffusionTransformer, TransformerConfig
from polyfold.text.tokenizer import BPETokenizer, CharTokenizer, Tokenizer, load_tokenizer

__all__ = [
    "TextTrainConfig",
    "TrainOutcome",
    "TrainingData",
    "ar_loss",
    "corpus_data",
    "json_records_config",
    "json_records_data",
    "mdlm_loss_fn",
    "train_json_records_mdlm",
    "train_text_model",
]

Chunks = Callable[[Tokenizer], tuple[Tensor, Tensor]]
"""``chunks(tokenizer) -> (tokens (N, L), mask (N, L))``."""


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
    """Settings of a non-default :class:`TrainingData` (saved with the model)."""

    def __post_init__(self) -> None:
        if self.kind not in ("mdlm", "ar"):
            raise InputError(f"kind: expected 'mdlm' or 'ar', got {self.kind!r}")
        if self.tokenizer not in ("char", "bpe"):
            raise InputError(f"tokenizer: expected 'char' or 'bpe', got {self.tokenizer!r}")


@dataclass(frozen=True)
class TrainingData:
    """What a run trains and validates on: ``chunks`` and ``validation`` cut the data with the
    run's tokenizer, a new tokenizer is trained on ``tokenizer_docs``; ``card`` (data card id)
    and ``description`` (of the validation chunks) are saved with the model."""

    chunks: Chunks
    validation: Chunks
    tokenizer_docs: Sequence[str]
    card: str | None
    description: str


def corpus_data(cfg: TextTrainConfig) -> TrainingData:
    """``cfg.corpus`` (:func:`~polyfold.text.data.load_corpus`) cut into ``cfg.length`` chunks
    (with ``[BOS]`` for the AR model; each document on its own, ``[EOS]``-terminated, with
    ``cfg.separate_documents``)."""
    train_docs, card = load_corpus(cfg.corpus, "train")
    val_docs, _ = load_corpus(cfg.corpus, "validation")
    bos, separate = cfg.kind == "ar", cfg.separate_documents

    def chunks(tok: Tokenizer) -> tuple[Tensor, Tensor]:
        return chunk_documents(
            train_docs, tok, cfg.length, bos=bos, separate=separate, eos=separate
        )

    def validation(tok: Tokenizer) -> tuple[Tensor, Tensor]:
        return chunk_documents(val_docs, tok, cfg.length, bos=bos, separate=separate)

    note = f"{cfg.corpus} validation split, first {cfg.val_chunks} chunks of {cfg.length}"
    return TrainingData(chunks, validation, train_docs, card, note)


def json_records_data(cfg: TextTrainConfig) -> TrainingData:
    """S^3's layout of the JSON-records corpus (:func:`~polyfold.text.json_records.
    null_augmented_chunks`): ``cfg.extra["copies"]`` copies of each training record with up to
    ``cfg.extra["max_nulls"]`` ``[NULL]`` after every value; validation one copy without nulls;
    the tokenizer sees every record."""
    schema = json_records_schema()
    copies, max_nulls = int(cfg.extra.get("copies", 16)), int(cfg.extra.get("max_nulls", 6))

    def chunks(tok: Tokenizer) -> tuple[Tensor, Tensor]:
        return null_augmented_chunks(
            json_records("train"),
            schema,
            tok,
            length=cfg.length,
            copies=copies,
            max_nulls=max_nulls,
            seed=cfg.seed,
        )

    def validation(tok: Tokenizer) -> tuple[Tensor, Tensor]:
        return null_augmented_chunks(
            json_records("validation"), schema, tok, length=cfg.length, copies=1, seed=cfg.seed
        )

    note = "json-records validation split (33 records, no nulls, [EOS]-filled)"
    return TrainingData(chunks, validation, json_records_corpus("all"), JSON_RECORDS_CARD, note)


@dataclass
class TrainOutcome:
    """What :func:`train_text_model` returns."""

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
    tokens: Tensor,
    mask: Tensor,
    max_chunks: int,
) -> dict[str, float]:
    """Validation bits per character (MDLM bound or AR NLL) on up to ``max_chunks`` chunks."""
    tokens, mask = tokens[:max_chunks], mask[:max_chunks]
    bpc = mdlm_bpc if kind == "mdlm" else ar_bpc
    out = bpc(model, tokenizer, tokens, mask)
    return {"val_bpc": out["bpc"], "val_nats_per_token": out["nats_per_token"]}


def train_text_model(
    cfg: TextTrainConfig,
    run_dir: str | Path,
    *,
    data: TrainingData | None = None,
    export: tuple[Path, str] | None = None,
    resume: bool = True,
    quiet: bool = False,
    command: str | None = None,
) -> TrainOutcome:
    """Train per ``cfg`` on ``data`` (default :func:`corpus_data`) in ``run_dir``; export to
    ``export = (folder, name)`` when given."""
    run_dir = Path(run_dir)
    data = corpus_data(cfg) if data is None else data
    tokenizer = _tokenizer(cfg, list(data.tokenizer_docs), run_dir)
    tokens, mask = data.chunks(tokenizer)
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
        data_card=data.card,
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
        model, tokenizer, cfg.kind, *data.validation(tokenizer), cfg.val_chunks
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
            data_card=data.card,
            command=command,
            steps=result.step,
            training=asdict(cfg),
            metrics=metrics,
            corpus_chunks=int(tokens.shape[0]),
            validation=data.description,
        )
    return TrainOutcome(model, tokenizer, run_dir, result.step, metrics, exported)


def json_records_config(**overrides: Any) -> TextTrainConfig:
    """The settings of the shipped ``json-records-char-mdlm`` (a character MDLM, 4 blocks of
    width 128, context 208, 3000 steps; 16 null-augmented copies with up to 6 nulls), with
    ``overrides`` (fields of :class:`TextTrainConfig`; ``copies``/``max_nulls`` go to
    ``extra``)."""
    extra = {"copies": overrides.pop("copies", 16), "max_nulls": overrides.pop("max_nulls", 6)}
    base = TextTrainConfig(
        kind="mdlm",
        corpus="json-records",
        length=208,
        d_model=128,
        steps=3000,
        checkpoint_every=250,
        extra=extra,
    )
    return dataclasses.replace(base, **overrides)


def train_json_records_mdlm(
    run_dir: str | Path,
    *,
    export: tuple[Path, str] | None = None,
    quiet: bool = True,
    command: str | None = None,
    **overrides: Any,
) -> TrainOutcome:
    """:func:`train_text_model` with :func:`json_records_config` on :func:`json_records_data`
    (S^3's model; ``overrides`` as in :func:`json_records_config`)."""
    cfg = json_records_config(**overrides)
    return train_text_model(
        cfg, run_dir, data=json_records_data(cfg), export=export, quiet=quiet, command=command
    )
