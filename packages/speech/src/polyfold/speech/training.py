"""Training the teacher and distilling the two students, each with core's
:class:`~polyfold.core.train.Trainer` (EMA, clipping, atomic checkpoints, resume) and saved as a
model file (:func:`polyfold.core.export.save_model`, the EMA weights).

* :func:`train_teacher`: the acoustic model on a corpus (``path="vp"`` for ProDiff's teacher,
  ``"edm"`` for CoMoSpeech's).
* :func:`distill_prodiff`: progressive distillation rounds ``teacher_steps -> ... -> 2``
  (:func:`polyfold.core.distill.progressive_schedule`), one Trainer run per round, each round's
  student the next round's teacher.
* :func:`distill_comospeech`: consistency distillation of an EDM teacher to one step.
"""

from __future__ import annotations

import copy
import shlex
import sys
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import torch

from polyfold.core.distill import progressive_schedule
from polyfold.core.errors import InputError
from polyfold.core.export import save_model
from polyfold.core.train import Trainer
from polyfold.speech.corpus import Corpus
from polyfold.speech.dataset import MelDataset, collate, mel_statistics
from polyfold.speech.model import PRESETS, AcousticConfig, AcousticModel
from polyfold.speech.objectives import comospeech_loss, prodiff_loss, teacher_loss

__all__ = ["TrainSettings", "distill_comospeech", "distill_prodiff", "train_teacher"]

Progress = Callable[[int, float, float], None] | None


class TrainSettings:
    """Optimisation settings shared by the three trainings."""

    def __init__(
        self,
        steps: int = 2000,
        batch_size: int = 16,
        lr: float = 2e-4,
        seed: int = 0,
        ema_decay: float = 0.999,
        quiet: bool = False,
        device: str | None = None,
    ) -> None:
        if steps < 1 or batch_size < 1 or not lr > 0:
            raise InputError("steps, batch_size and lr must be positive")
        self.steps, self.batch_size, self.lr, self.seed = steps, batch_size, lr, seed
        self.ema_decay, self.quiet, self.device = ema_decay, quiet, device

    def trainer(
        self,
        model: AcousticModel,
        loss: Callable[..., torch.Tensor],
        data: MelDataset,
        out: Path,
        card: str,
        steps: int | None = None,
    ) -> Trainer:
        return Trainer(
            model,
            loss,
            data,
            out_dir=out,
            collate_fn=collate,
            model_config=model.config,
            data_card=card,
            max_steps=steps or self.steps,
            batch_size=min(self.batch_size, len(data)),
            lr=self.lr,
            warmup_steps=min(100, (steps or self.steps) // 10),
            ema_decay=self.ema_decay,
            seed=self.seed,
            quiet=self.quiet,
            device=self.device or "cpu",
            checkpoint_every=max(1, (steps or self.steps) // 4),
            log_every=max(1, min(50, (steps or self.steps) // 10)),
        )


def _command() -> str:
    return (
        shlex.join(["polyfold-speech", *sys.argv[1:]])
        if sys.argv and "speech" in sys.argv[0]
        else shlex.join(sys.argv)
    )


def _finish(
    trainer: Trainer, model: AcousticModel, out: Path, card: str, extra: dict[str, Any]
) -> Path:
    """Copy the EMA weights into ``model`` and save it as ``out/model``."""
    if trainer.ema is not None:
        trainer.ema.copy_to(model)
    model.eval()
    record = {"data_card": card, "command": _command(), "steps": trainer.step, **extra}
    return save_model(model, out / "model", config=model.config, card=record)


def _data(corpus: Corpus) -> MelDataset:
    return MelDataset(corpus, corpus.split("train"))


def _card(corpus: Corpus) -> str:
    return corpus.name


def train_teacher(
    corpus: Corpus,
    out: str | Path,
    *,
    preset: str = "default",
    path: str = "vp",
    settings: TrainSettings | None = None,
    resume: bool = False,
    progress: Progress = None,
) -> Path:
    """Train a teacher on the corpus's train split; returns the saved model file."""
    if preset not in PRESETS:
        raise InputError(f"preset: expected one of {', '.join(PRESETS)}, got {preset!r}")
    settings = settings or TrainSettings()
    out = Path(out)
    data = _data(corpus)
    cfg = replace(PRESETS[preset], kind="teacher", path=path)  # type: ignore[arg-type]
    model = AcousticModel(**asdict(cfg))
    model.set_mel_statistics(*mel_statistics(data))
    trainer = settings.trainer(model, teacher_loss, data, out / "run", _card(corpus))
    trainer.fit(resume=resume, progress=progress)
    return _finish(
        trainer, model, out, _card(corpus), {"preset": preset, "train_utterances": len(data)}
    )


def _student(teacher: AcousticModel, **changes: Any) -> AcousticModel:
    cfg = AcousticConfig(**{**teacher.config, **changes})
    student = AcousticModel(**asdict(cfg))
    student.load_state_dict(teacher.state_dict())
    return student


def distill_prodiff(
    corpus: Corpus,
    teacher: AcousticModel,
    out: str | Path,
    *,
    teacher_steps: int = 8,
    final_steps: int = 2,
    settings: TrainSettings | None = None,
    progress: Progress = None,
) -> Path:
    """ProDiff: progressive distillation of a teacher (VP as in the paper, or EDM) from
    ``teacher_steps`` DDIM steps down to ``final_steps``, ``settings.steps`` optimizer steps per
    round."""
    if teacher.cfg.kind != "teacher":
        raise InputError("teacher: ProDiff distils a teacher (train one with --model teacher)")
    settings = settings or TrainSettings()
    out = Path(out)
    data = _data(corpus)
    current = {"teacher": teacher.eval()}
    students: dict[int, AcousticModel] = {}

    def round_(n: int, _i: int) -> float:
        t = current["teacher"]
        student = _student(t, kind="prodiff", steps=n)

        def loss(model: AcousticModel, batch: dict[str, Any], gen: torch.Generator) -> torch.Tensor:
            return prodiff_loss(model, t, batch, gen, student_steps=n, data_steps=teacher_steps)

        trainer = settings.trainer(student, loss, data, out / f"round-{n}", _card(corpus))
        result = trainer.fit(progress=progress)
        if trainer.ema is not None:
            trainer.ema.copy_to(student)
        students[n] = student.eval()
        return float(result.loss or 0.0)

    def next_teacher(n: int) -> None:
        current["teacher"] = students[n]

    logs = progressive_schedule(
        round_,
        teacher_steps=teacher_steps,
        final_steps=final_steps,
        iterations=1,
        on_stage_end=next_teacher,
    )
    final = students[final_steps]
    record = {
        "data_card": _card(corpus),
        "command": _command(),
        "teacher_steps": teacher_steps,
        "rounds": [[lg.teacher_steps, lg.student_steps] for lg in logs],
        "steps_per_round": settings.steps,
    }
    return save_model(final, out / "model", config=final.config, card=record)


def distill_comospeech(
    corpus: Corpus,
    teacher: AcousticModel,
    out: str | Path,
    *,
    levels: int = 18,
    target_decay: float = 0.95,
    settings: TrainSettings | None = None,
    progress: Progress = None,
) -> Path:
    """CoMoSpeech: consistency distillation of an EDM teacher into a one-step student over
    ``levels`` Karras noise levels, with an EMA target model of decay ``target_decay``."""
    if teacher.cfg.kind != "teacher" or teacher.cfg.path != "edm":
        raise InputError("teacher: CoMoSpeech distils a teacher trained with --path edm")
    settings = settings or TrainSettings()
    out = Path(out)
    data = _data(corpus)
    teacher.eval()
    student = _student(teacher, kind="comospeech", steps=1)
    target = copy.deepcopy(student).requires_grad_(False)

    def loss(model: AcousticModel, batch: dict[str, Any], gen: torch.Generator) -> torch.Tensor:
        return comospeech_loss(
            model, target, teacher, batch, gen, levels=levels, ema_decay=target_decay
        )

    trainer = settings.trainer(student, loss, data, out / "run", _card(corpus))
    trainer.fit(progress=progress)
    return _finish(
        trainer, student, out, _card(corpus), {"levels": levels, "target_decay": target_decay}
    )
