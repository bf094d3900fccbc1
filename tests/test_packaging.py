"""Every package follows the same packaging conventions (see README: "Packages")."""

import importlib
import importlib.metadata as metadata
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_polyfold_is_a_namespace_package():
    import polyfold

    assert getattr(polyfold, "__file__", None) is None  # PEP 420: no polyfold/__init__.py
    assert not list(REPO.glob("packages/*/src/polyfold/__init__.py"))


def test_package_files_and_metadata(package, dist):
    module = importlib.import_module(f"polyfold.{package}")
    assert (Path(module.__file__).parent / "py.typed").is_file()
    assert "polyfold/__init__.py" not in {str(f) for f in dist.files or []}
    assert module.__version__ == dist.version  # single-sourced version
    assert dist.metadata["License-Expression"] == "Apache-2.0"
    assert dist.metadata["Requires-Python"] == ">=3.11"
    assert "Typing :: Typed" in (dist.metadata.get_all("Classifier") or [])


def test_entry_point_convention(package, dist):
    groups: dict[str, dict[str, str]] = {}
    for ep in dist.entry_points:
        groups.setdefault(ep.group, {})[ep.name] = ep.value
    assert package in groups.get("polyfold.quickstart", {})
    if package == "core":
        assert groups["console_scripts"] == {"polyfold": "polyfold.core.cli:main"}
    else:
        assert f"polyfold-{package}" in groups.get("console_scripts", {})
        assert package in groups.get("polyfold.domains", {})


def test_local_dependencies_are_polyfold_packages_in_this_repo(package):
    meta = tomllib.loads((REPO / "packages" / package / "pyproject.toml").read_text())["project"]
    for req in meta.get("dependencies", []):
        if req.lower().startswith("polyfold-"):
            name = req.split("polyfold-", 1)[1].split(">")[0].split("=")[0].split("[")[0]
            assert (REPO / "packages" / name / "pyproject.toml").is_file(), req


def test_every_installed_polyfold_distribution_has_a_folder(package_folders):
    installed = {
        d.metadata["Name"].removeprefix("polyfold-")
        for d in metadata.distributions()
        if (d.metadata["Name"] or "").startswith("polyfold-")
    }
    assert installed == set(package_folders)
