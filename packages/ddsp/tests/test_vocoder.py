"""The DDSP vocoder: shapes and rate, a one-harmonic closed form, bad input, save/load, the
corpus reader, a tiny training run and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from polyfold.core.audio import log_mel, mel_frames
from polyfold.core.cli import exit_status
from polyfold.core.errors import InputError
from polyfold.core.export import load_model, save_model
from polyfold.ddsp.cli import app
from polyfold.ddsp.shipped import SHIPPED_VOCODERS, load_vocoder, shipped_path
from polyfold.ddsp.vocoder import DDSPVocoder, VocoderConfig, vocode, vocode_file
from polyfold.ddsp.vocoder_train import fit_vocoder, read_speech_corpus, vocoder_loss

TINY = VocoderConfig(hidden=8, n_harmonics=4, n_noise_bands=5)
SR, HOP = 22050, 256


def _tiny() -> DDSPVocoder:
    torch.manual_seed(0)
    return DDSPVocoder(TINY).eval()


def _run(*args: str) -> int:
    return exit_status(app, args, "polyfold-ddsp")


def _voice(f0: float, seconds: float = 1.0) -> np.ndarray:
    """A buzz: ten harmonics of ``f0`` with 1/k amplitudes, 0.3 peak."""
    t = np.arange(int(seconds * SR)) / SR
    x = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 11))
    return (0.3 * x / np.abs(x).max()).astype(np.float32)


def _corpus(root: Path) -> Path:
    (root / "wavs").mkdir(parents=True)
    rows = []
    for i, (f0, split) in enumerate([(180.0, "train"), (220.0, "train"), (200.0, "test")]):
        sf.write(root / "wavs" / f"u{i}.wav", _voice(f0), SR)
        rows.append({"id": f"u{i}", "wav": f"wavs/u{i}.wav", "split": split})
    (root / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


def test_frames_to_samples_and_controls_ranges():
    model = _tiny()
    mel = torch.randn(2, 80, 7) - 5
    with torch.no_grad():
        audio = model(mel)
        c = model.controls(mel)
    assert audio.shape == (2, 7 * HOP)
    assert c["harmonics"].shape == (2, 7, 4)
    assert c["noise"].shape == (2, 7, 5)
    assert bool(((c["f0"] >= TINY.f0_min) & (c["f0"] <= TINY.f0_max)).all())
    assert bool(((c["voicing"] > 0) & (c["voicing"] < 1)).all())
    # a wav of F whole hops gives F mel frames, so vocoding it returns as many samples
    wave = torch.from_numpy(_voice(200.0, 0.5))[: 40 * HOP]
    mel = log_mel(wave, TINY.mel_settings())
    assert mel.shape == (80, mel_frames(40 * HOP)) == (80, 40)
    assert vocode(model, mel).shape == (40 * HOP,)


def test_one_harmonic_gives_a_peak_at_f0():
    model = _tiny()
    f = 40
    controls = {
        "f0": torch.full((1, f), 220.0),
        "harmonics": torch.tensor([0.5, 0.0, 0.0, 0.0]).expand(1, f, 4).clone(),
        "noise": torch.zeros(1, f, 5),
    }
    audio = model.synthesize(controls)[0].numpy()
    spec = np.abs(np.fft.rfft(audio * np.hanning(len(audio))))
    freqs = np.fft.rfftfreq(len(audio), 1 / SR)
    assert abs(freqs[spec.argmax()] - 220.0) < SR / len(audio)
    assert np.sqrt(np.mean(audio**2)) == pytest.approx(0.5 / np.sqrt(2), rel=0.02)


def test_same_seed_same_audio_and_noise_in_unvoiced_frames():
    model = _tiny()
    mel = torch.randn(1, 80, 10) - 5
    assert np.array_equal(vocode(model, mel, seed=3), vocode(model, mel, seed=3))
    assert not np.array_equal(vocode(model, mel, seed=3), vocode(model, mel, seed=4))


def test_bad_input_names_the_argument(tmp_path: Path):
    model = _tiny()
    with pytest.raises(InputError, match=r"mel: expected 80 mel bins"):
        vocode(model, np.zeros((79, 10), np.float32))
    bad = np.zeros((80, 10), np.float32)
    bad[3, 4] = np.nan
    with pytest.raises(InputError, match=r"mel: contains NaN"):
        vocode(model, bad)
    with pytest.raises(InputError, match=r"mel: expected floating-point"):
        vocode(model, np.zeros((80, 10), np.int64))
    stereo = tmp_path / "stereo.wav"
    sf.write(stereo, np.zeros((4096, 2), np.float32), SR)
    with pytest.raises(InputError, match=r"stereo\.wav.*2 channels"):
        vocode_file(stereo, tmp_path / "o.wav", model)
    sf.write(tmp_path / "short.wav", np.zeros(500, np.float32), SR)
    with pytest.raises(InputError, match=r"short\.wav: expected at least 1024 samples"):
        vocode_file(tmp_path / "short.wav", tmp_path / "o.wav", model)
    np.save(tmp_path / "m.npy", np.zeros((64, 10), np.float32))
    with pytest.raises(InputError, match=r"m\.npy: expected a mel of shape \(80, frames\)"):
        vocode_file(tmp_path / "m.npy", tmp_path / "o.wav", model)
    with pytest.raises(InputError, match="f0_min, f0_max"):
        VocoderConfig(f0_min=500.0, f0_max=100.0)


def test_save_load_round_trip(tmp_path: Path):
    model = _tiny()
    save_model(model, tmp_path / "voc", config=model.config_dict(), card={"metrics": {}})
    loaded = load_vocoder(tmp_path / "voc")
    assert loaded.model.config == TINY
    mel = torch.randn(1, 80, 6) - 5
    assert np.array_equal(vocode(model, mel), vocode(loaded.model, mel))
    assert isinstance(load_model(tmp_path / "voc").model, DDSPVocoder)
    with pytest.raises(InputError, match="--model nowhere"):
        load_vocoder("nowhere")


def test_corpus_reader(tmp_path: Path):
    root = _corpus(tmp_path / "c")
    assert [u for u, _ in read_speech_corpus(root)] == ["u0", "u1"]
    assert [u for u, _ in read_speech_corpus(root, split="test")] == ["u2"]
    assert len(read_speech_corpus(root, split=None)) == 3
    assert [u for u, _ in read_speech_corpus(root / "wavs", limit=2)] == ["u0", "u1"]
    with pytest.raises(InputError, match="no utterances in split 'dev'"):
        read_speech_corpus(root, split="dev")
    with pytest.raises(InputError, match="--corpus"):
        read_speech_corpus(tmp_path / "missing")


def test_training_writes_a_model_with_held_out_metrics(tmp_path: Path):
    root = _corpus(tmp_path / "c")
    path = fit_vocoder(root, tmp_path / "run", config=TINY, steps=2, batch_size=2, chunk_frames=16,
                       eval_utterances=1, command="test")  # fmt: skip
    loaded = load_vocoder(path)
    m = loaded.card["metrics"]
    assert m["test_utterances"] == 1
    assert np.isfinite(m["mss"])
    assert 0 <= m["voicing_error"] <= 1
    assert loaded.card["data"]["chunks"] == 2 * (86 // 16)


def test_loss_is_finite_and_reaches_f0():
    model = DDSPVocoder(TINY)
    batch = {
        "mel": torch.randn(2, 80, 8) - 5,
        "audio": torch.randn(2, 8 * HOP) * 0.1,
        "f0": torch.tensor([[200.0] * 4 + [0.0] * 4] * 2),
    }
    loss = vocoder_loss()(model, batch, torch.Generator().manual_seed(0))
    loss.backward()
    assert torch.isfinite(loss)
    assert model.head[-1].weight.grad is not None
    assert model.head[-1].weight.grad[0].abs().sum() > 0


def test_cli_vocode(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    model = _tiny()
    save_model(model, tmp_path / "voc", config=model.config_dict(), card={"metrics": {}})
    np.save(tmp_path / "mel.npy", np.full((80, 12), -5.0, np.float32))
    assert _run("vocode", str(tmp_path / "mel.npy"), "--model", str(tmp_path / "voc"),
                "--out", str(tmp_path / "o.wav")) == 0  # fmt: skip
    audio, rate = sf.read(tmp_path / "o.wav")
    assert rate == SR
    assert audio.shape == (12 * HOP,)
    np.save(tmp_path / "bad.npy", np.zeros((40, 12), np.float32))
    capsys.readouterr()
    assert _run("vocode", str(tmp_path / "bad.npy"), "--model", str(tmp_path / "voc"),
                "--out", str(tmp_path / "b.wav")) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert "bad.npy" in err
    assert "Traceback" not in err


@pytest.mark.skipif(
    not shipped_path("slt").with_suffix(".safetensors").exists(), reason="no shipped vocoder"
)
def test_shipped_vocoder_card_and_loudness():
    loaded = load_vocoder("slt")
    assert set(SHIPPED_VOCODERS) == {"slt"}
    metrics = loaded.card["metrics"]
    assert metrics["test_utterances"] >= 10
    assert metrics["f0_l1_semitones"] < 0.5
    assert metrics["voicing_error"] < 0.15
    assert metrics["mel_l1"] < 0.6
    settings = loaded.model.config.mel_settings()
    silent = vocode(loaded.model, torch.full((80, 40), float(np.log(1e-5))))
    buzz = vocode(loaded.model, log_mel(torch.from_numpy(_voice(200.0)), settings))
    assert np.sqrt(np.mean(silent**2)) < 1e-3
    assert np.sqrt(np.mean(buzz**2)) > 10 * np.sqrt(np.mean(silent**2))
