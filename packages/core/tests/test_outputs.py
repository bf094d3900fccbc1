"""Output protection: refuse, probe before work, write atomically."""

import io
import os

import pytest
import typer
from typer.testing import CliRunner

from polyfold.core.errors import InputError
from polyfold.core.outputs import (
    Force,
    check_output_file,
    prepare_output_dir,
    write_report,
    write_text,
)
from polyfold.core.report import Report


def test_existing_file_is_refused_unless_force(tmp_path):
    target = tmp_path / "out.json"
    target.write_text("mine")
    with pytest.raises(InputError, match=r"--out .*out\.json: file exists; pass --force"):
        check_output_file(target)
    assert check_output_file(target, force=True) == target
    assert target.read_text() == "mine"  # checking never writes the file itself


def test_missing_parent_is_created_and_a_folder_is_not_a_file(tmp_path):
    target = tmp_path / "a" / "b" / "out.csv"
    assert check_output_file(target) == target
    assert target.parent.is_dir()
    assert not target.exists()
    assert list(target.parent.iterdir()) == []  # the probe file is removed
    with pytest.raises(InputError, match="is a folder"):
        check_output_file(tmp_path / "a")


def test_unwritable_target_fails_before_any_work(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(InputError, match=r"--run .*file/sub: cannot write there"):
        prepare_output_dir(blocker / "sub", option="--run")
    with pytest.raises(InputError, match="cannot write there"):
        check_output_file(blocker / "sub" / "x.csv")


def test_non_empty_folder_is_refused_unless_force(tmp_path):
    folder = tmp_path / "out"
    assert prepare_output_dir(folder) == folder
    assert folder.is_dir()
    assert prepare_output_dir(folder) == folder  # empty: fine
    (folder / "notes.txt").write_text("user's")
    with pytest.raises(InputError, match="folder is not empty"):
        prepare_output_dir(folder)
    prepare_output_dir(folder, force=True)
    assert (folder / "notes.txt").read_text() == "user's"
    with pytest.raises(InputError, match="not a folder"):
        prepare_output_dir(folder / "notes.txt", force=True)


def test_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "out.csv"
    write_text(target, "old\n")

    def boom(src, dst):
        raise OSError(28, "No space left on device", str(dst))

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="No space left"):
        write_text(target, "new\n")
    monkeypatch.undo()
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.csv"]  # no temporary left behind
    write_report(Report("r").paragraph("hello"), tmp_path / "r.html")
    assert "hello" in (tmp_path / "r.html").read_text()


def test_force_option_spelling():
    app = typer.Typer()

    @app.command()
    def go(force: Force = False) -> None:
        print("force" if force else "keep", file=io.StringIO())
        raise typer.Exit(3 if force else 4)

    runner = CliRunner()
    assert runner.invoke(app, ["--force"]).exit_code == 3
    assert runner.invoke(app, []).exit_code == 4
    assert "--force" in runner.invoke(app, ["--help"]).output
