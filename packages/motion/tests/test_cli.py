import numpy as np
import pytest

from polyfold.motion.cli import app, main


def run(monkeypatch, capsys, *args):
    monkeypatch.setattr("sys.argv", ["polyfold-motion", *args])
    with pytest.raises(SystemExit) as exc:
        main()
    out = capsys.readouterr()
    return exc.value.code, out.out + out.err


def test_app_is_typer():
    assert app.info.name == "polyfold-motion"


def test_clips_and_show(monkeypatch, capsys, tmp_path):
    code, text = run(monkeypatch, capsys, "clips")
    assert code == 0
    assert "humanoid3d_cartwheel" in text
    assert "get up from face-down" in text
    code, text = run(monkeypatch, capsys, "show", "humanoid3d_kick", "--out", str(tmp_path / "s"))
    assert code == 0
    joints = np.load(tmp_path / "s" / "humanoid3d_kick.npy")
    assert joints.shape == (31, 15, 3)
    assert (tmp_path / "s" / "preview.svg").is_file()
    # the same folder again is refused without --force, and nothing is lost
    code, text = run(monkeypatch, capsys, "show", "humanoid3d_kick", "--out", str(tmp_path / "s"))
    assert code == 2
    assert "--force" in text


def test_bad_inputs(monkeypatch, capsys, tmp_path):
    code, text = run(monkeypatch, capsys, "show", "no_such_clip", "--out", str(tmp_path / "x"))
    assert code == 2
    assert "no_such_clip: neither an embedded clip" in text
    bad = tmp_path / "bad.bvh"
    bad.write_text("HIERARCHY\nROOT Hips\n{\n OFFSET 0 0 0\n")
    code, text = run(monkeypatch, capsys, "show", str(bad), "--out", str(tmp_path / "y"))
    assert code == 2
    assert "bad.bvh" in text
    code, text = run(monkeypatch, capsys, "prepare", "--out", str(tmp_path / "d.txt"))
    assert code == 2
    assert ".npz" in text
