"""Speech corpora: utterances with text, phones, optional gold durations and a wav file.

Two folder formats are read:

* a prepared corpus (what ``polyfold-speech prepare`` writes): ``corpus.json`` (name, mel
  settings) and ``metadata.jsonl``, one utterance a line with ``id``, ``text``, ``wav`` (relative
  path), ``phones``, ``durations`` (mel frames per phone, or null), ``speaker`` and ``split``;
* LJSpeech: ``metadata.csv`` (``id|text|normalized text``, no header, ``|``-separated) and
  ``wavs/<id>.wav``; its phones come from the front end and its durations from monotonic
  alignment search during training.

Mels are computed with :func:`polyfold.core.audio.log_mel` (HiFi-GAN's settings) from audio read
at the settings' sample rate; a corrupt wav is an InputError naming the file.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from polyfold.core.audio import MelSettings, log_mel, read_audio
from polyfold.core.errors import InputError, reading
from polyfold.core.outputs import write_text
from polyfold.speech.g2p import text_to_phones

__all__ = [
    "Corpus",
    "Utterance",
    "load_corpus",
    "read_ljspeech",
    "utterance_mel",
    "write_corpus",
]


@dataclass(frozen=True)
class Utterance:
    """One recording: ``wav`` relative to its corpus folder, ``durations`` in mel frames."""

    id: str
    text: str
    wav: str
    phones: tuple[str, ...]
    durations: tuple[int, ...] | None = None
    speaker: str = "default"
    split: str = "train"


@dataclass
class Corpus:
    """Utterances of a folder, the mel settings they were prepared for and a data card id."""

    root: Path
    utterances: list[Utterance]
    name: str
    settings: MelSettings = field(default_factory=MelSettings)

    def split(self, name: str) -> list[Utterance]:
        """The utterances of split ``name`` (``"train"`` or ``"test"``)."""
        return [u for u in self.utterances if u.split == name]


def write_corpus(
    root: str | Path, utterances: Sequence[Utterance], *, name: str, settings: MelSettings
) -> Path:
    """Write ``corpus.json`` and ``metadata.jsonl`` of a prepared corpus into ``root``."""
    root = Path(root)
    lines = [json.dumps(asdict(u), ensure_ascii=False) for u in utterances]
    write_text(root / "metadata.jsonl", "\n".join(lines) + "\n")
    write_text(
        root / "corpus.json", json.dumps({"name": name, "mel": asdict(settings)}, indent=2) + "\n"
    )
    return root


def _utterance(record: Any, where: str) -> Utterance:
    if not isinstance(record, dict):
        raise InputError(f"{where}: expected a JSON object")
    try:
        durations = record.get("durations")
        utt = Utterance(
            id=str(record["id"]),
            text=str(record["text"]),
            wav=str(record["wav"]),
            phones=tuple(str(p) for p in record["phones"]),
            durations=None if durations is None else tuple(int(d) for d in durations),
            speaker=str(record.get("speaker", "default")),
            split=str(record.get("split", "train")),
        )
    except (KeyError, TypeError, ValueError) as err:
        raise InputError(f"{where}: expected id, text, wav, phones and durations ({err})") from None
    if utt.durations is not None and len(utt.durations) != len(utt.phones):
        raise InputError(f"{where}: {len(utt.durations)} durations for {len(utt.phones)} phones")
    return utt


def load_corpus(root: str | Path) -> Corpus:
    """A prepared corpus folder, or an LJSpeech folder (``metadata.csv`` + ``wavs/``)."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"data: {root} is not a folder (run `polyfold-speech prepare` first)")
    if not (root / "metadata.jsonl").is_file():
        if (root / "metadata.csv").is_file():
            return read_ljspeech(root)
        raise InputError(
            f"data: {root} holds neither metadata.jsonl (a prepared corpus) nor metadata.csv "
            "(LJSpeech)"
        )
    meta_path = root / "corpus.json"
    with reading(meta_path, "data"):
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        settings = MelSettings(**meta.get("mel", {}))
    path = root / "metadata.jsonl"
    utterances = []
    with reading(path, "data"):
        for k, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if line.strip():
                utterances.append(_utterance(json.loads(line), f"{path} line {k}"))
    if not utterances:
        raise InputError(f"data: {path} lists no utterances")
    return Corpus(root, utterances, str(meta.get("name", root.name)), settings)


def read_ljspeech(root: str | Path, *, n_test: int = 100) -> Corpus:
    """An LJSpeech-format folder: ``metadata.csv`` lines ``id|text[|normalized text]`` (the
    normalised text is used where present) with audio in ``wavs/<id>.wav``. The last ``n_test``
    lines (fewer for a small folder: at most a tenth) are the test split. Phones come from the
    front end; a line without text, or with a character that has no reading, is an InputError
    naming the line."""
    root = Path(root)
    path = root / "metadata.csv"
    if not path.is_file():
        raise InputError(f"data: {path} does not exist (expected an LJSpeech folder)")
    with reading(path, "data"):
        rows = path.read_text(encoding="utf-8").splitlines()
    records = []
    for k, row in enumerate(rows, 1):
        if not row.strip():
            continue
        fields = row.split("|")
        where = f"{path} line {k}"
        if len(fields) not in (2, 3) or not fields[0].strip():
            raise InputError(
                f"{where}: expected 'id|text|normalized text', got {len(fields)} fields"
            )
        uid, text = fields[0].strip(), (fields[-1] or fields[1]).strip()
        if not text:
            raise InputError(f"{where}: the utterance {uid!r} has no text")
        wav = f"wavs/{uid}.wav"
        if not (root / wav).is_file():
            raise InputError(f"{where}: {root / wav} does not exist")
        try:
            phones = tuple(text_to_phones(text))
        except InputError as err:
            raise InputError(f"{where}: {err}") from None
        records.append((uid, text, wav, phones))
    if not records:
        raise InputError(f"data: {path} lists no utterances")
    n_test = min(n_test, len(records) // 10)
    utterances = [
        Utterance(
            uid,
            text,
            wav,
            phones,
            None,
            "default",
            "test" if i >= len(records) - n_test else "train",
        )
        for i, (uid, text, wav, phones) in enumerate(records)
    ]
    return Corpus(root, utterances, "ljspeech")


def utterance_mel(corpus: Corpus, utt: Utterance) -> torch.Tensor:
    """``(n_mels, frames)`` log-mel of an utterance's audio (resampled to the corpus rate)."""
    wave, _ = read_audio(corpus.root / utt.wav, sample_rate=corpus.settings.sample_rate)
    if wave.size < corpus.settings.n_fft:
        raise InputError(f"{corpus.root / utt.wav}: too short for one mel frame")
    mel = log_mel(torch.from_numpy(wave), corpus.settings)
    if utt.durations is not None and sum(utt.durations) != mel.shape[-1]:
        raise InputError(
            f"{corpus.root / utt.wav}: durations sum to {sum(utt.durations)} frames but the "
            f"audio has {mel.shape[-1]}"
        )
    return mel
