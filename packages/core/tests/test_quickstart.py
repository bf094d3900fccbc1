import json
from pathlib import Path

import pytest
import torch

from polyfold.core.errors import InputError
from polyfold.core.quickstart import discover, quickstart_run, run_quickstarts


def _writes_report(out: Path, *, quiet: bool = False) -> Path:
    (out / "result.txt").write_text("fine")
    report = out / "report.html"
    report.write_text("<html>fine</html>")
    return report


def _fails(out: Path, *, quiet: bool = False) -> Path:
    raise RuntimeError("embedded data missing")


def _returns_nothing(out: Path, *, quiet: bool = False) -> Path:
    return out / "never-written.html"


def _broken_import():
    raise ImportError("No module named 'polyfold.broken'")


def test_failures_are_reported_and_the_others_still_run(tmp_path):
    loaders = {
        "alpha": lambda: _fails,
        "beta": lambda: _writes_report,
        "gamma": _broken_import,
        "delta": lambda: _returns_nothing,
    }
    messages: list[str] = []
    outcomes = run_quickstarts(tmp_path, loaders, echo=messages.append)
    by_name = {o.name: o for o in outcomes}
    assert [o.name for o in outcomes] == ["alpha", "beta", "gamma", "delta"]
    assert by_name["beta"].ok
    assert by_name["beta"].report == "beta/report.html"
    assert (tmp_path / "beta" / "result.txt").read_text() == "fine"
    assert not by_name["alpha"].ok
    assert by_name["alpha"].error == "RuntimeError: embedded data missing"
    assert "embedded data missing" in (tmp_path / "alpha" / "error.txt").read_text()
    assert not by_name["gamma"].ok
    assert "ImportError" in (by_name["gamma"].error or "")
    assert not by_name["delta"].ok
    assert "not a file" in (by_name["delta"].error or "")
    index = (tmp_path / "index.html").read_text()
    assert 'href="beta/report.html"' in index
    assert 'href="alpha/error.txt"' in index
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["failed"] == 3
    assert any("[alpha] FAILED" in m for m in messages)


def test_relative_out_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    seen: list[Path] = []

    def relative_report(out: Path, *, quiet: bool = False) -> Path:
        seen.append(out)
        (out / "r.html").write_text("ok")
        return Path("r.html")

    outcomes = run_quickstarts(
        Path("runs/qs"), {"a": lambda: _writes_report, "b": lambda: relative_report}
    )
    assert [o.report for o in outcomes] == ["a/report.html", "b/r.html"]
    assert seen == [tmp_path / "runs/qs/b"]


def test_quiet_only_silences_progress_lines(tmp_path):
    messages: list[str] = []
    run_quickstarts(tmp_path, {"beta": lambda: _writes_report}, quiet=True, echo=messages.append)
    assert len(messages) == 1
    assert messages[0].startswith("[beta] ok in ")


def test_rerun_into_an_earlier_quickstart_folder_is_allowed(tmp_path):
    run_quickstarts(tmp_path, {"beta": lambda: _writes_report}, echo=lambda _m: None)
    outcomes = run_quickstarts(tmp_path, {"beta": lambda: _writes_report}, echo=lambda _m: None)
    assert outcomes[0].ok


def test_foreign_nonempty_folder_is_refused_and_left_alone(tmp_path):
    precious = tmp_path / "notes.txt"
    precious.write_text("my notes")
    with pytest.raises(InputError, match="not empty"):
        run_quickstarts(tmp_path, {"beta": lambda: _writes_report})
    assert precious.read_text() == "my notes"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_out_that_is_a_file_is_refused(tmp_path):
    target = tmp_path / "file"
    target.write_text("x")
    with pytest.raises(InputError, match="not a folder"):
        run_quickstarts(target, {})


def test_core_registers_its_quickstart():
    assert "core" in discover()


def test_core_quickstart_samples_the_mixture(tmp_path):
    from polyfold.core.quickstart import quickstart

    report = quickstart(tmp_path, quiet=True)
    rows = json.loads((tmp_path / "samplers.json").read_text())["rows"]
    assert {r["sampler"] for r in rows} == {"DDIM", "DPM-Solver++(2M)", "UniPC-bh2"}
    for name in ("DDIM", "DPM-Solver++(2M)", "UniPC-bh2"):
        sw2 = [r["sw2"] for r in sorted(rows, key=lambda r: r["nfe"]) if r["sampler"] == name]
        assert sw2[0] > sw2[-1]  # more steps, closer to the mixture
        assert sw2[-1] < 0.3  # 20 steps reach the sampling floor (~0.13-0.21)
    html = report.read_text()
    assert html.count("<svg") == 3
    assert "environment.json" in html


def test_quickstart_run_frames_a_package_quickstart(tmp_path, capsys):
    torch.set_num_threads(2)
    threads = torch.get_num_threads()
    out = tmp_path / "pkg"
    with quickstart_run("pkg", out, quiet=False, marker="pkg.json") as echo:
        assert torch.get_num_threads() == 1
        echo("working")
        (out / "pkg.json").write_text("{}")
    assert torch.get_num_threads() == threads
    assert capsys.readouterr().out == "[pkg] working\n"
    with quickstart_run("pkg", out, quiet=True, marker="pkg.json") as echo:  # its own folder
        echo("silent")
    assert capsys.readouterr().out == ""


def test_quickstart_run_refuses_a_foreign_folder_and_restores_threads(tmp_path):
    torch.set_num_threads(2)
    threads = torch.get_num_threads()
    (tmp_path / "notes.txt").write_text("mine")
    with (
        pytest.raises(InputError, match=r"pkg\.json missing"),
        quickstart_run("pkg", tmp_path, marker="pkg.json"),
    ):
        pass
    with (
        pytest.raises(RuntimeError, match="boom"),
        quickstart_run("pkg", tmp_path / "new", marker="pkg.json"),
    ):
        raise RuntimeError("boom")
    assert torch.get_num_threads() == threads
    assert (tmp_path / "notes.txt").read_text() == "mine"
