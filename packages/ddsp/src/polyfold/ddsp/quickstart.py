"""polyfold-ddsp's quickstart: resynthesis of a held-out violin phrase with the shipped model,
its dry version (the learned reverb dropped), and a timbre transfer (a flute phrase's f0 and
loudness played by the violin model), with players, spectrograms and the metric table; then the
shipped speech vocoder on a held-out mel (:mod:`polyfold.ddsp.vocoder_demo`).

Registered in the ``polyfold.quickstart`` entry-point group. Offline, one CPU thread: the
phrases are rendered from fluid-solo's test seeds, which the shipped model never saw.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from polyfold.core.outputs import write_report, write_text
from polyfold.core.quickstart import quickstart_run
from polyfold.core.report import Report

__all__ = ["MARKER", "quickstart"]

MARKER = "ddsp-quickstart.json"


def quickstart(out: Path, *, quiet: bool = False) -> Path:
    """Run the quickstart; write ``out/report.html`` and return its path."""
    from polyfold.ddsp.data import fluid_solo
    from polyfold.ddsp.evaluation import audio_metrics, transfer_metrics
    from polyfold.ddsp.report import add_audio
    from polyfold.ddsp.shipped import load_autoencoder
    from polyfold.ddsp.synthesis import render, write_wav
    from polyfold.ddsp.vocoder_demo import vocode_heldout

    out = Path(out)
    t0 = time.perf_counter()
    with quickstart_run("ddsp", out, quiet=quiet, marker=MARKER) as echo:
        loaded = load_autoencoder("violin")
        model = loaded.model
        echo("rendering a held-out violin phrase and a flute phrase (fluid-solo test seeds)")
        violin = fluid_solo("violin", "test", 1)
        flute = fluid_solo("flute", "test", 1)
        echo("resynthesis, dry resynthesis and flute -> violin transfer")
        resynth = render(model, violin.f0, violin.loudness)
        dry = render(model, violin.f0, violin.loudness, reverb=False)
        transfer = render(model, flute.f0, flute.loudness)
        for name, audio in (("resynth", resynth), ("dry", dry), ("transfer", transfer)):
            write_wav(out / f"{name}.wav", audio[0])
        metrics = audio_metrics(resynth, violin)
        metrics["transfer_raw_pitch_accuracy_50c"] = transfer_metrics(model, flute)[
            "raw_pitch_accuracy_50c"
        ]
        report = Report("polyfold-ddsp quickstart: DDSP resynthesis and timbre transfer")
        report.paragraph(
            "fluid-solo phrases are rendered from seeded random melodies with vibrato and "
            "expression by a General MIDI soundfont (TimGM6mb); the model gets only the exact f0 "
            "and the A-weighted loudness of each phrase and synthesises harmonics, filtered noise "
            "and a room reverb (gain and decay learned). Model card: trained with "
            f"`{loaded.card.get('command', '?')}`."
        )
        report.heading("Metrics (one held-out violin phrase)")
        rows = [
            ("multi-scale spectral loss", metrics["mss"], "lower", "issue goal <= 6.0"),
            ("loudness L1 (dB)", metrics["loudness_l1_db"], "lower", "<= 1.0"),
            ("re-tracked f0 L1 (semitones, steady frames)", metrics["f0_l1_semitones"], "lower",
             "<= 0.15"),
            ("f0 outlier ratio (> 1 semitone)", metrics["f0_outlier_ratio"], "lower", "0"),
            ("f0 L1, every frame (note changes too)", metrics["f0_l1_semitones_all_frames"],
             "lower", "sawtooth at the exact f0: 0.12"),
            ("transfer raw pitch accuracy (50 c)", metrics["transfer_raw_pitch_accuracy_50c"],
             "higher", ">= 0.95"),
        ]  # fmt: skip
        report.table(["metric", "value", "better", "reference"], rows)
        report.heading("Violin: original, resynthesis, dry (reverb dropped)")
        add_audio(report, "original (fluid-solo test phrase)", violin.audio[0])
        add_audio(report, "DDSP resynthesis", resynth[0])
        add_audio(report, "DDSP resynthesis without the learned reverb", dry[0])
        report.heading("Timbre transfer: a flute phrase played by the violin model")
        add_audio(report, "flute (source)", flute.audio[0])
        add_audio(report, "violin model", transfer[0])
        echo("the speech vocoder on a held-out mel")
        speech, vocoder = vocode_heldout()
        sr = int(vocoder["sample_rate"])
        write_wav(out / "vocoded.wav", speech, sample_rate=sr)
        report.heading("DDSP vocoder: a held-out mel of flite's slt voice -> waveform")
        report.paragraph(
            f"{vocoder['seconds_of_audio']:.1f} s of speech in "
            f"{vocoder['rtf_1thread'] * vocoder['seconds_of_audio']:.2f} CPU seconds on one thread "
            f"(real-time factor {vocoder['rtf_1thread']:.3f}); log-mel L1 of the output against "
            f"the input mel {vocoder['mel_l1']:.3f}. The mel is a sentence the vocoder never "
            "trained on."
        )
        add_audio(report, "DDSP vocoder (shipped slt)", speech, sample_rate=sr)
        path = write_report(report, out / "report.html")
        summary = {"metrics": metrics, "vocoder": vocoder, "seconds": time.perf_counter() - t0}
        write_text(out / MARKER, json.dumps(summary, indent=2) + "\n")
        echo(f"done in {summary['seconds']:.1f} s")
    return path
