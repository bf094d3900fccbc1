"""Metric logs (CSV always, TensorBoard when installed) and the training progress bar."""

from __future__ import annotations

import csv
import importlib.util
import os
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from polyfold.core.errors import InputError

__all__ = ["MetricsLogger", "ProgressBar", "tensorboard_available"]


def tensorboard_available() -> bool:
    """Whether ``torch.utils.tensorboard`` can be used (the ``tensorboard`` package is present)."""
    return importlib.util.find_spec("tensorboard") is not None


class MetricsLogger:
    """Appends one row per logged step to ``<folder>/metrics.csv`` (and TensorBoard events).

    ``resume_step``: rows after that step (written by a run that died before its next
    checkpoint) are dropped, so a resumed run's log has each step once. Columns are fixed by the
    first row written; later keys outside them are ignored.
    """

    def __init__(
        self, folder: str | Path, *, tensorboard: bool = False, resume_step: int | None = None
    ) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.path = self.folder / "metrics.csv"
        self._fields: list[str] | None = None
        if self.path.is_file():
            with open(self.path, newline="") as fh:
                rows = list(csv.DictReader(fh))
                fields = list(rows[0].keys()) if rows else None
            if fields is not None:
                self._fields = fields
            if resume_step is None:
                resume_step = 0
            keep = [r for r in rows if int(float(r.get("step", 0) or 0)) <= resume_step]
            if len(keep) != len(rows):
                tmp = self.path.with_name(f".tmp-{self.path.name}-{os.getpid()}")
                with open(tmp, "w", newline="") as fh:
                    writer = csv.DictWriter(fh, fieldnames=fields or [])
                    writer.writeheader()
                    writer.writerows(keep)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(tmp, self.path)
        self._tb: Any = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                raise InputError(
                    "tensorboard: expected the 'tensorboard' package to be installed "
                    "(pip install tensorboard), or tensorboard=False"
                ) from None

            self._tb = SummaryWriter(log_dir=str(self.folder / "tensorboard"))

    def log(self, step: int, metrics: Mapping[str, float]) -> None:
        row: dict[str, Any] = {"step": step, **metrics}
        new = not self.path.is_file() or self.path.stat().st_size == 0
        if self._fields is None:
            self._fields = list(row)
        with open(self.path, "a", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=self._fields, extrasaction="ignore")
            if new:
                writer.writeheader()
            writer.writerow(row)
        if self._tb is not None:
            for k, v in metrics.items():
                self._tb.add_scalar(k, v, step)

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
            self._tb = None


class ProgressBar:
    """A rich progress bar showing step, loss and steps/s; does nothing when ``enabled`` is off."""

    def __init__(self, total: int, *, start: int = 0, enabled: bool = True) -> None:
        self.enabled = enabled
        self._progress: Any = None
        self._task: Any = None
        if not enabled:
            return
        from rich.progress import (  # only when a bar is shown: quiet runs never load rich
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._progress = Progress(
            TextColumn("train"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}"),
            TextColumn("{task.fields[rate]} steps/s"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
        )
        self._task = self._progress.add_task(
            "train", total=total, completed=start, loss="-", rate="-"
        )

    def __enter__(self) -> ProgressBar:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._progress is not None:
            self._progress.stop()

    def update(self, step: int, loss: float, steps_per_s: float) -> None:
        if self._progress is not None:
            self._progress.update(
                self._task, completed=step, loss=f"{loss:.4g}", rate=f"{steps_per_s:.2f}"
            )
