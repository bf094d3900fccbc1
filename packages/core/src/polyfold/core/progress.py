"""Progress of long work in a CLI: a rich bar on a terminal, plain lines otherwise, nothing with
``--quiet``; and the "resuming from step N" line of training commands.

::

    with Progress(len(items) * steps, "forecast", quiet=quiet) as bar:
        for item in items:
            sampler(..., callback=bar.step_callback())   # one tick per sampler step
    with Progress(max_steps, "train") as bar:
        ...; bar.trainer_update(step, loss, steps_per_s)   # what the Trainer reports per step

Output goes to stderr, so a command's stdout (JSON, paths) stays clean. Off a terminal (CI
logs, pipes) a line is printed at every tenth of the work, at least every 30 s while it advances,
and at the end.
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Annotated, Any, TextIO

import typer

from polyfold.core.errors import InputError
from polyfold.core.outputs import prepare_output_dir, probe_writable

if TYPE_CHECKING:
    from polyfold.core.state import State, StepCallback

__all__ = ["Progress", "Quiet", "Resume", "check_steps_left", "checkpoint_step", "resuming_line"]

#: The ``--quiet`` / ``-q`` option every polyfold command spells the same: ``quiet: Quiet = False``.
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")]
Resume = Annotated[bool, typer.Option("--resume", help="Continue the run in --out.")]
"""A training command's ``--resume`` (see :func:`prepare_training_out`)."""


class Progress:
    """Progress over ``total`` units of work, labelled ``description``.

    ``quiet``: show nothing. ``stream``: where to write (default stderr); a rich bar when it is a
    terminal, else plain ``description: done/total (pct%)`` lines at every tenth of the work and
    at least every ``interval`` seconds while it advances. Fields given to
    :meth:`update` / :meth:`advance` (e.g. ``loss=0.12``) are shown beside the count. ``done``:
    units already done when it starts (a resumed run).
    """

    def __init__(
        self,
        total: int,
        description: str,
        *,
        quiet: bool = False,
        stream: TextIO | None = None,
        interval: float = 30.0,
        done: int = 0,
    ) -> None:
        if isinstance(total, bool) or not isinstance(total, int) or total < 1:
            raise InputError(f"total: expected an integer >= 1, got {total!r}")
        self.total = total
        self.description = description
        self.quiet = quiet
        self.completed = max(0, min(int(done), total))
        self.fields: dict[str, float] = {}
        self._stream = stream if stream is not None else sys.stderr
        self._rich: Any = None
        self._task: Any = None
        self._next_line = 0  # plain mode: print when completed reaches this
        self._last_line = time.monotonic()  # ... or when `interval` seconds have passed
        self.interval = interval

    def __enter__(self) -> Progress:
        if self.quiet:
            return self
        if getattr(self._stream, "isatty", lambda: False)():
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )
            from rich.progress import Progress as RichProgress

            self._rich = RichProgress(
                TextColumn(self.description),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[info]}"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=Console(file=self._stream),
            )
            self._task = self._rich.add_task(
                self.description, total=self.total, completed=self.completed, info=""
            )
            self._rich.start()
        else:
            self._next_line = 0
            self._plain()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._rich is not None:
            self._rich.stop()
            self._rich = None

    def _info(self) -> str:
        return "  ".join(f"{k} {v:.4g}" for k, v in self.fields.items())

    def _plain(self) -> None:
        due = time.monotonic() - self._last_line >= self.interval
        if self.completed < self._next_line and self.completed < self.total and not due:
            return
        self._last_line = time.monotonic()
        pct = 100 * self.completed // self.total
        info = self._info()
        line = f"{self.description}: {self.completed}/{self.total} ({pct}%)"
        print(line + (f"  {info}" if info else ""), file=self._stream, flush=True)
        tenth = math.ceil(self.total / 10)
        self._next_line = (self.completed // tenth + 1) * tenth

    def update(self, completed: int, **fields: float) -> None:
        """Set the units done so far (clipped to ``total``) and the shown fields."""
        self.completed = max(0, min(int(completed), self.total))
        self.fields.update(fields)
        if self.quiet:
            return
        if self._rich is not None:
            self._rich.update(self._task, completed=self.completed, info=self._info())
        else:
            self._plain()

    def advance(self, n: int = 1, **fields: float) -> None:
        """``n`` more units done."""
        self.update(self.completed + n, **fields)

    def step_callback(self) -> StepCallback:
        """A sampler ``callback(step, t, x, x0)`` that advances one unit per sampler step."""

        def callback(step: int, t: float, x: State, x0: State | None) -> None:
            self.advance(1)

        return callback

    def trainer_update(self, step: int, loss: float, steps_per_s: float) -> None:
        """What the Trainer reports after each optimizer step (its progress bar's ``update``)."""
        fields = {"loss": loss} if math.isfinite(loss) else {}
        self.update(step, **fields)


def checkpoint_step(run_dir: str | Path) -> int | None:
    """The step of the newest complete trainer checkpoint in ``run_dir`` (``None``: none)."""
    from polyfold.core.train.checkpoint import latest_checkpoint

    found = latest_checkpoint(run_dir)
    if found is None:
        return None
    try:
        return int(json.loads((found / "config.json").read_text(encoding="utf-8"))["step"])
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise InputError(f"{found}: unreadable checkpoint config ({err})") from None


def resuming_line(step: int, max_steps: int | None = None, where: str | Path | None = None) -> str:
    """``resuming from step N of M (where)``: what a training command prints on ``--resume``."""
    text = f"resuming from step {step}"
    if max_steps is not None:
        text += f" of {max_steps}"
    if where is not None:
        text += f" ({where})"
    return text


#: the trainer's run folder inside a training command's ``--out``
RUN_FOLDER = "run"


def prepare_training_out(out: str | Path, *, resume: bool, force: bool = False) -> int | None:
    """Check a training command's ``--out`` before any work. A fresh run needs a new or empty
    folder (or ``force``); ``resume`` needs a checkpoint in ``out/run``, and a folder holding
    one is refused without it. Returns the step to resume from (``None``: a fresh run)."""
    out = Path(out)
    run = out / RUN_FOLDER
    done = checkpoint_step(run) if run.is_dir() else None
    if resume:
        if done is None:
            raise InputError(
                f"--resume: {out} holds no checkpoint to continue "
                f"({'none saved yet in' if run.is_dir() else 'no'} {run}); run without --resume"
            )
        probe_writable(out)
        return done
    if done is not None:
        raise InputError(
            f"--out {out}: holds a training run at step {done}; pass --resume to continue it, "
            "or choose another folder"
        )
    prepare_output_dir(out, force=force)
    return None


def check_steps_left(out: str | Path, resumed: int, steps: int) -> None:
    """Refuse ``--resume`` of a run in ``out`` that already reached ``resumed >= steps``."""
    if resumed >= steps:
        raise InputError(
            f"--resume: the run in {out} already reached step {resumed} of {steps}; "
            "pass a larger --steps to train further"
        )


def saved_model_config(run: str | Path) -> dict[str, Any]:
    """The ``model_config`` recorded by the newest checkpoint in ``run`` (to resume a run with
    the settings it was started with)."""
    from polyfold.core.train.checkpoint import latest_checkpoint

    found = latest_checkpoint(run)
    if found is None:
        raise InputError(f"--resume: {run} holds no checkpoint")
    cfg = json.loads((found / "config.json").read_text(encoding="utf-8")).get("model_config")
    if not isinstance(cfg, dict):
        raise InputError(f"--resume: {found} does not record the model's settings")
    return cfg
