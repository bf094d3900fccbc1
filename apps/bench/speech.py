"""ProDiff and CoMoSpeech against their teacher, on held-out flite-slt sentences.

The held-out lines of the flite-slt corpus (the same seeded sample ``polyfold-speech prepare``
holds out) are spoken by flite for the ground truth; every row goes through the same vocoder
(HiFi-GAN V1, universal weights) except the copy-synthesis rows. Rows: the teacher at 50, 2 and
1 DDIM steps (no distillation), ProDiff at 2 steps, CoMoSpeech at 1 step, the ground truth, and
copy-synthesis of the ground truth by HiFi-GAN, Griffin-Lim and WORLD (pyworld). Metrics:
MCD with DTW (dB), F0 RMSE (Hz) and voicing error, pocketsphinx CER/WER, DNSMOS OVRL, and the
real-time factor of the mel stage (one thread) and end to end. Models: the shipped ones
(``--teacher`` / ``--prodiff`` / ``--comospeech`` take model files). The Grad-TTS peer (the
``grad-tts`` wheel) is not run: it is not installed here.

    python apps/bench/speech.py --quick --out runs/bench/speech.json

Summary (goals from issue 28): ``prodiff_mcd_over_teacher_db`` and
``comospeech_mcd_over_teacher_db`` (student MCD minus the 50-step teacher's; <= 0.3),
``undistilled_2step_mcd_over_prodiff_db`` (>= 1.0), ``cer_over_ground_truth`` (the worse
student's CER minus the ground truth's; <= 0.05), ``dnsmos_ovrl_prodiff`` /
``dnsmos_ovrl_comospeech`` (>= 2.8), ``mel_rtf_1thread`` of CoMoSpeech (<= 0.02) and its
``speedup_vs_teacher50`` (>= 20).
"""

from __future__ import annotations

import argparse
import shutil
import time
from typing import Any

import numpy as np
import torch
from _common import parse_args, print_table, write_json  # type: ignore[import-not-found]

from polyfold.core.audio import log_mel
from polyfold.speech.evaluation import Recognizer, score_system
from polyfold.speech.flite import shakespeare_lines, speak_with_flite
from polyfold.speech.generate import load_acoustic
from polyfold.speech.mcd import world_features
from polyfold.speech.synthesis import synthesize
from polyfold.speech.vocoder import griffin_lim, load_vocoder

SR = 22050
N_CORPUS, N_TEST = 1200, 100  # the corpus `prepare` builds by default: its last 100 lines


def world_copy(wave: np.ndarray) -> np.ndarray:
    """WORLD analysis and resynthesis of a waveform."""
    from polyfold.core.audio import load_pyworld

    pw = load_pyworld("speech", "eval")
    x = wave.astype(np.float64)
    f0, t = pw.harvest(x, SR)
    sp = pw.cheaptrick(x, f0, t, SR)
    ap = pw.d4c(x, f0, t, SR)
    return np.clip(pw.synthesize(f0, sp, ap, SR), -1, 1).astype(np.float32)[: wave.size]


def main() -> None:
    extra = argparse.ArgumentParser(add_help=False)
    for name in ("teacher", "prodiff", "comospeech"):
        extra.add_argument(f"--{name}", default=name, help=f"{name} model file [shipped]")
    known, rest = extra.parse_known_args()
    args = parse_args(__doc__.split("\n\n")[0], rest)
    if shutil.which("flite") is None:
        print("flite is not installed (sudo apt-get install flite): no ground truth, skipping")
        return
    torch.set_num_threads(1)
    n = 3 if args.quick else N_TEST
    lines = shakespeare_lines(N_CORPUS, seed=0)[N_CORPUS - N_TEST :][:n]
    from polyfold.core.audio import MelSettings

    truth = [speak_with_flite(text, "slt", MelSettings())[0] for text in lines]
    vocoder = load_vocoder("hifigan")
    teacher = load_acoustic(known.teacher)
    models = {
        "teacher-50": (teacher, 50),
        "teacher-2": (teacher, 2),
        "teacher-1": (teacher, 1),
        "prodiff-2": (load_acoustic(known.prodiff), None),
        "comospeech-1": (load_acoustic(known.comospeech), None),
    }
    outputs: dict[str, list[np.ndarray]] = {k: [] for k in models}
    timing: dict[str, dict[str, float]] = {}
    for name, (model, steps) in models.items():
        mel_s = total_s = audio_s = 0.0
        for k, text in enumerate(lines):
            synthesize(model, text, steps=steps, seed=k)  # warm-up
            t0 = time.perf_counter()
            result = synthesize(model, text, steps=steps, seed=k)
            t1 = time.perf_counter()
            with torch.no_grad():
                wave = vocoder(result.mel[None])[0].numpy()
            t2 = time.perf_counter()
            mel_s, total_s, audio_s = mel_s + t1 - t0, total_s + t2 - t0, audio_s + wave.size / SR
            outputs[name].append(wave)
        timing[name] = {
            "mel_rtf_1thread": mel_s / audio_s,
            "e2e_rtf_1thread": total_s / audio_s,
            "nfe": result.nfe,
        }
    outputs["ground-truth"] = truth
    mels = [log_mel(torch.from_numpy(w))[None] for w in truth]
    with torch.no_grad():
        outputs["copy-hifigan"] = [vocoder(m)[0].numpy() for m in mels]
    outputs["copy-griffin-lim"] = [griffin_lim(m)[0].numpy() for m in mels]
    outputs["copy-world"] = [world_copy(w) for w in truth]

    asr = Recognizer()
    reference = [world_features(w, SR) for w in truth]
    rows: list[dict[str, Any]] = []
    for name, waves in outputs.items():
        row = {
            "system": name,
            **score_system(reference, waves, lines, SR, asr),
            **timing.get(name, {}),
        }
        rows.append(row)
    print_table(rows)
    by = {r["system"]: r for r in rows}
    como, pd, t50 = by["comospeech-1"], by["prodiff-2"], by["teacher-50"]
    summary = {
        "prodiff_mcd_over_teacher_db": pd["mcd_db"] - t50["mcd_db"],
        "comospeech_mcd_over_teacher_db": como["mcd_db"] - t50["mcd_db"],
        "undistilled_2step_mcd_over_prodiff_db": by["teacher-2"]["mcd_db"] - pd["mcd_db"],
        "cer_over_ground_truth": max(pd["cer"], como["cer"]) - by["ground-truth"]["cer"],
        "dnsmos_ovrl_prodiff": pd["dnsmos_ovrl"],
        "dnsmos_ovrl_comospeech": como["dnsmos_ovrl"],
        "mel_rtf_1thread": como["mel_rtf_1thread"],
        "speedup_vs_teacher50": t50["mel_rtf_1thread"] / como["mel_rtf_1thread"],
        "sentences": n,
    }
    print(summary)
    write_json(args.out, rows, summary, vocoder="hifigan-v1-universal", grad_tts="not installed")


if __name__ == "__main__":
    main()
