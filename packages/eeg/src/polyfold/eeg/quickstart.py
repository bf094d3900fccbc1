"""polyfold-eeg's quickstart: both shipped models generate every artifact class, and are compared
with the held-out subjects of the simulated set they were trained on.

Registered in the ``polyfold.quickstart`` entry-point group. The real windows are simtuar (the
simulated TUAR-like set, rebuilt from the model card's data settings); the shipped models never
saw the held-out subjects. Writes ``out/report.html`` (a real and a synthetic window of each class
side by side, mean spectra, the metric table), ``out/<model>.npz`` (the synthetic windows) and
``out/eeg-quickstart.json`` (the overall metrics). Offline, one CPU thread.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from polyfold.core.quickstart import quickstart_run
from polyfold.core.report import Report

__all__ = ["MARKER", "heldout_windows", "quickstart"]

MARKER = "eeg-quickstart.json"
PER_CLASS = 24


def heldout_windows(card: dict[str, Any]) -> tuple[Any, Any]:
    """``(train, test)`` windows of the data a model card records (simtuar with its window
    length and the same subject-wise split). For simtuar this is always the default set (20
    windows per class and subject), also for a model trained with more windows per class
    (``train --per-class``, recorded as ``data_source.train_windows_per_class``): the
    evaluation's real reference does not change with how much training data a model saw, and
    the held-out subjects are the same (the split depends on the subjects only)."""
    from polyfold.core.errors import InputError
    from polyfold.eeg.data import Windows, subject_split
    from polyfold.eeg.simtuar import simulate

    source = card.get("data_source") or {}
    if source.get("data"):
        w = Windows.load(source["data"])
    else:
        w = simulate(seconds=float(source.get("seconds", 2.0)))
    train, test = subject_split(
        w,
        test_fraction=float(source.get("test_fraction", 0.25)),
        seed=int(source.get("split_seed", 0)),
    )
    held = sorted(card.get("test_subjects") or [])
    if held and held != sorted(int(s) for s in set(test.subject.tolist())):
        raise InputError("model card: its held-out subjects differ from the rebuilt split")
    return train, test


def quickstart(out: Path, *, quiet: bool = False) -> Path:
    """Run the quickstart; write ``out/report.html`` and return its path."""
    from polyfold.eeg.evaluation import evaluate
    from polyfold.eeg.generate import SHIPPED, load_synthesizer, synthesize
    from polyfold.eeg.report import DIRECTIONS, add_class_section, add_metric_table

    out = Path(out)
    t0 = time.perf_counter()
    with quickstart_run("eeg", out, quiet=quiet, marker=MARKER) as echo:
        synths = {name: load_synthesizer(name) for name in SHIPPED}
        echo("simulating simtuar (the held-out subjects are the real reference)")
        train, test = heldout_windows(synths["ddpm"].card)
        fakes, metrics = {}, {}
        for name, synth in synths.items():
            echo(f"generating {PER_CLASS} windows of each class with the shipped {name}")
            fakes[name] = synthesize(synth, synth.classes, PER_CLASS, seed=0)
            fakes[name].save(out / f"{name}.npz")
            echo(f"evaluating {name} against {len(test)} held-out windows")
            result = evaluate(test, fakes[name], train_real=train, seed=0)
            metrics[name] = {
                k: v for k, v in result.get("overall", result).items() if isinstance(v, float)
            }
        report = Report("polyfold-eeg quickstart: ArtifactGen WGAN-GP vs diffusion")
        report.paragraph(
            "simtuar is SIMULATED EEG (sphere-model forward solution, parametric artifacts); the "
            f"real windows shown and scored are {len(test)} windows of subjects neither shipped "
            f"model trained on. Each model generated {PER_CLASS} windows per class. Both models "
            "see one preprocessing (per-channel spectral whitening fitted on the training "
            "subjects)."
        )
        report.heading("Metrics (synthetic vs held-out real)")
        add_metric_table(report, metrics, DIRECTIONS)
        report.heading("Real and synthetic windows and spectra, per class")
        for name in test.classes:
            add_class_section(report, name, test, {f"{k} (synthetic)": v for k, v in fakes.items()})
        seconds = time.perf_counter() - t0
        report.paragraph(f"Total time {seconds:.1f} s on one CPU thread.")
        (out / MARKER).write_text(json.dumps(metrics | {"seconds": seconds}, indent=2) + "\n")
        path = report.write(out / "report.html")
        echo(f"wrote {path} in {seconds:.1f} s")
        return path
