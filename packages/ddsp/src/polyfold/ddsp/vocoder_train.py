"""Training the DDSP vocoder: a speech corpus reader, fixed-length mel/audio chunks with a WORLD
f0 target, and the loss (multi-scale spectral loss plus f0 and voicing supervision).

The corpus is a flite-slt style folder (``metadata.jsonl`` rows with ``wav`` and ``split``,
``wavs/``) or a plain folder of mono wavs. f0 and voicing targets come from pyworld's DIO +
StoneMask once per utterance (the ``bench`` extra); the spectral loss alone does not find f0
reliably from a random start, the supervision makes it converge in a CPU budget.
"""

from __future__ import annotations

import dataclasses
import json
import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from polyfold.core.audio import load_pyworld, log_mel, read_audio
from polyfold.core.errors import InputError, check_int
from polyfold.core.export import save_model
from polyfold.core.train import Trainer, load_weights
from polyfold.ddsp.spectral import multiscale_spectral_loss
from polyfold.ddsp.vocoder import DDSPVocoder, VocoderConfig

__all__ = [
    "VoiceChunks",
    "evaluate_vocoder",
    "fit_vocoder",
    "read_speech_corpus",
    "vocoder_loss",
    "world_f0",
]


def read_speech_corpus(
    folder: str | Path, *, split: str | None = "train", limit: int | None = None
) -> list[tuple[str, Path]]:
    """(id, wav path) of a corpus folder: the ``split`` rows of its ``metadata.jsonl`` (every row
    when ``split`` is None), else its ``*.wav`` files in name order; at most ``limit``."""
    root = Path(folder)
    if not root.is_dir():
        raise InputError(f"--corpus {root}: expected a folder (metadata.jsonl + wavs/, or wavs)")
    meta = root / "metadata.jsonl"
    items: list[tuple[str, Path]] = []
    if meta.is_file():
        for n, line in enumerate(meta.read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                path, uid = root / row["wav"], str(row.get("id", Path(row["wav"]).stem))
            except (json.JSONDecodeError, KeyError, TypeError) as err:
                msg = f"{meta} line {n}: expected JSON with a 'wav' path ({err})"
                raise InputError(msg) from None
            if split is None or row.get("split", "train") == split:
                items.append((uid, path))
    else:
        items = [(p.stem, p) for p in sorted(root.glob("*.wav"))]
    if not items:
        where = f" in split {split!r}" if split else ""
        raise InputError(f"--corpus {root}: no utterances{where}")
    return items[:limit] if limit is not None else items


def world_f0(audio: np.ndarray, sample_rate: int, hop: int, n_frames: int) -> np.ndarray:
    """f0 in Hz per mel frame (0 where unvoiced): pyworld DIO + StoneMask at the frame centres
    ``(i + 1/2) hop``, ``n_frames`` values."""
    pyworld = load_pyworld("ddsp", "bench")
    x = np.asarray(audio, dtype=np.float64)
    period_ms = 1000.0 * hop / sample_rate
    f0, t = pyworld.dio(x, sample_rate, f0_floor=60.0, f0_ceil=600.0, frame_period=period_ms)
    f0 = pyworld.stonemask(x, f0, t, sample_rate)
    centres = (np.arange(n_frames) + 0.5) * hop / sample_rate
    idx = np.clip(np.rint(centres / (period_ms / 1000.0)).astype(int), 0, len(f0) - 1)
    return np.asarray(f0[idx], dtype=np.float32)


@dataclass
class VoiceChunks(torch.utils.data.Dataset[dict[str, torch.Tensor]]):
    """Fixed-length chunks: ``mel`` (N, n_mels, C), ``audio`` (N, C hop), ``f0`` (N, C) (0 where
    unvoiced); a map-style dataset of dicts."""

    mel: np.ndarray
    audio: np.ndarray
    f0: np.ndarray
    card: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.mel)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {
            "mel": torch.from_numpy(self.mel[i]),
            "audio": torch.from_numpy(self.audio[i]),
            "f0": torch.from_numpy(self.f0[i]),
        }

    @classmethod
    def from_corpus(
        cls,
        folder: str | Path,
        config: VocoderConfig,
        *,
        split: str = "train",
        utterances: int | None = None,
        chunk_frames: int = 48,
    ) -> VoiceChunks:
        """Every whole chunk of ``chunk_frames`` frames of the corpus' utterances; the mel of a
        chunk is cut from its utterance's mel (so its edges see their real context)."""
        check_int("chunk_frames", chunk_frames, 2)
        mels, audios, f0s = [], [], []
        items = read_speech_corpus(folder, split=split, limit=utterances)
        for _, path in items:
            mel, audio, f0 = utterance_features(path, config)
            for s in range(0, mel.shape[1] - chunk_frames + 1, chunk_frames):
                mels.append(mel[:, s : s + chunk_frames])
                audios.append(audio[s * config.hop : (s + chunk_frames) * config.hop])
                f0s.append(f0[s : s + chunk_frames])
        if not mels:
            raise InputError(f"--corpus {folder}: no utterance is {chunk_frames} frames long")
        card = {"id": Path(folder).name, "split": split, "utterances": len(items),
                "chunks": len(mels), "chunk_frames": chunk_frames}  # fmt: skip
        return cls(np.stack(mels), np.stack(audios), np.stack(f0s), card)


def utterance_features(
    path: Path, config: VocoderConfig
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mel (n_mels, F), audio (F hop,), WORLD f0 (F,)) of one wav, cut to whole frames."""
    audio, _ = read_audio(path, sample_rate=config.sample_rate)
    n = len(audio) // config.hop
    audio = audio[: n * config.hop]
    mel = log_mel(torch.from_numpy(audio), config.mel_settings()).numpy()
    return mel, audio, world_f0(audio, config.sample_rate, config.hop, mel.shape[1])


def vocoder_loss(
    f0_weight: float = 1.0, voicing_weight: float = 0.1
) -> Callable[[Any, dict[str, torch.Tensor], torch.Generator], torch.Tensor]:
    """``loss_fn(model, batch, generator)``: multi-scale spectral loss of the vocoded chunk
    against the real one (f0 held fixed in the synthesiser), plus ``f0_weight`` x the mean
    |octave| error of f0 on voiced frames and ``voicing_weight`` x the voicing's binary
    cross-entropy."""

    def loss_fn(model: Any, batch: dict[str, torch.Tensor], g: torch.Generator) -> torch.Tensor:
        net = model.module if hasattr(model, "module") else model
        c = net.controls(batch["mel"])
        # f0 learns from its target only: through the oscillator's phase its gradient is
        # hundreds of times the amplitudes' and would swamp them under gradient clipping
        audio = net.synthesize({**c, "f0": c["f0"].detach()}, generator=g)
        loss = multiscale_spectral_loss(audio, batch["audio"])
        target = batch["f0"]
        voiced = target > 0
        if bool(voiced.any()):
            err = torch.log2(c["f0"][voiced] / target[voiced]).abs().mean()
            loss = loss + f0_weight * err
        bce = torch.nn.functional.binary_cross_entropy(
            c["voicing"].clamp(1e-6, 1 - 1e-6), voiced.to(c["voicing"].dtype)
        )
        return loss + voicing_weight * bce

    return loss_fn


@torch.no_grad()
def evaluate_vocoder(
    model: DDSPVocoder, corpus: str | Path, *, utterances: int = 10
) -> dict[str, float]:
    """Held-out (``test`` split) figures: multi-scale spectral loss, log-mel L1 of the output's
    mel against the input mel, f0 error in semitones and voicing error against WORLD, and the
    real-time factor (CPU seconds per second of audio, on the current thread count)."""
    cfg = model.config
    mss, mel_l1, f0_err, voicing_err = [], [], [], []
    seconds = elapsed = 0.0
    for _, path in read_speech_corpus(corpus, split="test", limit=utterances):
        mel, audio, f0 = utterance_features(path, cfg)
        t0 = time.process_time()
        g = torch.Generator().manual_seed(0)
        out = model(torch.from_numpy(mel)[None], generator=g)[0]
        elapsed += time.process_time() - t0
        seconds += len(audio) / cfg.sample_rate
        mss.append(float(multiscale_spectral_loss(out, torch.from_numpy(audio))))
        rebuilt = log_mel(out, cfg.mel_settings())
        mel_l1.append(float((rebuilt - torch.from_numpy(mel)).abs().mean()))
        c = model.controls(torch.from_numpy(mel)[None])
        voiced = f0 > 0
        both = voiced & (c["voicing"][0].numpy() > 0.5)
        if both.any():
            f0_err.append(float(np.abs(12 * np.log2(c["f0"][0].numpy()[both] / f0[both])).mean()))
        voicing_err.append(float(((c["voicing"][0].numpy() > 0.5) != voiced).mean()))
    return {
        "test_utterances": float(len(mss)),
        "mss": float(np.mean(mss)),
        "mel_l1": float(np.mean(mel_l1)),
        "f0_l1_semitones": float(np.mean(f0_err)) if f0_err else float("nan"),
        "voicing_error": float(np.mean(voicing_err)),
        "rtf": elapsed / seconds,
    }


def fit_vocoder(
    corpus: str | Path,
    out: Path,
    *,
    config: VocoderConfig | None = None,
    utterances: int | None = 200,
    steps: int = 1500,
    batch_size: int = 8,
    lr: float = 3e-3,
    chunk_frames: int = 48,
    eval_utterances: int = 10,
    seed: int = 0,
    resume: bool = False,
    progress: Callable[[int, float, float], None] | None = None,
    command: str | None = None,
) -> Path:
    """Train on ``corpus`` in ``out/run``; write ``out/model`` (EMA weights, card with held-out
    metrics when the corpus has a ``test`` split) and return it."""
    check_int("steps", steps, 1)
    check_int("batch_size", batch_size, 1)
    cfg = config or VocoderConfig()
    torch.manual_seed(seed)
    data = VoiceChunks.from_corpus(corpus, cfg, utterances=utterances, chunk_frames=chunk_frames)
    model = DDSPVocoder(cfg)
    trainer = Trainer(
        model, vocoder_loss(), data, out_dir=out / "run", model_config=dataclasses.asdict(cfg),
        data_card=str(data.card["id"]), max_steps=steps, batch_size=min(batch_size, len(data)),
        lr=lr, warmup_steps=min(100, steps // 10), min_lr_ratio=0.1, ema_decay=0.99,
        grad_clip=2.0, checkpoint_every=max(1, steps // 5), keep_last=2, seed=seed,
        quiet=progress is None, mixed_precision=False,
        device="cpu" if not torch.cuda.is_available() else None,
    )  # fmt: skip
    result = trainer.fit(resume=resume, progress=progress)
    load_weights(out / "run", model, ema=True)
    model = model.cpu().eval()
    metrics: dict[str, Any] = {"train_loss": None if result.loss is None else float(result.loss)}
    if eval_utterances and any(True for _ in _test_items(corpus)):
        metrics.update(evaluate_vocoder(model, corpus, utterances=eval_utterances))
    card = {
        "data_card": str(data.card["id"]),
        "data": data.card,
        "command": command or shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "steps": steps,
        "batch_size": batch_size,
        "f0_target": "pyworld DIO + StoneMask (supervises f0 and voicing)",
        "metrics": metrics,
    }
    path = out / "model"
    save_model(model, path, config=dataclasses.asdict(cfg), card=card)
    return path


def _test_items(corpus: str | Path) -> list[tuple[str, Path]]:
    try:
        return read_speech_corpus(corpus, split="test")
    except InputError:
        return []
