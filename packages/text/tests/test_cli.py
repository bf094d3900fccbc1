"""polyfold-text's CLI: generate (prompt, infill, samplers), evaluate, train, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from polyfold.core.cli import exit_status
from polyfold.text.cli import app


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = exit_status(app, args, "polyfold-text")
    out = capsys.readouterr()
    return code, out.out, out.err


def test_generate_prompt_and_infill(tiny_model_files, capsys) -> None:
    model = tiny_model_files["mdlm"]
    code, out, _ = _run(
        [
            "generate",
            "--model",
            model,
            "--prompt",
            "ROMEO:",
            "--length",
            "20",
            "-n",
            "2",
            "--sampler",
            "ancestral",
            "--steps",
            "5",
            "--json",
        ],
        capsys,
    )
    assert code == 0
    payload = json.loads(out)
    assert len(payload["texts"]) == 2
    assert payload["steps"] == 5
    assert all(t.startswith("ROMEO:") and len(t) == 20 for t in payload["texts"])
    assert 1 <= payload["model_calls"] <= 5
    code, out, _ = _run(
        ["generate", "--model", model, "--infill", "But ___, what", "--sampler", "confidence"],
        capsys,
    )
    assert code == 0
    text = out.rstrip("\n")
    assert text.startswith("But ")
    assert text.endswith(", what")
    assert len(text) == 13


def test_generate_errors_exit_2(tiny_model_files, capsys, tmp_path: Path) -> None:
    model = tiny_model_files["mdlm"]
    code, _, err = _run(["generate", "--model", model, "--prompt", "R" * 40], capsys)
    assert code == 2
    assert "longer than the model's context of 32 tokens" in err
    code, _, err = _run(["generate", "--model", model, "--sampler", "beam"], capsys)
    assert code == 2
    assert "sampler" in err
    code, _, err = _run(["generate", "--model", str(tmp_path / "nope.json")], capsys)
    assert code == 2
    assert "checkpoint" in err
    bad = tmp_path / "schema.json"
    bad.write_text("{not json")
    code, _, err = _run(["generate", "--model", model, "--schema", bad], capsys)
    assert code == 2
    assert "--schema" in err


def test_evaluate(tiny_model_files, capsys, tmp_path: Path) -> None:
    out_file = tmp_path / "m.json"
    code, _out, _ = _run(
        [
            "evaluate",
            "--model",
            tiny_model_files["mdlm"],
            "--ar-model",
            tiny_model_files["ar"],
            "--chunks",
            "2",
            "--samples",
            "2",
            "--out",
            out_file,
        ],
        capsys,
    )
    assert code == 0
    metrics = json.loads(out_file.read_text())
    assert metrics["mdlm_bpc"] > 0
    assert metrics["gen_ppl"] > 1
    assert metrics["model_calls_per_sample"] == 32  # first-hitting: one call per position
    assert metrics["unigram_entropy_bits"] > 0


def test_train_requires_name_with_export(capsys, tmp_path: Path) -> None:
    code, _, err = _run(["train", "--run", tmp_path / "r", "--export", tmp_path], capsys)
    assert code == 2
    assert "--name" in err
    code, _, err = _run(["train", "--run", tmp_path / "r", "--kind", "gan"], capsys)
    assert code == 2
    assert "kind" in err
