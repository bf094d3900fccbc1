import shutil

import numpy as np
import pytest

from polyfold.core.audio import MelSettings, mel_frames
from polyfold.core.errors import InputError
from polyfold.speech import flite
from polyfold.speech.corpus import (
    Utterance,
    load_corpus,
    read_ljspeech,
    utterance_mel,
    write_corpus,
)
from polyfold.speech.dataset import MelDataset, collate

from .conftest import SR, tone


def test_ljspeech_loader(ljspeech):
    corpus = load_corpus(ljspeech)
    assert corpus.name == "ljspeech"
    assert len(corpus.utterances) == 3
    u = corpus.utterances[0]
    assert u.durations is None
    assert u.phones[0] == "pau"
    assert u.phones[-1] == "pau"
    mel = utterance_mel(corpus, u)
    assert mel.shape == (80, mel_frames(int(0.6 * SR)))
    batch = collate([MelDataset(corpus, corpus.utterances)[i] for i in range(3)])
    assert batch["durations"] is None
    assert batch["frame_mask"].sum(1).tolist() == [
        mel_frames(int((0.6 + 0.1 * k) * SR)) for k in range(3)
    ]


def test_corrupt_wav_names_the_file(ljspeech):
    bad = ljspeech / "wavs" / "LJ001-0002.wav"
    bad.write_bytes(b"RIFF\x00\x00not really a wav")
    corpus = read_ljspeech(ljspeech)
    with pytest.raises(InputError, match=r"LJ001-0002\.wav"):
        MelDataset(corpus, corpus.utterances)


@pytest.mark.parametrize(
    ("row", "match"),
    [
        ("LJ009-0001", "line 2: expected 'id|text|normalized text'"),
        ("LJ001-0001||", "line 2: the utterance 'LJ001-0001' has no text"),
        ("LJ404-0001|Hello there.|Hello there.", "line 2: .*LJ404-0001.wav does not exist"),
        ("LJ001-0001|Send 5 ~ now|Send 5 ~ now", "line 2: text: the character '~'"),
    ],
)
def test_bad_metadata_lines_are_named(ljspeech, row, match):
    meta = ljspeech / "metadata.csv"
    first = meta.read_text().splitlines()[0]
    meta.write_text(first + "\n" + row + "\n")
    with pytest.raises(InputError, match=match):
        read_ljspeech(ljspeech)


def test_prepared_corpus_round_trip(tmp_path):
    settings = MelSettings()
    wave = tone(0.5)
    from polyfold.core.audio import write_audio

    (tmp_path / "wavs").mkdir()
    write_audio(tmp_path / "wavs" / "a.wav", wave, SR)
    n = mel_frames(wave.size)
    utt = Utterance(
        "a", "Hi.", "wavs/a.wav", ("pau", "hh", "ay", "pau"), (3, 4, 5, n - 12), "slt", "train"
    )
    write_corpus(tmp_path, [utt], name="flite-slt", settings=settings)
    corpus = load_corpus(tmp_path)
    assert corpus.utterances == [utt]
    assert corpus.name == "flite-slt"
    item = MelDataset(corpus, corpus.split("train"))[0]
    assert item["mel"].shape == (n, 80)
    assert int(item["durations"].sum()) == n


def test_flite_psdur_parsing_and_durations():
    phones, ends = flite.parse_psdur("pau:0.164 hh:0.255 ax:0.304 pau:0.5\n")
    assert phones == ["pau", "hh", "ax", "pau"]
    d = flite.durations_from_end_times(ends, 44, MelSettings())
    frames = 22050 / 256
    assert d.sum() == 44
    assert (
        d[:3].tolist() == np.diff([0, *np.round(np.array(ends[:3]) * frames)]).astype(int).tolist()
    )
    with pytest.raises(InputError, match="phone:end_time"):
        flite.parse_psdur("pau:abc")


def test_prepare_without_flite_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(InputError, match="apt-get install flite"):
        flite.prepare_flite_corpus(tmp_path / "c", n_utterances=4, n_test=1)
    assert not (tmp_path / "c").exists()


def test_shakespeare_lines_are_filtered_and_seeded():
    lines = flite.shakespeare_lines(50, seed=1)
    assert len(set(lines)) == 50
    assert lines == flite.shakespeare_lines(50, seed=1)
    assert all(25 <= len(s) <= 90 and not s.startswith(("*", "#", "_")) for s in lines)
