"""Cross-package tests: they run with every package in packages/ installed together."""

from __future__ import annotations

import importlib.metadata as metadata
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _package_folders() -> list[str]:
    return sorted(p.name for p in (REPO / "packages").iterdir() if (p / "pyproject.toml").is_file())


@pytest.fixture(scope="session")
def package_folders() -> list[str]:
    return _package_folders()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "package" in metafunc.fixturenames:
        metafunc.parametrize("package", _package_folders())


@pytest.fixture
def dist(package: str) -> metadata.Distribution:
    try:
        return metadata.distribution(f"polyfold-{package}")
    except metadata.PackageNotFoundError:
        pytest.fail(f"packages/{package} is not installed: run these tests through `nox`")
