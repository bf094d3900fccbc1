"""The quickstart on tiny models standing in for the shipped ones (the shipped ones are exercised
by the smoke session and the benchmark)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from polyfold.core.errors import InputError
from polyfold.eeg import generate as generate_mod
from polyfold.eeg import quickstart as quickstart_mod
from polyfold.eeg.data import subject_split
from polyfold.eeg.diffusion import DiffusionConfig
from polyfold.eeg.quickstart import MARKER, quickstart
from polyfold.eeg.simtuar import simulate
from polyfold.eeg.train import fit_model
from polyfold.eeg.wgan import WGANConfig


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("qs-models")
    w = simulate(n_subjects=4, windows_per_class=6, seconds=0.4)
    data = w.save(root / "sim.npz")
    train, test = subject_split(w)
    source = {"data": str(data), "seconds": 0.4, "test_fraction": 0.25, "split_seed": 0}
    held = [int(s) for s in np.unique(test.subject)]
    configs = {
        "wgan": WGANConfig(n_times=100, steps=2, z_dim=8, width=16, critic_width=8, n_up=2),
        "ddpm": DiffusionConfig(n_times=100, steps=2, base=8, mults=[1, 2], emb=16, sample_steps=2),
    }
    return {
        kind: fit_model(
            kind, train, root / kind, config=cfg, test_subjects=held, data_source=source
        )
        for kind, cfg in configs.items()
    }


def test_quickstart_report_and_marker(
    tiny_models: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(generate_mod, "shipped_path", lambda name: tiny_models[name])
    monkeypatch.setattr(quickstart_mod, "PER_CLASS", 6)
    out = tmp_path / "qs"
    path = quickstart(out, quiet=True)
    html = path.read_text(encoding="utf-8")
    for name in ("eyem", "musc", "elec", "chew", "shiv", "worst_band_rel_error", "c2st_accuracy"):
        assert name in html
    # per class: a real window, one per model, and the spectra
    assert html.count("<svg") == 5 * 4
    summary = json.loads((out / MARKER).read_text())
    assert set(summary) >= {"wgan", "ddpm", "seconds"}
    assert 0.0 <= summary["ddpm"]["c2st_accuracy"] <= 1.0
    assert (out / "wgan.npz").is_file()
    other = tmp_path / "other"
    other.mkdir()
    (other / "mine.txt").write_text("x")
    with pytest.raises(InputError, match="not empty"):
        quickstart(other, quiet=True)
