"""The quickstart runs every shipped text-to-motion model side by side, labelled with its card's
figures; the labels and the model list are checked against the cards and ``SHIPPED``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from polyfold.core.export import read_card
from polyfold.motion import render, shipped
from polyfold.motion.quickstart import (
    GENERATIVE_MODELS,
    MARKER,
    card_metrics,
    model_label,
    quickstart,
    shipped_generative_models,
)

PART_ONE_AND_TWO = ("emdm", "ddpm", "mmdm", "mogo", "t2m-gpt", "mmm")


def test_card_metrics_take_accuracy_and_fid_over_floor_where_present() -> None:
    assert card_metrics({}) == {}
    assert card_metrics({"metrics": "n/a"}) == {}
    assert card_metrics({"metrics": {"held_out_cross_entropy": 5.3}}) == {}
    card = {"metrics": {"accuracy": 0.4, "fid_over_real_floor": 1.333, "steps": 50}}
    assert card_metrics(card) == {"accuracy": 0.4, "fid_over_floor": 1.333}
    assert card_metrics({"metrics": {"accuracy": float("nan"), "fid_over_floor": 2}}) == {
        "fid_over_floor": 2.0
    }
    assert model_label("mogo", {}) == "mogo: not measured"
    assert model_label("ddpm", card_metrics(card)) == "ddpm: acc 0.40, FID/floor 1.33"
    assert model_label("bipo", {"accuracy": 0.875}) == "bipo: acc 0.88"


def test_the_model_list_follows_what_is_shipped(monkeypatch: pytest.MonkeyPatch) -> None:
    names = shipped_generative_models()
    assert names == tuple(m for m in GENERATIVE_MODELS if m in shipped.SHIPPED)
    assert set(PART_ONE_AND_TWO) <= set(shipped_generative_models())
    monkeypatch.setattr(shipped, "SHIPPED", (*shipped.SHIPPED, "bipo"))
    assert shipped_generative_models()[-1] == "bipo"
    monkeypatch.setattr(shipped, "SHIPPED", tuple(m for m in shipped.SHIPPED if m != "mogo"))
    assert "mogo" not in shipped_generative_models()


def test_the_report_shows_every_shipped_model_with_its_card_figures(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gifs: dict[str, list[str]] = {}

    def record_gif(path, motions, captions, *args, **kwargs):  # the GIF encoder is slow
        assert len(motions) == len(captions)
        gifs[Path(path).name] = list(captions)
        return Path(path)

    monkeypatch.setattr(render, "write_gif", record_gif)
    html = quickstart(tmp_path, quiet=True).read_text()
    summary = json.loads((tmp_path / MARKER).read_text())
    models = shipped_generative_models()
    assert summary["models"] == list(models)
    labels = []
    for name in models:
        metrics = card_metrics(read_card(shipped.shipped_path(name))["card"])
        assert summary[f"{name}_card"] == metrics
        assert 0.0 <= summary[f"{name}_action_accuracy_4_captions"] <= 1.0
        labels.append(model_label(name, metrics))
        assert html.count(f">{labels[-1]}</text>") == 4  # one panel per caption
        assert f"<td>{name}</td>" in html
    assert gifs["models.gif"] == ["real clip", *labels]
    # the models of issues 21 and 22 carry the benchmark's figures on their cards
    for name, label in zip(models, labels, strict=True):
        if name in PART_ONE_AND_TWO:
            assert label.startswith(f"{name}: acc ")
            assert "FID/floor" in label
