"""DDSP's benchmark: resynthesis of held-out fluid-solo violin clips by the shipped autoencoder
against WORLD analysis-synthesis (pyworld), Griffin-Lim from the true magnitudes and a
band-limited sawtooth at the exact f0 with the clip's frame envelope; timbre transfer (flute
clips' f0 and loudness into the violin model); the fused oscillator kernel against its
reference on CUDA.

    python apps/bench/ddsp.py --quick --out runs/bench/ddsp.json

Every method sees the same clips (fluid-solo test seeds, never trained on); every output is
scored by the same code (:func:`polyfold.ddsp.evaluation.audio_metrics`): multi-scale spectral
loss, loudness L1 over loud frames, f0 re-tracked with YIN on the output against the exact f0
on the frames where that f0 is steady across YIN's window (``*_all_frames``: every loud voiced
frame, note changes included, where even the exact-f0 sawtooth has outliers).
Summary (goals from issue 29): ``mss_violin`` (<= 6.0), ``mss_over_world`` (< 0.75),
``loudness_l1_db`` (<= 1.0), ``f0_l1_semitones`` (<= 0.15) and ``f0_outlier_ratio`` (0),
``transfer_raw_pitch_accuracy_50c`` (>= 0.95), ``ddsp_rtf_1thread`` (seconds per second of
audio), ``oscillator_kernel_speedup`` (CUDA only; "no CUDA" otherwise).

The vocoder table: the shipped DDSP vocoder (``slt``), polyfold-speech's shipped HiFi-GAN and
Griffin-Lim (the floor) on the same mels (core's log_mel) of held-out flite-slt sentences (the
corpus' test lines, spoken by flite: ``flite`` must be on PATH, else the rows are skipped),
scored against the real wav: DNSMOS OVRL and MCD (WORLD mel-cepstra, DTW) from polyfold-speech's
evaluation; their real-time factor is CPU seconds on one thread per second of audio. Keys:
``vocoder_rtf_1thread`` (<= 0.05), ``vocoder_dnsmos_minus_hifigan`` (>= -0.3),
``vocoder_mcd_db`` and ``hifigan_mcd_db``.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch
from _common import parse_args, print_table, time_call, write_json  # type: ignore[import-not-found]

from polyfold.core.audio import load_pyworld
from polyfold.ddsp.data import Clips, fluid_solo
from polyfold.ddsp.evaluation import audio_metrics, transfer_metrics
from polyfold.ddsp.fluid import HOP, SAMPLE_RATE
from polyfold.ddsp.processors import harmonic_synth
from polyfold.ddsp.shipped import load_autoencoder
from polyfold.ddsp.synthesis import render


def world(clips: Clips) -> np.ndarray:
    """pyworld analysis (Harvest f0, CheapTrick, D4C) and synthesis of each clip."""
    pyworld = load_pyworld("ddsp", "bench")

    out = []
    for a in clips.audio.astype(np.float64):
        f0, t = pyworld.harvest(a, SAMPLE_RATE, f0_floor=60.0, frame_period=HOP / 16)
        sp = pyworld.cheaptrick(a, f0, t, SAMPLE_RATE)
        ap = pyworld.d4c(a, f0, t, SAMPLE_RATE)
        y = pyworld.synthesize(f0, sp, ap, SAMPLE_RATE, frame_period=HOP / 16)
        out.append(np.pad(y, (0, max(0, len(a) - len(y))))[: len(a)])
    return np.stack(out)


def griffin_lim(clips: Clips, n_iter: int) -> np.ndarray:
    """Griffin-Lim (librosa, momentum 0.99) from the true STFT magnitudes (n_fft 1024, hop 256)."""
    import librosa

    out = []
    for a in clips.audio.astype(np.float64):
        mag = np.abs(librosa.stft(a, n_fft=1024, hop_length=256))
        y = librosa.griffinlim(mag, n_iter=n_iter, hop_length=256, n_fft=1024, random_state=0)
        out.append(np.pad(y, (0, max(0, len(a) - len(y))))[: len(a)])
    return np.stack(out)


def sawtooth(clips: Clips, n_harmonics: int = 60) -> np.ndarray:
    """Band-limited sawtooth (harmonics 1/k below Nyquist) at the exact f0, scaled per frame to
    the clip's RMS: an oracle-envelope baseline."""
    f0 = torch.as_tensor(clips.f0, dtype=torch.float64)
    k = torch.arange(1, n_harmonics + 1, dtype=torch.float64)
    amps = (1 / k).expand(*f0.shape, n_harmonics).clone()
    saw = harmonic_synth(f0, amps, SAMPLE_RATE, HOP).numpy()
    n, t = clips.audio.shape
    frames = lambda x: x.reshape(n, t // HOP, HOP)  # noqa: E731
    gain = np.sqrt(
        (frames(clips.audio) ** 2).mean(-1) / np.maximum((frames(saw) ** 2).mean(-1), 1e-12)
    )
    return (frames(saw) * gain[..., None]).reshape(n, t)


def kernel_speedup(quick: bool) -> Any:
    """Reference time / kernel time of the oscillator (forward + backward) on CUDA."""
    if not torch.cuda.is_available():
        return "no CUDA"
    from polyfold.core.ops.oscillator import (
        harmonic_oscillator_reference,
        harmonic_oscillator_triton,
    )

    b, t, k = (4, 16000, 60) if quick else (16, 64000, 100)
    f0 = (100 + 900 * torch.rand(b, t, device="cuda")).requires_grad_()
    amps = torch.rand(b, t, k, device="cuda", requires_grad=True)

    def step(fn: Any) -> None:
        fn(f0, amps, float(SAMPLE_RATE)).square().sum().backward()

    ref = time_call(lambda: step(harmonic_oscillator_reference))
    ker = time_call(lambda: step(harmonic_oscillator_triton))
    return ref / ker


def vocoders(quick: bool) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """DDSP vocoder, HiFi-GAN and Griffin-Lim on the same held-out mels: rows and summary keys."""
    import shutil

    from polyfold.core.audio import MelSettings, log_mel
    from polyfold.ddsp.shipped import load_vocoder
    from polyfold.speech.evaluation import dnsmos_ovrl
    from polyfold.speech.flite import shakespeare_lines, speak_with_flite
    from polyfold.speech.mcd import mcd_db
    from polyfold.speech.vocoder import griffin_lim
    from polyfold.speech.vocoder import load_vocoder as load_speech_vocoder

    if shutil.which("flite") is None:
        return [], dict.fromkeys(
            ("vocoder_rtf_1thread", "vocoder_dnsmos_minus_hifigan"), "no flite"
        )
    settings = MelSettings()
    sr = settings.sample_rate
    lines = shakespeare_lines(1200, seed=0)[1100:][: 3 if quick else 20]  # the corpus' test split
    truth = [speak_with_flite(text, "slt", settings)[0] for text in lines]
    mels = [log_mel(torch.from_numpy(w), settings)[None] for w in truth]
    ddsp_model = load_vocoder("slt").model
    hifigan = load_speech_vocoder("hifigan")
    methods = {
        "DDSP vocoder (shipped slt)": lambda m: ddsp_model(m, generator=torch.Generator()),
        "HiFi-GAN V1 (universal, polyfold-speech)": hifigan,
        f"Griffin-Lim from the mel ({32 if quick else 60} iters)":
            lambda m: griffin_lim(m, settings, iterations=32 if quick else 60),
    }  # fmt: skip
    rows = []
    for name, fn in methods.items():
        secs = audio_s = 0.0
        waves = []
        with torch.no_grad():
            fn(mels[0])  # warm-up
        for m in mels:
            with torch.no_grad():
                t0 = time.process_time()  # CPU time: one thread, unaffected by other jobs
                w = fn(m)[0].clamp(-1, 1).numpy()
            secs += time.process_time() - t0
            audio_s += w.size / sr
            waves.append(w)
        rows.append({
            "method": name,
            "rtf_1thread": secs / audio_s,
            "dnsmos_ovrl": float(np.mean([dnsmos_ovrl(w, sr) for w in waves])),
            "mcd_db": float(np.mean([mcd_db(t, w, sr) for t, w in zip(truth, waves, strict=True)])),
        })  # fmt: skip
    ddsp, hifi = rows[0], rows[1]
    summary = {
        "vocoder_utterances": len(lines),
        "vocoder_rtf_1thread": ddsp["rtf_1thread"],
        "vocoder_dnsmos_minus_hifigan": ddsp["dnsmos_ovrl"] - hifi["dnsmos_ovrl"],
        "vocoder_mcd_db": ddsp["mcd_db"],
        "hifigan_mcd_db": hifi["mcd_db"],
        "real_dnsmos_ovrl": float(np.mean([dnsmos_ovrl(w, sr) for w in truth])),
    }
    return rows, summary


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    torch.set_num_threads(1)
    n = 2 if args.quick else 8
    test = fluid_solo("violin", "test", n)
    flute = fluid_solo("flute", "test", n)
    model = load_autoencoder("violin").model
    seconds = test.audio.size / SAMPLE_RATE
    rows: list[dict[str, Any]] = []
    outputs: dict[str, tuple[np.ndarray, float]] = {}
    t0 = time.perf_counter()
    outputs["DDSP autoencoder (shipped violin)"] = (
        render(model, test.f0, test.loudness),
        time.perf_counter() - t0,
    )
    for name, fn in (
        ("WORLD (pyworld harvest + cheaptrick + d4c)", lambda: world(test)),
        (f"Griffin-Lim from true magnitudes ({16 if args.quick else 100} iters)",
         lambda: griffin_lim(test, 16 if args.quick else 100)),
        ("band-limited sawtooth (exact f0, oracle envelope)", lambda: sawtooth(test)),
    ):  # fmt: skip
        t0 = time.perf_counter()
        outputs[name] = (fn(), time.perf_counter() - t0)
    for name, (audio, secs) in outputs.items():
        m = audio_metrics(audio, test)
        rows.append({"method": name, **m, "rtf_1thread": secs / seconds})
    print_table(
        rows,
        [
            "method",
            "mss",
            "loudness_l1_db",
            "f0_l1_semitones",
            "f0_outlier_ratio",
            "f0_l1_semitones_all_frames",
            "f0_outlier_ratio_all_frames",
            "rtf_1thread",
        ],
    )
    ddsp, wrl = rows[0], rows[1]
    transfer = transfer_metrics(model, flute)
    summary = {
        "clips": n,
        "mss_violin": ddsp["mss"],
        "mss_over_world": ddsp["mss"] / wrl["mss"],
        "loudness_l1_db": ddsp["loudness_l1_db"],
        "f0_l1_semitones": ddsp["f0_l1_semitones"],
        "f0_outlier_ratio": ddsp["f0_outlier_ratio"],
        "f0_l1_semitones_all_frames": ddsp["f0_l1_semitones_all_frames"],
        "f0_outlier_ratio_all_frames": ddsp["f0_outlier_ratio_all_frames"],
        "transfer_raw_pitch_accuracy_50c": transfer["raw_pitch_accuracy_50c"],
        "transfer_raw_pitch_accuracy_50c_all_frames": transfer["raw_pitch_accuracy_50c_all_frames"],
        "ddsp_rtf_1thread": ddsp["rtf_1thread"],
        "oscillator_kernel_speedup": kernel_speedup(args.quick),
    }
    voc_rows, voc_summary = vocoders(args.quick)
    if voc_rows:
        print_table(voc_rows, ["method", "rtf_1thread", "dnsmos_ovrl", "mcd_db"])
    rows += voc_rows
    summary.update(voc_summary)
    for k, v in summary.items():
        print(f"{k}: {v:.4g}" if isinstance(v, float) else f"{k}: {v}")
    write_json(args.out, rows, summary)


if __name__ == "__main__":
    main()
