"""The decay reverb, the decoder's loudness standardisation, the steady-frame f0 metric and
resuming a finished training run."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from polyfold.core.cli import exit_status
from polyfold.core.errors import InputError
from polyfold.ddsp.cli import app
from polyfold.ddsp.data import Clips
from polyfold.ddsp.decay_reverb import DecayReverb
from polyfold.ddsp.evaluation import pitch_errors, steady_frames
from polyfold.ddsp.fluid import HOP, SAMPLE_RATE
from polyfold.ddsp.model import DDSPAutoencoder, DDSPConfig, scale_loudness
from polyfold.ddsp.processors import Reverb, harmonic_synth
from polyfold.ddsp.train import loudness_stats


def test_decay_reverb_is_a_decaying_tail_added_to_the_dry_signal():
    rev = DecayReverb(4000, 16000, gain=0.5, decay_s=0.05)
    ir = rev.impulse_response().detach()
    assert ir[0] == 0
    t = torch.arange(4000) / 16000
    bound = 0.5 * torch.exp(-t / 0.05)
    assert bool((ir.abs() <= bound + 1e-6).all())
    # the noise fills its envelope: the tail's energy per 100 ms falls as exp(-2 t / tau)
    e1, e2 = ir[1:1600].square().sum(), ir[1600:3200].square().sum()
    assert math.log(float(e1 / e2)) == pytest.approx(2 * 0.1 / 0.05, rel=0.15)
    impulse = torch.zeros(1, 8000)
    impulse[0, 0] = 1.0
    torch.testing.assert_close(rev(impulse)[0, 1:4000], ir[1:])
    assert rev(impulse)[0, 0] == 1.0
    assert {n for n, _ in rev.named_parameters()} == {"log_gain", "log_decay"}
    assert "noise" not in rev.state_dict()  # rebuilt from the seed, not stored
    torch.testing.assert_close(DecayReverb(4000, 16000, gain=0.5, decay_s=0.05).noise, rev.noise)
    with pytest.raises(InputError, match="gain, decay_s"):
        DecayReverb(100, 16000, decay_s=0.0)


def test_config_chooses_the_reverb_and_standardises_loudness():
    tiny = {"hidden": 16, "n_harmonics": 8, "n_noise_bands": 9, "reverb_length": 64}
    assert isinstance(DDSPAutoencoder(DDSPConfig(**tiny)).reverb, DecayReverb)
    assert isinstance(DDSPAutoencoder(DDSPConfig(**tiny, reverb="learned")).reverb, Reverb)
    with pytest.raises(InputError, match="reverb: expected 'decay' or 'learned'"):
        DDSPConfig(reverb="hall")
    with pytest.raises(InputError, match="loudness_std"):
        DDSPConfig(loudness_std=0.0)
    x = scale_loudness(torch.tensor([-70.0, -50.0, -30.0]), -50.0, 10.0)
    torch.testing.assert_close(x, torch.tensor([-2.0, 0.0, 2.0]))


def test_loudness_stats_leave_out_silence():
    ld = np.array([[-120.0, -40.0, -60.0, -120.0], [-50.0, -120.0, -50.0, -50.0]], np.float32)
    clips = Clips(np.zeros((2, 4 * HOP), np.float32), np.full((2, 4), 440.0, np.float32), ld)
    mean, std = loudness_stats(clips)
    assert mean == pytest.approx(-50.0)
    assert std == pytest.approx(math.sqrt(200 / 5))
    silent = Clips(clips.audio, clips.f0, np.full((2, 4), -120.0, np.float32))
    with pytest.raises(InputError, match="silent"):
        loudness_stats(silent)


def test_steady_frames_leave_out_the_tracker_window_around_note_changes():
    f0 = np.full(100, 440.0)
    f0[50:] = 440.0 * 2 ** (3 / 12)  # a minor third up at frame 50
    f0 *= 2 ** (0.3 / 12 * np.sin(np.arange(100) / 4))  # vibrato of 0.6 semitone peak to peak
    steady = steady_frames(f0, 8)
    assert not steady[42:58].any()
    assert steady[:42].all()
    assert steady[58:].all()


def test_note_changes_give_outliers_even_at_the_exact_f0():
    f0 = np.full(200, 330.0)
    f0[100:] = 330.0 * 2 ** (5 / 12)
    amps = torch.tensor(1.0 / np.arange(1, 21)).expand(1, 200, 20).clone()
    saw = harmonic_synth(torch.as_tensor(f0[None]), amps, SAMPLE_RATE, HOP).numpy()
    loud = np.zeros((1, 200))
    all_frames = np.abs(pitch_errors(saw, f0[None], loud, steady=False))
    steady = np.abs(pitch_errors(saw, f0[None], loud))
    assert (all_frames > 1).any()  # the frames whose window holds both notes
    assert steady.size >= all_frames.size - 20
    assert steady.max() < 0.2


def _run(*args: str) -> int:
    return exit_status(app, args, "polyfold-ddsp")


def test_resuming_a_finished_run_shows_its_steps_done(tmp_path: Path, capsys):
    args = ["train", "--clips", "1", "--steps", "2", "--batch-size", "1", "--out", str(tmp_path)]
    for extra in ([], ["--resume"]):
        capsys.readouterr()
        assert _run(*args, *extra) == 0
    captured = capsys.readouterr()
    assert "resuming from step 2 of 2" in captured.out
    training = [ln for ln in captured.err.splitlines() if ln.startswith("training:")]
    assert training
    assert all(ln.startswith("training: 2/2") for ln in training)


def test_model_files_written_before_the_new_fields_keep_their_settings():
    old = {"hidden": 16, "n_harmonics": 8, "n_noise_bands": 9, "reverb_length": 64}
    model = DDSPAutoencoder.from_config(old)
    assert isinstance(model.reverb, Reverb)
    cfg = model.config
    ld = torch.tensor([-120.0, -60.0, 0.0])
    torch.testing.assert_close(
        scale_loudness(ld, cfg.loudness_mean, cfg.loudness_std), ld / 120 + 1
    )
    new = DDSPAutoencoder.from_config({**old, "reverb": "decay", "loudness_mean": -45.0})
    assert isinstance(new.reverb, DecayReverb)
    assert new.config.loudness_mean == -45.0
    with pytest.raises(InputError, match=r"config: .*unexpected keyword"):
        DDSPAutoencoder.from_config({**old, "width": 3})
