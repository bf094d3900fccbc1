import pytest
import soundfile as sf
import torch
from typer.testing import CliRunner

from polyfold.core.export import save_model
from polyfold.speech.cli import app
from polyfold.speech.model import AcousticModel

from .test_models import TINY

runner = CliRunner()


@pytest.fixture
def model_file(tmp_path):
    torch.manual_seed(0)
    m = AcousticModel(**{**TINY, "kind": "comospeech", "path": "edm", "steps": 1})
    save_model(m, tmp_path / "cm", config=m.config, card={})
    return str(tmp_path / "cm")


def run(*args):
    from polyfold.core.cli import exit_status

    return exit_status(app, args, "polyfold-speech")


def test_tts_writes_a_wav(tmp_path, model_file):
    out = tmp_path / "a.wav"
    code = run(
        "tts", "Hello there.", "--model", model_file, "--vocoder", "griffin-lim", "--out", str(out)
    )
    assert code == 0
    info = sf.info(str(out))
    assert info.samplerate == 22050
    assert info.frames % 256 == 0
    # never overwritten without --force
    assert (
        run("tts", "Hi.", "--model", model_file, "--vocoder", "griffin-lim", "--out", str(out)) == 2
    )


def test_tts_text_file_one_utterance_a_line(tmp_path, model_file):
    lines = tmp_path / "lines.txt"
    lines.write_text("First line.\n\nSecond line.\n")
    out = tmp_path / "wavs"
    assert (
        run("tts", str(lines), "--model", model_file, "--vocoder", "griffin-lim", "--out", str(out))
        == 0
    )
    assert sorted(p.name for p in out.iterdir()) == ["0000.wav", "0001.wav"]


def test_tts_bad_input_is_a_clear_error(tmp_path, model_file, capsys):
    assert run("tts", "  ", "--model", model_file, "--out", str(tmp_path / "x.wav")) == 2
    assert "non-empty utterance" in capsys.readouterr().err
    lines = tmp_path / "bad.txt"
    lines.write_text("Fine.\nNot fine ~\n")
    code = run(
        "tts",
        str(lines),
        "--model",
        model_file,
        "--vocoder",
        "griffin-lim",
        "--out",
        str(tmp_path / "o"),
    )
    assert code == 2
    assert "line 2" in capsys.readouterr().err
    assert (
        run("tts", "Hi.", "--model", str(tmp_path / "missing"), "--out", str(tmp_path / "y.wav"))
        == 2
    )


def test_resume_of_a_distillation_is_refused_before_any_work(tmp_path, model_file, capsys):
    out = tmp_path / "student"
    code = run("train", "--model", "prodiff", "--teacher", model_file, "--data",
               str(tmp_path / "nowhere"), "--resume", "--out", str(out))  # fmt: skip
    assert code == 2
    assert "only a teacher's run can be continued" in capsys.readouterr().err
    assert not out.exists()
