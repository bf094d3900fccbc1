import json
import subprocess
import sys
from pathlib import Path

import torch
from typer.testing import CliRunner

from polyfold.core import __version__
from polyfold.core.cli import app

runner = CliRunner()


def test_info_names_versions_devices_and_packages():
    result = runner.invoke(app, ["info"])
    assert result.exit_code == 0, result.output
    assert f"polyfold  {__version__}" in result.output
    assert f"torch     {torch.__version__}" in result.output
    assert "cpu (" in result.output
    assert "triton" in result.output
    assert "polyfold-core" in result.output


def test_info_json_is_machine_readable():
    result = runner.invoke(app, ["info", "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert info["polyfold_version"] == __version__
    assert info["torch"] == torch.__version__
    assert info["devices"][0].startswith("cpu")
    installed = info["triton"] != "not installed"
    assert info["triton_usable"] is (installed and torch.cuda.is_available())
    core = next(p for p in info["packages"] if p["name"] == "polyfold-core")
    assert core["version"] == __version__
    assert core["entry_points"]["polyfold.quickstart"] == ["core"]


def test_console_script_and_module_entry_work():
    # `pip install ./packages/core` alone must give a working `polyfold info`.
    script = Path(sys.executable).with_name("polyfold")
    for command in ([str(script), "info"], [sys.executable, "-m", "polyfold.core", "info"]):
        result = subprocess.run(command, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        assert f"polyfold  {__version__}" in result.stdout


def test_quickstart_unknown_package_is_an_input_error(tmp_path):
    result = runner.invoke(app, ["quickstart", "--out", str(tmp_path), "--only", "nope"])
    assert result.exit_code != 0
    assert "--only nope: no such quickstart" in str(result.exception)


def test_quickstart_runs_core_and_writes_index(tmp_path):
    out = tmp_path / "qs"
    result = runner.invoke(app, ["quickstart", "--out", str(out), "--only", "core", "--quiet"])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert [p["name"] for p in summary["packages"]] == ["core"]
    assert summary["failed"] == 0
    assert 'href="core/report.html"' in (out / "index.html").read_text()
    env = json.loads((out / "core" / "environment.json").read_text())
    assert env["polyfold_version"] == __version__
    assert "[core]" not in result.output  # --quiet silences progress


def test_domain_cli_is_forwarded_and_loaded_only_when_called(tmp_path, monkeypatch):
    import importlib.metadata as metadata
    import sys

    import typer

    from polyfold.core.cli import _forwarder

    (tmp_path / "demo_domain_cli.py").write_text(
        "import typer\n"
        "app = typer.Typer()\n"
        "@app.command()\n"
        "def hello(name: str) -> None:\n"
        "    print(f'hello {name}')\n"
        "@app.command()\n"
        "def other() -> None: ...\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    ep = metadata.EntryPoint("demo", "demo_domain_cli:app", "polyfold.domains")
    umbrella = typer.Typer()
    umbrella.command(
        "demo", context_settings={"allow_extra_args": True, "ignore_unknown_options": True}
    )(_forwarder(ep))
    umbrella.command("info")(lambda: None)
    assert "demo_domain_cli" not in sys.modules  # nothing imported by registration
    result = runner.invoke(umbrella, ["demo", "hello", "qm9"])
    assert result.exit_code == 0, result.output
    assert "hello qm9" in result.output


def test_domain_app_has_polyfold_defaults():
    from typer.testing import CliRunner

    from polyfold.core.cli import domain_app

    demo = domain_app("polyfold-demo", "A demo CLI.")

    @demo.command()
    def hello() -> None:
        print("hi")

    @demo.command()
    def bye() -> None:
        print("bye")

    result = CliRunner().invoke(demo, [])  # no arguments: help, not an error trace
    assert "A demo CLI." in result.output
    assert "hello" in result.output
    assert CliRunner().invoke(demo, ["hello"]).output == "hi\n"
