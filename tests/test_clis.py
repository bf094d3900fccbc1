"""Every package's CLI answers --help, alone and through the umbrella command."""

import json
import subprocess
import sys
from pathlib import Path

BIN = Path(sys.executable).parent


def _run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=120, cwd=cwd)


def test_console_scripts_answer_help(dist):
    scripts = [ep.name for ep in dist.entry_points if ep.group == "console_scripts"]
    assert scripts, f"{dist.metadata['Name']} installs no command"
    for script in scripts:
        result = _run(str(BIN / script), "--help")
        assert result.returncode == 0, result.stderr
        assert "Usage" in result.stdout


def test_umbrella_forwards_to_domain_clis(package, dist):
    domains = [ep.name for ep in dist.entry_points if ep.group == "polyfold.domains"]
    for name in domains:
        result = _run(str(BIN / "polyfold"), name, "--help")
        assert result.returncode == 0, result.stderr
        assert f"polyfold {name}" in result.stdout


def test_info_lists_every_package(package_folders):
    result = _run(str(BIN / "polyfold"), "info", "--json")
    assert result.returncode == 0, result.stderr
    names = {p["name"] for p in json.loads(result.stdout)["packages"]}
    assert names == {f"polyfold-{p}" for p in package_folders}


def test_quickstart_end_to_end(tmp_path):
    # As `nox -s quickstart` runs it: a relative --out under the working directory.
    result = _run(str(BIN / "polyfold"), "quickstart", "--only", "core", cwd=tmp_path)
    out = tmp_path / "runs" / "quickstart"
    assert result.returncode == 0, result.stdout + result.stderr
    index = (out / "index.html").read_text()
    summary = json.loads((out / "summary.json").read_text())
    for entry in summary["packages"]:
        assert entry["ok"]
        assert f'href="{entry["report"]}"' in index
        assert (out / entry["report"]).is_file()
