"""polyfold-speech's quickstart: the shipped ProDiff (2 steps) and CoMoSpeech (1 step) models
speak a few sentences through HiFi-GAN (Griffin-Lim when the ``hifigan`` extra is missing).

Registered in the ``polyfold.quickstart`` entry-point group. Writes ``out/report.html`` (an audio
player and mel image per utterance, the metric table), ``out/<model>-<k>.wav`` and
``out/speech-quickstart.json`` (the metrics). Metrics: NFE, the mel stage's real-time factor on
one CPU thread, and, where the ``eval`` extra is installed, pocketsphinx's word and character
error rates and DNSMOS OVRL. Offline.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from polyfold.core.errors import InputError
from polyfold.core.outputs import write_text
from polyfold.core.quickstart import quickstart_run
from polyfold.core.report import Report

__all__ = ["MARKER", "SENTENCES", "quickstart"]

MARKER = "speech-quickstart.json"
SENTENCES = (
    "Now is the winter of our discontent.",
    "All the world's a stage, and all the men and women merely players.",
)
SAMPLE_RATE = 22050


def _vocoder(echo: Any) -> Any:
    from polyfold.speech.vocoder import load_vocoder

    try:
        return load_vocoder("hifigan")
    except InputError as err:
        echo(f"HiFi-GAN unavailable ({err}); using Griffin-Lim")
        return load_vocoder("griffin-lim")


def _scorers(echo: Any) -> tuple[Any, Any]:
    """pocketsphinx and DNSMOS, or ``(None, None)`` without the ``eval`` extra."""
    from polyfold.speech.evaluation import Recognizer, dnsmos_ovrl

    try:
        return Recognizer(), dnsmos_ovrl
    except (InputError, ImportError) as err:
        echo(f"evaluation extra missing ({err}); reporting NFE and RTF only")
        return None, None


def quickstart(out: Path, *, quiet: bool = False) -> Path:
    """Run the quickstart; write ``out/report.html`` and return its path."""
    from polyfold.core.audio import write_audio
    from polyfold.speech.evaluation import error_rates
    from polyfold.speech.g2p import text_to_phones
    from polyfold.speech.generate import SHIPPED, load_acoustic
    from polyfold.speech.report import add_utterance
    from polyfold.speech.synthesis import synthesize

    out = Path(out)
    with quickstart_run("speech", out, quiet=quiet, marker=MARKER) as echo:
        vocoder = _vocoder(echo)
        recognizer, dnsmos = _scorers(echo)
        report = Report("polyfold-speech quickstart: ProDiff (2 steps) and CoMoSpeech (1 step)")
        report.paragraph(
            "Shipped CPU-trained models (see the model card: a tiny model trained minutes on "
            f"flite-slt), vocoder {vocoder.name}. Real-time factor: mel-stage seconds per second "
            "of audio, one thread."
        )
        rows, metrics = [], {}
        text_to_phones(SENTENCES[0])  # load the lexicon and G2P model before any timing
        for name in SHIPPED:
            model = load_acoustic(name)
            echo(f"{name}: speaking {len(SENTENCES)} sentences")
            hyps, scores, mel_time, audio_time, nfe = [], [], 0.0, 0.0, 0
            report.heading(f"{name} ({model.cfg.steps} step{'s' if model.cfg.steps > 1 else ''})")
            for k, text in enumerate(SENTENCES):
                t0 = time.perf_counter()
                result = synthesize(model, text, seed=k)
                mel_time += time.perf_counter() - t0
                nfe = result.nfe
                wave = vocoder(result.mel[None])[0]
                audio_time += wave.shape[-1] / SAMPLE_RATE
                write_audio(out / f"{name}-{k}.wav", wave, SAMPLE_RATE)
                add_utterance(report, f"{name}: {text}", wave, result.mel, SAMPLE_RATE)
                if recognizer is not None:
                    hyps.append(recognizer(wave.numpy(), SAMPLE_RATE))
                    scores.append(dnsmos(wave.numpy(), SAMPLE_RATE))
            row: dict[str, Any] = {"nfe": nfe, "mel_rtf_1thread": mel_time / audio_time}
            if hyps:
                rates = error_rates(SENTENCES, hyps)
                row.update(cer=rates.cer, wer=rates.wer, dnsmos_ovrl=sum(scores) / len(scores))
            metrics[name] = row
            rows.append(
                [
                    name,
                    *(
                        row.get(k, "n/a")
                        for k in ("nfe", "mel_rtf_1thread", "cer", "wer", "dnsmos_ovrl")
                    ),
                ]
            )
        report.heading("Metrics")
        report.table(
            [
                "model",
                "NFE",
                "mel RTF (1 thread, lower is better)",
                "CER (lower)",
                "WER (lower)",
                "DNSMOS OVRL (higher)",
            ],
            rows,
        )
        write_text(out / MARKER, json.dumps(metrics, indent=2) + "\n")
        path = report.write(out / "report.html")
        echo(f"wrote {path}")
    return path
