"""Words to phones: CMUdict first, the neural grapheme-to-phoneme model that ships in ``g2p-en``
for out-of-vocabulary words.

``g2p_en`` itself is never imported (its ``__init__`` downloads NLTK data at import time, which
fails offline); only its shipped weights ``checkpoint20.npz`` are read, into a GRU encoder-decoder
written here (greedy decoding, as the model was trained). CMUdict is read from the ``cmudict``
package's data file (first pronunciation of each word).
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

import numpy as np
import torch
from torch import nn

from polyfold.core.errors import InputError
from polyfold.speech.normalize import normalize_text
from polyfold.speech.phones import arpabet_to_phone

__all__ = ["NeuralG2P", "cmu_lexicon", "text_to_phones", "word_to_arpabet"]

_GRAPHEMES = ["<pad>", "<unk>", "</s>", *"abcdefghijklmnopqrstuvwxyz"]
_VOWELS = ["AA", "AE", "AH", "AO", "AW", "AY", "EH", "ER", "EY", "IH", "IY", "OW", "OY", "UH", "UW"]
_CONSONANTS = [
    "B",
    "CH",
    "D",
    "DH",
    "F",
    "G",
    "HH",
    "JH",
    "K",
    "L",
    "M",
    "N",
    "NG",
    "P",
    "R",
    "S",
    "SH",
    "T",
    "TH",
    "V",
    "W",
    "Y",
    "Z",
    "ZH",
]
# the model's output vocabulary: specials, then stressed vowels, consonants and a bare "UW", sorted
_G2P_PHONES = [
    "<pad>",
    "<unk>",
    "<s>",
    "</s>",
    *sorted({v + s for v in _VOWELS for s in "012"} | set(_CONSONANTS) | {"UW"}),
]
_MAX_PHONES = 32


def _package_file(package: str, relative: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise InputError(
            f"front end: the {package!r} package is not installed (pip install {package})"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    if not path.is_file():
        raise InputError(f"front end: {path} is missing from the {package!r} package")
    return path


@functools.cache
def cmu_lexicon() -> dict[str, tuple[str, ...]]:
    """``{word: ARPAbet phones}`` from CMUdict (the first pronunciation of each word)."""
    lexicon: dict[str, tuple[str, ...]] = {}
    path = _package_file("cmudict", "data/cmudict.dict")
    for line in path.read_text(encoding="utf-8").splitlines():
        entry = line.split("#", 1)[0].split()
        if len(entry) < 2:
            continue
        word = entry[0]
        if word.endswith(")"):
            continue  # an alternative pronunciation, "lead(2)"
        lexicon.setdefault(word, tuple(entry[1:]))
    return lexicon


class NeuralG2P(nn.Module):
    """g2p-en's GRU encoder-decoder (letters -> ARPAbet) with its shipped weights."""

    def __init__(self, hidden: int = 256) -> None:
        super().__init__()
        self.enc_emb = nn.Embedding(len(_GRAPHEMES), hidden)
        self.encoder = nn.GRUCell(hidden, hidden)
        self.dec_emb = nn.Embedding(len(_G2P_PHONES), hidden)
        self.decoder = nn.GRUCell(hidden, hidden)
        self.fc = nn.Linear(hidden, len(_G2P_PHONES))

    @classmethod
    def shipped(cls) -> NeuralG2P:
        """The model with the weights that ship in the ``g2p-en`` wheel (read with numpy,
        ``allow_pickle=False``)."""
        path = _package_file("g2p_en", "checkpoint20.npz")
        with np.load(path, allow_pickle=False) as w:
            arrays = {k: torch.from_numpy(np.asarray(w[k], dtype=np.float32)) for k in w.files}
        model = cls(hidden=arrays["enc_w_hh"].shape[1])
        state = {"enc_emb.weight": arrays["enc_emb"], "dec_emb.weight": arrays["dec_emb"]}
        for side, cell in (("enc", "encoder"), ("dec", "decoder")):
            for part in ("w_ih", "w_hh", "b_ih", "b_hh"):
                kind = "weight" if part[0] == "w" else "bias"
                state[f"{cell}.{kind}_{part[2:]}"] = arrays[f"{side}_{part}"]
        state["fc.weight"], state["fc.bias"] = arrays["fc_w"], arrays["fc_b"]
        model.load_state_dict(state)
        return model.eval()

    @torch.no_grad()
    def forward(self, word: str) -> list[str]:
        """ARPAbet phones of a lower-case ``word`` (greedy decoding)."""
        index = {g: i for i, g in enumerate(_GRAPHEMES)}
        ids = [index.get(c, 1) for c in word] + [index["</s>"]]
        h = torch.zeros(1, self.encoder.hidden_size)
        for i in ids:
            h = self.encoder(self.enc_emb.weight[i : i + 1], h)
        token, phones = _G2P_PHONES.index("<s>"), []
        for _ in range(_MAX_PHONES):
            h = self.decoder(self.dec_emb.weight[token : token + 1], h)
            token = int(self.fc(h).argmax(-1))
            if _G2P_PHONES[token] == "</s>":
                break
            phones.append(_G2P_PHONES[token])
        return phones


@functools.cache
def _neural_g2p() -> NeuralG2P:
    return NeuralG2P.shipped()


def word_to_arpabet(word: str) -> list[str]:
    """ARPAbet phones of one lower-case word: CMUdict, else the neural model."""
    found = cmu_lexicon().get(word)
    if found is not None:
        return list(found)
    letters = "".join(c for c in word if c.isalpha())
    if not letters:
        raise InputError(f"text: the word {word!r} has no letters to pronounce")
    phones: list[str] = _neural_g2p()(letters)
    return phones


def text_to_phones(text: str) -> list[str]:
    """The phone sequence (:mod:`polyfold.speech.phones` set) of an utterance, with ``pau``
    at both ends and at each phrase or sentence break, as flite places them."""
    phones = ["pau"]
    for token in normalize_text(text):
        if token in ",.":
            if phones[-1] != "pau":
                phones.append("pau")
            continue
        phones += [arpabet_to_phone(p) for p in word_to_arpabet(token)]
    if phones[-1] != "pau":
        phones.append("pau")
    return phones
