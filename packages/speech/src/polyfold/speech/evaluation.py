"""Objective evaluation of synthesised speech, all offline.

* Intelligibility: character and word error rates of the ``pocketsphinx`` recogniser (its
  English acoustic model, language model and dictionary ship in the wheel) against the
  normalised reference text; report them relative to the ground-truth recordings' own rates.
* Quality: DNSMOS P.835 overall score (OVRL) from the ``sig_bak_ovr.onnx`` model that ships in
  the ``speechmos`` wheel, run here with onnxruntime on 16 kHz audio (9.01 s windows, shorter
  clips repeated to fill one, as DNSMOS does; the published polynomial calibration).
* Spectra and pitch: :mod:`polyfold.speech.mcd`.
"""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from polyfold.core.audio import resample
from polyfold.core.errors import InputError
from polyfold.core.extras import install_hint
from polyfold.speech.mcd import WorldFeatures, f0_between, mcd_between, world_features
from polyfold.speech.normalize import normalize_text

__all__ = [
    "ErrorRates",
    "Recognizer",
    "dnsmos_ovrl",
    "edit_distance",
    "error_rates",
    "score_system",
]

ASR_RATE = 16000
DNSMOS_SECONDS = 9.01
# DNSMOS P.835's calibration of the raw OVRL output (non-personalised model)
_OVRL_POLY = np.poly1d([-0.06766283, 1.11546468, 0.04602535])


def edit_distance(a: Sequence[Any], b: Sequence[Any]) -> int:
    """Levenshtein distance between two sequences."""
    row = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, y in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (x != y))
    return row[-1]


@dataclass(frozen=True)
class ErrorRates:
    """Character and word error rates over a set of utterances (errors / reference length)."""

    cer: float
    wer: float


def _words(text: str) -> list[str]:
    try:
        return [t for t in normalize_text(text) if t not in ",."]
    except InputError:
        return []


def error_rates(references: Sequence[str], hypotheses: Sequence[str]) -> ErrorRates:
    """Corpus-level CER and WER of ``hypotheses`` against ``references`` (both normalised:
    numbers spelled out, lower case, punctuation dropped)."""
    if len(references) != len(hypotheses) or not references:
        raise InputError("error_rates: expected as many hypotheses as references (at least one)")
    ce = cn = we = wn = 0
    for ref, hyp in zip(references, hypotheses, strict=True):
        rw, hw = _words(ref), _words(hyp)
        rc, hc = " ".join(rw), " ".join(hw)
        we += edit_distance(rw, hw)
        wn += len(rw)
        ce += edit_distance(rc, hc)
        cn += len(rc)
    return ErrorRates(cer=ce / max(cn, 1), wer=we / max(wn, 1))


def _module_dir(name: str, extra: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise InputError(
            f"evaluation needs the {name!r} package; install {install_hint('speech', extra)}"
        )
    return Path(next(iter(spec.submodule_search_locations)))


class Recognizer:
    """pocketsphinx's English recogniser with its shipped models."""

    def __init__(self) -> None:
        _module_dir("pocketsphinx", "eval")
        from pocketsphinx import Decoder

        self._decoder = Decoder(samprate=ASR_RATE, logfn="/dev/null")

    def __call__(self, wave: np.ndarray, sample_rate: int) -> str:
        x = resample(np.asarray(wave, dtype=np.float32), sample_rate, ASR_RATE)
        pcm = (np.clip(x, -1.0, 1.0) * 32767).astype(np.int16).tobytes()
        d = self._decoder
        d.start_utt()
        d.process_raw(pcm, full_utt=True)
        d.end_utt()
        hyp = d.hyp()
        return hyp.hypstr if hyp is not None else ""


@functools.cache
def _dnsmos_session() -> Any:
    folder = _module_dir("speechmos", "eval")
    path = folder / "dnsmos_models" / "sig_bak_ovr.onnx"
    if not path.is_file():
        raise InputError(f"DNSMOS: {path} is missing from the speechmos wheel")
    try:
        import onnxruntime as ort
    except ImportError:
        raise InputError(
            f"DNSMOS needs onnxruntime; install {install_hint('speech', 'eval')}"
        ) from None
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def dnsmos_ovrl(wave: np.ndarray, sample_rate: int) -> float:
    """DNSMOS P.835 overall quality (1-5) of a clip, averaged over its 9.01 s windows."""
    x = resample(np.asarray(wave, dtype=np.float32), sample_rate, ASR_RATE)
    if x.size == 0:
        raise InputError("DNSMOS: empty audio")
    need = int(DNSMOS_SECONDS * ASR_RATE)
    while x.size < need:
        x = np.concatenate([x, x])
    session = _dnsmos_session()
    hops = int(np.floor(x.size / ASR_RATE) - DNSMOS_SECONDS) + 1
    scores = []
    for k in range(max(hops, 1)):
        seg = x[k * ASR_RATE : k * ASR_RATE + need]
        if seg.size < need:
            continue
        raw = session.run(None, {"input_1": seg[None].astype(np.float32)})[0][0]
        scores.append(float(_OVRL_POLY(raw[2])))
    return float(np.mean(scores))


def score_system(
    references: Sequence[WorldFeatures],
    waves: Sequence[np.ndarray],
    texts: Sequence[str],
    sample_rate: int,
    recognizer: Recognizer,
) -> dict[str, float]:
    """Every objective metric of a system's ``waves`` against the analysed ground truth
    (:func:`polyfold.speech.mcd.world_features` of each reference) of the same ``texts``: MCD
    (DTW, dB), F0 RMSE (Hz), voicing error, CER, WER, DNSMOS OVRL."""
    feats = [world_features(w, sample_rate) for w in waves]
    pairs = list(zip(references, feats, strict=True))
    f0 = [f0_between(g, w) for g, w in pairs]
    rates = error_rates(texts, [recognizer(w, sample_rate) for w in waves])
    return {
        "mcd_db": float(np.mean([mcd_between(g, w) for g, w in pairs])),
        "f0_rmse_hz": float(np.nanmean([e.rmse_hz for e in f0])),
        "voicing_error": float(np.mean([e.voicing_error for e in f0])),
        "cer": rates.cer,
        "wer": rates.wer,
        "dnsmos_ovrl": float(np.mean([dnsmos_ovrl(w, sample_rate) for w in waves])),
    }
