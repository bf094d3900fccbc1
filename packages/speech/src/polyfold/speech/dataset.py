"""Training batches: phone ids, durations and normalised mels of a corpus, padded, plus random
fixed-length mel segments for the denoiser (as Grad-TTS trains on segments)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Dataset

from polyfold.core.errors import InputError
from polyfold.speech.corpus import Corpus, Utterance, utterance_mel
from polyfold.speech.phones import phone_ids

__all__ = ["MelDataset", "collate", "mel_statistics"]


class MelDataset(Dataset[dict[str, Any]]):
    """Utterances of a corpus with their log-mels ``(T, n_mels)`` computed once."""

    def __init__(self, corpus: Corpus, utterances: Sequence[Utterance]) -> None:
        if not utterances:
            raise InputError(f"data: {corpus.root} has no utterances in this split")
        self.items: list[dict[str, Any]] = []
        for u in utterances:
            mel = utterance_mel(corpus, u).T.contiguous()
            ids = torch.tensor(phone_ids(u.phones, where=f"{corpus.root} utterance {u.id}"))
            dur = None if u.durations is None else torch.tensor(u.durations, dtype=torch.long)
            self.items.append({"ids": ids, "durations": dur, "mel": mel, "id": u.id})

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.items[i]


def mel_statistics(data: MelDataset) -> tuple[Tensor, Tensor]:
    """Per-bin mean and standard deviation of all training frames."""
    frames = torch.cat([item["mel"] for item in data.items])
    return frames.mean(0), frames.std(0)


def _pad(seqs: list[Tensor]) -> tuple[Tensor, Tensor]:
    n = max(s.shape[0] for s in seqs)
    out = seqs[0].new_zeros((len(seqs), n, *seqs[0].shape[1:]))
    mask = torch.zeros(len(seqs), n, dtype=torch.bool)
    for i, s in enumerate(seqs):
        out[i, : s.shape[0]] = s
        mask[i, : s.shape[0]] = True
    return out, mask


def collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Pad a list of :class:`MelDataset` items: ``ids``/``phone_mask`` ``(B, N)``,
    ``durations`` ``(B, N)`` (or None when any item lacks them), ``mel``/``frame_mask``
    ``(B, T, n_mels)``/``(B, T)``."""
    ids, phone_mask = _pad([it["ids"] for it in items])
    mel, frame_mask = _pad([it["mel"] for it in items])
    durs = [it["durations"] for it in items]
    durations = None if any(d is None for d in durs) else _pad(durs)[0]
    return {
        "ids": ids,
        "phone_mask": phone_mask,
        "durations": durations,
        "mel": mel,
        "frame_mask": frame_mask,
    }
