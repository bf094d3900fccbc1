"""fluid-solo rendering, the clips file and a folder of a user's wavs."""

import numpy as np
import pytest
import soundfile as sf

from polyfold.core.errors import InputError
from polyfold.ddsp.data import Clips, fluid_solo, load_wav_folder, read_mono
from polyfold.ddsp.fluid import HOP, SAMPLE_RATE, render_clip
from polyfold.ddsp.pitch import track_f0


def test_render_is_seeded_and_its_f0_is_what_sounds():
    a, f0, voiced = render_clip("flute", 3, seconds=1.0)
    b, f0b, _ = render_clip("flute", 3, seconds=1.0)
    assert np.array_equal(a, b)
    assert np.array_equal(f0, f0b)
    assert a.shape == (SAMPLE_RATE,)
    assert f0.shape == voiced.shape == (SAMPLE_RATE // HOP,)
    got, _ = track_f0(a, SAMPLE_RATE, HOP, fmin=f0.min() / 1.5, fmax=f0.max() * 1.5)
    inner = voiced & np.roll(voiced, 8) & np.roll(voiced, -8)  # away from note changes
    err = np.abs(12 * np.log2(got[inner] / f0[inner]))
    assert np.median(err) < 0.15
    assert not np.array_equal(render_clip("flute", 4, seconds=1.0)[0], a)


def test_clips_round_trip(tmp_path):
    clips = fluid_solo("cello", "test", 2, seconds=0.5)
    assert clips.card["split"] == "test"
    path = clips.save(tmp_path / "c.npz")
    back = Clips.load(path)
    assert np.array_equal(back.audio, clips.audio)
    assert np.array_equal(back.f0, clips.f0)
    assert back.card == clips.card
    with pytest.raises(InputError, match="instrument: expected one of"):
        fluid_solo("banjo")
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    with pytest.raises(InputError, match=r"missing arrays \['audio', 'f0', 'loudness'\]"):
        Clips.load(tmp_path / "other.npz")


def _wav(path, data, sr=SAMPLE_RATE):
    sf.write(path, data, sr)
    return path


def test_wav_folder_uses_f0_files_and_resamples(tmp_path):
    t = np.arange(2 * 22050) / 22050
    _wav(tmp_path / "a.wav", 0.3 * np.sin(2 * np.pi * 330 * t), 22050)
    np.save(tmp_path / "a.f0.npy", np.full(2 * SAMPLE_RATE // HOP, 330.0))
    clips = load_wav_folder(tmp_path, seconds=1.0)
    assert clips.audio.shape == (2, SAMPLE_RATE)
    assert np.all(clips.f0 == 330.0)


def test_bad_recordings_are_named(tmp_path):
    stereo = _wav(tmp_path / "stereo.wav", np.zeros((1000, 2)))
    with pytest.raises(InputError, match="has 2 channels; expected mono audio"):
        read_mono(stereo)
    empty = _wav(tmp_path / "empty.wav", np.zeros(0))
    with pytest.raises(InputError, match="contains no samples"):
        read_mono(empty)
    folder = tmp_path / "f"
    folder.mkdir()
    _wav(folder / "x.wav", np.zeros(SAMPLE_RATE))
    np.save(folder / "x.f0.npy", np.full(7, 200.0))
    with pytest.raises(InputError, match=r"x.f0.npy: expected 250 values"):
        load_wav_folder(folder, seconds=1.0)
    with pytest.raises(InputError, match=r"expected a folder holding \.wav files"):
        load_wav_folder(tmp_path / "nothing")
