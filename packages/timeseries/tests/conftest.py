"""polyfold-timeseries' tests: one torch thread, a fixed seed, and one tiny TSDiff per session."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from polyfold.timeseries.data import SeriesData, load_dataset
from polyfold.timeseries.tsdiff import TSDiff, TSDiffConfig


@pytest.fixture(autouse=True)
def _seed_torch() -> None:
    torch.manual_seed(0)
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def airline() -> SeriesData:
    return load_dataset("airline")


def tiny_config(**kw: object) -> TSDiffConfig:
    base: dict[str, object] = {
        "context_length": 24,
        "prediction_length": 12,
        "freq": "M",
        "steps": 150,
        "hidden": 16,
        "n_blocks": 1,
        "state_size": 8,
        "diffusion_steps": 30,
        "batch_size": 32,
        "lr": 3e-3,
    }
    base.update(kw)
    return TSDiffConfig(**base)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def tiny_model(airline: SeriesData, tmp_path_factory: pytest.TempPathFactory) -> TSDiff:
    """TSDiff trained briefly on all but the last year of the airline series."""
    torch.set_num_threads(1)
    run = tmp_path_factory.mktemp("tsdiff_run")
    return TSDiff(tiny_config()).fit([airline.values[0][:-12]], out_dir=Path(run))


@pytest.fixture(scope="session")
def model_dir(tiny_model: TSDiff, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_model.save(tmp_path_factory.mktemp("tsdiff_model"))


@pytest.fixture
def csv_file(tmp_path: Path, airline: SeriesData) -> Path:
    """Two monthly series in one CSV (timestamp + two value columns)."""
    y = airline.values[0]
    stamps = [str(p.to_timestamp().date()) for p in airline.starts[0] + np.arange(len(y))]
    lines = ["timestamp,a,b"] + [f"{s},{v},{v * 0.5 + 3}" for s, v in zip(stamps, y, strict=True)]
    path = tmp_path / "series.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
