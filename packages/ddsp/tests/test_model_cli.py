"""The autoencoder, its training on core's Trainer, and the CLI (errors without tracebacks)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from polyfold.core.cli import exit_status
from polyfold.core.errors import InputError
from polyfold.core.export import load_model
from polyfold.ddsp.cli import app
from polyfold.ddsp.data import fluid_solo
from polyfold.ddsp.model import DDSPAutoencoder, DDSPConfig
from polyfold.ddsp.processors import fft_convolve
from polyfold.ddsp.train import fit_autoencoder

TINY = DDSPConfig(hidden=16, n_harmonics=8, n_noise_bands=9, reverb_length=64)


def _run(*args: str) -> int:
    return exit_status(app, args, "polyfold-ddsp")


def _error(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    capsys.readouterr()
    assert _run(*args) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


def test_controls_and_dry_path():
    torch.manual_seed(0)
    model = DDSPAutoencoder(TINY)
    f0, ld = torch.full((2, 10), 220.0), torch.full((2, 10), -40.0)
    c = model.controls(f0, ld)
    assert c["harmonics"].shape == (2, 10, 8)
    assert c["noise"].shape == (2, 10, 9)
    wet = model(f0, ld, generator=torch.Generator().manual_seed(1))
    dry = model(f0, ld, generator=torch.Generator().manual_seed(1), reverb=False)
    assert wet.shape == dry.shape == (2, 640)
    # the learned reverb adds the dry signal convolved with its response, nothing else
    wet_part = fft_convolve(dry, model.reverb.impulse_response())
    torch.testing.assert_close(wet - dry, wet_part, rtol=1e-4, atol=1e-6)
    with pytest.raises(InputError, match="loudness: contains NaN"):
        model.controls(f0, torch.full((2, 10), float("nan")))
    with pytest.raises(InputError, match="f0: expected frequencies > 0"):
        model.controls(torch.zeros(2, 10), ld)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.set_num_threads(1)
    clips = fluid_solo("violin", "train", 2, seconds=0.5)
    out = tmp_path_factory.mktemp("run")
    return fit_autoencoder(clips, out, config=TINY, steps=3, batch_size=2, crop_seconds=0.25)


def test_trained_model_file_round_trips(trained: Path):
    loaded = load_model(trained)
    assert isinstance(loaded.model, DDSPAutoencoder)
    assert loaded.config["n_harmonics"] == 8
    assert loaded.card["data"]["instrument"] == "violin"
    assert np.isfinite(loaded.card["metrics"]["train_loss"])


def test_resynth_transfer_and_bad_input(trained: Path, tmp_path: Path, capsys):
    src = tmp_path / "in.wav"
    t = np.arange(8000) / 16000
    sf.write(src, 0.3 * np.sin(2 * np.pi * 440 * t), 16000)
    np.save(tmp_path / "f0.npy", np.full(125, 440.0))
    out = tmp_path / "out.wav"
    assert _run("resynth", str(src), "--model", str(trained), "--f0", str(tmp_path / "f0.npy"),
                "--out", str(out)) == 0  # fmt: skip
    audio, sr = sf.read(out)
    assert sr == 16000
    assert audio.shape == (8000,)
    shifted = tmp_path / "t.wav"
    assert _run("transfer", str(src), "--model", str(trained), "--octave", "-1",
                "--out", str(shifted)) == 0  # fmt: skip
    assert "exists" in _error(
        capsys, "resynth", str(src), "--model", str(trained), "--out", str(out)
    )
    np.save(tmp_path / "bad.npy", np.full(7, 440.0))
    err = _error(capsys, "resynth", str(src), "--model", str(trained), "--f0",
                 str(tmp_path / "bad.npy"), "--out", str(tmp_path / "o2.wav"))  # fmt: skip
    assert "expected 125 values" in err
    stereo = tmp_path / "st.wav"
    sf.write(stereo, np.zeros((800, 2)), 16000)
    err = _error(
        capsys, "resynth", str(stereo), "--model", str(trained), "--out", str(tmp_path / "o3.wav")
    )
    assert "expected mono audio" in err
    assert "--model" in _error(
        capsys, "resynth", str(src), "--model", "nope", "--out", str(tmp_path / "o4.wav")
    )


def test_cli_train_writes_a_model(tmp_path: Path):
    out = tmp_path / "run"
    assert _run("train", "--clips", "1", "--steps", "2", "--batch-size", "1", "--out", str(out),
                "--quiet") == 0  # fmt: skip
    card = json.loads((out / "model.json").read_text())
    assert card["card"]["steps"] == 2


@pytest.mark.parametrize("weight", ["-1", "nan"])
def test_train_refuses_a_bad_loudness_weight_before_creating_out(tmp_path, capsys, weight):
    out = tmp_path / "run"
    err = _error(capsys, "train", "--out", str(out), "--loudness-weight", weight)
    assert "--loudness-weight: expected a finite number >= 0" in err
    assert not out.exists()
